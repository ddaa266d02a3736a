"""Output formats of a run, behind one small interface (``Sink``): where each
input's outputs go, whether existing ones are still good, writing a result,
and recording finished inputs in the output folder's manifest.

- ``npz``: ``<stem>.npz`` holding the arrays ``embedding`` ``(T, 64)``,
  ``timestamps`` ``(T,)`` in ms and ``scene`` ``(1024,)`` (those the ``kind``
  asks for; float32) and the metadata ``model_id``, ``model_options`` (str),
  ``sample_rate`` (int), ``resampler`` (str) and ``source`` (the input's file name).
- ``npy``: one array per file, ``<stem>_embedding.npy``,
  ``<stem>_timestamps.npy``, ``<stem>_scene.npy``, and the metadata, with the
  names of the arrays, in ``<stem>_metadata.json``, written last.
- ``parquet``: part files of many rows (``kwmlp.parquet``).

npz/npy outputs describe themselves, so a folder may hold outputs of several
models and kinds: one made otherwise is simply redone. A Parquet folder is one
dataset, so all its rows share one model, options, resampler and kind.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .atomic import remove_stale_temporaries, write_atomic
from .audio import DEFAULT_RESAMPLER
from .embedder import EMBEDDING_KINDS, KWMLPEmbedder
from .errors import KwmlpError
from .manifest import Manifest, source_entry
from .parquet import PartWriter, row_key, rows_table
from .results import ARRAY_NAMES, FileEmbedding

FORMATS = ("npz", "npy", "parquet")
FILE_FORMATS = ("npz", "npy")  # one output (or set of outputs) per input
METADATA_NAME = "metadata"  # output_paths key of the npy format's JSON file
SOURCE_KEY = "source"  # the input file's name, in each npz / npy metadata output
RECORD_EVERY_FILES = 256  # npz/npy outputs per manifest record; a kill redoes at most these
DEFAULT_PART_SECONDS = 1800.0  # audio per Parquet part: ~46 MB of timestamp embeddings
PART_MAX_ROWS = 65536  # a part of scene-only rows is cut here (~270 MB of scenes)

Outputs = Dict[str, Path]  # an input's output files by array name (or METADATA_NAME, "row")


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_kind(kind: str) -> None:
    check_choice("kind", kind, EMBEDDING_KINDS)


def run_metadata(model: KWMLPEmbedder, resampler: str = DEFAULT_RESAMPLER
                 ) -> Dict[str, object]:
    """What every output records about how it was made."""
    return {"model_id": model.model_id(), "model_options": model.model_options(),
            "sample_rate": model.sample_rate, "resampler": resampler}


def output_paths(path: Path, relative: Path, output_dir: Optional[Path] = None,
                 format: str = "npz", kind: str = "both") -> Outputs:
    """Where the npz/npy outputs of ``path`` (found as ``relative`` by
    ``find_audio_files``) go, by array name, and for ``npy`` the metadata file,
    under ``METADATA_NAME``; with ``npz`` everything goes to one file. Next to
    the input without ``output_dir``; else a file named as an input lands
    directly in ``output_dir``, a file found in a folder keeps its path below it."""
    check_choice("format", format, FILE_FORMATS)
    check_kind(kind)
    stem = (path if output_dir is None else Path(output_dir) / relative).with_suffix("")
    if format == "npz":
        return dict.fromkeys(ARRAY_NAMES[kind], stem.with_name(f"{stem.name}.npz"))
    paths = {name: stem.with_name(f"{stem.name}_{name}.npy") for name in ARRAY_NAMES[kind]}
    paths[METADATA_NAME] = stem.with_name(f"{stem.name}_{METADATA_NAME}.json")
    return paths


def write_outputs(result: FileEmbedding, outputs: Mapping[str, Path],
                  metadata: Mapping[str, object]) -> None:
    """Write ``result``'s arrays where ``output_paths`` says, each file
    atomically: a ``.npz`` gets its arrays and ``metadata``; ``.npy`` files get
    one array each, and the metadata file, naming the arrays, comes last."""
    arrays = result.arrays()
    # File objects, not names: numpy would append ".npz"/".npy" to the temporary's.
    if METADATA_NAME not in outputs:
        (path,) = set(outputs.values())
        write_atomic(path, lambda file: np.savez(file, **arrays, **metadata))
        return
    # Removed first: a run stopped midway leaves no metadata beside mixed arrays.
    outputs[METADATA_NAME].unlink(missing_ok=True)
    for name, array in arrays.items():
        write_atomic(outputs[name], lambda file, a=array: np.save(file, a))
    record = json.dumps({**metadata, "arrays": sorted(arrays)}, indent=1).encode()
    write_atomic(outputs[METADATA_NAME], lambda file: file.write(record))


def _read_outputs(outputs: Mapping[str, Path]) -> Tuple[Dict[str, object], Dict[str, np.ndarray]]:
    """The metadata (``arrays`` included) and arrays of existing outputs."""
    if METADATA_NAME in outputs:
        metadata = json.loads(outputs[METADATA_NAME].read_bytes())
        return metadata, {name: np.load(outputs[name], allow_pickle=False)
                          for name in metadata["arrays"]}
    (path,) = set(outputs.values())
    with np.load(path, allow_pickle=False) as saved:  # reading an array checks its CRC
        contents = {name: saved[name] for name in saved.files}
    arrays = {name: contents.pop(name) for name in ARRAY_NAMES["both"] if name in contents}
    metadata = {name: value.item() for name, value in contents.items()}
    return {**metadata, "arrays": sorted(arrays)}, arrays


_ARRAY_DIMS = {"embedding": 2, "timestamps": 1, "scene": 1}


def _kwmlp_wrote(path: Path, name: str, listed: Sequence[str]) -> bool:
    """Whether the existing output ``path`` (array ``name``, or ``METADATA_NAME``)
    is one kwmlp writes: an npz holding a ``model_id``, a metadata file holding a
    JSON object whose ``model_id`` is kwmlp's (``kwmlp-...``); an npy
    array the metadata beside it lists, or, with none (a run stopped between the
    two), a float32 array of its dimensions."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as saved:
                return "model_id" in saved.files
        if name == METADATA_NAME:
            metadata = json.loads(path.read_bytes())
            return isinstance(metadata, dict) and str(metadata.get("model_id")).startswith(
                "kwmlp-")
        if listed:
            return name in listed
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        return array.dtype == np.float32 and array.ndim == _ARRAY_DIMS[name]
    except Exception:  # however it fails to read, kwmlp did not write it whole
        return False


def foreign_outputs(outputs: Mapping[str, Path]) -> List[Path]:
    """The existing files among npz/npy ``outputs`` that kwmlp did not write (a
    user's own ``x.npz`` beside ``x.wav``): never to be written over unasked."""
    listed: Sequence[str] = ()
    metadata = outputs.get(METADATA_NAME)
    if metadata is not None and _kwmlp_wrote(metadata, METADATA_NAME, ()):
        arrays = json.loads(metadata.read_bytes()).get("arrays")
        listed = arrays if isinstance(arrays, list) else ()
    found = {path: name for name, path in outputs.items() if path.exists()}
    return sorted(path for path, name in found.items() if not _kwmlp_wrote(path, name, listed))


def outputs_are_current(outputs: Mapping[str, Path], metadata: Mapping[str, object],
                        model: KWMLPEmbedder) -> bool:
    """Whether npz/npy ``outputs`` (from ``output_paths``) hold a complete,
    readable result of the model, options and arrays that ``metadata``
    describes, with the shapes ``model`` gives."""
    try:
        saved, arrays = _read_outputs(outputs)
    except Exception:  # however it fails to read, it is no valid output
        return False
    wanted = sorted(name for name in outputs if name != METADATA_NAME)
    if {**saved, "arrays": sorted(arrays)} != {**metadata, "arrays": wanted}:
        return False
    n_frames = len(arrays["timestamps"]) if "timestamps" in arrays else None
    shapes = {"embedding": (n_frames, model.timestamp_embedding_size),
              "timestamps": (n_frames,), "scene": (model.scene_embedding_size,)}
    return all(array.dtype == np.float32 and array.shape == shapes[name]
               for name, array in arrays.items())


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, so the block runs whole and
    the signal is acted on right after it (in the main thread, where Python runs
    its handlers; elsewhere nothing is held).

    The Python handlers are swapped rather than the signals masked: the kernel
    hands a signal sent to the process to any thread not masking it (torch and
    Ray start many), and Python would then still raise in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: List[int] = []
    held = [number for number in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(number) is not None]  # None: set outside Python, cannot restore
    previous = {number: signal.signal(number, lambda number, frame: caught.append(number))
                for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(caught):
            signal.raise_signal(number)


def _newer_than(outputs: Mapping[str, Path], source: Path) -> bool:
    """Whether every output was written after ``source`` last changed."""
    try:
        changed = source.stat().st_mtime_ns
        return all(path.stat().st_mtime_ns >= changed for path in set(outputs.values()))
    except OSError:
        return False


class Sink:
    """An output format. ``settings`` are what a record of this run holds;
    ``folder_settings`` the part of them every output in one folder shares
    (the manifest refuses a folder holding others)."""

    format: str

    def __init__(self, model: KWMLPEmbedder, metadata: Mapping[str, object], kind: str,
                 output_dir: Optional[Path]):
        self.model, self.metadata, self.kind, self.output_dir = model, metadata, kind, output_dir
        self.settings = {**metadata, "format": self.format, "kind": kind}
        self.manifest: Optional[Manifest] = None
        self.entries: List[dict] = []

    @property
    def folder_settings(self) -> Dict[str, object]:
        return {"outputs": "files"}

    def outputs_of(self, path: Path, relative: Path) -> Outputs:
        raise NotImplementedError

    def outputs_good(self, source: Path, outputs: Outputs) -> bool:
        """Whether existing outputs hold a good result (the record aside)."""
        raise NotImplementedError

    def foreign(self, outputs: Outputs) -> List[Path]:
        """The existing ``outputs`` that kwmlp did not write."""
        return []

    def prepare(self, todo_outputs: Sequence[Outputs], manifest: Optional[Manifest]) -> None:
        """Before writing: remove what killed runs left for these outputs."""
        self.manifest = manifest

    def write(self, result: FileEmbedding, relative: Path, outputs: Outputs) -> str:
        """Write (or buffer) one result; returns where it goes, for the log."""
        raise NotImplementedError

    def close(self) -> None:
        """Write what is buffered and record it (on Ctrl-C too)."""
        if self.manifest is not None:
            self.manifest.record(self.entries)
        self.entries = []

    def _entry(self, result: FileEmbedding, relative: Path, names: Sequence[str]) -> dict:
        return source_entry(row_key(relative), result.path, result.source, names,
                            self.settings)


class FileSink(Sink):
    """npz/npy outputs (``write_outputs``), recorded every ``RECORD_EVERY_FILES``."""

    def __init__(self, format: str, *args: object):
        self.format = format
        super().__init__(*args)

    def outputs_of(self, path: Path, relative: Path) -> Outputs:
        return output_paths(path, relative, self.output_dir, self.format, self.kind)

    def outputs_good(self, source: Path, outputs: Outputs) -> bool:
        # The output names its input's file, so x.npz of x.wav is not taken for x.flac's
        # when they are embedded in separate runs. Beside the inputs no manifest records
        # the source: an output older than it is stale.
        return (outputs_are_current(outputs, self._file_metadata(source), self.model)
                and (self.output_dir is not None or _newer_than(outputs, source)))

    def foreign(self, outputs: Outputs) -> List[Path]:
        return foreign_outputs(outputs)

    def _file_metadata(self, source: Path) -> Dict[str, object]:
        return {**self.metadata, SOURCE_KEY: source.name}

    def prepare(self, todo_outputs: Sequence[Outputs], manifest: Optional[Manifest]) -> None:
        super().prepare(todo_outputs, manifest)
        by_folder: Dict[Path, set] = {}
        for outputs in todo_outputs:
            for path in outputs.values():
                by_folder.setdefault(path.parent, set()).add(path.name)
        for folder, names in by_folder.items():
            if folder.is_dir():
                remove_stale_temporaries(folder, names)

    def write(self, result: FileEmbedding, relative: Path, outputs: Outputs) -> str:
        with signals_held():  # Ctrl-C between the two would leave an output unrecorded
            write_outputs(result, outputs, self._file_metadata(result.path))
            if self.manifest is not None:
                names = {os.fsdecode(path.relative_to(self.output_dir))
                         for path in outputs.values()}
                self.entries.append(self._entry(result, relative, sorted(names)))
        if self.manifest is not None and len(self.entries) >= RECORD_EVERY_FILES:
            self.close()
        return ", ".join(sorted(set(map(str, outputs.values()))))


class ParquetSink(Sink):
    """Rows buffered into part files of ``part_seconds`` of audio (or
    ``PART_MAX_ROWS`` rows); each part is recorded once it is in place. A part
    that cannot be written stops the run (``KwmlpError``): the folder, not a
    file, is at fault, and the parts before it stay recorded."""

    format = "parquet"

    def __init__(self, *args: object, part_seconds: float = DEFAULT_PART_SECONDS):
        super().__init__(*args)
        if self.output_dir is None:
            raise ValueError("Parquet output needs an output folder")
        if not part_seconds > 0:
            raise ValueError(f"part_seconds must be positive, got {part_seconds!r}")
        self.part_seconds = part_seconds
        self.writer = PartWriter(self.output_dir)  # pyarrow missing: say so before any work
        self.rows: List[Tuple[str, float, Dict[str, np.ndarray]]] = []
        self.results: List[Tuple[FileEmbedding, Path]] = []
        self.buffered_s = 0.0

    @property
    def folder_settings(self) -> Dict[str, object]:
        return {"outputs": "parquet", **self.settings}

    def outputs_of(self, path: Path, relative: Path) -> Outputs:
        return {"row": self.output_dir / relative}  # one row per path: same path, same row

    def outputs_good(self, source: Path, outputs: Outputs) -> bool:
        return True  # the manifest checks that the recorded part exists

    def write(self, result: FileEmbedding, relative: Path, outputs: Outputs) -> str:
        self.rows.append((row_key(relative), result.duration_s, result.arrays()))
        self.results.append((result, relative))
        self.buffered_s += result.duration_s
        if self.buffered_s >= self.part_seconds or len(self.rows) >= PART_MAX_ROWS:
            self._write_part()
        return f"a row of a part in {self.output_dir}"

    def _write_part(self) -> None:
        if not self.rows:
            return
        # Taken off the buffer first: a part that fails (or Ctrl-C) is not written twice.
        rows, results = self.rows, self.results
        self.rows, self.results, self.buffered_s = [], [], 0.0
        sizes = (self.model.scene_embedding_size, self.model.timestamp_embedding_size)
        name = self.writer.new_name()
        self.manifest.expect(name)  # a part never recorded is then known to be ours
        table = rows_table(rows, self.metadata, *sizes)
        with signals_held():  # Ctrl-C between the two would leave a part to redo
            try:
                self.writer.write(name, table)
            except OSError as err:
                raise KwmlpError(f"{self.output_dir}: cannot write a Parquet part ({err}); "
                                 f"the parts written before are recorded, rerun to finish "
                                 f"the rest") from None
            self.entries = [self._entry(result, relative, [name])
                            for result, relative in results]
            super().close()

    def close(self) -> None:
        self._write_part()


def make_sink(format: str, model: KWMLPEmbedder, metadata: Mapping[str, object], kind: str,
              output_dir: Optional[Path], part_seconds: float = DEFAULT_PART_SECONDS) -> Sink:
    """The sink writing ``format`` (one of ``FORMATS``)."""
    check_choice("format", format, FORMATS)
    check_kind(kind)
    if format == "parquet":
        return ParquetSink(model, metadata, kind, output_dir, part_seconds=part_seconds)
    return FileSink(format, model, metadata, kind, output_dir)
