"""Read a corpus in the Speech Commands V2 layout (Warden, 2018).

Layout::

    DIR/<word>/<speaker>_nohash_<k>.wav   16 kHz mono, about 1 s
    DIR/validation_list.txt               paths relative to DIR, one a line
    DIR/testing_list.txt
    DIR/_background_noise_/*.wav          long noise recordings for augmentation

A clip listed in neither list is a training clip. Only the 35 ``WORDS`` folders
count; any other folder (``_background_noise_``, a V1 ``_unknown_``) is ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf
import torch

from .._types import PathLike
from ..audio import INT16_SCALE
from ..errors import KwmlpError
from ..frontend import CHUNK_SAMPLES, SAMPLE_RATE
from ..vocabulary import SPLITS, WORDS

NOISE_DIR = "_background_noise_"


@dataclass(frozen=True)
class ClipList:
    """The clips of one split: ``paths[i]`` has label ``labels[i]`` (index into WORDS)."""

    paths: Tuple[Path, ...]
    labels: Tuple[int, ...]

    def __len__(self) -> int:
        return len(self.paths)


def _read_list(data_dir: Path, name: str) -> set:
    list_path = data_dir / name
    if not list_path.is_file():
        raise KwmlpError(f"{list_path} is missing; a Speech Commands directory needs "
                         "validation_list.txt and testing_list.txt")
    return {line.strip() for line in list_path.read_text().splitlines() if line.strip()}


def list_clips(data_dir: PathLike) -> Dict[str, ClipList]:
    """Split the corpus at ``data_dir`` into ``{"training", "validation", "testing"}``.

    Clips are sorted by path within a split, so the lists are reproducible."""
    data_dir = Path(data_dir)
    held_out = {"validation": _read_list(data_dir, "validation_list.txt"),
                "testing": _read_list(data_dir, "testing_list.txt")}
    overlap = held_out["validation"] & held_out["testing"]
    if overlap:
        raise KwmlpError(f"{len(overlap)} clips are in both validation and testing lists, "
                         f"e.g. {sorted(overlap)[0]}")
    missing = sorted(name for names in held_out.values() for name in names
                     if name.split("/")[0] in WORDS and not (data_dir / name).is_file())
    if missing:
        raise KwmlpError(f"{data_dir}: {len(missing)} clips named in the split lists do not "
                         f"exist, e.g. {missing[0]}")
    found: Dict[str, List[Tuple[Path, int]]] = {split: [] for split in SPLITS}
    for label, word in enumerate(WORDS):
        for path in sorted((data_dir / word).glob("*.wav")):
            relative = f"{word}/{path.name}"
            split = next((s for s, names in held_out.items() if relative in names), "training")
            found[split].append((path, label))
    return {split: ClipList(tuple(p for p, _ in items), tuple(label for _, label in items))
            for split, items in found.items()}


def read_clip(path: PathLike) -> np.ndarray:
    """One 16 kHz mono clip as int16 samples, zero-padded or trimmed to ``CHUNK_SAMPLES``."""
    samples, sample_rate = sf.read(str(path), dtype="int16", always_2d=True)
    if sample_rate != SAMPLE_RATE or samples.shape[1] != 1:
        raise KwmlpError(f"{path}: expected 16 kHz mono, got {sample_rate} Hz with "
                         f"{samples.shape[1]} channels")
    clip = np.zeros(CHUNK_SAMPLES, dtype=np.int16)
    n = min(CHUNK_SAMPLES, samples.shape[0])
    clip[:n] = samples[:n, 0]
    return clip


def load_clips(clips: ClipList) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read a whole split into RAM: ``(n_clips, CHUNK_SAMPLES)`` int16 audio (2 bytes a
    sample, 1.3 GB for 40 000 clips) and ``(n_clips,)`` int64 labels."""
    audio = np.zeros((len(clips), CHUNK_SAMPLES), dtype=np.int16)
    for i, path in enumerate(clips.paths):
        audio[i] = read_clip(path)
    return torch.from_numpy(audio), torch.tensor(clips.labels, dtype=torch.int64)


def load_background_noise(data_dir: PathLike) -> List[torch.Tensor]:
    """The ``_background_noise_`` recordings as float ``(n_samples,)`` tensors in [-1, 1).

    Recordings shorter than one chunk are skipped (no whole 1 s segment to draw)."""
    noise = []
    for path in sorted((Path(data_dir) / NOISE_DIR).glob("*.wav")):
        samples, sample_rate = sf.read(str(path), dtype="int16", always_2d=True)
        if sample_rate != SAMPLE_RATE:
            raise KwmlpError(f"{path}: expected {SAMPLE_RATE} Hz, got {sample_rate} Hz")
        if samples.shape[0] >= CHUNK_SAMPLES:
            noise.append(torch.from_numpy(samples[:, 0].astype(np.float32) / INT16_SCALE))
    return noise
