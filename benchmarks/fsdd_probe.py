"""Why ``kwmlp fit`` stops near 0.82 on FSDD's unheard speakers (issue #23): a
linear probe on the shipped encoder's features, fitted on FSDD speakers george
and lucas and scored on jackson and nicolas (the split of ``benchmarks/fit.py``),
with other features and with each speaker's mean feature removed.

    python benchmarks/fsdd_probe.py --real-data ../shared/data/real_speech

- ``last``: the normed, frame-averaged output of all 12 blocks (what fit's head sees);
- ``4+8+12``: the frame-averaged, normed outputs after blocks 4, 8 and 12, side by side;
- ``..., centred``: every speaker's mean feature subtracted from its clips. It
  needs a speaker's clips ahead of time (all ten digits of the test speaker here),
  which ``classify`` does not have: it measures how much of the error is a
  per-speaker offset in feature space, not a recipe ``fit`` could use.

Each clip is one 1 s window: centred if shorter, its middle second if longer.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fit.py, beside this file

import kwmlp  # noqa: E402
from kwmlp.frontend import CHUNK_SAMPLES  # noqa: E402
from kwmlp.keywords import centred_window  # noqa: E402
from kwmlp.train.real_speech import DIGIT_WORDS  # noqa: E402
from fit import FSDD_FIT_SPEAKERS, FSDD_NAME, FSDD_TEST_SPEAKERS  # noqa: E402


def one_window(audio: np.ndarray) -> np.ndarray:
    if len(audio) <= CHUNK_SAMPLES:
        return centred_window(audio)
    start = (len(audio) - CHUNK_SAMPLES) // 2
    return audio[start:start + CHUNK_SAMPLES]


@torch.no_grad()
def features(model, windows: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``(n, CHUNK_SAMPLES)`` -> each probe's features ``(n, k)``."""
    encoder, mfcc = model.encoder, model.mfcc(windows)
    normed = {layer: F.layer_norm(encoder.forward_features(mfcc, layer, stochastic_depth=False),
                                  (encoder.dim,)).mean(dim=1) for layer in (4, 8, 12)}
    last = encoder.head_norm(encoder.forward_features(mfcc, stochastic_depth=False)).mean(dim=1)
    return {"last": last, "4+8+12": torch.cat([normed[4], normed[8], normed[12]], dim=1)}


def centred(x: torch.Tensor, speakers: Sequence[str]) -> torch.Tensor:
    out = x.clone()
    for speaker in set(speakers):
        mine = torch.tensor([s == speaker for s in speakers])
        out[mine] = x[mine] - x[mine].mean(dim=0)
    return out


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                   test_y: torch.Tensor, weight_decay: float = 1e-2) -> float:
    """Top-1 of a logistic regression (standardised features, L2, L-BFGS)."""
    mean, std = train_x.mean(dim=0), train_x.std(dim=0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    linear = torch.nn.Linear(train_x.shape[1], int(train_y.max()) + 1)
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=300,
                                  line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = (F.cross_entropy(linear(train_x), train_y)
                 + weight_decay * linear.weight.pow(2).sum())
        value.backward()
        return value

    optimiser.step(loss)
    with torch.no_grad():
        return (linear(test_x).argmax(dim=1) == test_y).float().mean().item()


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-data", default="../shared/data/real_speech")
    parser.add_argument("--model", default="", help="checkpoint (default: the shipped weights)")
    parser.add_argument("--examples", default="5,20,50", help="per digit, comma-separated")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = kwmlp.load_model(args.model, device="cpu")
    rows: List[tuple] = []
    for path in sorted((Path(args.real_data) / "fsdd").glob("*.wav")):
        match = FSDD_NAME.fullmatch(path.name)
        if match["speaker"] in FSDD_FIT_SPEAKERS + FSDD_TEST_SPEAKERS:
            rows.append((int(match["digit"]), match["speaker"], int(match["take"]), path))
    windows = torch.from_numpy(np.stack([one_window(kwmlp.load_audio(p)[0]) for *_, p in rows]))
    digit = torch.tensor([r[0] for r in rows])
    speakers = [r[1] for r in rows]
    test = torch.tensor([s in FSDD_TEST_SPEAKERS for s in speakers])
    probes = features(model, windows)
    probes.update({f"{name}, centred": centred(x, speakers) for name, x in list(probes.items())})
    counts = [int(n) for n in args.examples.split(",")]
    print(f"{len(rows)} clips ({int(test.sum())} test, speakers "
          f"{', '.join(FSDD_TEST_SPEAKERS)}); top-1 over the {len(DIGIT_WORDS)} digits")
    print(f"{'features':<20}" + "".join(f"{n:>8} ex." for n in counts))
    for name, x in probes.items():
        cells = []
        for n in counts:  # the first n takes of each digit, the two speakers alternating
            train = torch.zeros(len(rows), dtype=torch.bool)
            for d in range(len(DIGIT_WORDS)):
                takes = sorted((rows[i][2], rows[i][1], i) for i in range(len(rows))
                               if rows[i][0] == d and not test[i])
                train[[i for *_, i in takes[:n]]] = True
            cells.append(probe_accuracy(x[train], digit[train], x[test], digit[test]))
        print(f"{name:<20}" + "".join(f"{c:>12.3f}" for c in cells))


if __name__ == "__main__":
    main()
