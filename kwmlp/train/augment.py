"""Training-time augmentation, batched on tensors (paper appendix A, Table 5).

Waveform side (before the MFCC): random time shift, background-noise mixing at a
random SNR, random gain. MFCC side: SpecAugment-style time and frequency masks.
Every function draws from an explicit ``torch.Generator`` so a run is replicable
and its augmentation stream can be checkpointed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import torch

from ..frontend import CHUNK_SAMPLES, SAMPLE_RATE

_POWER_FLOOR = 1e-10  # keeps silent clips / silent noise segments from dividing by 0


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; ranges are inclusive ``(low, high)``."""

    time_masks: int = 2
    time_mask_frames: Tuple[int, int] = (0, 25)
    freq_masks: int = 2
    freq_mask_coeffs: Tuple[int, int] = (0, 7)
    noise_prob: float = 0.8
    snr_db: Tuple[float, float] = (5.0, 25.0)
    gain_db: Tuple[float, float] = (-6.0, 6.0)
    max_shift_ms: float = 100.0


# helpers

def _uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _randint_inclusive(low: int, high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high + 1, (n,), generator=generator)


def _band_masks(n_rows: int, n_masks: int, width_range: Tuple[int, int], batch: int,
                generator: torch.Generator) -> torch.Tensor:
    """``(batch, n_rows)`` bool, True inside any of ``n_masks`` random bands per item.

    A band of width ``w`` starts uniformly in ``[0, n_rows - w]``, so it always fits."""
    low, high = width_range
    if not 0 <= low <= high <= n_rows:
        raise ValueError(f"mask width range must satisfy 0 <= low <= high <= {n_rows}, "
                         f"got {width_range}")
    rows = torch.arange(n_rows)
    masked = torch.zeros(batch, n_rows, dtype=torch.bool)
    for _ in range(n_masks):
        width = _randint_inclusive(low, high, batch, generator)
        start = (torch.rand(batch, generator=generator) * (n_rows - width + 1)).long()
        masked |= (rows >= start[:, None]) & (rows < (start + width)[:, None])
    return masked


# waveform augmentation

def time_shift(audio: torch.Tensor, max_shift_samples: int,
               generator: torch.Generator) -> torch.Tensor:
    """Shift each clip by a uniform integer in ``[-max_shift_samples, max_shift_samples]``
    samples, filling with zeros (not wrapping: a word cut at one end must not reappear
    at the other). ``(batch, samples) -> (batch, samples)``."""
    batch, n_samples = audio.shape
    shift = _randint_inclusive(-max_shift_samples, max_shift_samples, batch, generator)
    source = torch.arange(n_samples) - shift[:, None]
    inside = (source >= 0) & (source < n_samples)
    return audio.gather(1, source.clamp(0, n_samples - 1)) * inside


def noise_segments(noise: List[torch.Tensor], batch: int, n_samples: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Draw ``batch`` segments of ``n_samples`` from the recordings, uniformly over all
    whole segments (a long recording is drawn from proportionally more often).
    Returns ``(batch, n_samples)``."""
    if not noise:
        raise ValueError("no background-noise recordings to draw segments from")
    joined = torch.cat(noise)
    lengths = torch.tensor([len(n) for n in noise])
    file_starts = torch.cumsum(lengths, 0) - lengths
    n_starts = (lengths - n_samples + 1).clamp(min=0)  # valid start offsets per recording
    if int(n_starts.sum()) == 0:
        raise ValueError(f"no background-noise recording has {n_samples} samples")
    # Pick a global start index, then find which recording it falls in, so no
    # segment spans the boundary between two recordings.
    pick = torch.randint(int(n_starts.sum()), (batch,), generator=generator)
    cumulative = torch.cumsum(n_starts, 0)
    recording = torch.searchsorted(cumulative, pick, right=True)
    offset = pick - (cumulative[recording] - n_starts[recording])
    start = file_starts[recording] + offset
    return joined[start[:, None] + torch.arange(n_samples)]


def mix_at_snr(clean: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """``clean + k * noise`` with ``k`` per row such that
    ``10 log10(mean(clean^2) / mean((k noise)^2)) == snr_db``.
    ``clean``, ``noise``: ``(batch, samples)``; ``snr_db``: ``(batch,)`` in dB."""
    clean_power = clean.square().mean(dim=1).clamp(min=_POWER_FLOOR)
    noise_power = noise.square().mean(dim=1).clamp(min=_POWER_FLOOR)
    scale = torch.sqrt(clean_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return clean + scale[:, None] * noise


def augment_waveform(audio: torch.Tensor, noise: List[torch.Tensor], config: AugmentConfig,
                     generator: torch.Generator) -> torch.Tensor:
    """Shift, add noise to a random ``noise_prob`` share of clips, apply gain.
    ``(batch, CHUNK_SAMPLES)`` float audio -> same shape. ``noise`` may be empty
    (no ``_background_noise_`` folder), then no noise is mixed."""
    batch = audio.shape[0]
    audio = time_shift(audio, round(config.max_shift_ms * SAMPLE_RATE / 1000), generator)
    if noise and config.noise_prob > 0:
        segments = noise_segments(noise, batch, CHUNK_SAMPLES, generator)
        snr_db = _uniform(*config.snr_db, batch, generator)
        noisy = torch.rand(batch, generator=generator) < config.noise_prob
        audio = torch.where(noisy[:, None], mix_at_snr(audio, segments, snr_db), audio)
    gain_db = _uniform(*config.gain_db, batch, generator)
    return audio * (10.0 ** (gain_db / 20.0))[:, None]


# MFCC augmentation

def mask_mfcc(mfcc: torch.Tensor, config: AugmentConfig,
              generator: torch.Generator) -> torch.Tensor:
    """Zero ``config.time_masks`` random frame bands and ``config.freq_masks`` random
    coefficient bands per item (zero, as the original KW-MLP code does).
    ``(batch, n_mfcc, n_frames) -> (batch, n_mfcc, n_frames)``."""
    batch, n_mfcc, n_frames = mfcc.shape
    frames = _band_masks(n_frames, config.time_masks, config.time_mask_frames, batch, generator)
    coeffs = _band_masks(n_mfcc, config.freq_masks, config.freq_mask_coeffs, batch, generator)
    masked = frames[:, None, :] | coeffs[:, :, None]
    return mfcc.masked_fill(masked, 0.0)
