"""The manifest of a corpus run (``kwmlp.embed_corpus``): what an output
folder holds, so a rerun does only what is missing and never mixes outputs.

Layout, under ``<output_dir>/_kwmlp-manifest/``:

- ``run.json``: the settings every output in the folder was made with
  (``model_id``, ``model_options``, ``sample_rate``, ``resampler``, ``format``,
  ``kind``); written atomically by the first run.
- ``done/<time ns>-<pid>-<seq>.json``: records, each written atomically after
  the outputs it lists are in place: ``{"entries": [{"path": <path relative to
  its input>, "source": <input path>, "size": bytes, "mtime_ns": ...,
  "outputs": [files relative to output_dir]}, ...]}``. A later record of a
  path replaces an earlier one.
- ``lock``: held (``flock``) while a run writes, so two runs never share a
  folder; the kernel releases it when a run dies, even by SIGKILL.

An output on disk that no record lists (a run killed between writing it and
recording it) does not count as done.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from itertools import count
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

from .atomic import write_atomic
from .errors import KwmlpError

# "_": Parquet dataset readers (pyarrow, pandas) skip such names, so the output
# folder of a Parquet run reads as its parts alone.
MANIFEST_DIR = "_kwmlp-manifest"
RUN_FILE = "run.json"
RECORDS_DIR = "done"
LOCK_FILE = "lock"

Entry = Dict[str, object]


def source_entry(key: str, source: Path, outputs: Iterable[str]) -> Entry:
    """What a record says of one finished input: its key (path relative to
    its input), where it was read, its size and mtime, and its outputs."""
    stat = source.stat()
    return {"path": key, "source": os.fsdecode(source), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "outputs": sorted(outputs)}


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


def read_settings(output_dir: Path) -> Optional[Dict[str, object]]:
    """``run.json`` of ``output_dir``'s manifest, or None without one."""
    path = output_dir / MANIFEST_DIR / RUN_FILE
    return json.loads(path.read_bytes()) if path.exists() else None


def _describe(settings: Mapping[str, object]) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(settings.items()))


class Manifest:
    """An output folder's manifest, held for one run (a context manager).

    Opening it takes the lock and checks ``settings`` against the folder's:
    other settings raise ``KwmlpError`` (outputs are never mixed) unless
    ``overwrite``, which, like ``overwrite`` with the same settings, forgets
    every record and deletes the files they list, so the run starts clean."""

    def __init__(self, output_dir: Path, settings: Mapping[str, object], overwrite: bool):
        self.output_dir = output_dir
        self.folder = output_dir / MANIFEST_DIR
        self.records = self.folder / RECORDS_DIR
        self.records.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / LOCK_FILE, "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise KwmlpError(f"{output_dir}: another kwmlp run is writing to this folder; "
                             f"wait for it or choose another output folder") from None
        try:
            self._open(dict(settings), overwrite)
        except BaseException:
            self.close()
            raise
        self._seq = count()

    def _open(self, settings: Dict[str, object], overwrite: bool) -> None:
        existing = read_settings(self.output_dir)
        if existing is not None and existing != settings and not overwrite:
            differ = {k for k in set(existing) | set(settings) if existing.get(k) != settings.get(k)}
            raise KwmlpError(
                f"{self.output_dir} holds embeddings made with "
                f"{_describe({k: existing.get(k) for k in differ})}, this run would make "
                f"{_describe({k: settings.get(k) for k in differ})}; to keep them apart, "
                f"write to another output folder, or pass --overwrite (overwrite=True) to "
                f"replace them")
        if overwrite:
            for entry in read_records(self.output_dir).values():
                for name in entry["outputs"]:
                    (self.output_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.records)
            self.records.mkdir()
        for folder in (self.folder, self.records):
            for leftover in folder.glob(".*.tmp"):  # a killed run's; the lock proves it dead
                leftover.unlink(missing_ok=True)
        if existing != settings:
            record = json.dumps(settings, indent=1).encode()
            write_atomic(self.folder / RUN_FILE, lambda file: file.write(record))
        self.done = read_records(self.output_dir)

    def is_done(self, key: str, source: Path) -> bool:
        """Whether a record lists ``key`` read from a file of ``source``'s
        current size and mtime, and its outputs exist."""
        entry = self.done.get(key)
        if entry is None:
            return False
        try:
            stat = source.stat()
        except OSError:
            return False
        return ((entry["size"], entry["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
                and all((self.output_dir / name).exists() for name in entry["outputs"]))

    def record(self, entries: List[Entry]) -> None:
        """Record ``entries`` as done, atomically: all of them or none."""
        if not entries:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}.json"
        data = json.dumps({"entries": entries}).encode()
        write_atomic(self.records / name, lambda file: file.write(data))
        self.done.update((entry["path"], entry) for entry in entries)

    def close(self) -> None:
        self._lock.close()  # releases the flock

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
