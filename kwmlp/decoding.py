"""Reading a run's inputs: files to 16 kHz clips, in duration-sorted batches of
bounded audio, decoded ahead of the batch being embedded.

Batching: clips are sorted by duration and read ``batch_seconds`` of audio at a
time, so clips of identical length (in 16 kHz samples) can share one encoder
pass; they are never padded to a common length (``kwmlp.engines``).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Executor
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Sequence, Tuple, TypeVar

import numpy as np

from .audio import audio_duration_s, load_audio
from .embedder import HOP_MS, MIN_TIMESTAMPED_SAMPLES
from .errors import KwmlpError
from .results import FileFailure, SourceStat

DEFAULT_BATCH_SECONDS = 60.0  # of audio read (and held) at once; bounds memory, not results
# Decoded ahead of the batch being embedded, in a thread: libsndfile and soxr
# release the GIL, so reading overlaps the encoder; memory stays bounded, at up
# to (1 + PREFETCH_BATCHES) batches of audio.
PREFETCH_BATCHES = 1

W = TypeVar("W")
T = TypeVar("T")
_NO_ITEM = object()


def check_batch_seconds(batch_seconds: float) -> None:
    if not batch_seconds > 0:
        raise ValueError(f"batch_seconds must be positive, got {batch_seconds!r}")


def batches(durations_s: Mapping[int, float], batch_seconds: float) -> Iterator[List[int]]:
    """The keys sorted by duration, cut into consecutive runs totalling at most
    ``batch_seconds`` (a longer clip is a batch of its own)."""
    batch: List[int] = []
    total_s = 0.0
    for index in sorted(durations_s, key=durations_s.__getitem__):
        if batch and total_s + durations_s[index] > batch_seconds:
            yield batch
            batch, total_s = [], 0.0
        batch.append(index)
        total_s += durations_s[index]
    if batch:
        yield batch


def prefetched(pool: Executor, work: Iterable[W], decode: Callable[[W], T],
               ahead: int) -> Iterator[Tuple[W, T]]:
    """``(item, decode(item))`` for each item of ``work``, in order. While the
    caller holds one item, the next ``ahead`` (>= 1) are decoding on ``pool``:
    the overlap, and the bound on memory. On early exit the items not started
    are cancelled."""
    if ahead < 1:
        raise ValueError(f"ahead must be at least 1, got {ahead}")
    todo = iter(work)
    pending: deque = deque()

    def top_up() -> None:
        while len(pending) < ahead:
            item = next(todo, _NO_ITEM)
            if item is _NO_ITEM:
                return
            pending.append((item, pool.submit(decode, item)))

    try:
        top_up()
        while pending:
            item, future = pending.popleft()
            decoded = future.result()
            top_up()
            yield item, decoded
    finally:
        for _, future in pending:
            future.cancel()


def source_stat(path: Path) -> SourceStat:
    """``path``'s size and mtime now; ``KwmlpError`` if it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError as err:
        raise KwmlpError(f"{path}: cannot read audio ({err.strerror})") from None
    return SourceStat(stat.st_size, stat.st_mtime_ns)


def decode_clip(path: Path, resampler: str) -> Tuple[np.ndarray, SourceStat]:
    """``load_audio`` for embedding: ``(n_samples,)`` float32 at 16 kHz and the
    file's size and mtime taken just before reading it (so a file that changes
    while or after it is read no longer matches its record), or ``KwmlpError``
    for a bad file, one too short for a timestamp included."""
    stat = source_stat(path)
    audio, _ = load_audio(path, resampler)
    if len(audio) < MIN_TIMESTAMPED_SAMPLES:
        raise KwmlpError(f"{path}: too short to embed ({len(audio)} samples at 16 kHz; one "
                         f"timestamp takes {MIN_TIMESTAMPED_SAMPLES}, {HOP_MS:g} ms)")
    return audio, stat


def header_durations(paths: Sequence[Path]
                     ) -> Tuple[Dict[int, float], List[Tuple[int, FileFailure]]]:
    """Seconds of audio by index into ``paths``, from the file headers, and
    ``(index, failure)`` for each file whose header cannot be read."""
    durations_s: Dict[int, float] = {}
    failures = []
    for index, path in enumerate(paths):
        try:
            durations_s[index] = audio_duration_s(path)
        except KwmlpError as err:
            failures.append((index, FileFailure(path, str(err))))
    return durations_s, failures
