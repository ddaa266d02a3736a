"""Real human recordings for training and for the real-voice validation figure.

Reads the folder described by its ``MANIFEST.tsv`` (columns ``relpath``,
``word_or_digit``, ``speaker``, ...)::

    speech_commands/<word>/<speaker>_nohash_<k>.wav   Speech Commands, 16 kHz, <= 1 s
    speech_commands/_background_noise_/*.wav          the dataset's six noise recordings
    fsdd/<digit>_<speaker>_<k>.wav                    Free Spoken Digit Dataset, 8 kHz

Splits are by *speaker*, never by clip, and fixed once: a speaker belongs to the
validation part when ``speaker_bucket(speaker) < VALIDATION_PERCENT[source]``
(sha1 of the name, as Speech Commands' own list generator does), so a clip's
split never depends on which other clips are present. FSDD has four speakers,
all of whom would land in one half at 50 %, hence its own threshold.

Cross-validation (``cv_split``) replaces that fixed half for Speech Commands: the
speakers of ``HOLDOUT_SPEAKERS_FILE`` (those of ``tests/data/real``) are kept out
of every fold and of all training, and every other speaker falls in fold
``speaker_fold(speaker, k)``; fold ``i`` validates on its speakers and trains on
the rest, so a recipe is judged on every real speaker, each time one it never heard.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from .._types import PathLike
from ..audio import load_audio
from ..errors import KwmlpError
from ..frontend import CHUNK_SAMPLES
from .speech_commands import (INT16_SCALE, NOISE_DIR, WORDS, ClipList,
                              load_background_noise)

MANIFEST_NAME = "MANIFEST.tsv"
SOURCES = ("speech_commands", "fsdd")
VALIDATION_PERCENT = {"speech_commands": 50, "fsdd": 25}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
REAL_SPLITS = ("training", "validation")
# Speakers of the committed real test clips (tests/data/real): never trained or selected on.
HOLDOUT_SPEAKERS_FILE = Path(__file__).with_name("holdout_speakers.txt")
ALL_FOLDS = -1  # cv_split's fold for "train on every speaker but the held-out ones"


def speaker_bucket(speaker: str) -> int:
    """A speaker's fixed bucket in ``[0, 100)``: sha1 of the name, modulo 100."""
    return int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16) % 100


def split_of_speaker(speaker: str, source: str) -> str:
    """``"validation"`` or ``"training"`` for a speaker of ``source``."""
    return ("validation" if speaker_bucket(speaker) < VALIDATION_PERCENT[source]
            else "training")


def holdout_speakers() -> frozenset:
    """The Speech Commands speakers kept out of training and selection (one id a line)."""
    return frozenset(HOLDOUT_SPEAKERS_FILE.read_text().split())


def speaker_fold(speaker: str, folds: int) -> int:
    """A speaker's cross-validation fold in ``[0, folds)``: a sha1 of the name,
    salted so that folds do not follow the fixed split's buckets."""
    return int(hashlib.sha1(f"fold:{speaker}".encode("utf-8")).hexdigest(), 16) % folds


def pooled_clips(splits: Dict[str, Tuple[ClipList, Tuple[str, ...]]]
                 ) -> Tuple[ClipList, Tuple[str, ...]]:
    """One source's clips of both fixed splits (``list_real_clips(...)[source]``)
    as one ``(clips, speakers)`` pair, sorted by path."""
    items = sorted((path, label, speaker) for split in REAL_SPLITS
                   for path, label, speaker in zip(splits[split][0].paths,
                                                   splits[split][0].labels, splits[split][1]))
    return (ClipList(tuple(p for p, _, _ in items), tuple(n for _, n, _ in items)),
            tuple(s for _, _, s in items))


def cv_split(clips: ClipList, speakers: Tuple[str, ...], folds: int,
             fold: int) -> Dict[str, Tuple[ClipList, Tuple[str, ...]]]:
    """Speech Commands ``clips`` spoken by ``speakers`` split for fold ``fold``
    of ``folds``: ``{"training", "validation"}`` as ``(clips, speakers)``, the
    held-out speakers in neither. ``fold=ALL_FOLDS`` puts every other speaker
    in training."""
    if folds < 2 or not (fold == ALL_FOLDS or 0 <= fold < folds):
        raise ValueError(f"need folds >= 2 and fold in 0..{folds - 1} or {ALL_FOLDS}, "
                         f"got folds={folds}, fold={fold}")
    held_out = holdout_speakers()
    parts: Dict[str, List[Tuple[Path, int, str]]] = {split: [] for split in REAL_SPLITS}
    for path, label, speaker in zip(clips.paths, clips.labels, speakers):
        if speaker in held_out:
            continue
        split = "validation" if speaker_fold(speaker, folds) == fold else "training"
        parts[split].append((path, label, speaker))
    return {split: (ClipList(tuple(p for p, _, _ in items), tuple(n for _, n, _ in items)),
                    tuple(s for _, _, s in items))
            for split, items in parts.items()}


def holdout_clips(real_dir: PathLike) -> ClipList:
    """The Speech Commands clips of ``holdout_speakers()`` (in no fold, never
    trained on), sorted by path: a fixed set on which every fold's model, and
    any mix of them, is scored on people none of them heard."""
    clips, speakers = pooled_clips(list_real_clips(real_dir)["speech_commands"])
    held_out = holdout_speakers()
    kept = [(p, n) for p, n, s in zip(clips.paths, clips.labels, speakers) if s in held_out]
    return ClipList(tuple(p for p, _ in kept), tuple(n for _, n in kept))


def run_splits(real_dir: PathLike, cv_folds: int = 0, cv_fold: int = 0
               ) -> Dict[str, Dict[str, Tuple[ClipList, Tuple[str, ...]]]]:
    """``list_real_clips(real_dir)``, with Speech Commands re-split into fold
    ``cv_fold`` of ``cv_folds`` (``cv_split``) when ``cv_folds`` > 0: the
    splits a training run uses."""
    real = list_real_clips(real_dir)
    if cv_folds:
        real["speech_commands"] = cv_split(*pooled_clips(real["speech_commands"]),
                                           cv_folds, cv_fold)
    return real


def _word_of(source: str, label: str) -> str:
    return DIGIT_WORDS[int(label)] if source == "fsdd" else label


def list_real_clips(real_dir: PathLike) -> Dict[str, Dict[str, Tuple[ClipList, Tuple[str, ...]]]]:
    """``{source: {split: (clips, speakers)}}`` from the manifest of ``real_dir``:
    ``clips.paths[i]`` was spoken by ``speakers[i]``, labels index ``WORDS``.
    Sorted by path within a split, so the lists are reproducible."""
    real_dir = Path(real_dir)
    manifest = real_dir / MANIFEST_NAME
    if not manifest.is_file():
        raise KwmlpError(f"{manifest} is missing; --real-data must name the real-speech "
                         "folder that holds MANIFEST.tsv")
    found: Dict[str, Dict[str, List[Tuple[Path, int, str]]]] = {
        source: {split: [] for split in REAL_SPLITS} for source in SOURCES}
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            source = row["relpath"].split("/")[0]
            if source not in SOURCES or f"/{NOISE_DIR}/" in row["relpath"]:
                continue
            word = _word_of(source, row["word_or_digit"])
            split = split_of_speaker(row["speaker"], source)
            found[source][split].append((real_dir / row["relpath"], WORDS.index(word),
                                         row["speaker"]))
    return {source: {split: (ClipList(tuple(p for p, _, _ in items),
                                      tuple(label for _, label, _ in items)),
                             tuple(s for _, _, s in items))
                     for split, items in ((k, sorted(v)) for k, v in splits.items())}
            for source, splits in found.items()}


def load_real_clips(clips: ClipList) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read clips of any sample rate as ``(n, CHUNK_SAMPLES)`` int16 at 16 kHz (resampled
    by ``kwmlp.audio.load_audio``, then zero-padded or trimmed at the end to 1 s) and
    ``(n,)`` int64 labels: the same layout as ``speech_commands.load_clips``."""
    audio = np.zeros((len(clips), CHUNK_SAMPLES), dtype=np.int16)
    for i, path in enumerate(clips.paths):
        samples, _ = load_audio(path)
        n = min(CHUNK_SAMPLES, len(samples))
        audio[i, :n] = np.clip(np.round(samples[:n] * INT16_SCALE), -INT16_SCALE,
                               INT16_SCALE - 1)
    return torch.from_numpy(audio), torch.tensor(clips.labels, dtype=torch.int64)


def load_real_noise(real_dir: PathLike) -> List[torch.Tensor]:
    """The real Speech Commands background recordings, float ``(n_samples,)`` in [-1, 1)."""
    return load_background_noise(Path(real_dir) / "speech_commands")
