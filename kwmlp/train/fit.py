"""Bring your own words: fit a classifier for the labels of a folder
(``DATA_DIR/<label>/*``, one sub-folder per label, as Keras'
``audio_dataset_from_directory``) on top of the KW-MLP encoder; what ``kwmlp
fit`` runs.

- **Windows.** The head scores 1 s windows. A clip up to 1 s long is one window,
  centred (``classify`` centres it the same way); a longer clip gives every 1 s
  window at a ``WINDOW_HOP_MS`` hop, and those of a label clip within
  ``LOUD_WINDOW_DB`` of its loudest window are labelled with the clip's label
  (the silence around a word in a long take is not the word); every window of
  no-keyword audio is kept. A longer clip is scored by its best window.
- **No keyword.** A ``_silence_`` class of generated silence and noise is always
  added, so the head can say "nothing" to quiet input; audio in
  ``DATA_DIR/_background_`` becomes ``_silence_`` too, audio in
  ``DATA_DIR/_unknown_`` and ``negatives`` folders ``_unknown_``.
- **Modes.** ``head`` (default): the encoder stays as it is (its HEAR
  embeddings are bit-identical to the base model's) and a new linear head is
  fitted on its pooled features of augmented copies of every window (noise,
  gain, shift, speed, and simulated rooms with the ``train`` extra). A label
  the base model's head already scores (one of its 35 words, ``_silence_``,
  ``_unknown_``) starts from that column and is held near it (``PRIOR_PULL``,
  an L2-SP penalty): with few examples, the base head's knowledge of the word
  from thousands of voices is worth more than a fresh column. Other labels
  start from zero with a weaker pull to zero (``WEIGHT_DECAY``).
  ``finetune``: the head-mode fit, then every weight trained on freshly
  augmented windows each epoch.
- **Validation.** ``val_dir`` in the same layout; else, when file names carry a
  speaker (``<speaker>_nohash_<n>``), a speaker-disjoint fifth; else a seeded
  random fifth of each label's clips (a label with one clip keeps it for
  training); a ``val_dir`` clip that is a training clip (or its bytes) is refused.
  Validation clips are scored as ``classify`` scores them, and the threshold is
  the middle of the widest stretch of thresholds that answer most of them and
  ``VALIDATION_SILENCES`` generated silences right (a word, or "none" for the
  no-keyword audio), within ``THRESHOLD_RANGE``; the reported accuracy is of
  the validation clips alone.
- **The folder.** Hidden files and folders are skipped, linked sub-folders
  followed; a file that cannot be read is named and left out, and files in no
  label folder or without an audio extension are counted in a warning.

(About 550 lines: the stages of one fit, folder -> audio -> head -> fine-tune ->
validation -> checkpoint, in the order ``fit`` runs them, so a reader follows a
fit top to bottom in one file; each stage is a few small functions.)
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .._types import PathLike
from ..audio import AUDIO_EXTENSIONS, load_audio
from ..checkpoints import (PUBLISHED_SOURCE, default_weights_path, load_checkpoint,
                           save_checkpoint)
from ..encoder import KWMLP
from ..errors import KwmlpError
from ..frontend import CHUNK_SAMPLES, MFCC, SAMPLE_RATE
from ..embedder import KWMLPEmbedder
from ..keywords import (DEFAULT_THRESHOLD, NO_LABEL, best_word, centred_window,
                        checkpoint_labels, clip_recognition)
from ..vocabulary import NO_KEYWORD, SILENCE, UNKNOWN
from .augment import AugmentConfig, augment_waveform
from .synth.noise import coloured_noise

MODES = ("head", "finetune")
WINDOW_HOP_MS = 250  # between the training windows of a clip longer than 1 s
# Speech Commands calls its noise recordings _background_noise_.
NEGATIVE_FOLDERS = {"_background_": SILENCE, "_background_noise_": SILENCE, "_unknown_": UNKNOWN}
LOUD_WINDOW_DB = 10.0  # a long label clip's windows this far under its loudest are left out
SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "dev", "test", "testing"}
VALIDATION_SHARE = 0.2
WINDOWS_PER_CLASS = 256  # augmented copies per class in head mode (at least COPIES_MIN each)
COPIES_MIN, COPIES_MAX = 4, 64
SILENCE_WINDOWS = 64  # generated silence/noise windows for the _silence_ class
VALIDATION_SILENCES = 16  # and more, never trained on, beside the validation clips
THRESHOLD_RANGE = (0.3, 0.9)
QUIET_PEAK, SHORT_MS = 1e-3, 50  # a label whose every clip is quieter (-60 dBFS) or shorter warns
WEIGHT_DECAY, PRIOR_PULL = 1e-3, 1e-2  # per squared weight: toward zero; toward the base column
DEFAULT_EPOCHS = {"head": 300, "finetune": 15}  # LBFGS steps; passes over the windows
FINETUNE_LR, FINETUNE_BATCH = 3e-4, 64
FEATURE_BATCH = 128  # augmented copies per encoder pass in head mode
SPEAKER = re.compile(r"(?P<speaker>[^_]+)_nohash_")
LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 .'+-]*[A-Za-z0-9.'+-])?")
AUGMENT = AugmentConfig(noise_prob=0.8, snr_db=(5.0, 30.0), gain_db=(-6.0, 6.0),
                        max_shift_ms=100.0, speed_prob=0.5, speed_factor=(0.9, 1.1),
                        reverb_prob=0.3)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One labelled file: ``label`` indexes the fit's labels."""

    path: Path
    label: int
    speaker: str


@dataclass
class FitReport:
    """What ``fit`` did and how its checkpoint scores its validation clips."""

    output: Path
    labels: Tuple[str, ...]
    mode: str
    threshold: float
    validation: str  # how the validation clips were chosen
    n_train: int = 0
    n_validation: int = 0
    accuracy: Optional[float] = None  # of the validation clips, threshold applied
    per_label: Dict[str, float] = field(default_factory=dict)
    confusions: List[Tuple[str, str, int]] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)  # files that could not be read
    warnings: List[str] = field(default_factory=list)  # labels that may not be what was meant
    wall_s: float = 0.0

    def __str__(self) -> str:
        lines = [f"fitted {len(self.labels)} classes ({self.mode} mode) on {self.n_train} "
                 f"clips in {self.wall_s:.1f} s; wrote {self.output}"]
        if self.accuracy is None:
            lines.append(f"no validation clips ({self.validation}); threshold "
                         f"{self.threshold:.2f} (the default)")
        else:
            lines.append(f"validation ({self.validation}, {self.n_validation} clips): "
                         f"accuracy {self.accuracy:.3f} at threshold {self.threshold:.2f} "
                         f"(chosen with {VALIDATION_SILENCES} generated silences beside them)")
            lines += [f"  {label}: {acc:.3f}" for label, acc in self.per_label.items()]
            lines += [f"  confused: {truth} -> {said} ({n})" for truth, said, n in
                      self.confusions[:10]]
        lines += [f"  unreadable: {message}" for message in self.failures]
        lines += [f"  warning: {message}" for message in self.warnings]
        return "\n".join(lines)


# the folder

def _walk(folder: Path) -> List[Path]:
    """Every file under ``folder`` but hidden ones, following linked sub-folders
    (each real folder once) and skipping hidden folders (``.Trash-1000/``), with
    broken links (so reading one fails, naming it, instead of dropping it unseen)."""
    found, seen = [], set()
    for root, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        folders[:] = [] if real in seen else [f for f in folders if not f.startswith(".")]
        if real in seen:
            continue
        seen.add(real)
        paths = (Path(root) / name for name in names if not name.startswith("."))
        found += [p for p in paths if p.is_file() or (p.is_symlink() and not p.exists())]
    return sorted(found)


def _is_audio(path: Path) -> bool:
    """Whether fit reads ``path``: it has an audio extension (``AUDIO_EXTENSIONS``)."""
    return path.suffix.lower() in AUDIO_EXTENSIONS


def negative_files(folders: Sequence[PathLike]) -> List[Path]:
    """The audio files of the ``--negatives`` folders; raises ``KwmlpError`` for a
    path that is missing or not a folder."""
    files: List[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            what = "not a folder" if folder.exists() else "no such folder"
            raise KwmlpError(f"{folder}: {what} (--negatives takes folders of audio that "
                             f"must map to {NO_LABEL!r})")
        found = [p for p in _walk(folder) if _is_audio(p)]
        if not found:
            raise KwmlpError(f"{folder}: no audio files in this --negatives folder "
                             f"(extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})")
        files.extend(found)
    return files


def _file_keys(path: Path) -> List[object]:
    """What makes two clips one sound: the same file, or the same bytes.
    Raises ``OSError`` for a file that cannot be read."""
    return [path.resolve()] + ([hashlib.sha1(path.read_bytes()).digest()]
                               if path.is_file() else [])


def check_disjoint(files: Dict[str, List[Path]], failures: List[str]
                   ) -> Tuple[Dict[str, List[Path]], Dict[object, Path]]:
    """``files`` less those that cannot be read (each named in ``failures``), and
    the file each key (``_file_keys``) was first seen in, for ``check_held_apart``;
    raises ``KwmlpError`` if one file, or two files with the same bytes, stand under
    two classes (a copy in two label folders, a --negatives folder that overlaps
    DATA_DIR): one sound cannot teach two answers. A sound under both no-keyword
    classes (noise in _background_/ and in a --negatives folder) teaches one
    answer, "none", and is kept once, as ``_unknown_``: the user's negatives stay
    whole, and ``_silence_`` has generated windows anyway."""
    owner: Dict[object, Tuple[str, Path]] = {}
    kept: Dict[str, List[Path]] = {}
    for name in sorted(files, key=lambda name: name == SILENCE):  # _silence_ last (below)
        kept[name] = []
        for path in files[name]:
            try:
                keys = _file_keys(path)
            except OSError as err:
                failures.append(f"{path}: {err.strerror or err}")
                logger.error("%s: %s", path, err.strerror or err)
                continue
            clash = next((owner[key] for key in keys
                          if key in owner and owner[key][0] != name), None)
            if clash is None:
                kept[name].append(path)
                for key in keys:
                    owner.setdefault(key, (name, path))
            elif not {clash[0], name} <= set(NO_KEYWORD):
                same = "is" if clash[1].resolve() == path.resolve() else "has the bytes of"
                raise KwmlpError(f"{path} ({name!r}) {same} {clash[1]} ({clash[0]!r}); "
                                 "a clip can have one label only")
    return ({name: kept[name] for name in files},
            {key: path for key, (_, path) in owner.items()})


def check_held_apart(seen: Dict[object, Path], validation: Sequence[Path]) -> None:
    """Raise ``KwmlpError`` if a validation clip is a training clip or a copy of one
    (``seen``: the training files by key, from ``check_disjoint``): its accuracy and
    the threshold chosen on it would be a training figure."""
    for path in validation:
        try:
            keys = _file_keys(path)
        except OSError:
            continue  # named and skipped when read
        for key in keys:
            if key in seen:
                raise KwmlpError(f"{path}: the validation clip is the training clip "
                                 f"{seen[key]} (or its bytes); --val must hold other clips")


def _speaker(path: Path) -> str:
    match = SPEAKER.match(path.name)
    return match["speaker"] if match else ""


@dataclass(frozen=True)
class LabelFolders:
    """A fit folder as listed: its label names (sorted), the audio files of each
    class (the no-keyword folders under their class names), and the files left
    out unread: ``loose`` beside the label folders, ``not_audio`` in them without
    an audio extension."""

    labels: List[str]
    files: Dict[str, List[Path]]
    loose: List[Path]
    not_audio: List[Path]


def list_labels(data_dir: PathLike) -> LabelFolders:
    """The label folders of ``data_dir``, each walked once (``_walk``).
    Raises ``KwmlpError`` for a missing folder, an empty label folder or a
    label name that cannot be used."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "a file, not a folder" if data_dir.exists() else "no such folder"
        raise KwmlpError(f"{data_dir}: {what} (kwmlp fit takes a folder with one "
                         f"sub-folder of audio per label)")
    labels, files, not_audio = [], {}, []
    broken = sorted(p for p in data_dir.iterdir() if p.is_symlink() and not p.exists())
    if broken:
        raise KwmlpError(f"{broken[0]}: a broken link in the data folder (an unmounted "
                         f"share?); a label cannot be read from it")
    entries = sorted(p for p in data_dir.iterdir() if not p.name.startswith("."))
    for folder in (p for p in entries if p.is_dir()):
        walked = _walk(folder)
        found = [p for p in walked if _is_audio(p)]
        not_audio += [p for p in walked if not _is_audio(p)]
        if folder.name in NEGATIVE_FOLDERS:
            files.setdefault(NEGATIVE_FOLDERS[folder.name], []).extend(found)
            continue
        if not LABEL_NAME.fullmatch(folder.name) or folder.name.lower() == NO_LABEL:
            raise KwmlpError(f"{folder}: {folder.name!r} cannot be a label (ASCII letters, "
                             f"digits, spaces and .'+- only, starting with a letter or digit, "
                             f"not ending in a space, and not {NO_LABEL!r} in any case, the "
                             f"answer for no label; _background_ and _unknown_ hold "
                             f"no-keyword audio)")
        if not found:
            raise KwmlpError(f"{folder}: no audio files for the label {folder.name!r} "
                             f"(extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})")
        labels.append(folder.name)
        files[folder.name] = found
    loose = [p for p in entries if not p.is_dir()]
    return LabelFolders(labels, files, loose, not_audio)


def clip_windows(audio: np.ndarray, loud_only: bool = False) -> np.ndarray:
    """``(n_samples,)`` 16 kHz -> ``(n_windows, CHUNK_SAMPLES)``: one centred
    window for a clip up to 1 s, else every window at ``WINDOW_HOP_MS``; with
    ``loud_only``, only those within ``LOUD_WINDOW_DB`` of the loudest (a word in
    a long take is in those, the silence around it is not the word)."""
    if len(audio) <= CHUNK_SAMPLES:
        return centred_window(audio)[None]
    hop = WINDOW_HOP_MS * SAMPLE_RATE // 1000
    starts = list(range(0, len(audio) - CHUNK_SAMPLES + 1, hop))
    if starts[-1] != len(audio) - CHUNK_SAMPLES:
        starts.append(len(audio) - CHUNK_SAMPLES)  # the end of the clip too
    windows = np.stack([audio[s:s + CHUNK_SAMPLES] for s in starts])
    if loud_only:
        power = np.square(windows, dtype=np.float64).mean(axis=1)
        windows = windows[power >= power.max() * 10 ** (-LOUD_WINDOW_DB / 10)]
    return windows


def _bucket(text: str) -> float:
    return zlib.crc32(text.encode()) / 2**32


def split_clips(clips: Sequence[Clip], seed: int) -> Tuple[List[Clip], List[Clip], str]:
    """``(training, validation, how)`` without a validation folder: by speaker
    when every clip names one and there are several, else a seeded random
    ``VALIDATION_SHARE`` of each label's clips (never a label's only clip)."""
    speakers = {c.speaker for c in clips}
    if "" not in speakers and len(speakers) > 1:
        held = {s for s in speakers if _bucket(f"{seed}:{s}") < VALIDATION_SHARE}
        if not held:  # few speakers: hold out the one hashing lowest
            held = {min(speakers, key=lambda s: _bucket(f"{seed}:{s}"))}
        train = [c for c in clips if c.speaker not in held]
        if {c.label for c in train} == {c.label for c in clips}:
            return train, [c for c in clips if c.speaker in held], \
                f"{len(held)} of {len(speakers)} speakers held out"
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({c.label for c in clips}):
        own = [c for c in clips if c.label == label]
        order = rng.permutation(len(own))
        n_val = math.floor(len(own) * VALIDATION_SHARE) if len(own) > 1 else 0
        val += [own[i] for i in order[:n_val]]
        train += [own[i] for i in order[n_val:]]
    return train, val, ("a random fifth of each label's clips" if val
                        else "too few clips to hold any out")


# audio

def _read(clips: Sequence[Clip], failures: List[str]) -> List[Tuple[Clip, np.ndarray]]:
    read = []
    for clip in clips:
        try:
            read.append((clip, load_audio(clip.path)[0]))
        except KwmlpError as err:
            logger.error("%s", err)
            failures.append(str(err))
    return read


def hollow_labels(read: Sequence[Tuple[Clip, np.ndarray]], labels: Sequence[str]) -> List[str]:
    """A warning for each label whose every clip is near-silent (peak under
    ``QUIET_PEAK``) or shorter than ``SHORT_MS``: the head would learn a label
    for nothing, and the ``_silence_`` class would fight it."""
    messages = []
    for index, label in enumerate(labels):
        clips = [audio for clip, audio in read if clip.label == index]
        quiet = all(np.abs(a).max(initial=0.0) < QUIET_PEAK for a in clips)
        short = all(len(a) < SHORT_MS * SAMPLE_RATE // 1000 for a in clips)
        if quiet or short:
            why = "near-silent" if quiet else f"shorter than {SHORT_MS} ms"
            messages.append(f"every clip of {label!r} is {why}; the label may not be "
                            "what you meant")
            logger.warning("%s", messages[-1])
    return messages


def unguarded(classes: Sequence[str]) -> List[str]:
    """A warning when no ``_unknown_`` audio is fitted: the head then tells its
    words only from each other and generated silence, and ``spot`` fires on most
    speech and music (README, *Your own words*: thousands of false accepts an hour)."""
    if UNKNOWN in classes:
        return []
    message = ("no _unknown_/ audio or --negatives: the head knows only these labels and "
               "silence, so spot and Stream will fire on most other speech and music; give "
               "it other speech, music and the sounds of the place it will listen in")
    logger.warning("%s", message)
    return [message]


def passed_over(folders: LabelFolders, data_dir: PathLike) -> List[str]:
    """A warning for the files of ``data_dir`` (listed as ``folders``) that fit
    leaves out unread: those beside the label folders (in no label) and those
    without an audio extension (``.m4a``, ``.txt``), with a count and an example
    of each."""
    loose, other = folders.loose, folders.not_audio
    messages = []
    if loose:
        messages.append(f"{len(loose)} file(s) beside the label folders of {data_dir} belong "
                        f"to no label and were left out, e.g. {loose[0]}")
    if other:
        kinds = sorted({p.suffix.lower() or "(none)" for p in other})
        messages.append(f"{len(other)} file(s) in the label folders of {data_dir} are not "
                        f"audio kwmlp reads (extension {', '.join(kinds)}) and were left out, "
                        f"e.g. {other[0]}; convert them to .wav or .flac to use them")
    for message in messages:
        logger.warning("%s", message)
    return messages


def split_like_labels(labels: Sequence[str], data_dir: PathLike) -> List[str]:
    """A warning for each label named like a dataset split (``train/``, ``val/``):
    DATA_DIR is then likely the folder above the label folders."""
    messages = [f"the label {label!r} is named like a dataset split: if its sub-folders "
                f"are the labels, run kwmlp fit {Path(data_dir) / label}"
                for label in labels if label.lower() in SPLIT_NAMES]
    for message in messages:
        logger.warning("%s", message)
    return messages


def _windows(read: Sequence[Tuple[Clip, np.ndarray]], n_words: int
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The training windows of every clip ``(n, CHUNK_SAMPLES)`` and their labels
    ``(n,)``: a label clip's loud windows (class index below ``n_words``), every
    window of no-keyword audio."""
    if not read:
        return torch.zeros(0, CHUNK_SAMPLES), torch.zeros(0, dtype=torch.long)
    windows = [clip_windows(audio, loud_only=clip.label < n_words) for clip, audio in read]
    labels = [torch.full((len(w),), clip.label) for (clip, _), w in zip(read, windows)]
    return torch.from_numpy(np.concatenate(windows)), torch.cat(labels)


def silence_windows(n: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, CHUNK_SAMPLES)``: digital silence and white or pink noise
    (``synth.noise.coloured_noise``) from -80 to -30 dBFS, the generated
    ``_silence_`` class."""
    rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
    noise = np.stack([coloured_noise(rng, CHUNK_SAMPLES, float(rng.integers(2)))
                      for _ in range(n)])
    noise /= np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True))
    noise *= 10 ** (rng.uniform(-80, -30, (n, 1)) / 20)
    noise[: max(1, n // 8)] = 0.0
    return torch.from_numpy(noise.astype(np.float32))


def _noise_bank(generator: torch.Generator) -> List[torch.Tensor]:
    """Ten seconds each of white and pink noise for ``augment_waveform``."""
    noise = silence_windows(20, generator)[2:].reshape(2, -1)  # no silent rows
    return [row / row.pow(2).mean().sqrt() for row in noise]


@functools.lru_cache(maxsize=4)  # simulating them takes seconds; a session's fits share them
def _rooms(seed: int) -> Optional[torch.Tensor]:
    """Simulated rooms when pyroomacoustics (the train extra) is there, else None."""
    try:
        from .rooms import simulate_rirs

        return torch.from_numpy(simulate_rirs(40, seed))
    except ImportError:
        logger.info("no simulated rooms (pip install 'kwmlp[train]' for them)")
        return None


def augmented(windows: torch.Tensor, generator: torch.Generator, noise: List[torch.Tensor],
              rirs: Optional[torch.Tensor]) -> torch.Tensor:
    """An augmented copy of each window ``(n, CHUNK_SAMPLES)``."""
    config = AUGMENT if rirs is not None else dataclasses.replace(AUGMENT, reverb_prob=0.0)
    return augment_waveform(windows, noise, config, generator, rirs)


# the head

@torch.no_grad()
def pooled_features(encoder: KWMLP, mfcc: MFCC, windows: torch.Tensor) -> torch.Tensor:
    """``(n, CHUNK_SAMPLES)`` -> ``(n, dim)``: what the head's linear layer sees
    (the normed, frame-averaged output of every block)."""
    encoder.eval()
    return encoder.head_norm(encoder.forward_features(mfcc(windows),
                                                      stochastic_depth=False)).mean(dim=1)


def augmented_features(encoder: KWMLP, mfcc: MFCC, windows: torch.Tensor,
                       copies: torch.Tensor, generator: torch.Generator,
                       noise: List[torch.Tensor], rirs: Optional[torch.Tensor],
                       bar: tqdm) -> torch.Tensor:
    """The pooled features ``(copies.sum(), dim)`` of ``copies[i]`` augmented
    copies of window ``i``, in order, ``FEATURE_BATCH`` copies at a time: memory
    holds the features, never all the copies' audio."""
    index = torch.arange(len(windows)).repeat_interleave(copies)
    out = []
    for first in range(0, len(index), FEATURE_BATCH):
        batch = windows[index[first:first + FEATURE_BATCH]]
        out.append(pooled_features(encoder, mfcc, augmented(batch, generator, noise, rirs)))
        bar.update(len(batch))
    return torch.cat(out)


@dataclass(frozen=True)
class HeadPrior:
    """Where the columns of a new head start: ``weight (n_classes, dim)`` and
    ``bias (n_classes,)``; ``inherited (n_classes,)`` marks those taken from a
    base head."""

    weight: torch.Tensor
    bias: torch.Tensor
    inherited: torch.Tensor

    @property
    def pull(self) -> torch.Tensor:
        """``(n_classes,)``: the weight on each column's squared distance from its start."""
        return torch.where(self.inherited, PRIOR_PULL, WEIGHT_DECAY)


def head_prior(encoder: KWMLP, metadata: dict, classes: Sequence[str], where: str
               ) -> HeadPrior:
    """The base head's columns for the ``classes`` it scores too, zeros for
    the others; all zeros for a base without a kwmlp keyword head."""
    n = len(classes)
    prior = HeadPrior(torch.zeros(n, encoder.dim), torch.zeros(n), torch.zeros(n, dtype=torch.bool))
    if encoder.head is None or metadata.get("source") == PUBLISHED_SOURCE:
        return prior
    base = checkpoint_labels(metadata, encoder.head.out_features, where)
    for i, label in enumerate(classes):
        if label in base:
            prior.weight[i] = encoder.head.weight.detach()[base.index(label)]
            prior.bias[i] = encoder.head.bias.detach()[base.index(label)]
            prior.inherited[i] = True
    return prior


def fit_linear(features: torch.Tensor, labels: torch.Tensor, prior: HeadPrior,
               steps: int) -> nn.Linear:
    """A linear layer ``dim -> n_classes`` started at ``prior`` and minimising
    class-balanced cross-entropy plus each column's ``prior.pull`` times its
    squared distance from ``prior.weight`` (full batch, L-BFGS)."""
    n_classes = len(prior.bias)
    head = nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():
        head.weight.copy_(prior.weight)
        head.bias.copy_(prior.bias)
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).float()
    weights = counts.sum() / (n_classes * counts)
    optimiser = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps,
                                  line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = F.cross_entropy(head(features), labels, weight=weights) \
            + (prior.pull[:, None] * (head.weight - prior.weight).pow(2)).sum()
        value.backward()
        return value

    optimiser.step(loss)
    return head


def finetune(encoder: KWMLP, mfcc: MFCC, windows: torch.Tensor, labels: torch.Tensor,
             epochs: int, generator: torch.Generator, noise: List[torch.Tensor],
             rirs: Optional[torch.Tensor], bar: tqdm) -> None:
    """Train every weight of ``encoder`` (head included) for ``epochs`` passes
    over freshly augmented ``windows``, class-balanced by sampling; ``bar``
    counts the windows trained on."""
    counts = torch.bincount(labels).clamp(min=1).float()
    sample_weights = (1.0 / counts)[labels]
    optimiser = torch.optim.AdamW(encoder.parameters(), lr=FINETUNE_LR, weight_decay=0.05)
    steps = epochs * math.ceil(len(windows) / FINETUNE_BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, FINETUNE_LR, total_steps=steps,
                                                   pct_start=0.1)
    encoder.train()
    for _ in range(epochs):
        order = torch.multinomial(sample_weights, len(windows), replacement=True,
                                  generator=generator)
        for first in range(0, len(order), FINETUNE_BATCH):
            index = order[first:first + FINETUNE_BATCH]
            batch = augmented(windows[index], generator, noise, rirs)
            loss = F.cross_entropy(encoder(mfcc(batch)), labels[index], label_smoothing=0.1)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            bar.update(len(index))
    encoder.eval()


# validation

@dataclass(frozen=True)
class ClipScores:
    """Validation clips as ``classify`` scores them, each ``(n_clips,)``: the best
    word's probability, its class index (the words lead ``classes``) and the
    no-keyword probability of its window."""

    score: torch.Tensor
    index: torch.Tensor
    nothing: torch.Tensor

    @classmethod
    def cat(cls, parts: Sequence["ClipScores"]) -> "ClipScores":
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in ("score", "index",
                                                                           "nothing")))


@torch.no_grad()
def clip_scores(encoder: KWMLP, classes: Sequence[str], clips: Sequence[np.ndarray]
                ) -> ClipScores:
    """``clips`` (16 kHz, any length) scored as ``kwmlp.classify`` scores them with
    the fitted head (``keywords.clip_recognition``, ``keywords.best_word``), so the
    threshold is chosen on what ``classify``, ``spot`` and ``Stream`` will see."""
    model = KWMLPEmbedder(encoder.eval(), metadata={"labels": list(classes)})
    rows = [best_word(clip_recognition(clip, model)) for clip in clips]
    score, index, nothing = zip(*rows) if rows else ((), (), ())
    return ClipScores(torch.tensor(score, dtype=torch.float32), torch.tensor(index),
                      torch.tensor(nothing, dtype=torch.float32))


def answers(scores: ClipScores, threshold: float) -> torch.Tensor:
    """Each clip's answer: its best word's class index, or -1 ("none") unless that
    word reaches ``threshold`` and beats "no keyword" (``keywords.answer``)."""
    said = (scores.score >= threshold) & (scores.score > scores.nothing)
    return torch.where(said, scores.index, torch.full_like(scores.index, -1))


def choose_threshold(scores: ClipScores, truth: torch.Tensor) -> float:
    """The threshold in ``THRESHOLD_RANGE`` that answers the most clips right
    (``truth`` -1 for no-keyword clips): the middle of the widest stretch of
    thresholds that do (the lowest stretch of equally wide ones). Answers change
    only at the clips' scores, so every threshold above one candidate and up to the
    next answers alike; the stretch's lowest point would sit just above the
    no-keyword audio (a few validation clips leave all of 0.3..0.9 equally right,
    and 0.3 fires on most speech)."""
    low, high = THRESHOLD_RANGE
    candidates = np.unique(np.clip(np.r_[np.linspace(low, high, 61), scores.score.numpy()],
                                   low, high))
    right = np.array([(answers(scores, t) == truth).sum().item() for t in candidates])
    best = np.flatnonzero(right == right.max())
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)  # consecutive candidates
    # a run's stretch starts just above the candidate before it (or at the range's low end)
    stretches = [(candidates[run[0] - 1] if run[0] > 0 else low, candidates[run[-1]])
                 for run in runs]
    start, end = max(stretches, key=lambda ends: round(ends[1] - ends[0], 9))  # first: lowest
    return float(start + end) / 2


# the run

def _bar(total: int, what: str, progress: bool) -> tqdm:
    # disable=None: tqdm draws only on a terminal, as kwmlp embed's bar does
    return tqdm(total=total, desc=what, unit="window", disable=None if progress else True,
                leave=False)


def _check_output(output: Path, inputs: Sequence[Path], base: Path) -> None:
    """Refuse, before minutes of fitting, an output that cannot be written or
    would replace something not a kwmlp checkpoint (an input clip, say) or the
    ``base`` checkpoint the fit starts from."""
    if output.is_dir():
        raise KwmlpError(f"{output}: is a folder; name the checkpoint to write, e.g. "
                         f"{output / 'mine.pt'}")
    folder = output.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise KwmlpError(f"{output}: {folder} is not a folder")
    for given in inputs:
        if output.resolve().is_relative_to(given.resolve()):
            raise KwmlpError(f"{output}: inside the input folder {given}; write the "
                             f"checkpoint elsewhere")
    if output.exists() and base.exists() and output.samefile(base):
        raise KwmlpError(f"{output}: is the base model this fit starts from; write the "
                         f"fitted checkpoint to another file")
    if output.exists():
        try:
            load_checkpoint(output)
        except (KwmlpError, OSError) as err:
            raise KwmlpError(f"{output}: exists and is not a kwmlp checkpoint, so fit will "
                             f"not replace it ({err})") from None


def _base(model_file_path: str) -> Tuple[KWMLP, dict]:
    """The encoder to fit on, and its metadata: the shipped weights by default."""
    return load_checkpoint(model_file_path or default_weights_path())


def _own_rng(function):
    """Run ``function`` on a copy of torch's global RNG: a fit seeds it (the new
    head's init, stochastic depth), and the caller's draws are not the fit's."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return function(*args, **kwargs)
    return wrapper


@_own_rng
def fit(data_dir: PathLike, output: PathLike, *, mode: str = "head",
        val_dir: Optional[PathLike] = None, negatives: Sequence[PathLike] = (),
        model_file_path: str = "", epochs: Optional[int] = None, seed: int = 0,
        progress: bool = True) -> FitReport:
    """Fit a classifier for ``data_dir``'s labels (module docstring) and write
    it to ``output``, an ordinary kwmlp checkpoint (``load_model(output)``):
    the encoder (unchanged in head mode), the new head, its ``labels``,
    ``threshold`` and the recipe (``fit``) in its metadata. Unreadable files
    are reported and skipped. Raises ``KwmlpError`` for a folder that cannot
    be fitted (see ``list_labels``; fewer than two labels without negatives).
    ``progress`` shows a bar per stage on a terminal. Memory holds the clips'
    audio, their windows and one pooled feature per augmented copy."""
    start = time.perf_counter()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if epochs is not None and not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive integer or None (the mode's "
                         f"default), got {epochs!r}")
    _check_output(Path(output), [Path(data_dir), *map(Path, negatives)]
                  + ([Path(val_dir)] if val_dir is not None else []),
                  Path(model_file_path or default_weights_path()))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    folders = list_labels(data_dir)
    labels, files = folders.labels, folders.files
    left_out = passed_over(folders, data_dir)
    if negatives:
        files.setdefault(UNKNOWN, []).extend(negative_files(negatives))
    failures: List[str] = []
    files, seen = check_disjoint(files, failures)
    classes = labels + [c for c in NO_KEYWORD if c == SILENCE or files.get(c)]
    if len(labels) < 2 and UNKNOWN not in classes:
        raise KwmlpError(f"{data_dir}: {len(labels)} label folder(s); fitting needs two "
                         f"labels, or one label and negative audio (_unknown_/ or "
                         f"--negatives: other speech, music, the sounds of the place) to "
                         f"tell it from; _background_/ noise alone is not enough, the word "
                         f"must also be told from other speech")
    clips = [Clip(p, classes.index(c), _speaker(p)) for c in classes for p in files.get(c, [])]
    if val_dir is not None:
        val_folders = list_labels(val_dir)
        val_files = val_folders.files
        if not any(val_files.values()):  # a mistyped or empty --val: not "no validation"
            raise KwmlpError(f"{val_dir}: no validation clips (one sub-folder of audio per "
                             f"label, as in {data_dir}); leave --val out to split {data_dir}")
        left_out += passed_over(val_folders, val_dir)
        unknown = sorted(set(val_folders.labels) - set(labels))
        if unknown:
            raise KwmlpError(f"{val_dir}: labels {unknown} are not in {data_dir}")
        train_clips = clips
        check_held_apart(seen, [p for c in val_files for p in val_files[c]])
        # A no-keyword clip is scored as "none" whichever no-keyword class it names,
        # so validation _unknown_/ counts even when training has no _unknown_ class.
        val_clips = [Clip(p, classes.index(c if c in classes else SILENCE), _speaker(p))
                     for c in val_files for p in val_files[c]]
        how = f"the clips of {val_dir}"
    else:
        train_clips, val_clips, how = split_clips(clips, seed)
    train_read, val_read = _read(train_clips, failures), _read(val_clips, failures)
    windows, window_labels = _windows(train_read, len(labels))
    missing = sorted(set(range(len(classes))) - set(window_labels.tolist())
                     - {classes.index(SILENCE)})  # _silence_ is generated below anyway
    if missing:
        raise KwmlpError(f"{data_dir}: no readable training clip for "
                         f"{[classes[i] for i in missing]}")
    hollow = (hollow_labels(train_read, labels) + split_like_labels(labels, data_dir)
              + left_out + unguarded(classes))
    silence = classes.index(SILENCE)
    windows = torch.cat([windows, silence_windows(SILENCE_WINDOWS, generator)])
    window_labels = torch.cat([window_labels, torch.full((SILENCE_WINDOWS,), silence)])

    encoder, base_metadata = _base(model_file_path)
    prior = head_prior(encoder, base_metadata, classes, model_file_path or "shipped weights")
    encoder.head = nn.Linear(encoder.dim, len(classes))
    if encoder.head_norm is None:
        encoder.head_norm = nn.LayerNorm(encoder.dim)
    mfcc = MFCC(backend="fft")  # the same MFCC as nnAudio's; its spectrum is reachable
    noise, rirs = _noise_bank(generator), _rooms(seed)
    per_class = torch.bincount(window_labels, minlength=len(classes)).clamp(min=1)
    copies = (WINDOWS_PER_CLASS / per_class[window_labels]).ceil().long()
    copies = copies.clamp(COPIES_MIN, COPIES_MAX)
    with _bar(int(copies.sum()), "features of augmented copies", progress) as bar:
        features = augmented_features(encoder, mfcc, windows, copies, generator, noise, rirs,
                                      bar)
    steps = epochs if (epochs and mode == "head") else DEFAULT_EPOCHS["head"]
    encoder.head = fit_linear(features, window_labels.repeat_interleave(copies), prior, steps)
    if mode == "finetune":  # else the encoder stays the base model's, bit for bit
        n_epochs = epochs or DEFAULT_EPOCHS["finetune"]
        with _bar(n_epochs * len(windows), "fine-tuning", progress) as bar:
            finetune(encoder, mfcc, windows, window_labels, n_epochs, generator, noise, rirs,
                     bar)

    report = FitReport(Path(output), tuple(classes), mode, DEFAULT_THRESHOLD, how, len(train_read),
                       len(val_read), failures=failures, warnings=hollow)
    if val_read:
        # Generated silences join the validation clips to choose the threshold (a fit
        # without negatives would otherwise never see "nothing"), not to score it.
        silent = silence_windows(VALIDATION_SILENCES, generator)
        scores = clip_scores(encoder, classes, [a for _, a in val_read] + list(silent.numpy()))
        is_word = [c not in NO_KEYWORD for c in classes]
        truth = torch.tensor([c.label if is_word[c.label] else -1 for c, _ in val_read]
                             + [-1] * len(silent))
        report.threshold = choose_threshold(scores, truth)
        said, truth = answers(scores, report.threshold)[:len(val_read)], truth[:len(val_read)]
        report.accuracy = (said == truth).float().mean().item()
        names = {i: c for i, c in enumerate(classes)} | {-1: NO_LABEL}
        for index in sorted(set(truth.tolist())):
            mine = truth == index
            report.per_label[names[index]] = (said[mine] == index).float().mean().item()
        pairs: Dict[Tuple[str, str], int] = {}
        for t, s in zip(truth.tolist(), said.tolist()):
            if t != s:
                pairs[names[t], names[s]] = pairs.get((names[t], names[s]), 0) + 1
        report.confusions = sorted(((a, b, n) for (a, b), n in pairs.items()),
                                   key=lambda x: -x[2])
    report.wall_s = time.perf_counter() - start
    save_checkpoint(output, encoder, {
        "description": f"kwmlp fit: {len(labels)} label{'s' * (len(labels) != 1)} of "
                       f"{Path(data_dir).resolve().name}, "
                       f"{mode} mode",
        "labels": list(classes), "threshold": report.threshold,
        "fit": {"mode": mode, "data": str(Path(data_dir).resolve()), "seed": seed,
                "base_model": base_metadata.get("description", ""),
                "base_weights": str(model_file_path or "shipped"),
                "from_base_head": [c for c, i in zip(classes, prior.inherited) if i],
                "training_clips": report.n_train, "validation": how,
                "validation_accuracy": report.accuracy, "per_label": report.per_label,
                "epochs": epochs or DEFAULT_EPOCHS[mode], "simulated_rooms": rirs is not None,
                "wall_time_s": round(report.wall_s, 1)},
        "licence": base_metadata.get("licence", "MIT"),
    })
    return report
