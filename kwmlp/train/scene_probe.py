"""Do the scene embeddings (the HEAR output, no head) separate the words?

Synthetic voices (``--data``): a nearest-class-mean probe, class means of
standardised scene embeddings of training-voice clips, each held-out-voice clip
gets the class of the nearest mean (Euclidean). No training, no tuning.

Real voices (``--real-data``): a multinomial logistic-regression probe, as HEAR's
downstream probes are linear, fitted on the scene embeddings of the real training
speakers and scored on the real validation speakers (``real_speech``): 35 words,
the 11 classes of the ten command words plus "other", and the ten spoken digits.

    python -m kwmlp.train.scene_probe [--data DIR] [--real-data DIR] [--model FILE]
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from ..hear import KWMLPEmbedder, get_scene_embeddings, load_model
from .evaluate import COMMAND_WORDS
from .real_speech import list_real_clips, load_real_clips
from .speech_commands import INT16_SCALE, WORDS, ClipList, list_clips, load_clips

logger = logging.getLogger(__name__)

EMBED_BATCH = 256  # clips per get_scene_embeddings call
PROBE_WEIGHT_DECAY = 1e-3  # L2 on the probe weights, per standardised feature
PROBE_STEPS = 300  # L-BFGS iterations; the convex loss has converged well before


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


def fit_logistic_regression(embeddings: torch.Tensor, labels: torch.Tensor,
                            n_classes: int) -> torch.nn.Linear:
    """Multinomial logistic regression with L2 on standardised ``(n, dim)`` features
    (the standardisation is folded into the returned layer), fitted by L-BFGS."""
    mean, std = embeddings.mean(0), embeddings.std(0).clamp_min(1e-6)
    x = (embeddings - mean) / std
    probe = torch.nn.Linear(x.shape[1], n_classes)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=PROBE_STEPS,
                                  line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.cross_entropy(probe(x), labels) + PROBE_WEIGHT_DECAY * probe.weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():  # fold (x - mean) / std into the layer
        probe.bias -= (probe.weight / std) @ mean
        probe.weight /= std
    return probe


def command_classes(labels: torch.Tensor) -> torch.Tensor:
    """35-word labels -> 11 classes: the ten ``COMMAND_WORDS`` (0-9), every other word 10."""
    mapping = torch.full((len(WORDS),), len(COMMAND_WORDS), dtype=torch.int64)
    for k, word in enumerate(COMMAND_WORDS):
        mapping[WORDS.index(word)] = k
    return mapping[labels]


def real_voice_probes(model: KWMLPEmbedder, real_dir) -> Dict[str, float]:
    """Logistic-regression probe accuracies on real speakers never seen by the probe:
    ``speech_commands_35``, ``speech_commands_11`` (command words + other) and ``fsdd_10``."""
    real = list_real_clips(real_dir)
    results = {}
    for source, tasks in (("speech_commands", {"35": lambda y: y, "11": command_classes}),
                          ("fsdd", {"10": lambda y: y})):
        embedded = {}
        for split in ("training", "validation"):
            audio, labels = load_real_clips(real[source][split][0])
            embedded[split] = (scene_embeddings(audio, model), labels)
        for name, relabel in tasks.items():
            train_y, test_y = relabel(embedded["training"][1]), relabel(embedded["validation"][1])
            classes, train_y = torch.unique(train_y, return_inverse=True)
            probe = fit_logistic_regression(embedded["training"][0], train_y, len(classes))
            with torch.no_grad():
                predicted = classes[probe(embedded["validation"][0]).argmax(dim=1)]
            results[f"{source}_{name}"] = round((predicted == test_y).float().mean().item(), 4)
    return results


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
    parser.add_argument("--data", help="Speech Commands-layout corpus (synthetic voices)")
    parser.add_argument("--real-data", help="real-speech folder (MANIFEST.tsv)")
    parser.add_argument("--model", default="", help="checkpoint (default: shipped weights)")
    parser.add_argument("--layer", type=int, default=None, help="gMLP blocks to use (load_model)")
    parser.add_argument("--per-word", type=int, default=100,
                        help="training-voice clips per word to fit the means (default 100)")
    parser.add_argument("--split", default="testing", choices=["validation", "testing"])
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")

    model = load_model(args.model, device="cpu",
                       **({"layer": args.layer} if args.layer is not None else {}))
    if args.real_data:
        for task, accuracy in real_voice_probes(model, args.real_data).items():
            logger.info("logistic regression on scene embeddings, real speakers held out of "
                        "the probe: %s accuracy %.4f", task, accuracy)
    if not args.data:
        return
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
