"""Room impulse responses: a simulated bank for reverberation augmentation, and
measured ones to check that it carries over to real rooms.

Simulated: shoebox rooms from pyroomacoustics' image-source method (optional
extra ``kwmlp[train]``) with random size, reverberation time, source and
microphone positions; made once per run and cached, so training only convolves.
Measured: every WAV below a folder (e.g. ``../shared/data/rirs``), first channel.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import soundfile as sf

from .._types import PathLike
from ..atomic import write_atomic
from ..audio import resample
from ..frontend import SAMPLE_RATE

ROOM_DIMS_M = ((3.0, 3.0, 2.4), (12.0, 10.0, 4.0))  # (low, high) for (length, width, height)
RT60_S = (0.15, 0.9)
WALL_MARGIN_M = 0.5  # source and microphone keep this far from every wall
MAX_IMAGE_ORDER = 60  # caps the image-source cost of the most reverberant rooms
RIR_SAMPLES = 12_800  # 0.8 s kept per response


def _pyroomacoustics():
    try:
        import pyroomacoustics
    except ImportError:
        raise ImportError("reverberation augmentation needs pyroomacoustics: "
                          "pip install 'kwmlp[train]'") from None
    return pyroomacoustics


def _from_direct_path(rir: np.ndarray) -> np.ndarray:
    """``RIR_SAMPLES`` of ``rir`` from its largest peak (the direct path), unit energy."""
    rir = rir[int(np.argmax(np.abs(rir))):][:RIR_SAMPLES]
    out = np.zeros(RIR_SAMPLES, dtype=np.float32)
    out[:len(rir)] = rir / np.sqrt(np.sum(rir.astype(np.float64) ** 2))
    return out


def simulate_rirs(n_rooms: int, seed: int) -> np.ndarray:
    """``(n_rooms, RIR_SAMPLES)`` float32 impulse responses at 16 kHz, each starting at
    its direct-path peak (so reverberation does not delay the word) and scaled to unit
    energy."""
    pra = _pyroomacoustics()
    rng = np.random.default_rng(seed)
    bank = np.zeros((n_rooms, RIR_SAMPLES), dtype=np.float32)
    for i in range(n_rooms):
        dims = rng.uniform(*ROOM_DIMS_M)
        absorption, max_order = pra.inverse_sabine(rng.uniform(*RT60_S), dims)
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption),
                           max_order=min(max_order, MAX_IMAGE_ORDER))
        room.add_source(rng.uniform(WALL_MARGIN_M, dims - WALL_MARGIN_M))
        room.add_microphone(rng.uniform(WALL_MARGIN_M, dims - WALL_MARGIN_M))
        room.compute_rir()
        bank[i] = _from_direct_path(np.asarray(room.rir[0][0], dtype=np.float64))
    return bank


def measured_rirs(rir_dir: PathLike) -> Tuple[np.ndarray, Tuple[str, ...]]:
    """``(n, RIR_SAMPLES)`` float32 measured responses from every ``*.wav`` below
    ``rir_dir`` (first channel, resampled to 16 kHz, from the direct path, unit energy)
    and their paths relative to ``rir_dir``, sorted."""
    paths = sorted(Path(rir_dir).rglob("*.wav"))
    bank = np.zeros((len(paths), RIR_SAMPLES), dtype=np.float32)
    for i, path in enumerate(paths):
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        bank[i] = _from_direct_path(resample(np.ascontiguousarray(audio[:, 0]), rate))
    return bank, tuple(str(p.relative_to(rir_dir)) for p in paths)


def rir_bank(path: PathLike, n_rooms: int, seed: int) -> np.ndarray:
    """The bank cached at ``path`` (an ``.npy``), simulated and written on first use."""
    path = Path(path)
    if path.is_file():
        bank = np.load(path)
        if bank.shape == (n_rooms, RIR_SAMPLES):
            return bank
    bank = simulate_rirs(n_rooms, seed)
    write_atomic(path, lambda file: np.save(file, bank))
    return bank
