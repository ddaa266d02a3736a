"""Keyword-spotting precision and recall on a long recording made from the
committed held-out clips (tests/data/real: real Speech Commands speakers never
trained on; tests/data/heldout: held-out synthetic voices).

    PYTHONPATH=. python benchmarks/spotting.py                  # the README's figures
    PYTHONPATH=. python benchmarks/spotting.py --threshold 0.5 --hop-ms 50

The recording and the rule a detection is scored by are ``kwmlp.train.recordings``'
(one recording per ``--seeds`` seed). Precision = correct / detections, recall =
clips found / clips.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch

import kwmlp
from kwmlp.keywords import (DEFAULT_HOP_MS, DEFAULT_REFRACTORY_MS, DEFAULT_THRESHOLD,
                            model_threshold)
from kwmlp.train.recordings import SAMPLE_RATE, make_recording, match

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
SETS = {"real": DATA / "real", "heldout": DATA / "heldout"}


def evaluate(model: kwmlp.KWMLPEmbedder, paths: Sequence[Path], *, seed: int = 0,
             hop_ms: float = DEFAULT_HOP_MS, threshold: float = DEFAULT_THRESHOLD,
             refractory_ms: float = DEFAULT_REFRACTORY_MS) -> dict:
    """Spot a recording made from ``paths``; precision, recall and the counts."""
    audio, words = make_recording(paths, seed)
    recognition = kwmlp.recognize(torch.from_numpy(audio)[None], model, hop_ms=hop_ms)
    detections = kwmlp.spot(recognition, threshold=threshold, refractory_ms=refractory_ms,
                            duration_ms=1000 * len(audio) / SAMPLE_RATE)[0]
    correct = match(detections, words)
    return {"words": len(words), "detections": len(detections), "correct": correct,
            "precision": correct / max(1, len(detections)), "recall": correct / len(words),
            "seconds": len(audio) / SAMPLE_RATE}


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="checkpoint (default: shipped weights)")
    parser.add_argument("--sets", default="real,heldout", help="of: " + ", ".join(SETS))
    parser.add_argument("--seeds", default="0,1,2", help="recordings per set, one per seed")
    parser.add_argument("--hop-ms", type=float, default=DEFAULT_HOP_MS)
    parser.add_argument("--threshold", type=float,
                        help="default: the checkpoint's own, else %g" % DEFAULT_THRESHOLD)
    parser.add_argument("--refractory-ms", type=float, default=DEFAULT_REFRACTORY_MS)
    args = parser.parse_args(argv)
    model = kwmlp.load_model(args.model, device="cpu")
    args.threshold = model_threshold(model, args.threshold)
    print(f"model {model.model_id()}  hop {args.hop_ms:g} ms  threshold {args.threshold:g}  "
          f"refractory {args.refractory_ms:g} ms")
    print("set      seed  words  detections  correct  precision  recall")
    for name in args.sets.split(","):
        paths = sorted(p for p in SETS[name].glob("*/*") if p.suffix in (".wav", ".flac"))
        totals = dict(words=0, detections=0, correct=0)
        for seed in map(int, args.seeds.split(",")):
            r = evaluate(model, paths, seed=seed, hop_ms=args.hop_ms, threshold=args.threshold,
                         refractory_ms=args.refractory_ms)
            _row(name, str(seed), r)
            totals = {key: value + r[key] for key, value in totals.items()}
        _row(name, "all", dict(totals, precision=totals["correct"] / max(1, totals["detections"]),
                               recall=totals["correct"] / totals["words"]))


def _row(name: str, seed: str, r: dict) -> None:
    print(f"{name:<8} {seed:>4}  {r['words']:>5}  {r['detections']:>10}  "
          f"{r['correct']:>7}  {r['precision']:>9.3f}  {r['recall']:>6.3f}")


if __name__ == "__main__":
    main()
