"""The manifest of an output folder: which input each output came from, as
that input was when it was read, so a rerun does only what is missing or
changed, and never mixes outputs or deletes a file it did not write.

Layout, under ``<output_dir>/_kwmlp-manifest/``:

- ``run.json``: the settings every output in the folder shares: ``outputs``
  (``files``: npz/npy, or ``parquet``: parts), for Parquet also ``model_id``,
  ``model_options``, ``sample_rate``, ``resampler``, ``format`` and ``kind``;
  written atomically by the first run.
- ``done/<time ns>-<pid>-<seq>.json``: records, each written atomically after
  the outputs it lists are in place: ``{"entries": [{"path": <path relative to
  its input>, "source": <the input's resolved path>, "size": bytes,
  "mtime_ns": ... (both read just before the input was decoded), "outputs":
  [files relative to output_dir], "settings": {...}}, ...]}``. A later record
  of a path replaces an earlier one.
- ``expected/<name>``: a file this run is about to write that no record lists
  yet (a Parquet part); a run killed before recording it leaves the marker, and
  the next run deletes that file, knowing it is its own.
- ``lock``: held (``flock``) while a run writes, so two runs never share a
  folder; the kernel releases it when a run dies, even by SIGKILL.

An output on disk that no record lists does not count as done.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from itertools import count
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Set

from .atomic import remove_stale_temporaries, write_atomic
from .errors import KwmlpError
from .results import SourceStat

# "_": Parquet dataset readers (pyarrow, pandas) skip such names, so the output
# folder of a Parquet run reads as its parts alone.
MANIFEST_DIR = "_kwmlp-manifest"
RUN_FILE = "run.json"
RECORDS_DIR = "done"
EXPECTED_DIR = "expected"
LOCK_FILE = "lock"

Entry = Dict[str, object]


def resolved_source(path: Path) -> str:
    """How a record names an input: its resolved path, so another folder's
    file of the same name is another source."""
    return os.fsdecode(path.resolve())


def source_entry(key: str, source: Path, stat: Optional[SourceStat], outputs: Iterable[str],
                 settings: Mapping[str, object]) -> Entry:
    """What a record says of one finished input: its key (path relative to
    its input), its resolved path, its size and mtime as read when it was
    decoded (``stat``), its outputs and the settings they were made with."""
    if stat is None:  # a result not made by an engine: the file as it is now
        now = source.stat()
        stat = SourceStat(now.st_size, now.st_mtime_ns)
    return {"path": key, "source": resolved_source(source), "size": stat.size,
            "mtime_ns": stat.mtime_ns, "outputs": sorted(outputs), "settings": dict(settings)}


def read_records(output_dir: Path) -> Dict[str, Entry]:
    """The latest record of each path in ``output_dir``'s manifest (empty if
    there is none). Records that cannot be read are ignored: only complete
    ones were ever renamed into place, so there are none unless edited."""
    folder = output_dir / MANIFEST_DIR / RECORDS_DIR
    done: Dict[str, Entry] = {}
    if not folder.is_dir():
        return done
    for record in sorted(folder.glob("*.json")):  # names sort by time written
        try:
            entries = json.loads(record.read_bytes())["entries"]
        except (OSError, ValueError, KeyError):
            continue
        done.update((entry["path"], entry) for entry in entries)
    return done


OUTPUTS = {"files": "npz/npy files", "parquet": "Parquet parts"}  # run.json's "outputs"


def read_settings(output_dir: Path) -> Optional[Dict[str, object]]:
    """``run.json`` of ``output_dir``'s manifest, or None without one."""
    path = output_dir / MANIFEST_DIR / RUN_FILE
    if not path.exists():
        return None
    settings = json.loads(path.read_bytes())
    # kwmlp 0.1 wrote no "outputs"; its format tells.
    settings.setdefault("outputs", "parquet" if settings.get("format") == "parquet" else "files")
    return settings


def _describe(settings: Mapping[str, object]) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(settings.items()))


class Manifest:
    """An output folder's manifest, held for one run (a context manager).

    Opening it takes the lock and checks ``folder_settings`` against the
    folder's: others raise ``KwmlpError`` (outputs are never mixed) unless
    ``overwrite``, which deletes every recorded output and record so the run
    starts clean. With the same settings ``overwrite`` deletes nothing: the
    inputs it recomputes get new records that supersede their old ones (a new
    npz/npy file in place, a row in a new Parquet part), and the other inputs'
    outputs stay."""

    def __init__(self, output_dir: Path, folder_settings: Mapping[str, object],
                 overwrite: bool = False):
        self.output_dir = output_dir
        self.folder = output_dir / MANIFEST_DIR
        self.records = self.folder / RECORDS_DIR
        self.expected = self.folder / EXPECTED_DIR
        for folder in (self.records, self.expected):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / LOCK_FILE, "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise KwmlpError(f"{output_dir}: another kwmlp run is writing to this folder; "
                             f"wait for it or choose another output folder") from None
        try:
            self._open(dict(folder_settings), overwrite)
        except BaseException:
            self.close()
            raise
        self._seq = count()

    def _open(self, settings: Dict[str, object], overwrite: bool) -> None:
        existing = read_settings(self.output_dir)
        differ = sorted(k for k in settings if existing is not None and k in existing
                        and existing[k] != settings[k])
        if "outputs" in differ and not overwrite:
            raise KwmlpError(
                f"{self.output_dir} holds {OUTPUTS[existing['outputs']]} (format "
                f"{existing.get('format', 'npz/npy')}), this run would write "
                f"{OUTPUTS[settings['outputs']]}; outputs are never mixed: write to another "
                f"output folder, or pass --overwrite (overwrite=True) to replace them")
        if differ and not overwrite:
            raise KwmlpError(
                f"{self.output_dir} holds embeddings made with "
                f"{_describe({k: existing.get(k) for k in differ})}, this run would make "
                f"{_describe({k: settings.get(k) for k in differ})}; to keep them apart, "
                f"write to another output folder, or pass --overwrite (overwrite=True) to "
                f"replace them")
        for folder in (self.folder, self.records):
            for leftover in folder.glob(".*.tmp"):  # a killed run's; the lock proves it dead
                leftover.unlink(missing_ok=True)
        self.done = read_records(self.output_dir)
        if existing is not None:  # kwmlp 0.1's records: the folder's settings were theirs
            legacy = {k: v for k, v in existing.items() if k != "outputs"}
            for entry in self.done.values():
                entry.setdefault("settings", legacy)
        self._remove_unrecorded_expected()
        if overwrite and differ:
            for entry in self.done.values():
                for name in entry["outputs"]:
                    (self.output_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.records)
            self.records.mkdir()
            self.done = {}
        if existing != settings:
            record = json.dumps(settings, indent=1).encode()
            write_atomic(self.folder / RUN_FILE, lambda file: file.write(record))

    def _remove_unrecorded_expected(self) -> None:
        """Delete the files a killed run was writing but never recorded: only
        those it marked as its own (``expect``), never any other."""
        listed = {name for entry in self.done.values() for name in entry["outputs"]}
        for marker in self.expected.iterdir():
            target = self.output_dir / marker.name
            if marker.name not in listed:
                target.unlink(missing_ok=True)
                remove_stale_temporaries(self.output_dir, {marker.name})
            marker.unlink()

    def recorded_outputs(self) -> Set[Path]:
        """Every output the records list, as paths in the output folder."""
        return {self.output_dir / name for entry in self.done.values()
                for name in entry["outputs"]}

    def expect(self, name: str) -> None:
        """Mark ``name`` (in the output folder) as about to be written by this run."""
        (self.expected / name).touch()

    def why_not_done(self, key: str, source: Path, settings: Mapping[str, object]
                     ) -> Optional[str]:
        """None if a record lists ``key`` as made from ``source``, as it is now
        (same resolved path, size and mtime), with ``settings``, and its outputs
        exist; else why it must be embedded (again)."""
        entry = self.done.get(key)
        if entry is None:
            return "not recorded"
        # Resolved again: kwmlp 0.1 recorded the path as given.
        if resolved_source(Path(entry["source"])) != resolved_source(source):
            return f"its output holds the embedding of another file, {entry.get('source')}"
        made = entry.get("settings") or {}
        differ = {k: made.get(k) for k in sorted(set(made) | set(settings))
                  if made.get(k) != settings.get(k)}
        if differ:  # named, so a switch of --format is not taken for another model
            return f"its recorded output was made with {_describe(differ)}"
        try:
            stat = source.stat()
        except OSError:
            return "cannot read it"
        if (entry["size"], entry["mtime_ns"]) != (stat.st_size, stat.st_mtime_ns):
            return "it changed since it was embedded"
        if not all((self.output_dir / name).exists() for name in entry["outputs"]):
            return "its output is gone"
        return None

    def record(self, entries: List[Entry]) -> None:
        """Record ``entries`` as done, atomically: all of them or none."""
        if not entries:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}.json"
        data = json.dumps({"entries": entries}).encode()
        write_atomic(self.records / name, lambda file: file.write(data))
        self.done.update((entry["path"], entry) for entry in entries)
        for output in {name for entry in entries for name in entry["outputs"]}:
            (self.expected / output).unlink(missing_ok=True)

    def close(self) -> None:
        self._lock.close()  # releases the flock

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
