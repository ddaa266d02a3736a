"""The Ray engine: a Ray Data pipeline over a run's inputs. The inputs become a
dataset, decoded by tasks (``map_batches`` with a function), embedded by a pool
of actors each holding one model (``map_batches`` with a callable class);
results stream back to this process, which writes them (so only this machine
needs the output folder; every node needs the inputs at the same paths).
Yields the same ``(index, result)`` stream as ``kwmlp.engines``."""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import numpy as np

from .decoding import header_durations
from .embedder import KWMLPEmbedder
from .engines import decode_batch, embed_decoded
from .errors import KwmlpError
from .extras import require
from .results import ARRAY_NAMES, FileEmbedding, FileFailure, Result, SourceStat

logger = logging.getLogger(__name__)


def _ray_decode(batch: Dict[str, np.ndarray], resampler: str) -> Dict[str, np.ndarray]:
    """Ray task: decode a batch of ``path`` (file names as bytes) rows."""
    paths = [Path(os.fsdecode(bytes(name))) for name in batch["path"]]
    decoded = decode_batch(paths, resampler)
    audio = np.empty(len(paths), dtype=object)  # clips of different lengths
    audio[:] = [np.zeros(0, np.float32) if clip is None else clip for clip, _, _, _ in decoded]
    stats = [stat or SourceStat(-1, -1) for _, stat, _, _ in decoded]
    return {"index": batch["index"], "path": batch["path"], "audio": audio,
            "size": np.array([stat.size for stat in stats], np.int64),
            "mtime_ns": np.array([stat.mtime_ns for stat in stats], np.int64),
            "error": np.array([error or "" for _, _, error, _ in decoded], dtype=object),
            "warnings": np.array(["\n".join(messages) for _, _, _, messages in decoded],
                                 dtype=object)}


class _RayEmbedder:
    """Ray actor: one model, embedding decoded batches (``embed_decoded``)."""

    def __init__(self, model: KWMLPEmbedder, kind: str):
        self.model, self.kind = model, kind

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        n = len(batch["index"])
        paths = [Path(os.fsdecode(bytes(name))) for name in batch["path"]]
        clips = [(i, paths[i], np.asarray(batch["audio"][i], np.float32),
                  SourceStat(int(batch["size"][i]), int(batch["mtime_ns"][i])))
                 for i in range(n) if not batch["error"][i]]
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
                "warnings": batch["warnings"], "duration_s": durations_s,
                "size": batch["size"], "mtime_ns": batch["mtime_ns"], **out}


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


@contextlib.contextmanager
def _sigterm_kept() -> Iterator[None]:
    """The caller's SIGTERM handler back after the block: ray.init makes SIGTERM
    ``sys.exit`` in the driver, which would bypass the CLI's handler (SIGTERM
    unwinds as Ctrl-C does, exit 130) and any handler of a library user."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, not ours to restore
            signal.signal(signal.SIGTERM, previous)


def ray_results(paths: Sequence[Path], model: KWMLPEmbedder, kind: str, batch_seconds: float,
                resampler: str, workers: Optional[int], address: Optional[str]
                ) -> Iterator[Result]:
    """The Ray Data engine; see the module docstring. Starts a local Ray
    instance unless one is running or ``address`` (else ``RAY_ADDRESS``)
    names a cluster; shuts down only one it started. Each actor is sent a
    copy of ``model``."""
    ray = require("ray", "ray", "engine='ray'")
    durations_s, failures = header_durations(paths)
    yield from failures
    if not durations_s:
        return
    verbose = logger.isEnabledFor(logging.DEBUG)
    with _ray_logs(verbose):
        yield from _ray_pipeline(ray, paths, durations_s, model, kind, batch_seconds, resampler,
                                 workers, address, verbose)


def _ray_pipeline(ray, paths: Sequence[Path], durations_s: Dict[int, float],
                  model: KWMLPEmbedder, kind: str, batch_seconds: float, resampler: str,
                  workers: Optional[int], address: Optional[str], verbose: bool
                  ) -> Iterator[Result]:
    started = not ray.is_initialized()
    if started:
        try:
            with _sigterm_kept(), _stderr_muted(not verbose):
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
            fn_constructor_kwargs={"model": model, "kind": kind},
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
                stat = SourceStat(int(batch["size"][i]), int(batch["mtime_ns"][i]))
                yield index, FileEmbedding(paths[index], float(batch["duration_s"][i]), **arrays,
                                           source=stat)
    finally:
        if started:
            ray.shutdown()
