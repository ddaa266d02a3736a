"""Signal processing of a rendered word: resampling, trimming, fitting it into the
1 s window, and writing 16-bit WAVs."""
from __future__ import annotations

import wave
from pathlib import Path
from typing import Tuple

import numpy as np
import resampy

from ...frontend import CHUNK_SAMPLES, SAMPLE_RATE

TRIM_FRAME_SAMPLES = 160  # 10 ms at 16 kHz
TRIM_THRESHOLD_DB = -40.0  # relative to the loudest frame; keeps weak final /s/ and /t/
TRIM_MARGIN_SAMPLES = 480  # 30 ms kept either side of the word
FADE_SAMPLES = 80  # 5 ms raised-cosine fade so trimmed edges do not click


def resample_to_16k(audio: np.ndarray, rate_hz: int, speed: float = 1.0) -> np.ndarray:
    """``(samples,)`` at ``rate_hz`` -> ``(samples',)`` at 16 kHz, played ``speed`` x faster.

    kaiser_fast, not kaiser_best: several times cheaper (``benchmarks/README.md``), and
    its ~60 dB stopband is far below the level of anything these engines produce near
    Nyquist.
    """
    return resampy.resample(audio, rate_hz * speed, SAMPLE_RATE, filter="kaiser_fast")


def trim_silence(audio: np.ndarray) -> np.ndarray:
    """Drop leading/trailing 10 ms frames more than 40 dB below the loudest one.

    Keeps a 30 ms margin and fades the new edges over 5 ms. ``(samples,)`` in and out;
    an all-zero input comes back unchanged.
    """
    # Zero-pad first: espeak-ng starts vowel-initial words at sample 0, and without
    # room for the margin such a word would sit flush against the window's edge.
    audio = np.pad(audio, TRIM_MARGIN_SAMPLES)
    n_frames = len(audio) // TRIM_FRAME_SAMPLES
    if n_frames == 0:
        return audio
    frames = audio[: n_frames * TRIM_FRAME_SAMPLES].reshape(n_frames, TRIM_FRAME_SAMPLES)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    if rms.max() <= 0:
        return audio
    loud = np.nonzero(rms >= rms.max() * 10 ** (TRIM_THRESHOLD_DB / 20))[0]
    start = max(loud[0] * TRIM_FRAME_SAMPLES - TRIM_MARGIN_SAMPLES, 0)
    stop = min((loud[-1] + 1) * TRIM_FRAME_SAMPLES + TRIM_MARGIN_SAMPLES, len(audio))
    out = audio[start:stop].copy()
    n_fade = min(FADE_SAMPLES, len(out) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_fade) / n_fade)
    out[:n_fade] *= ramp
    out[len(out) - n_fade:] *= ramp[::-1]
    return out


def fit_to_window(audio: np.ndarray, window_samples: int = CHUNK_SAMPLES) -> np.ndarray:
    """A word longer than the window is sped up (resampled) to fit it exactly.

    Speeding up rather than truncating: a cut "backward" would become "back", a wrong
    label; the price is a pitch rise by the same (rarely more than ~10 %) factor.
    """
    if len(audio) <= window_samples:
        return audio
    out = resampy.resample(audio, len(audio), window_samples, filter="kaiser_fast")
    return out[:window_samples]


def place_in_window(audio: np.ndarray, *, peak_dbfs: float, position: float,
                    window_samples: int = CHUNK_SAMPLES) -> Tuple[np.ndarray, int]:
    """Scale to ``peak_dbfs`` and put at ``position`` (0..1 of the slack) in a silent
    window. Returns int16 samples ``(window_samples,)`` and the offset in samples."""
    peak = np.abs(audio).max()
    scaled = audio * (10 ** (peak_dbfs / 20) / peak) if peak > 0 else audio
    slack = window_samples - len(scaled)
    offset = min(int(position * (slack + 1)), slack)
    window = np.zeros(window_samples)
    window[offset: offset + len(scaled)] = scaled
    return to_int16(window), offset


def to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate_hz: int = SAMPLE_RATE) -> None:
    """16-bit mono PCM WAV. The ``wave`` module writes a fixed 44-byte header and no
    timestamps, so equal samples give equal bytes whatever libsndfile is installed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(samples.astype("<i2").tobytes())
