"""Engines: the inputs of a run -> a stream of ``(index, FileEmbedding |
FileFailure)`` (``results.Result``) that the run orchestrator (``kwmlp.run``)
writes. All give the same results; they differ in where decoding happens.

- in this process (``embed_indexed``): the next batch is decoded in a thread
  while this one is embedded;
- ``local_parallel``: ``workers`` processes decode and resample batches while
  this process embeds; at most ``QUEUED_BATCHES_PER_WORKER`` batches per worker
  are decoded ahead, so memory stays bounded whatever the corpus size;
- Ray (``kwmlp.ray_engine``): decoding tasks and embedding actors on a cluster.

Clips of one length share an encoder pass; clips of different lengths are
never padded to a common length, since padding changes a clip's timestamp
count and scene pooling: every result equals what the clip gives on its own.
"""
from __future__ import annotations

import functools
import os
import threading
import time
import warnings
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .decoding import PREFETCH_BATCHES, batches, decode_clip, header_durations, prefetched
from .embedder import KWMLPEmbedder, peak_warned_already
from .errors import KwmlpError
from .results import FileEmbedding, FileFailure, Result, SourceStat

QUEUED_BATCHES_PER_WORKER = 2  # decoded ahead per worker: enough to hide jitter, bounded
PARENT_CHECK_S = 0.5  # how often a worker checks that the process that started it lives

Clip = Tuple[int, Path, np.ndarray, SourceStat]  # (index, path, 16 kHz audio, file as read)
Decoded = Tuple[Optional[np.ndarray], Optional[SourceStat], Optional[str], List[str]]


def embed_decoded(clips: Sequence[Clip], model: KWMLPEmbedder, kind: str) -> Iterator[Result]:
    """Decoded clips -> ``(index, result)``; clips of one length share an
    encoder pass, never padded to another's."""
    by_length: Dict[int, List[Clip]] = defaultdict(list)
    for clip in clips:
        by_length[len(clip[2])].append(clip)
    for n_samples, same in by_length.items():
        try:
            with peak_warned_already():  # load_audio has warned about loud files, naming them
                arrays = model.embed(torch.from_numpy(np.stack([c[2] for c in same])), kind)
        except (ValueError, RuntimeError) as err:  # the clips' fault or the machine's
            for index, path, _, _ in same:
                yield index, FileFailure(path, f"{path}: cannot embed ({err})")
            continue
        host = {name: tensor.cpu().numpy() for name, tensor in arrays.items()}
        for i, (index, path, _, stat) in enumerate(same):
            yield index, FileEmbedding(path, n_samples / model.sample_rate,
                                       **{name: array[i] for name, array in host.items()},
                                       source=stat)


def _decode(path: Path, resampler: str) -> Decoded:
    try:
        audio, stat = decode_clip(path, resampler)
        return audio, stat, None, []
    except KwmlpError as err:
        return None, None, str(err), []


def decode_batch(paths: Sequence[Path], resampler: str) -> List[Decoded]:
    """In another process: ``(audio, source stat, error message, warnings)`` per
    path. Warnings are returned rather than shown: a worker's own would reach
    no log. (Not in a thread: ``catch_warnings`` changes process-wide state.)"""
    decoded = []
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            audio, stat, error, _ = _decode(path, resampler)
        decoded.append((audio, stat, error, [str(warning.message) for warning in caught]))
    return decoded


def _decode_items(items: Sequence[Tuple[int, Path]], resampler: str,
                  in_process: bool = False) -> List[Decoded]:
    """``(index, path)`` items, as ``prefetched`` hands them out, decoded: in
    this process (a thread, whose warnings go straight to the caller's
    filters) or in a worker (``decode_batch``)."""
    if in_process:
        return [_decode(path, resampler) for _, path in items]
    return decode_batch([path for _, path in items], resampler)


def _embed_items(items: Sequence[Tuple[int, Path]], decoded: Sequence[Decoded],
                 model: KWMLPEmbedder, kind: str) -> Iterator[Result]:
    """One decoded batch -> results: its failures, then its embeddings; a
    worker's warnings are raised here, in order."""
    clips = []
    for (index, path), (audio, stat, error, messages) in zip(items, decoded):
        for message in messages:
            warnings.warn(message, stacklevel=1)
        if error is not None:
            yield index, FileFailure(path, error)
        else:
            clips.append((index, path, audio, stat))
    yield from embed_decoded(clips, model, kind)


def embed_indexed(paths: Sequence[Path], model: KWMLPEmbedder, kind: str,
                  batch_seconds: float, resampler: str, workers: int = 1) -> Iterator[Result]:
    """``(index into paths, result)`` for every path: first the files whose
    header cannot be read, then the rest shortest first. Batches are decoded
    ahead of the one being embedded: in a thread (``PREFETCH_BATCHES``), or
    with ``workers`` > 1 in that many processes."""
    durations_s, failures = header_durations(paths)
    yield from failures
    work = ([(i, paths[i]) for i in batch] for batch in batches(durations_s, batch_seconds))
    if workers == 1:
        decode = functools.partial(_decode_items, resampler=resampler, in_process=True)
        with ThreadPoolExecutor(1, thread_name_prefix="kwmlp-decode") as pool:
            for items, decoded in prefetched(pool, work, decode, PREFETCH_BATCHES):
                yield from _embed_items(items, decoded, model, kind)
        return
    decode = functools.partial(_decode_items, resampler=resampler)
    # spawn: a forked copy of a process running torch's thread pools can hang.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        try:
            for items, decoded in prefetched(pool, work, decode,
                                             workers * QUEUED_BATCHES_PER_WORKER):
                yield from _embed_items(items, decoded, model, kind)
        except BrokenProcessPool:  # only future.result() raises it
            raise KwmlpError("a decoding worker process died (out of memory?); the files "
                             "done so far are recorded, rerun to finish the rest") from None


def _watch_parent(parent_pid: int) -> None:
    """In a worker: exit as soon as ``parent_pid`` is no longer our parent (it was
    killed, even by SIGKILL, and we were handed to init), instead of living on as
    an orphan holding its memory."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="kwmlp-parent-watch", daemon=True).start()

