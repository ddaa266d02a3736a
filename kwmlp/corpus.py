"""Embedding a corpus: ``embed_corpus``, one API over three engines, three
output formats, resumable by manifest (``kwmlp.manifest``).

Engines (each yields the same ``(index, FileEmbedding | FileFailure)`` stream
that ``files.save_embeddings`` consumes, so writing, error reports and the
summary are shared):

- ``local``, ``workers=1``: ``save_embeddings``' own loop, in this process.
- ``local``, ``workers=N``: N worker processes decode and resample batches of
  files (``files.batches``, ``batch_seconds`` of audio each) while this
  process embeds; at most ``QUEUED_BATCHES_PER_WORKER`` batches per worker are
  decoded ahead, so memory stays bounded whatever the corpus size.
- ``ray``: a Ray Data pipeline: the inputs as a dataset, decoded by tasks
  (``map_batches`` with a function), embedded by a pool of actors each holding
  one model (``map_batches`` with a callable class), results streamed back to
  this process, which writes them (so only this machine needs the output
  folder; every node needs the inputs at the same paths).

A bad file becomes a failure in every engine and the rest carry on.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import sys
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._types import PathLike
from .audio import DEFAULT_RESAMPLER, check_resampler
from .embedder import KWMLPEmbedder
from .errors import KwmlpError
from .extras import require
from .files import (ARRAY_NAMES, DEFAULT_BATCH_SECONDS, FileEmbedding, FileFailure, RunSummary,
                    _check_batch_seconds, _check_kind, _embed_indexed, batches,
                    check_output_dir, clear_stale_temporaries, decode_clip, embed_decoded,
                    header_durations, output_paths, plan_outputs, prefetched, run_metadata,
                    write_outputs, write_results)
from .hear import load_model
from .manifest import Manifest, source_entry
from .parquet import (PART_PREFIX, PART_SUFFIX, PartWriter, remove_unrecorded_parts, row_key,
                      rows_table)

ENGINES = ("local", "ray")
CORPUS_FORMATS = ("npz", "npy", "parquet")
QUEUED_BATCHES_PER_WORKER = 2  # decoded ahead per worker: enough to hide jitter, bounded
RECORD_EVERY_FILES = 256  # npz/npy outputs per manifest record; a kill redoes at most these
DEFAULT_PART_SECONDS = 1800.0  # audio per Parquet part: ~46 MB of timestamp embeddings
PART_MAX_ROWS = 65536  # a part of scene-only rows is cut here (~270 MB of scenes)

logger = logging.getLogger(__name__)

Result = Tuple[int, Union[FileEmbedding, FileFailure]]


# engines

def _decode_batch(paths: Sequence[Path], resampler: str
                  ) -> List[Tuple[Optional[np.ndarray], Optional[str], List[str]]]:
    """In a worker: ``(audio, error message, warnings)`` per path; warnings
    are returned, as the worker's own would go to no log."""
    decoded = []
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                audio, error = decode_clip(path, resampler), None
            except KwmlpError as err:
                audio, error = None, str(err)
        decoded.append((audio, error, [str(warning.message) for warning in caught]))
    return decoded


def _decode_items(items: Sequence[Tuple[int, Path]], resampler: str
                  ) -> List[Tuple[Optional[np.ndarray], Optional[str], List[str]]]:
    """``_decode_batch`` of ``(index, path)`` items, as ``prefetched`` hands them out."""
    return _decode_batch([path for _, path in items], resampler)


PARENT_CHECK_S = 0.5  # how often a worker checks that the process that started it lives


def _watch_parent(parent_pid: int) -> None:
    """In a worker: exit as soon as ``parent_pid`` is no longer our parent (it was
    killed, even by SIGKILL, and we were handed to init), instead of living on as
    an orphan holding its memory."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="kwmlp-parent-watch", daemon=True).start()


def _local_parallel(paths: Sequence[Path], model: KWMLPEmbedder, kind: str,
                    batch_seconds: float, resampler: str, workers: int) -> Iterator[Result]:
    """``files._embed_indexed`` with decoding and resampling in ``workers``
    processes: batches are decoded in order, ``QUEUED_BATCHES_PER_WORKER`` per
    worker ahead of the one being embedded here (``files.prefetched``)."""
    durations_s, failures = header_durations(paths)
    yield from failures
    work = ([(i, paths[i]) for i in batch] for batch in batches(durations_s, batch_seconds))
    # spawn: a forked copy of a process running torch's thread pools can hang.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        decode = functools.partial(_decode_items, resampler=resampler)
        try:
            for items, decoded in prefetched(pool, work, decode,
                                             workers * QUEUED_BATCHES_PER_WORKER):
                clips = []
                for (index, path), (audio, error, messages) in zip(items, decoded):
                    for message in messages:
                        warnings.warn(message, stacklevel=1)
                    if error is not None:
                        yield index, FileFailure(path, error)
                    else:
                        clips.append((index, path, audio))
                yield from embed_decoded(clips, model, kind)
        except BrokenProcessPool:  # only future.result() raises it
            raise KwmlpError("a decoding worker process died (out of memory?); the files "
                             "done so far are recorded, rerun to finish the rest") from None


def _ray_decode(batch: Dict[str, np.ndarray], resampler: str) -> Dict[str, np.ndarray]:
    """Ray task: decode a batch of ``path`` (file names as bytes) rows."""
    paths = [Path(os.fsdecode(bytes(name))) for name in batch["path"]]
    decoded = _decode_batch(paths, resampler)
    audio = np.empty(len(paths), dtype=object)  # clips of different lengths
    audio[:] = [np.zeros(0, np.float32) if clip is None else clip for clip, _, _ in decoded]
    return {"index": batch["index"], "path": batch["path"], "audio": audio,
            "error": np.array([error or "" for _, error, _ in decoded], dtype=object),
            "warnings": np.array(["\n".join(messages) for _, _, messages in decoded],
                                 dtype=object)}


class _RayEmbedder:
    """Ray actor: one model, embedding decoded batches (``embed_decoded``)."""

    def __init__(self, model_file_path: str, options: Dict[str, object], kind: str):
        self.model = load_model(model_file_path, **options)
        self.kind = kind

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        n = len(batch["index"])
        paths = [Path(os.fsdecode(bytes(name))) for name in batch["path"]]
        clips = [(i, paths[i], np.asarray(batch["audio"][i], np.float32)) for i in range(n)
                 if not batch["error"][i]]
        out = {name: np.empty(n, dtype=object) for name in ARRAY_NAMES["both"]}
        errors, durations_s = list(batch["error"]), np.zeros(n)
        for i, result in embed_decoded(clips, self.model, self.kind):
            if isinstance(result, FileFailure):
                errors[i] = result.message
                continue
            durations_s[i] = result.duration_s
            for name, array in result.arrays().items():
                out[name][i] = array
        empty = {"embedding": np.zeros((0, self.model.timestamp_embedding_size), np.float32),
                 "timestamps": np.zeros(0, np.float32),
                 "scene": np.zeros(0, np.float32)}
        for name, column in out.items():  # Arrow holds no None among arrays
            for i in range(n):
                if column[i] is None:
                    column[i] = empty[name]
        return {"index": batch["index"], "error": np.array(errors, dtype=object),
                "warnings": batch["warnings"], "duration_s": durations_s, **out}


# Ray's own loggers: the driver's Python ones (ray.init's, Ray Data's), and the C++
# core worker's, which reads this variable when ray.init starts it.
RAY_LOGGERS = ("ray", "ray.data")
RAY_BACKEND_LOG_LEVEL = "RAY_BACKEND_LOG_LEVEL"


@contextlib.contextmanager
def _ray_logs(verbose: bool) -> Iterator[None]:
    """Keep Ray's log lines (token-auth notices, executor INFO, core-worker
    warnings) off the user's terminal unless ``verbose`` (``kwmlp -v``: the
    ``kwmlp`` logger at DEBUG); Ray's own log files still get them."""
    if verbose:
        yield
        return
    importlib.import_module("ray.data")  # it sets its loggers' levels when imported
    levels = {name: logging.getLogger(name).level for name in RAY_LOGGERS}
    backend = os.environ.get(RAY_BACKEND_LOG_LEVEL)
    os.environ.setdefault(RAY_BACKEND_LOG_LEVEL, "fatal")  # a user's own choice stands
    for name in RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if backend is None:
            os.environ.pop(RAY_BACKEND_LOG_LEVEL, None)


@contextlib.contextmanager
def _stderr_muted(muted: bool) -> Iterator[None]:
    """File descriptor 2 to /dev/null while ``muted``: what ray.init's C++ side
    prints on start (even the notice that it was told to be quiet). An init that
    fails still raises, and kwmlp reports it."""
    if not muted:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _ray_results(paths: Sequence[Path], model_file_path: str, options: Dict[str, object],
                 kind: str, batch_seconds: float, resampler: str, workers: Optional[int],
                 address: Optional[str]) -> Iterator[Result]:
    """The Ray Data engine; see the module docstring. Starts a local Ray
    instance unless one is running or ``address`` (else ``RAY_ADDRESS``)
    names a cluster; shuts down only one it started."""
    ray = require("ray", "ray", "engine='ray'")
    durations_s, failures = header_durations(paths)
    yield from failures
    if not durations_s:
        return
    verbose = logger.isEnabledFor(logging.DEBUG)
    with _ray_logs(verbose):
        yield from _ray_pipeline(ray, paths, durations_s, model_file_path, options, kind,
                                 batch_seconds, resampler, workers, address, verbose)


def _ray_pipeline(ray, paths: Sequence[Path], durations_s: Dict[int, float],
                  model_file_path: str, options: Dict[str, object], kind: str,
                  batch_seconds: float, resampler: str, workers: Optional[int],
                  address: Optional[str], verbose: bool) -> Iterator[Result]:
    started = not ray.is_initialized()
    if started:
        try:
            with _stderr_muted(not verbose):
                ray.init(address=address, include_dashboard=False, log_to_driver=verbose,
                         logging_level=logging.INFO if verbose else logging.ERROR)
        except Exception as err:  # Ray raises plain Exception/ConnectionError for these
            where = address or os.environ.get("RAY_ADDRESS") or "a local Ray instance"
            raise KwmlpError(f"cannot start or reach {where} ({err}); the files done so far "
                             f"are recorded, rerun to finish the rest") from None
    try:
        # The caller's own progress (write_results) counts files; Ray's bars would
        # interleave with it on the terminal.
        ray.data.DataContext.get_current().enable_progress_bars = False
        order = sorted(durations_s, key=durations_s.__getitem__)  # same lengths together
        mean_s = sum(durations_s.values()) / len(durations_s)
        rows_per_batch = max(1, int(batch_seconds / max(mean_s, 1e-3)))
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        dataset = ray.data.from_items(
            [{"index": index, "path": os.fsencode(paths[index])} for index in order])
        dataset = dataset.map_batches(_ray_decode, batch_size=rows_per_batch,
                                      fn_kwargs={"resampler": resampler})
        dataset = dataset.map_batches(
            _RayEmbedder, batch_size=rows_per_batch,
            fn_constructor_kwargs={"model_file_path": model_file_path, "options": options,
                                   "kind": kind},
            compute=ray.data.ActorPoolStrategy(size=actors))
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for i, index in enumerate(batch["index"]):
                index = int(index)
                for message in filter(None, str(batch["warnings"][i]).split("\n")):
                    warnings.warn(message, stacklevel=1)
                if batch["error"][i]:
                    yield index, FileFailure(paths[index], str(batch["error"][i]))
                    continue
                arrays = {name: np.asarray(batch[name][i], np.float32)
                          for name in ARRAY_NAMES[kind]}
                yield index, FileEmbedding(paths[index], float(batch["duration_s"][i]), **arrays)
    finally:
        if started:
            ray.shutdown()


# outputs

class _FileSink:
    """npz/npy outputs (``files.write_outputs``), recorded in the manifest
    every ``RECORD_EVERY_FILES`` files and at the end."""

    def __init__(self, manifest: Manifest, planned: Dict[Path, Tuple[Path, Dict[str, Path]]],
                 metadata: Dict[str, object]):
        self.manifest, self.planned, self.metadata = manifest, planned, metadata
        self.entries: List[dict] = []

    def write(self, result: FileEmbedding) -> str:
        relative, outputs = self.planned[result.path]
        write_outputs(result, outputs, self.metadata)
        names = {os.fsdecode(path.relative_to(self.manifest.output_dir))
                 for path in outputs.values()}
        self.entries.append(source_entry(row_key(relative), result.path, names))
        if len(self.entries) >= RECORD_EVERY_FILES:
            self.close()
        return ", ".join(sorted(set(map(str, outputs.values()))))

    def close(self) -> None:
        self.manifest.record(self.entries)
        self.entries = []


class _ParquetSink:
    """Rows buffered into part files of ``part_seconds`` of audio (or
    ``PART_MAX_ROWS`` rows); each part is recorded once it is in place. A part
    that cannot be written stops the run (``KwmlpError``): the folder, not a
    file, is at fault, and the parts before it stay recorded."""

    def __init__(self, manifest: Manifest, planned: Dict[Path, Tuple[Path, Dict[str, Path]]],
                 metadata: Dict[str, object], model: KWMLPEmbedder, part_seconds: float):
        self.manifest, self.planned, self.metadata = manifest, planned, metadata
        self.sizes = (model.scene_embedding_size, model.timestamp_embedding_size)
        self.part_seconds = part_seconds
        self.writer = PartWriter(manifest.output_dir)
        self.rows: List[Tuple[str, float, Dict[str, np.ndarray]]] = []
        self.sources: List[Path] = []
        self.buffered_s = 0.0

    def write(self, result: FileEmbedding) -> str:
        relative, _ = self.planned[result.path]
        self.rows.append((row_key(relative), result.duration_s, result.arrays()))
        self.sources.append(result.path)
        self.buffered_s += result.duration_s
        if self.buffered_s >= self.part_seconds or len(self.rows) >= PART_MAX_ROWS:
            self.close()
        return f"a row of {self.manifest.output_dir}/{PART_PREFIX}*{PART_SUFFIX}"

    def close(self) -> None:
        if not self.rows:
            return
        try:
            name = self.writer.write(rows_table(self.rows, self.metadata, *self.sizes))
        except OSError as err:
            raise KwmlpError(f"{self.manifest.output_dir}: cannot write a Parquet part "
                             f"({err}); the parts written before are recorded, rerun to "
                             f"finish the rest") from None
        self.manifest.record([source_entry(key, source, {name})
                              for (key, _, _), source in zip(self.rows, self.sources)])
        self.rows, self.sources, self.buffered_s = [], [], 0.0


# the API

def _check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def embed_corpus(inputs: Union[PathLike, Iterable[PathLike]], output_dir: PathLike, *,
                 engine: str = "local", workers: Optional[int] = None, format: str = "npz",
                 recursive: bool = False, overwrite: bool = False, kind: str = "both",
                 batch_seconds: float = DEFAULT_BATCH_SECONDS,
                 resampler: str = DEFAULT_RESAMPLER, part_seconds: float = DEFAULT_PART_SECONDS,
                 ray_address: Optional[str] = None, progress: bool = False,
                 model_file_path: str = "", **model_options: object) -> RunSummary:
    """Embed audio files and folders (``files.find_audio_files``) into
    ``output_dir``, resumably, on one of the engines (module docstring).

    ``format``: ``"npz"``/``"npy"`` write the files ``save_embeddings`` writes
    (same names, same contents); ``"parquet"`` writes part files
    (``kwmlp.parquet``; read them with ``read_parquet_embeddings``).
    ``workers``: decoding processes for ``local`` (default 1: all in this
    process), model actors for ``ray`` (default: one per CPU of the cluster).
    ``model_file_path`` and ``model_options`` go to ``load_model`` (in each Ray
    actor too). ``ray_address`` connects to a Ray cluster (default:
    ``RAY_ADDRESS``, else a local instance).

    Resume: the folder's manifest (``kwmlp.manifest``) records what is done;
    an input is skipped if a record lists it with its current size and mtime
    and its outputs exist. A folder holding outputs of another model,
    options, resampler, format or ``kind`` is refused (``KwmlpError``)
    unless ``overwrite``, which deletes the recorded outputs and starts
    afresh. Bad files are logged and recorded in the summary; the rest carry on.
    """
    start = time.perf_counter()
    _check_choice("engine", engine, ENGINES)
    _check_choice("format", format, CORPUS_FORMATS)
    _check_kind(kind)
    _check_batch_seconds(batch_seconds)
    check_resampler(resampler)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not part_seconds > 0:
        raise ValueError(f"part_seconds must be positive, got {part_seconds!r}")
    output_dir = Path(output_dir)
    check_output_dir(output_dir)
    if engine == "ray":  # missing: say so before any work
        require("ray.data", "ray", "engine='ray'")
    model = load_model(model_file_path, **model_options)
    if format == "parquet":
        PartWriter(output_dir)  # pyarrow missing: say so before any work

        def outputs_of(path: Path, relative: Path) -> Dict[str, Path]:
            return {"row": output_dir / relative}  # one row per path: same path, same row
    else:
        def outputs_of(path: Path, relative: Path) -> Dict[str, Path]:
            return output_paths(path, relative, output_dir, format, kind)
    planned, failures = plan_outputs(inputs, recursive, outputs_of)
    for failure in failures:
        logger.error(failure.message)
    metadata = run_metadata(model, resampler)
    settings = {**metadata, "format": format, "kind": kind}
    output_dir.mkdir(parents=True, exist_ok=True)
    with Manifest(output_dir, settings, overwrite) as manifest:
        todo, stale, skipped = [], set(), 0
        for path, (relative, _) in planned.items():
            key = row_key(relative)
            if manifest.is_done(key, path):
                skipped += 1
                continue
            if key in manifest.done:
                stale.add(path)
                logger.info("%s: changed since it was embedded, or its output is gone; "
                            "embedding it again", path)
            todo.append(path)
        if format == "parquet":
            remove_unrecorded_parts(output_dir, manifest.done)
            sink = _ParquetSink(manifest, planned, metadata, model, part_seconds)
        else:
            clear_stale_temporaries(out for path in todo for out in planned[path][1].values())
            sink = _FileSink(manifest, planned, metadata)
        if engine == "ray":
            # Absolute: Ray's workers need not share this process's working directory.
            weights = str(Path(model_file_path).absolute()) if model_file_path else ""
            results = _ray_results(todo, weights, model_options, kind, batch_seconds,
                                   resampler, workers, ray_address)
        elif (workers or 1) > 1:
            results = _local_parallel(todo, model, kind, batch_seconds, resampler, workers)
        else:
            results = _embed_indexed(todo, model, kind, batch_seconds, resampler)
        try:
            done, redone, audio_s, failed = write_results(results, len(todo), sink.write,
                                                          stale, progress, start)
        finally:
            sink.close()  # on Ctrl-C too: what is complete gets recorded
    return RunSummary(done, skipped, failures + failed, audio_s, time.perf_counter() - start,
                      redone)
