"""Supervised training of KW-MLP on a Speech Commands-layout corpus (paper
appendix A, Table 5), and its command line. (One file of ~450 lines: the run
config, data loading, the resumable epoch loop and the CLI that maps onto the
config field by field are read together when a recipe changes.)

Recipe: AdamW, linear warmup then cosine decay per step, label smoothing,
stochastic depth (the model's ``block_survival``), Table 5 masks on the MFCC,
codec / speed / reverberation / shift / noise / gain on the waveform, warping and
colouration on the spectrum (``augment``). Optionally: real recordings
(``--real-data``, see ``real_speech``) repeated into every epoch, their real
background noise added to the corpus', non-keyword audio (``--negatives``, see
``negatives``) that gives the head the no-keyword classes of ``vocabulary.LABELS``,
and a checkpoint to start from (``--init``, fine-tuning; a 35-word head gains the
no-keyword rows). A run directory holds::

    config.json   the run's TrainConfig (a rerun must match it)
    log.jsonl     one line per epoch
    last.pt       full training state after the latest epoch (resume point)
    best.pt       kwmlp checkpoint of the best epoch: by real-voice validation
                  accuracy when --real-data is given, else by synthetic validation;
                  with --ema-decay, of the weights' moving average (logged as ema_*)
    rirs.npy      the simulated room impulse responses, when reverberation is on

Usage::

    python -m kwmlp.train.train --data DIR --out RUN_DIR [--epochs N ...]
    python -m kwmlp.train.evaluate --checkpoint RUN_DIR/best.pt --data DIR
    python -m kwmlp.train.export --run RUN_DIR --out weights/kwmlp.pt

Rerunning the same ``train`` command resumes after the last finished epoch.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from .._types import PathLike
from ..atomic import write_atomic
from ..checkpoints import load_checkpoint, save_checkpoint
from ..encoder import KWMLP
from ..errors import KwmlpError
from ..frontend import MFCC
from .augment import AugmentConfig, augment_waveform, augmented_mfcc, codec_copies
from .evaluate import predict
from .negatives import load_negatives
from .real_speech import load_real_clips, load_real_noise, run_splits
from .rooms import rir_bank
from .speech_commands import INT16_SCALE, list_clips, load_background_noise, load_clips
from ..vocabulary import LABELS, WORDS

logger = logging.getLogger(__name__)

LOG_NAME, CONFIG_NAME, LAST_NAME, BEST_NAME = "log.jsonl", "config.json", "last.pt", "best.pt"
RIR_NAME = "rirs.npy"
TEACHER_NAME = "teacher.sha256"  # which teacher weights the run learns from
INIT_NAME = "init.sha256"  # which weights the run started from (export.final_weights checks)
SELECT_ON = "real_val_acc"  # the figure best.pt is chosen on, when the run has it
AUGMENT_PROBS = ("noise_prob", "speed_prob", "vtlp_prob", "eq_prob", "bandlimit_prob",
                 "reverb_prob", "codec_prob")  # the augmentation switches the command line sets


def as_paths(value: Union[None, str, Sequence[str]]) -> List[str]:
    """A recipe's folder entry as a list: "" or None (none), one path, or several."""
    return [] if not value else [value] if isinstance(value, str) else list(value)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Defaults are Table 5 except ``epochs``
    and ``warmup_epochs``, which the caller sizes to its compute budget."""

    data: str
    epochs: int = 140
    warmup_epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    label_smoothing: float = 0.1
    seed: int = 0
    dim: int = 64
    dim_ff: int = 256
    depth: int = 12
    block_survival: float = 0.9
    augment: AugmentConfig = AugmentConfig()
    init: str = ""  # checkpoint to fine-tune from ("" = random init)
    real_data: str = ""  # real-speech folder (real_speech.MANIFEST_NAME); "" = none
    real_repeat: int = 0  # copies of the real Speech Commands training clips per epoch
    real_balance: bool = False  # per-word copies instead, as many clips a word (balanced_copies)
    fsdd_repeat: int = 0  # copies of the real spoken-digit training clips per epoch
    real_noise: bool = False  # mix the real background recordings in too
    rir_rooms: int = 200  # simulated rooms in the bank, when augment.reverb_prob > 0
    ema_decay: float = 0.0  # > 0: also validate (and select from) a moving average of weights
    cv_folds: int = 0  # > 0: real Speech Commands speakers in folds (real_speech.cv_split)
    cv_fold: int = 0  # the fold validated on; real_speech.ALL_FOLDS trains on every fold
    negatives: str = ""  # negatives.build_negatives folder; "" = a 35-word head only
    negatives_repeat: int = 1  # copies of its training clips per epoch
    corpus_fraction: float = 1.0  # share of the corpus' training clips drawn afresh each epoch
    extra_data: Tuple[str, ...] = ()  # more corpora (e.g. neural TTS): their training splits
    extra_repeat: int = 1  # copies of their training clips per epoch
    mixup_alpha: float = 0.0  # > 0: every batch mixed with itself shuffled (mix_batch)
    teacher: str = ""  # checkpoint whose softened logits the run also learns (distill_loss)
    distill_weight: float = 0.5  # share of the distillation term in the loss, with a teacher
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.corpus_fraction <= 1:
            raise ValueError(f"corpus_fraction must be in (0, 1], got {self.corpus_fraction}")
        if not self.mixup_alpha >= 0:
            raise ValueError(f"mixup_alpha must be >= 0, got {self.mixup_alpha}")
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0:
            raise ValueError(f"distill_temperature must be > 0, got {self.distill_temperature}")

    @property
    def labels(self) -> Tuple[str, ...]:
        """The head's classes, in logit order."""
        return LABELS if self.negatives else WORDS

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, values: dict) -> "TrainConfig":
        augment = {k: tuple(v) if isinstance(v, list) else v
                   for k, v in values["augment"].items()}
        extra = tuple(as_paths(values.get("extra_data")))  # one path before 2026-12-06
        return cls(**{**values, "augment": AugmentConfig(**augment), "extra_data": extra})


# learning-rate schedule

def lr_factor(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Multiplier on the base lr at optimiser step ``step`` (0-based): linear from
    ``1 / warmup_steps`` up to 1 over the warmup (never 0, so no step is wasted),
    then a half cosine from 1 down to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_scheduler(optimizer: torch.optim.Optimizer, *, warmup_steps: int,
                   total_steps: int) -> LambdaLR:
    """Per-step warmup + cosine (``lr_factor``); call ``step()`` after every batch."""
    return LambdaLR(optimizer, functools.partial(lr_factor, warmup_steps=warmup_steps,
                                                 total_steps=total_steps))


# run state

def _check_config(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run made with another config (a new run passes)."""
    path = run_dir / CONFIG_NAME
    if not path.exists():
        return
    # Through from_json, so a run recorded before a field existed reads as its default.
    recorded = TrainConfig.from_json(json.loads(path.read_text())).to_json()
    current = config.to_json()
    differing = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
    if differing:
        raise KwmlpError(f"{run_dir} was started with a different config ({differing}: "
                         f"{[recorded.get(k) for k in differing]} there, "
                         f"{[current.get(k) for k in differing]} now); use a new --out")


def _record_config(run_dir: Path, config: TrainConfig) -> None:
    """Record a new run's config, once its data and models have loaded: a start that
    fails (a missing corpus or checkpoint) leaves none to block the corrected command."""
    _check_config(run_dir, config)  # again: another start may have recorded one meanwhile
    path = run_dir / CONFIG_NAME
    if not path.exists():
        write_atomic(path, lambda file: file.write(json.dumps(config.to_json(),
                                                              indent=1).encode()))


def _check_weights_file(run_dir: Path, checkpoint: str, record: str, role: str,
                        new_run: bool) -> None:
    """Record the SHA-256 of the file a new run takes ``role`` weights from (its
    teacher, its init) in ``run_dir / record``; refuse to resume with another file at
    the same path (a teacher still being trained, a start exported again). A run
    started before such records existed gets none: today's file may not be its start."""
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    path = run_dir / record
    if path.exists() and path.read_text().strip() != digest:
        raise KwmlpError(f"{run_dir} was started with other weights in {checkpoint} as its "
                         f"{role}; use a new --out or the {role} it started with")
    if new_run and not path.exists():
        write_atomic(path, lambda file: file.write(digest.encode()))


def _truncate_log(log_path: Path, last_epoch: int) -> None:
    # Drop lines of epochs whose checkpoint never landed (killed between log and save).
    if not log_path.exists():
        return
    lines = [line for line in log_path.read_text().splitlines()
             if line and json.loads(line)["epoch"] <= last_epoch]
    log_path.write_text("".join(line + "\n" for line in lines))


def read_log(run_dir: PathLike) -> List[dict]:
    """The per-epoch records of a run, oldest first."""
    log_path = Path(run_dir) / LOG_NAME
    return [json.loads(line) for line in log_path.read_text().splitlines() if line]


# training

EMA_PREFIX = "ema_"  # log keys of the moving-average weights' validation figures


def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """One step of the weights' exponential moving average, in place:
    ``average = decay * average + (1 - decay) * model`` for every parameter (the
    model has no running statistics, so buffers are copied as they are)."""
    with torch.no_grad():
        for mean, value in zip(average.parameters(), model.parameters()):
            mean.lerp_(value, 1.0 - decay)
        for mean, value in zip(average.buffers(), model.buffers()):
            mean.copy_(value)


def load_training_data(config: TrainConfig) -> Tuple[torch.Tensor, torch.Tensor,
                                                      Dict[str, Tuple[torch.Tensor, torch.Tensor]],
                                                      List[torch.Tensor], int]:
    """``(training audio, training labels, validation sets, noise recordings, number
    of corpus clips)``.

    Training: the corpus' training split (the first clips), then ``real_repeat``
    copies of the real Speech Commands training speakers' clips (with ``real_balance``,
    ``balanced_copies`` per word) and ``fsdd_repeat`` of the real digit speakers', and
    ``extra_repeat`` of each ``extra_data`` corpus' training split (every epoch,
    whatever ``corpus_fraction``). Validation, keyed as in the log:
    ``val_acc`` (the corpus' held-out voices) and, with ``real_data``, ``real_val_acc``
    (real Speech Commands speakers never trained on, the selection figure: the fixed
    validation half, or with ``cv_folds`` the speakers of fold ``cv_fold``, none with
    ``ALL_FOLDS``) and ``fsdd_val_acc``; with ``negatives``, ``negatives_val_acc`` (its
    held-out items, right when the head names their no-keyword class). Noise: the
    corpus' ``_background_noise_`` plus, with ``real_noise``, the real recordings. Audio is
    int16 ``(n, CHUNK_SAMPLES)``."""
    clips = list_clips(config.data)
    audio, labels = load_clips(clips["training"])
    train_audio, train_labels = [audio], [labels]
    validation = {"val_acc": load_clips(clips["validation"])}
    noise = load_background_noise(config.data)
    if config.real_data:
        real = run_splits(config.real_data, config.cv_folds, config.cv_fold)
        for source, repeat in (("speech_commands", config.real_repeat),
                               ("fsdd", config.fsdd_repeat)):
            if repeat > 0:
                audio, labels = load_real_clips(real[source]["training"][0])
                if config.real_balance and source == "speech_commands":
                    copies = balanced_copies(labels, repeat)
                    audio = audio.repeat_interleave(copies, dim=0)
                    labels, repeat = labels.repeat_interleave(copies), 1
                train_audio.append(audio.repeat(repeat, 1))
                train_labels.append(labels.repeat(repeat))
        if len(real["speech_commands"]["validation"][0]):
            validation["real_val_acc"] = load_real_clips(real["speech_commands"]["validation"][0])
        validation["fsdd_val_acc"] = load_real_clips(real["fsdd"]["validation"][0])
        if config.real_noise:
            noise = noise + load_real_noise(config.real_data)
    for extra in config.extra_data:
        audio, labels = load_clips(list_clips(extra)["training"])
        train_audio.append(audio.repeat(config.extra_repeat, 1))
        train_labels.append(labels.repeat(config.extra_repeat))
    if config.negatives:
        negatives = load_negatives(config.negatives)
        audio, labels = negatives["training"]
        train_audio.append(audio.repeat(config.negatives_repeat, 1))
        train_labels.append(labels.repeat(config.negatives_repeat))
        validation["negatives_val_acc"] = negatives["validation"]
    return torch.cat(train_audio), torch.cat(train_labels), validation, noise, len(train_audio[0])


def balanced_copies(labels: torch.Tensor, repeat: int) -> torch.Tensor:
    """``(n,)`` copies per clip of ``labels`` ``(n,)`` so that every label gets about
    ``repeat`` times the mean clips per label: a label with ``k`` clips gets
    ``round(repeat * mean / k)`` copies of each (at least 1), and the total stays about
    ``repeat * n``. Real words with few clips (5 of "follow" against 21 of "three")
    then weigh as much per epoch as the others."""
    counts = torch.bincount(labels)
    mean = counts[counts > 0].double().mean()
    per_label = torch.round(repeat * mean / counts.clamp(min=1)).long().clamp(min=1)
    return per_label[labels]


def init_from(model: KWMLP, checkpoint: PathLike) -> None:
    """Load ``checkpoint``'s weights into ``model``. A head with fewer classes (a
    35-word head into one with the no-keyword classes too) fills the first rows;
    the new rows keep their initialisation."""
    state = load_checkpoint(checkpoint)[0].state_dict()
    own = model.state_dict()
    for name in ("head.weight", "head.bias"):
        if name in state and len(state[name]) < len(own[name]):
            own[name][:len(state[name])] = state[name]
            state[name] = own[name]
    model.load_state_dict(state)


def epoch_order(n_clips: int, n_corpus: int, corpus_fraction: float,
                generator: torch.Generator) -> torch.Tensor:
    """One epoch's clip indices in a random order: every clip, except that of the
    first ``n_corpus`` (the synthetic corpus) only a fresh random ``corpus_fraction``
    share, so a fine-tune spends its steps on the real clips and negatives without
    dropping the corpus' voices altogether."""
    if corpus_fraction >= 1.0:
        return torch.randperm(n_clips, generator=generator)
    corpus = torch.randperm(n_corpus, generator=generator)[:epoch_corpus_clips(n_corpus,
                                                                                corpus_fraction)]
    chosen = torch.cat([corpus, torch.arange(n_corpus, n_clips)])
    return chosen[torch.randperm(len(chosen), generator=generator)]


def epoch_corpus_clips(n_corpus: int, corpus_fraction: float) -> int:
    """How many corpus clips an epoch draws."""
    return min(n_corpus, round(n_corpus * corpus_fraction))


def mix_batch(waveform: torch.Tensor, alpha: float,
              generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al., 2018) of a ``(batch, samples)`` waveform batch with itself
    in a random order: returns ``(weight * waveform + (1 - weight) * waveform[partner],
    partner, weight)``, the weight drawn from Beta(alpha, alpha) and folded to >= 0.5 so
    each row stays mostly its own clip (its label the main one)."""
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    weight = float(np.random.default_rng(seed).beta(alpha, alpha))
    weight = max(weight, 1.0 - weight)
    partner = torch.randperm(len(waveform), generator=generator)
    return weight * waveform + (1.0 - weight) * waveform[partner], partner, weight


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """Knowledge distillation (Hinton et al., 2015) for ``(batch, classes)`` logits:
    KL(teacher || student) of both distributions softened by ``temperature``, averaged
    over the batch and scaled by temperature², so its gradients keep the hard loss's
    scale whatever the temperature."""
    return temperature ** 2 * F.kl_div(F.log_softmax(logits / temperature, dim=1),
                                       F.log_softmax(teacher_logits / temperature, dim=1),
                                       log_target=True, reduction="batchmean")


def load_teacher(checkpoint: PathLike, labels: Sequence[str]) -> KWMLP:
    """The frozen model of ``checkpoint`` in eval mode; its head must answer ``labels``."""
    teacher = load_checkpoint(checkpoint)[0]
    classes = teacher.head.out_features if teacher.head is not None else 0
    if classes != len(labels):
        raise KwmlpError(f"teacher {checkpoint} answers {classes} classes, the run "
                         f"{len(labels)}")
    return teacher.float().eval().requires_grad_(False)


def train_epoch(model: KWMLP, frontend: MFCC, audio: torch.Tensor, labels: torch.Tensor,
                noise: List[torch.Tensor], optimizer: torch.optim.Optimizer, scheduler: LambdaLR,
                config: TrainConfig, shuffle: torch.Generator, augment: torch.Generator,
                n_corpus: int, rirs: Optional[torch.Tensor] = None,
                coded: Optional[torch.Tensor] = None, ema: Optional[nn.Module] = None,
                teacher: Optional[KWMLP] = None) -> Tuple[float, float]:
    """One pass over int16 clips ``(n, CHUNK_SAMPLES)`` in a random order, one optimiser
    and scheduler step per batch, the first ``n_corpus`` clips sampled per
    ``config.corpus_fraction`` (``epoch_order``); ``rirs`` ``(n_rooms, rir_samples)``
    for reverberation,
    ``coded`` the clips' codec copies (``codec_copies``) for the codec lever, ``ema`` a
    copy of the model that follows it by ``update_ema`` after every step, ``teacher`` a
    model whose logits on the same input the run also learns (``distill_loss``).
    Returns (mean train loss, train accuracy)."""
    model.train()
    order = epoch_order(len(audio), n_corpus, config.corpus_fraction, shuffle)
    total_loss, correct = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size]
        with torch.no_grad():
            waveform = augment_waveform(
                audio[index].float() / INT16_SCALE, noise, config.augment, augment, rirs,
                coded[index].float() / INT16_SCALE if coded is not None else None)
            partner, weight = torch.arange(len(index)), 1.0
            if config.mixup_alpha > 0:
                waveform, partner, weight = mix_batch(waveform, config.mixup_alpha, augment)
            mfcc = augmented_mfcc(frontend, waveform, config.augment, augment)
            teacher_logits = teacher(mfcc) if teacher is not None else None
        logits = model(mfcc)
        loss = F.cross_entropy(logits, labels[index], label_smoothing=config.label_smoothing)
        if weight < 1.0:
            loss = weight * loss + (1.0 - weight) * F.cross_entropy(
                logits, labels[index][partner], label_smoothing=config.label_smoothing)
        if teacher_logits is not None:
            loss = (1.0 - config.distill_weight) * loss + config.distill_weight * distill_loss(
                logits, teacher_logits, config.distill_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            update_ema(ema, model, config.ema_decay)
        total_loss += loss.item() * len(index)
        correct += (logits.argmax(dim=1) == labels[index]).sum().item()
    return total_loss / len(order), correct / len(order)


def validate(model: nn.Module, frontend: MFCC,
             validation: Dict[str, Tuple[torch.Tensor, torch.Tensor]]) -> Dict[str, float]:
    """Top-1 accuracy of ``model`` on each validation set, keyed as ``validation``."""
    return {name: round((predict(model, frontend, audio) == labels).float().mean().item(), 5)
            for name, (audio, labels) in validation.items()}


def train(config: TrainConfig, run_dir: PathLike, threads: Optional[int] = None) -> List[dict]:
    """Train (or resume) the run in ``run_dir``; returns the log records of all epochs.

    Each epoch appends a line to ``log.jsonl`` (also logged at INFO), then atomically
    rewrites ``last.pt``, and ``best.pt`` when validation accuracy improves."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(run_dir, config)
    new_run = not (run_dir / CONFIG_NAME).exists()
    if new_run:  # trust nothing a failed start left
        for leftover in (RIR_NAME, TEACHER_NAME, INIT_NAME):
            (run_dir / leftover).unlink(missing_ok=True)
    if threads is not None:
        torch.set_num_threads(threads)
    # The model's init and stochastic depth draw from the global generator.
    torch.manual_seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed + 1)
    augment = torch.Generator().manual_seed(config.seed + 2)

    train_audio, train_labels, validation, noise, n_corpus = load_training_data(config)
    rirs = (torch.from_numpy(rir_bank(run_dir / RIR_NAME, config.rir_rooms, config.seed))
            if config.augment.reverb_prob > 0 else None)
    # Rebuilt on resume rather than cached: as large as the corpus, and the seed fixes it.
    coded = (codec_copies(train_audio, config.augment, config.seed)
             if config.augment.codec_prob > 0 else None)
    logger.info("data: %d training clips, validation %s, %d noise recordings, %s rooms",
                len(train_audio), {k: len(v[0]) for k, v in validation.items()}, len(noise),
                len(rirs) if rirs is not None else 0)

    model = KWMLP(dim=config.dim, dim_ff=config.dim_ff, depth=config.depth,
                  n_classes=len(config.labels), block_survival=config.block_survival)
    if config.init:
        init_from(model, config.init)
        _check_weights_file(run_dir, config.init, INIT_NAME, "init", new_run)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if config.ema_decay > 0 else None
    teacher = None
    if config.teacher:
        teacher = load_teacher(config.teacher, config.labels)
        _check_weights_file(run_dir, config.teacher, TEACHER_NAME, "teacher", new_run)
    _record_config(run_dir, config)
    frontend = MFCC(backend="fft")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    epoch_clips = (len(train_audio) - n_corpus
                   + epoch_corpus_clips(n_corpus, config.corpus_fraction))
    steps_per_epoch = math.ceil(epoch_clips / config.batch_size)
    scheduler = make_scheduler(optimizer, warmup_steps=config.warmup_epochs * steps_per_epoch,
                               total_steps=config.epochs * steps_per_epoch)

    first_epoch, best_val_acc = 1, -1.0
    last_path, log_path = run_dir / LAST_NAME, run_dir / LOG_NAME
    if last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["global"])
        shuffle.set_state(state["rng"]["shuffle"])
        augment.set_state(state["rng"]["augment"])
        first_epoch, best_val_acc = state["epoch"] + 1, state["best_val_acc"]
        _truncate_log(log_path, state["epoch"])
        logger.info("resuming %s after epoch %d (best val acc %.4f)", run_dir, state["epoch"],
                    best_val_acc)

    for epoch in range(first_epoch, config.epochs + 1):
        started = time.perf_counter()
        train_loss, train_acc = train_epoch(model, frontend, train_audio, train_labels, noise,
                                            optimizer, scheduler, config, shuffle, augment,
                                            n_corpus, rirs, coded, ema, teacher)
        train_seconds = time.perf_counter() - started
        accuracies = validate(model, frontend, validation)
        # The weights best.pt would hold this epoch, and their figures under the plain keys.
        candidate, candidate_accuracies = model, accuracies
        if ema is not None:
            candidate, candidate_accuracies = ema, validate(ema, frontend, validation)
            accuracies.update({EMA_PREFIX + k: v for k, v in candidate_accuracies.items()})
        val_acc = candidate_accuracies[SELECT_ON if SELECT_ON in candidate_accuracies
                                       else "val_acc"]
        record = dict(epoch=epoch, train_loss=round(train_loss, 5), train_acc=round(train_acc, 5),
                      **accuracies, lr=scheduler.get_last_lr()[0],
                      samples_per_s=round(epoch_clips / train_seconds, 1),
                      epoch_time_s=round(time.perf_counter() - started, 2))
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        logger.info(json.dumps(record))
        if val_acc > best_val_acc:
            best_val_acc = val_acc
            save_checkpoint(run_dir / BEST_NAME, candidate,
                            {"epoch": epoch, **candidate_accuracies, "run": config.to_json(),
                             "weights": "moving average" if ema is not None else "last step"})
        payload = {
            "epoch": epoch, "best_val_acc": best_val_acc, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": {"global": torch.get_rng_state(), "shuffle": shuffle.get_state(),
                    "augment": augment.get_state()},
        }
        if ema is not None:
            payload["ema"] = ema.state_dict()
        write_atomic(last_path, lambda file: torch.save(payload, file))
    return read_log(run_dir)


# command line

def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[TrainConfig, Path, int]:
    """``(config, run directory, torch threads)`` from the command line."""
    defaults = TrainConfig(data="")
    parser = argparse.ArgumentParser(
        prog="python -m kwmlp.train.train",
        description="Train KW-MLP on a Speech Commands-layout corpus (resumes a run in --out).")
    parser.add_argument("--data", required=True, help="corpus directory (Speech Commands V2)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, log.jsonl)")
    parser.add_argument("--init", default="", help="checkpoint to fine-tune from")
    parser.add_argument("--teacher", default="",
                        help="checkpoint whose softened logits the run also learns "
                             "(--distill-weight, --distill-temperature)")
    parser.add_argument("--real-data", default="",
                        help="real-speech folder with MANIFEST.tsv (real clips, real noise, "
                             "real-voice validation)")
    parser.add_argument("--negatives", default="",
                        help="non-keyword audio (python -m kwmlp.train.negatives): the head "
                             "learns the no-keyword classes")
    for name in ("epochs", "warmup_epochs", "batch_size", "seed", "dim", "dim_ff", "depth",
                 "real_repeat", "fsdd_repeat", "rir_rooms", "cv_folds", "cv_fold",
                 "negatives_repeat", "extra_repeat"):
        parser.add_argument("--" + name.replace("_", "-"), type=int,
                            default=getattr(defaults, name))
    for name in ("lr", "weight_decay", "label_smoothing", "block_survival", "ema_decay",
                 "corpus_fraction", "mixup_alpha", "distill_weight", "distill_temperature"):
        parser.add_argument("--" + name.replace("_", "-"), type=float,
                            default=getattr(defaults, name))
    for name in AUGMENT_PROBS:
        parser.add_argument("--" + name.replace("_", "-"), type=float,
                            default=getattr(defaults.augment, name))
    parser.add_argument("--extra-data", nargs="+", default=[], metavar="DIR",
                        help="more Speech Commands-layout corpora (e.g. python -m "
                             "kwmlp.train.synth --engines kokoro piper) whose training clips "
                             "join every epoch, --extra-repeat times")
    parser.add_argument("--real-balance", action="store_true",
                        help="give each real Speech Commands word about --real-repeat times the "
                             "mean clips per word (its rare words more copies)")
    parser.add_argument("--real-noise", action="store_true",
                        help="mix the real background recordings of --real-data in too")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = vars(parser.parse_args(argv))
    out, threads = Path(args.pop("out")), args.pop("threads")
    augment = AugmentConfig(**{name: args.pop(name) for name in AUGMENT_PROBS})
    for name in ("data", "real_data", "init", "negatives", "teacher"):
        if args[name]:
            args[name] = str(Path(args[name]).resolve())
    args["extra_data"] = tuple(str(Path(d).resolve()) for d in args["extra_data"])
    return TrainConfig(**args, augment=augment), out, threads


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(message)s", force=True)
    config, out, threads = parse_args(argv)
    train(config, out, threads)


if __name__ == "__main__":
    main()
