"""Spotting recordings: clips laid end to end with noisy gaps, and the rule that
scores detections against them (``benchmarks/spotting.py`` on the committed test
clips, ``operating_point`` on each cross-validation fold's own speakers).

The clips are shuffled (``seed``) and laid end to end with 0.5-1.0 s gaps of
background noise (white noise at -50 dBFS RMS under the whole recording, plus,
in every other gap, pink noise at -35 dBFS). A detection is correct when its
word is the clip's word, its centre lies within the clip's 1 s, and its span
overlaps the clip's speech (the frames within 20 dB of the clip's loudest).
Each clip is matched at most once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..audio import load_audio
from ..keywords import Detection

SAMPLE_RATE = 16_000
GAP_S = (0.5, 1.0)
FLOOR_DBFS, GAP_NOISE_DBFS = -50.0, -35.0
SPEECH_DB = 20.0  # speech = 10 ms frames within this of the clip's loudest frame
FRAME = 160


@dataclass(frozen=True)
class Word:
    """A clip placed in the recording: its word, the clip's extent and its
    speech's extent, in ms."""

    word: str
    clip_ms: Tuple[float, float]
    speech_ms: Tuple[float, float]


def speech_extent(clip: np.ndarray) -> Tuple[int, int]:
    """First and one-past-last sample of the 10 ms frames within ``SPEECH_DB``
    of the loudest frame of ``clip`` ``(n_samples,)``."""
    n = len(clip) // FRAME
    energy_db = 10 * np.log10(np.mean(clip[:n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy_db >= energy_db.max() - SPEECH_DB)
    return loud[0] * FRAME, (loud[-1] + 1) * FRAME


def noise_at_dbfs(rng: np.random.Generator, n: int, dbfs: float, pink: bool) -> np.ndarray:
    """``(n,)`` float32 white (or ``pink``, 1/f) Gaussian noise at ``dbfs`` RMS."""
    noise = rng.standard_normal(n)
    if pink:  # 1/f power: scale the spectrum by 1/sqrt(f)
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.arange(1, len(spectrum) + 1))
        noise = np.fft.irfft(spectrum, n)
    return (noise / noise.std() * 10 ** (dbfs / 20)).astype(np.float32)


def make_recording(paths: Sequence[Path], seed: int = 0) -> Tuple[np.ndarray, List[Word]]:
    """The clips at ``paths`` (words = their folder names) shuffled and laid end
    to end with noisy gaps: ``(audio (n_samples,) float32 16 kHz, words)``."""
    rng = np.random.default_rng(seed)
    pieces, words, at = [], [], 0
    for index, k in enumerate(rng.permutation(len(paths))):
        clip, rate = load_audio(paths[k])
        gap = int(rng.uniform(*GAP_S) * SAMPLE_RATE)
        gap_audio = np.zeros(gap, np.float32)
        if index % 2:
            gap_audio += noise_at_dbfs(rng, gap, GAP_NOISE_DBFS, pink=True)
        pieces += [gap_audio, clip]
        lo, hi = speech_extent(clip)
        start = at + gap
        words.append(Word(paths[k].parent.name, _ms(start, start + len(clip)),
                          _ms(start + lo, start + hi)))
        at = start + len(clip)
    pieces.append(np.zeros(int(GAP_S[1] * SAMPLE_RATE), np.float32))
    audio = np.concatenate(pieces)
    audio += noise_at_dbfs(rng, len(audio), FLOOR_DBFS, pink=False)
    return np.clip(audio, -1.0, 1.0), words


def _ms(*samples: int) -> Tuple[float, ...]:
    return tuple(1000 * s / SAMPLE_RATE for s in samples)


def match(detections: Sequence[Detection], words: Sequence[Word]) -> int:
    """Correct detections (= clips found) under the rule in the module docstring."""
    found = set()
    for d in detections:
        centre = (d.start_ms + d.end_ms) / 2
        for index, w in enumerate(words):
            if (index not in found and d.word == w.word
                    and w.clip_ms[0] <= centre <= w.clip_ms[1]
                    and d.start_ms < w.speech_ms[1] and d.end_ms > w.speech_ms[0]):
                found.add(index)
                break
    return len(found)
