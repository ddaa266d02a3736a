"""Timestamp embeddings -> fixed-size scene embedding (paper §3.3 and §6.1).

Every method maps ``(batch, n_frames, dim)`` to ``(batch, SCENE_STEPS * dim)``,
flattened feature-major: output index ``f * SCENE_STEPS + j`` is feature ``f``
at step ``j``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SCENE_STEPS = 16  # N_S in eq. 3: 16 steps x 64 dims = 1024-d scene embedding

METHODS = ("iterative", "single", "mean")


def _interpolate(x: torch.Tensor, size: int) -> torch.Tensor:
    """Linear interpolation along time of ``(batch, dim, frames)`` to ``size`` frames."""
    return F.interpolate(x, size=size, mode="linear", align_corners=True)


def _pad_to_steps(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``(batch, dim, frames)`` at the end to at least SCENE_STEPS frames."""
    if x.shape[-1] >= SCENE_STEPS:
        return x  # F.pad would copy even a zero-width pad: ~90 MB for an hour of frames
    return F.pad(x, (0, SCENE_STEPS - x.shape[-1]))


def iterative_interpolation(x: torch.Tensor) -> torch.Tensor:
    """Halve the length ``floor(log2(T / 16))`` times, then, unless ``T / 16`` is
    a power of two, interpolate once more to exactly 16 (eq. 3). Halving in
    steps avoids the aliasing of one large linear downsampling (paper fig. 4)."""
    x = _pad_to_steps(x)
    ratio = math.log2(x.shape[-1] / SCENE_STEPS)
    for _ in range(math.floor(ratio)):
        x = _interpolate(x, x.shape[-1] // 2)
    if not ratio.is_integer():
        x = _interpolate(x, SCENE_STEPS)
    return x


def single_interpolation(x: torch.Tensor) -> torch.Tensor:
    """One linear interpolation straight to 16 steps (ablation, §6.1)."""
    return _interpolate(_pad_to_steps(x), SCENE_STEPS)


def group_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of 16 consecutive groups; group ``j`` holds frames
    ``[floor(j T / 16), floor((j + 1) T / 16))`` (ablation, §6.1)."""
    x = _pad_to_steps(x)
    n_frames = x.shape[-1]
    bounds = [j * n_frames // SCENE_STEPS for j in range(SCENE_STEPS + 1)]
    return torch.stack(
        [x[..., lo:hi].mean(dim=-1) for lo, hi in zip(bounds[:-1], bounds[1:])], dim=-1
    )


_POOLERS = {"iterative": iterative_interpolation, "single": single_interpolation,
            "mean": group_mean}


def scene_embedding(frames: torch.Tensor, method: str = "iterative") -> torch.Tensor:
    """``(batch, n_frames, dim)`` -> ``(batch, SCENE_STEPS * dim)``."""
    if method not in _POOLERS:
        raise ValueError(f"pooling method must be one of {METHODS}, got {method!r}")
    if frames.ndim != 3 or frames.shape[1] == 0:
        raise ValueError(f"expected (batch, n_frames > 0, dim), got {tuple(frames.shape)}")
    pooled = _POOLERS[method](frames.transpose(1, 2))
    return pooled.reshape(pooled.shape[0], -1)
