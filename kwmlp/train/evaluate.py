"""Top-1 accuracy and the 35 x 35 confusion matrix of a classifier checkpoint on
one split of a Speech Commands-layout corpus."""
from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch

from ..checkpoints import load_checkpoint
from ..encoder import KWMLP
from ..frontend import MFCC
from .speech_commands import INT16_SCALE, SPLITS, WORDS, list_clips, load_clips

PathLike = Union[str, Path]
EVAL_BATCH = 512  # clips per forward pass; bounds memory only


@dataclass(frozen=True)
class Evaluation:
    """``confusion[i, j]``: clips of word ``i`` predicted as word ``j``."""

    split: str
    accuracy: float
    confusion: torch.Tensor  # (35, 35) int64

    def most_confused(self, k: int = 10) -> List[Tuple[str, str, int]]:
        """The ``k`` largest off-diagonal cells as ``(true word, predicted word, count)``."""
        off_diagonal = self.confusion.clone()
        off_diagonal.fill_diagonal_(0)
        counts, flat = off_diagonal.flatten().topk(k)
        n = self.confusion.shape[0]
        return [(WORDS[i // n], WORDS[i % n], c) for i, c in zip(flat.tolist(), counts.tolist())
                if c > 0]


@torch.no_grad()
def predict(model: KWMLP, frontend: MFCC, audio: torch.Tensor,
            batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Predicted labels ``(n_clips,)`` for int16 clips ``(n_clips, CHUNK_SAMPLES)``,
    without augmentation and with every block active (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    predictions = [
        model(frontend(audio[i:i + batch_size].float() / INT16_SCALE)).argmax(dim=1)
        for i in range(0, len(audio), batch_size)
    ]
    model.train(was_training)
    return torch.cat(predictions)


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor,
                     n_classes: int = len(WORDS)) -> torch.Tensor:
    """``(n_classes, n_classes)`` counts, rows = true label, columns = prediction."""
    flat = labels * n_classes + predictions
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def evaluate_model(model: KWMLP, audio: torch.Tensor, labels: torch.Tensor,
                   split: str) -> Evaluation:
    """Evaluate on clips already in RAM (see ``speech_commands.load_clips``)."""
    predictions = predict(model, MFCC(backend="fft"), audio)
    accuracy = (predictions == labels).float().mean().item()
    return Evaluation(split, accuracy, confusion_matrix(labels, predictions))


def evaluate_checkpoint(checkpoint: PathLike, data_dir: PathLike,
                        split: str = "testing") -> Evaluation:
    """Load a kwmlp checkpoint (with its head) and evaluate it on ``split`` of ``data_dir``."""
    model, _ = load_checkpoint(checkpoint)
    audio, labels = load_clips(list_clips(data_dir)[split])
    return evaluate_model(model, audio, labels, split)


def write_evaluation(evaluation: Evaluation, out_prefix: PathLike) -> Tuple[Path, Path]:
    """Write ``<out_prefix>.json`` (accuracy, words, matrix, most-confused pairs) and
    ``<out_prefix>.csv`` (the matrix with word headers). Returns both paths."""
    json_path = Path(f"{out_prefix}.json")
    csv_path = Path(f"{out_prefix}.csv")
    json_path.write_text(json.dumps({
        "split": evaluation.split,
        "accuracy": evaluation.accuracy,
        "n_clips": int(evaluation.confusion.sum()),
        "words": list(WORDS),
        "confusion": evaluation.confusion.tolist(),
        "most_confused": evaluation.most_confused(),
    }, indent=1))
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *WORDS])
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
    parser.add_argument("--out", help="output prefix for .json/.csv "
                                      "(default: <checkpoint without .pt>_<split>)")
    parser.add_argument("--top", type=int, default=10, help="confused pairs to print")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    evaluation = evaluate_checkpoint(args.checkpoint, args.data, args.split)
    out = args.out or str(Path(args.checkpoint).with_suffix("")) + f"_{args.split}"
    json_path, csv_path = write_evaluation(evaluation, out)
    print(f"{args.split}: top-1 accuracy {evaluation.accuracy:.4f} "
          f"on {int(evaluation.confusion.sum())} clips; wrote {json_path}, {csv_path}")
    print("most confused (true -> predicted: count):")
    for true, predicted, count in evaluation.most_confused(args.top):
        print(f"  {true} -> {predicted}: {count}")


if __name__ == "__main__":
    main()
