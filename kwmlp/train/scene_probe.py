"""Do the shipped scene embeddings separate the 35 words? A nearest-class-mean
probe: class means of standardised scene embeddings of training-voice clips,
then each held-out-voice clip gets the class of the nearest mean (Euclidean).

    python -m kwmlp.train.scene_probe --data DIR [--per-word 100] [--model FILE]

No training, no tuning: it measures the embedding, not a classifier.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

import torch

from ..hear import KWMLPEmbedder, get_scene_embeddings, load_model
from .speech_commands import INT16_SCALE, WORDS, ClipList, list_clips, load_clips

logger = logging.getLogger(__name__)

EMBED_BATCH = 256  # clips per get_scene_embeddings call


def scene_embeddings(audio: torch.Tensor, model: KWMLPEmbedder) -> torch.Tensor:
    """int16 clips ``(n, samples)`` -> scene embeddings ``(n, 1024)``."""
    return torch.cat([get_scene_embeddings(batch.float() / INT16_SCALE, model)
                      for batch in audio.split(EMBED_BATCH)])


def fit_class_means(embeddings: torch.Tensor, labels: torch.Tensor,
                    n_classes: int = len(WORDS)):
    """Per-feature mean/std of ``embeddings`` ``(n, dim)`` and the class means
    ``(n_classes, dim)`` of the standardised embeddings."""
    mean, std = embeddings.mean(0), embeddings.std(0).clamp_min(1e-6)
    standard = (embeddings - mean) / std
    means = torch.stack([standard[labels == c].mean(0) for c in range(n_classes)])
    return mean, std, means


def predict_nearest_mean(embeddings: torch.Tensor, fitted) -> torch.Tensor:
    mean, std, means = fitted
    return torch.cdist((embeddings - mean) / std, means).argmin(dim=1)


def subsample(clips: ClipList, per_word: int, seed: int = 0) -> ClipList:
    """At most ``per_word`` clips of each word, drawn with a fixed seed."""
    order = torch.randperm(len(clips), generator=torch.Generator().manual_seed(seed)).tolist()
    taken, counts = [], {}
    for i in order:
        label = clips.labels[i]
        if counts.get(label, 0) < per_word:
            counts[label] = counts.get(label, 0) + 1
            taken.append(i)
    taken.sort()
    return ClipList(tuple(clips.paths[i] for i in taken), tuple(clips.labels[i] for i in taken))


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kwmlp.train.scene_probe",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Speech Commands-layout corpus")
    parser.add_argument("--model", default="", help="checkpoint (default: shipped weights)")
    parser.add_argument("--per-word", type=int, default=100,
                        help="training-voice clips per word to fit the means (default 100)")
    parser.add_argument("--split", default="testing", choices=["validation", "testing"])
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")

    model = load_model(args.model, device="cpu")
    clips = list_clips(args.data)
    train_audio, train_labels = load_clips(subsample(clips["training"], args.per_word))
    test_audio, test_labels = load_clips(clips[args.split])
    fitted = fit_class_means(scene_embeddings(train_audio, model), train_labels)
    predicted = predict_nearest_mean(scene_embeddings(test_audio, model), fitted)
    accuracy = (predicted == test_labels).float().mean().item()
    logger.info("nearest-class-mean on scene embeddings: fitted on %d training-voice clips, "
                "%s accuracy %.4f over %d held-out-voice clips",
                len(train_labels), args.split, accuracy, len(test_labels))


if __name__ == "__main__":
    main()
