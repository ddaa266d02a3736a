"""Top-1 accuracy and the 35-row confusion matrix of a classifier checkpoint on
one split of a Speech Commands-layout corpus and, with ``--real-data``, on the
real-voice validation speakers (``real_speech``): the figure that says whether
the model learned speech or only the synthesisers."""
from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .._types import PathLike
from ..checkpoints import load_checkpoint
from ..encoder import KWMLP
from ..frontend import MFCC
from .augment import reverberate
from .real_speech import list_real_clips, load_real_clips, run_splits
from .rooms import measured_rirs
from .speech_commands import INT16_SCALE, SPLITS, WORDS, list_clips, load_clips
from ..vocabulary import LABELS

EVAL_BATCH = 512  # clips per forward pass; bounds memory only
# The ten command words of Speech Commands' 12-class task (HEAR's speech_commands).
COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


@dataclass(frozen=True)
class Evaluation:
    """``confusion[i, j]``: clips of word ``i`` predicted as class ``j`` (``LABELS``:
    the 35 words, then the no-keyword classes when the head has them)."""

    split: str
    accuracy: float
    confusion: torch.Tensor  # (35, n_classes) int64

    def most_confused(self, k: int = 10) -> List[Tuple[str, str, int]]:
        """The ``k`` largest off-diagonal cells as ``(true word, predicted class, count)``."""
        off_diagonal = self.confusion.clone()
        off_diagonal.fill_diagonal_(0)
        counts, flat = off_diagonal.flatten().topk(k)
        n = self.confusion.shape[1]
        return [(WORDS[i // n], LABELS[i % n], c) for i, c in zip(flat.tolist(), counts.tolist())
                if c > 0]

    def word_accuracy(self) -> Dict[str, float]:
        """Top-1 per true word (35-way), for the words that have clips."""
        totals = self.confusion.sum(dim=1)
        return {word: round(self.confusion[i, i].item() / totals[i].item(), 4)
                for i, word in enumerate(WORDS) if totals[i] > 0}

    def accuracy_on(self, words: Sequence[str]) -> float:
        """Share of the clips of ``words`` predicted correctly (a choice among every class)."""
        index = [WORDS.index(word) for word in words]
        rows = self.confusion[index]
        return rows[:, index].diagonal().sum().item() / max(1, rows.sum().item())

    def no_keyword_share(self) -> float:
        """Share of the (keyword) clips the head answered with a no-keyword class."""
        return self.confusion[:, len(WORDS):].sum().item() / max(1, self.confusion.sum().item())

    def summary(self) -> dict:
        """The figures a model card and the metadata record."""
        return {"split": self.split, "n_clips": int(self.confusion.sum()),
                "accuracy": round(self.accuracy, 4),
                "command_words_accuracy": round(self.accuracy_on(COMMAND_WORDS), 4),
                "no_keyword_answers": round(self.no_keyword_share(), 4),
                "word_accuracy": self.word_accuracy(), "most_confused": self.most_confused()}


@torch.no_grad()
def predict(model: KWMLP, frontend: MFCC, audio: torch.Tensor,
            batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Predicted labels ``(n_clips,)`` for clips ``(n_clips, CHUNK_SAMPLES)``, int16 or
    float in [-1, 1], without augmentation and with every block active (eval mode,
    restored after)."""
    was_training = model.training
    model.eval()
    scale = INT16_SCALE if audio.dtype == torch.int16 else 1.0
    predictions = [
        model(frontend(audio[i:i + batch_size].float() / scale)).argmax(dim=1)
        for i in range(0, len(audio), batch_size)
    ]
    model.train(was_training)
    return torch.cat(predictions)


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor,
                     n_classes: int = len(WORDS), n_predicted: int = 0) -> torch.Tensor:
    """``(n_classes, n_predicted or n_classes)`` counts, rows = true label, columns =
    prediction (a head may predict classes no clip has: the no-keyword ones)."""
    n_predicted = n_predicted or n_classes
    flat = labels * n_predicted + predictions
    return torch.bincount(flat, minlength=n_classes * n_predicted).reshape(n_classes, n_predicted)


def evaluate_model(model: KWMLP, audio: torch.Tensor, labels: torch.Tensor,
                   split: str) -> Evaluation:
    """Evaluate on clips already in RAM (see ``speech_commands.load_clips``)."""
    return evaluation_of(predict(model, MFCC(backend="fft"), audio), labels,
                         model.head.out_features, split)


def evaluation_of(predictions: torch.Tensor, labels: torch.Tensor, n_classes: int,
                  split: str) -> Evaluation:
    """The ``Evaluation`` of ``predictions (n_clips,)`` among ``n_classes`` outputs
    against ``labels (n_clips,)``, whatever made them (one model, an ensemble)."""
    accuracy = (predictions == labels).float().mean().item()
    return Evaluation(split, accuracy, confusion_matrix(labels, predictions, len(WORDS), n_classes))


def evaluate_checkpoint(checkpoint: PathLike, data_dir: PathLike,
                        split: str = "testing") -> Evaluation:
    """Load a kwmlp checkpoint (with its head) and evaluate it on ``split`` of ``data_dir``."""
    model, _ = load_checkpoint(checkpoint)
    audio, labels = load_clips(list_clips(data_dir)[split])
    return evaluate_model(model, audio, labels, split)


def evaluate_real(model: KWMLP, real_dir: PathLike, cv_folds: int = 0,
                  cv_fold: int = 0) -> Dict[str, Evaluation]:
    """The model on the real-voice validation speakers of each source
    (``speech_commands``: 35 words; ``fsdd``: the ten digits), none of them
    trained on: the fixed validation half, or with ``cv_folds`` the run's fold
    (``real_speech.run_splits``; a source with no validation clips is left out)."""
    real = run_splits(real_dir, cv_folds, cv_fold)
    return {source: evaluate_model(model, *load_real_clips(splits["validation"][0]),
                                   f"{source} validation speakers")
            for source, splits in real.items() if len(splits["validation"][0])}


def evaluate_in_rooms(model: KWMLP, real_dir: PathLike, rir_dir: PathLike) -> Evaluation:
    """The real Speech Commands validation speakers as heard in measured rooms: every
    clip convolved with every impulse response below ``rir_dir`` (``rooms.measured_rirs``),
    to check that training on simulated rooms carries over to real ones."""
    audio, labels = load_real_clips(list_real_clips(real_dir)["speech_commands"]["validation"][0])
    bank, _ = measured_rirs(rir_dir)
    dry = audio.float() / INT16_SCALE
    wet = torch.cat([reverberate(dry, torch.from_numpy(rir).expand(len(dry), -1)) for rir in bank])
    return evaluate_model(model, wet, labels.repeat(len(bank)),
                          f"speech_commands validation speakers in {len(bank)} measured rooms")


def write_evaluation(evaluation: Evaluation, out_prefix: PathLike) -> Tuple[Path, Path]:
    """Write ``<out_prefix>.json`` (accuracy, words, matrix, most-confused pairs) and
    ``<out_prefix>.csv`` (the matrix with word headers). Returns both paths."""
    json_path = Path(f"{out_prefix}.json")
    csv_path = Path(f"{out_prefix}.csv")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({
        "split": evaluation.split,
        "accuracy": evaluation.accuracy,
        "n_clips": int(evaluation.confusion.sum()),
        "words": list(WORDS),
        "predicted_classes": list(LABELS[:evaluation.confusion.shape[1]]),
        "confusion": evaluation.confusion.tolist(),
        "most_confused": evaluation.most_confused(),
    }, indent=1))
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *LABELS[:evaluation.confusion.shape[1]]])
        for word, row in zip(WORDS, evaluation.confusion.tolist()):
            writer.writerow([word, *row])
    return json_path, csv_path


# command line

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kwmlp.train.evaluate",
        description="Top-1 accuracy and confusion matrix of a kwmlp checkpoint on one split.")
    parser.add_argument("--checkpoint", required=True, help="kwmlp checkpoint with its head")
    parser.add_argument("--data", required=True, help="Speech Commands-layout corpus directory")
    parser.add_argument("--split", default="testing", choices=SPLITS)
    parser.add_argument("--out", help="output prefix: writes <out>_<split>.json/.csv and "
                                      "<out>_real_<source>.json/.csv (default: the "
                                      "checkpoint path without .pt)")
    parser.add_argument("--top", type=int, default=10, help="confused pairs to print")
    parser.add_argument("--real-data", help="real-speech folder (MANIFEST.tsv): also score the "
                                            "real-voice validation speakers")
    parser.add_argument("--rir-dir", help="folder of measured room impulse responses: also "
                                          "score the real validation speakers in those rooms")
    return parser.parse_args(argv)


def _report(name: str, evaluation: Evaluation, out: str, top: int) -> None:
    json_path, csv_path = write_evaluation(evaluation, out)
    print(f"{name}: top-1 accuracy {evaluation.accuracy:.4f} on "
          f"{int(evaluation.confusion.sum())} clips "
          f"(command words {evaluation.accuracy_on(COMMAND_WORDS):.4f}); "
          f"wrote {json_path}, {csv_path}")
    worst = sorted(evaluation.word_accuracy().items(), key=lambda item: item[1])[:8]
    print("  worst words: " + ", ".join(f"{word} {acc:.2f}" for word, acc in worst))
    print("  most confused (true -> predicted: count): " + ", ".join(
        f"{true}->{predicted} {count}" for true, predicted, count in evaluation.most_confused(top)))


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    out = args.out or str(Path(args.checkpoint).with_suffix(""))
    _report(args.split, evaluate_checkpoint(args.checkpoint, args.data, args.split),
            f"{out}_{args.split}", args.top)
    if args.real_data:
        model, _ = load_checkpoint(args.checkpoint)
        for source, evaluation in evaluate_real(model, args.real_data).items():
            _report(f"real {evaluation.split}", evaluation, f"{out}_real_{source}", args.top)
        if args.rir_dir:
            rooms = evaluate_in_rooms(model, args.real_data, args.rir_dir)
            _report(f"real {rooms.split}", rooms, f"{out}_real_rooms", args.top)


if __name__ == "__main__":
    main()
