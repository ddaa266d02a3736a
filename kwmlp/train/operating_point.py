"""The spotting threshold, chosen on the data a cross-validation holds out (#21).

The default threshold decides both figures a keyword spotter is judged by: recall on
keywords and false accepts per hour on audio without one. Choosing it on the
false-accept hour of ``benchmarks/false_accepts.py`` would make that figure
meaningless, so it is chosen here, per fold of a speaker cross-validation
(``crossval``), on two development recordings that fold's final model never trained on:

- its own fold's real Speech Commands clips (speakers its run never heard), laid end
  to end by ``recordings.make_recording``: recall;
- the held-out items of the negatives the runs trained with
  (``negatives.load_negatives(...)["validation"]``), 1 s windows end to end: false
  accepts per hour.

The rule: the highest threshold of ``THRESHOLDS`` at which the recall pooled over the
folds is at least ``RECALL_FLOOR`` (or ``--recall-floor``; when none is, no threshold is
chosen and the default, ``keywords.DEFAULT_THRESHOLD``, stays); the false accepts per hour
at each threshold are reported beside it. ``export --threshold`` writes the chosen value
into a checkpoint's metadata, which ``spot``, ``Stream`` and ``classify`` use when given none::

    python -m kwmlp.train.operating_point runs/cv/NAME --negatives data/negatives

Several CV folders sweep their soups, fold by fold, as ``crossval`` scores them.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .._types import PathLike
from ..embedder import KWMLPEmbedder
from ..keywords import recognize, spot
from .crossval import fold_groups
from .export import final_weights
from .negatives import load_negatives
from .real_speech import run_splits
from .recordings import SAMPLE_RATE, make_recording, match
from .speech_commands import INT16_SCALE
from .train import TrainConfig

THRESHOLDS: Tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.5-0.95
# Issue #21 asks recall >= 0.73 on the test speakers: a margin above. Compact v9 found
# 0.02 too small (0.750 on its folds, 0.711 on the test speakers); its re-pointed ship
# check and compact v10's use --recall-floor 0.80. The default stays the earlier rules'.
RECALL_FLOOR = 0.75


@dataclass(frozen=True)
class FoldSweep:
    """One fold model's counts at each threshold: clips found of ``words``, and
    detections in ``negative_s`` seconds of audio without a keyword."""

    fold: str
    words: int
    found: Tuple[int, ...]
    negative_s: float
    false_accepts: Tuple[int, ...]


def _detections(model: KWMLPEmbedder, audio: np.ndarray, thresholds: Sequence[float]) -> list:
    """``spot``'s detections in ``audio`` ``(n_samples,)`` float32 at each threshold."""
    recognition = recognize(torch.from_numpy(audio)[None], model)
    duration_ms = 1000 * len(audio) / SAMPLE_RATE
    return [spot(recognition, threshold=t, duration_ms=duration_ms)[0] for t in thresholds]


def negatives_recording(negatives_dir: PathLike) -> np.ndarray:
    """The negatives' held-out 1 s windows end to end: float32 ``(n_samples,)``."""
    audio, _ = load_negatives(negatives_dir)["validation"]
    return (audio.float() / INT16_SCALE).reshape(-1).numpy()


def sweep_fold(run_dirs: Sequence[Path], negatives: np.ndarray,
               thresholds: Sequence[float] = THRESHOLDS, seed: int = 0) -> FoldSweep:
    """A fold run's final model (or several runs' soup, ``export.final_weights``) on
    its own speakers' clips and on ``negatives``."""
    encoder, record = final_weights(run_dirs)
    run = record["run"]
    labels = TrainConfig.from_json(run).labels  # 35 words, or with the no-keyword classes
    model = KWMLPEmbedder(encoder.eval(), metadata={"labels": list(labels)})
    clips = run_splits(run["real_data"], run["cv_folds"], run["cv_fold"])
    audio, words = make_recording(list(clips["speech_commands"]["validation"][0].paths), seed)
    found = tuple(match(d, words) for d in _detections(model, audio, thresholds))
    false_accepts = tuple(len(d) for d in _detections(model, negatives, thresholds))
    return FoldSweep(run_dirs[0].name, len(words), found, len(negatives) / SAMPLE_RATE,
                     false_accepts)


def choose_threshold(sweeps: Sequence[FoldSweep], thresholds: Sequence[float] = THRESHOLDS,
                     recall_floor: float = RECALL_FLOOR) -> Optional[float]:
    """The highest threshold whose pooled recall is at least ``recall_floor`` (None if
    none is)."""
    words = sum(s.words for s in sweeps)
    passing = [t for k, t in enumerate(thresholds)
               if sum(s.found[k] for s in sweeps) / words >= recall_floor]
    return max(passing) if passing else None


def summarize(sweeps: Sequence[FoldSweep], thresholds: Sequence[float] = THRESHOLDS,
              recall_floor: float = RECALL_FLOOR) -> Dict[str, object]:
    """Pooled recall and false accepts per hour at each threshold, and the choice."""
    words = sum(s.words for s in sweeps)
    hours = sum(s.negative_s for s in sweeps) / 3600
    rows: List[dict] = [{"threshold": t,
                         "recall": round(sum(s.found[k] for s in sweeps) / words, 4),
                         "false_accepts_per_hour": round(
                             sum(s.false_accepts[k] for s in sweeps) / hours, 1)}
                        for k, t in enumerate(thresholds)]
    return {"rule": f"highest threshold with pooled recall >= {recall_floor}",
            "threshold": choose_threshold(sweeps, thresholds, recall_floor), "sweep": rows,
            "folds": [{"fold": s.fold, "words": s.words, "found": list(s.found),
                       "negative_s": s.negative_s, "false_accepts": list(s.false_accepts)}
                      for s in sweeps]}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kwmlp.train.operating_point",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("cv_dir", nargs="+",
                        help="folder of fold<i> run directories (crossval); several: their "
                             "soups, fold by fold")
    parser.add_argument("--negatives", required=True,
                        help="a negatives folder the runs trained with (its held-out items; "
                             "items fall in the same split in every folder)")
    parser.add_argument("--recall-floor", type=float, default=RECALL_FLOOR,
                        help=f"the pooled recall the threshold must keep (default "
                             f"{RECALL_FLOOR})")
    parser.add_argument("--out", help="JSON to write (default: CV_DIR/operating_point.json; "
                                      "required with several)")
    args = parser.parse_args(argv)
    if not 0 < args.recall_floor <= 1:
        parser.error(f"--recall-floor must be in (0, 1], got {args.recall_floor}")
    if len(args.cv_dir) > 1 and not args.out:
        parser.error("--out is required with several CV_DIRs")
    folds = fold_groups(args.cv_dir)
    negatives = negatives_recording(args.negatives)
    summary = summarize([sweep_fold(runs, negatives) for runs in folds], THRESHOLDS,
                        args.recall_floor)
    summary["runs"] = [[str(run.resolve()) for run in runs] for runs in folds]
    out = Path(args.out or Path(args.cv_dir[0]) / "operating_point.json")
    out.write_text(json.dumps(summary, indent=1))
    print("threshold  recall  false accepts per hour (development negatives)")
    for row in summary["sweep"]:
        print(f"{row['threshold']:>9.2f}  {row['recall']:>6.3f}  "
              f"{row['false_accepts_per_hour']:>8.1f}")
    print(f"{summary['rule']}: {summary['threshold']}; wrote {out}")


if __name__ == "__main__":
    main()
