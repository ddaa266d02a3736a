"""The background noises: coloured noise, mains hum and non-keyword babble."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ...frontend import SAMPLE_RATE
from ..speech_commands import NOISE_DIR
from .dsp import to_int16, resample_to_16k, trim_silence, write_wav
from .engines import Renderer
from .plan import clip_rng
from .voices import Voice

NOISE_DURATION_S = 60.0
# Words for the babble noise: none of the 35 keywords, so background talk never says one.
BABBLE_WORDS: Tuple[str, ...] = (
    "the", "people", "water", "because", "little", "morning", "coffee", "really", "window",
    "about", "maybe", "children", "garden", "tomorrow", "money", "between", "paper", "yellow",
    "think", "other", "market", "another", "number", "evening", "summer", "music", "table",
    "thank", "question", "probably", "kitchen", "weather", "minute", "answer", "almost",
    "station", "letter", "family", "picture", "together", "library", "basket", "lemon",
    "ticket", "problem", "important", "walking", "dinner", "blanket", "country",
)
BABBLE_TALKERS = 8


def _normalise_rms(audio: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale ``(samples,)`` to an RMS of ``rms_dbfs``, then keep peaks below full scale."""
    scaled = audio * (10 ** (rms_dbfs / 20) / np.sqrt(np.mean(audio ** 2)))
    peak = np.abs(scaled).max()
    return scaled * (0.99 / peak) if peak > 0.99 else scaled


def coloured_noise(rng: np.random.Generator, n_samples: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent: 0 white, 1 pink, 2 brown.

    Shaped in the frequency domain; the DC bin is zeroed so there is no offset.
    """
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples)
    gain = np.zeros_like(freqs)
    gain[1:] = freqs[1:] ** (-exponent / 2)
    return np.fft.irfft(spectrum * gain, n=n_samples)


def mains_hum(rng: np.random.Generator, n_samples: int, mains_hz: float) -> np.ndarray:
    """Mains hum: ``mains_hz`` and its first harmonics with random levels and phases, a
    slow amplitude wobble, over a faint pink-noise floor."""
    t = np.arange(n_samples) / SAMPLE_RATE
    hum = np.zeros(n_samples)
    for harmonic in range(1, 9):
        level = rng.uniform(0.2, 1.0) / harmonic ** (0.5 if harmonic % 2 else 1.0)
        hum += level * np.sin(2 * np.pi * mains_hz * harmonic * t + rng.uniform(0, 2 * np.pi))
    hum *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)
    floor = coloured_noise(rng, n_samples, 1.0)
    return hum / np.sqrt(np.mean(hum ** 2)) + 0.05 * floor / np.sqrt(np.mean(floor ** 2))


def babble(rng: np.random.Generator, n_samples: int, voices: Sequence[Voice],
           renderer: Renderer) -> np.ndarray:
    """Several espeak-ng talkers saying random non-keyword phrases over each other."""
    out = np.zeros(n_samples)
    for _ in range(BABBLE_TALKERS):
        voice = voices[int(rng.integers(len(voices)))]
        track = np.zeros(n_samples)
        pos = int(rng.integers(0, SAMPLE_RATE))
        while pos < n_samples:
            phrase = " ".join(rng.choice(BABBLE_WORDS, size=int(rng.integers(3, 9))))
            audio, rate_hz = renderer.speak(phrase, voice, rng)
            speech = trim_silence(resample_to_16k(audio, rate_hz))
            speech = speech[: n_samples - pos]
            track[pos: pos + len(speech)] = speech / max(np.abs(speech).max(), 1e-9)
            pos += len(speech) + int(rng.integers(SAMPLE_RATE // 10, SAMPLE_RATE // 2))
        out += track * 10 ** (rng.uniform(-10, 0) / 20)
    return out


def write_background_noise(out_dir: Path, *, seed: int, voices: Sequence[Voice],
                           duration_s: float = NOISE_DURATION_S) -> List[str]:
    """Write the noise WAVs into ``out_dir/_background_noise_``; returns their names.

    White, pink and brown noise, 50 and 60 Hz mains hum, and babble from training-split
    espeak-ng voices (so it never carries a held-out speaker).
    """
    n_samples = int(round(duration_s * SAMPLE_RATE))
    noise_dir = out_dir / NOISE_DIR
    noises = {
        "white_noise.wav": lambda rng: coloured_noise(rng, n_samples, 0.0),
        "pink_noise.wav": lambda rng: coloured_noise(rng, n_samples, 1.0),
        "brown_noise.wav": lambda rng: coloured_noise(rng, n_samples, 2.0),
        "mains_hum_50hz.wav": lambda rng: mains_hum(rng, n_samples, 50.0),
        "mains_hum_60hz.wav": lambda rng: mains_hum(rng, n_samples, 60.0),
    }
    talkers = [v for v in voices if v.engine == "espeak-ng" and v.split == "training"]
    renderer = Renderer() if talkers else None
    try:
        if renderer is not None:
            noises["babble.wav"] = lambda rng: babble(rng, n_samples, talkers, renderer)
        for name, make in noises.items():
            audio = _normalise_rms(make(clip_rng(seed, "noise", name)), -20.0)
            write_wav(noise_dir / name, to_int16(audio))
    finally:
        if renderer is not None:
            renderer.close()
    return sorted(noises)
