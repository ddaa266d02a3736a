"""Speaker-grouped cross-validation of a training recipe on real voices.

A recipe is run once per fold (``train --cv-folds K --cv-fold i``, one run
directory per fold, each resumable); this module scores each fold's **final**
weights (no pick among epochs, so the figure is not used up by selection) on
the real Speech Commands speakers of that fold, whom that run never heard, and
reports the folds' mean and spread and the pooled figure over every clip::

    for i in 0 1 2 3 4; do
      python -m kwmlp.train.train ... --cv-folds 5 --cv-fold $i --out runs/cv/NAME/fold$i
    done
    python -m kwmlp.train.crossval runs/cv/NAME
    python -m kwmlp.train.crossval runs/cv/NAME --holdout   # + the fixed held-out speakers
    python -m kwmlp.train.crossval runs/cv/NAME --paired-with runs/cv/BASE/crossval.json

``--holdout`` also scores every fold's final model, their *ensemble* (the mean
of their probabilities) and their *soup* (one model, the mean of their weights:
they were all fine-tuned from one start) on the speakers no fold holds
(``real_speech.holdout_clips``): what mixing the folds would give, on people
none of them heard.

Several recipes fine-tuned from one start are scored as their *soup*: fold by fold,
the mean of the recipes' final weights of that fold (none of which heard its
speakers), one model like any recipe's::

    python -m kwmlp.train.crossval runs/cv/A runs/cv/B runs/cv/C --out soup.json
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from .._types import PathLike
from ..frontend import MFCC
from .evaluate import COMMAND_WORDS, Evaluation, evaluate_model, evaluation_of
from .export import final_weights, soup
from .real_speech import holdout_clips, load_real_clips, run_splits
from .speech_commands import INT16_SCALE, WORDS

FOLD_PREFIX = "fold"


def fold_evaluation(run_dirs: Sequence[PathLike]) -> Evaluation:
    """A fold run's final weights (or several runs' soup, ``export.final_weights``)
    on the real speakers of its own fold."""
    model, record = final_weights(run_dirs)
    run = record["run"]
    if not run.get("cv_folds"):
        raise ValueError(f"{run_dirs[0]} is not a cross-validation run (no cv_folds)")
    real = run_splits(run["real_data"], run["cv_folds"], run["cv_fold"])
    clips = real["speech_commands"]["validation"][0]
    return evaluate_model(model, *load_real_clips(clips),
                          f"fold {run['cv_fold']} of {run['cv_folds']}")


def summarize(evaluations: Sequence[Evaluation]) -> Dict[str, object]:
    """Per-fold top-1 (35 words, command words), their mean and standard
    deviation, and the figures pooled over every fold's clips."""
    confusion = torch.stack([e.confusion for e in evaluations]).sum(0)
    pooled = Evaluation("pooled", confusion.diagonal().sum().item() / confusion.sum().item(),
                        confusion)
    per_fold = [{"fold": e.split, "clips": int(e.confusion.sum()),
                 "accuracy": round(e.accuracy, 4),
                 "command_words_accuracy": round(e.accuracy_on(COMMAND_WORDS), 4)}
                for e in evaluations]
    out: Dict[str, object] = {"folds": per_fold}
    for key in ("accuracy", "command_words_accuracy"):
        values = [f[key] for f in per_fold]
        out[key] = {"mean": round(statistics.mean(values), 4),
                    "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}
    out["pooled"] = pooled.summary()
    return out


@torch.no_grad()
def holdout_evaluations(folds: Sequence[Sequence[Path]]) -> Dict[str, Evaluation]:
    """Each fold's final model (its run's, or its runs' soup; named by fold), their
    ``ensemble`` and their ``soup`` on the held-out speakers' clips
    (``real_speech.holdout_clips``)."""
    models = [final_weights(runs) for runs in folds]
    audio, labels = load_real_clips(holdout_clips(models[0][1]["run"]["real_data"]))
    features = MFCC(backend="fft")(audio.float() / INT16_SCALE)
    encoders = [model.eval() for model, _ in models]
    probabilities = [encoder(features).softmax(dim=1) for encoder in encoders]
    predictions = {runs[0].name: p.argmax(dim=1) for runs, p in zip(folds, probabilities)}
    predictions["ensemble"] = torch.stack(probabilities).mean(0).argmax(dim=1)
    predictions["soup"] = soup(encoders)(features).argmax(dim=1)
    n_classes = probabilities[0].shape[1]
    return {name: evaluation_of(p, labels, n_classes, f"{name}, held-out speakers")
            for name, p in predictions.items()}


def paired_differences(summary: Dict[str, object], baseline: Dict[str, object]
                       ) -> Dict[str, object]:
    """Fold by fold, ``summary``'s top-1 minus ``baseline``'s (another recipe's
    ``crossval.json`` on the same folds) in points, and their mean: the model
    card's paired rule (a lever pays when both means are above zero). Raises
    ``ValueError`` unless both hold the same folds with the same clip counts."""
    ours = [(f["fold"], f["clips"]) for f in summary["folds"]]
    theirs = [(f["fold"], f["clips"]) for f in baseline["folds"]]
    if ours != theirs:
        raise ValueError(f"the recipes hold other folds or clips ({ours} against {theirs}): "
                         "paired differences need the same speakers")
    out: Dict[str, object] = {}
    for key in ("accuracy", "command_words_accuracy"):
        diffs = [100 * (a[key] - b[key]) for a, b in zip(summary["folds"], baseline["folds"])]
        out[key] = {"differences": [round(d, 2) for d in diffs],
                    "mean": round(statistics.mean(diffs), 2)}
    out["pays"] = all(out[key]["mean"] > 0 for key in ("accuracy", "command_words_accuracy"))
    return out


def fold_runs(cv_dir: PathLike) -> List[Path]:
    """The fold run directories under ``cv_dir``, in fold order."""
    runs = sorted((p for p in Path(cv_dir).glob(f"{FOLD_PREFIX}*")
                   if p.is_dir() and p.name[len(FOLD_PREFIX):].isdigit()),
                  key=lambda p: int(p.name[len(FOLD_PREFIX):]))  # fold<i>.log files aside
    if not runs:
        raise ValueError(f"no {FOLD_PREFIX}<i> run directories under {cv_dir}")
    return runs


def fold_groups(cv_dirs: Sequence[PathLike]) -> List[List[Path]]:
    """Fold by fold, the run directories of each recipe's ``cv_dir`` (one recipe:
    one run a fold; several: the runs a fold's soup averages). Every recipe must
    hold the same folds."""
    per_recipe = [fold_runs(cv_dir) for cv_dir in cv_dirs]
    names = [[run.name for run in runs] for runs in per_recipe]
    for cv_dir, recipe_names in zip(cv_dirs[1:], names[1:]):
        if recipe_names != names[0]:
            raise ValueError(f"{cv_dir} holds folds {recipe_names}, {cv_dirs[0]} {names[0]}: "
                             "a soup needs the same folds from every recipe")
    return [list(runs) for runs in zip(*per_recipe)]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kwmlp.train.crossval",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("cv_dir", nargs="+",
                        help="folder of fold<i> run directories; several (recipes fine-tuned "
                             "from one start) score, fold by fold, the mean of their final "
                             "weights (a soup)")
    parser.add_argument("--out", help="JSON to write (default: CV_DIR/crossval.json; "
                                      "required with several)")
    parser.add_argument("--holdout", action="store_true",
                        help="also score each fold, their ensemble and their soup on the "
                             "held-out speakers no fold holds")
    parser.add_argument("--paired-with", metavar="CROSSVAL_JSON",
                        help="another recipe's crossval.json on the same folds: print and "
                             "record the fold-by-fold differences and their means")
    args = parser.parse_args(argv)
    if len(args.cv_dir) > 1 and not args.out:
        parser.error("--out is required with several CV_DIRs")
    folds = fold_groups(args.cv_dir)
    summary = summarize([fold_evaluation(runs) for runs in folds])
    summary["runs"] = [[str(run.resolve()) for run in runs] for runs in folds]
    if args.holdout:
        summary["holdout"] = [{"model": name, "clips": int(e.confusion.sum()),
                               "accuracy": round(e.accuracy, 4),
                               "command_words_accuracy": round(e.accuracy_on(COMMAND_WORDS), 4)}
                              for name, e in holdout_evaluations(folds).items()]
    if args.paired_with:
        summary["paired_with"] = {"baseline": str(Path(args.paired_with).resolve()),
                                  **paired_differences(
                                      summary, json.loads(Path(args.paired_with).read_text()))}
    out = Path(args.out or Path(args.cv_dir[0]) / "crossval.json")
    out.write_text(json.dumps(summary, indent=1))
    for fold in summary["folds"]:
        print(f"{fold['fold']}: {fold['clips']} clips, 35 words {fold['accuracy']:.4f}, "
              f"command words {fold['command_words_accuracy']:.4f}")
    for key in ("accuracy", "command_words_accuracy"):
        print(f"{key}: mean {summary[key]['mean']:.4f} ± {summary[key]['std']:.4f} over folds")
    pooled = summary["pooled"]
    print(f"pooled: {pooled['accuracy']:.4f} on {pooled['n_clips']} clips ({len(WORDS)} words; "
          f"{pooled['no_keyword_answers']:.4f} of them answered no keyword); wrote {out}")
    paired = summary.get("paired_with")
    for key in ("accuracy", "command_words_accuracy") if paired else ():
        print(f"paired with {paired['baseline']}, {key}: {paired[key]['differences']} points, "
              f"mean {paired[key]['mean']:+.2f}")
    if paired:
        print("the lever pays (both means above zero)" if paired["pays"]
              else "the lever does not pay (a mean at or below zero)")
    for row in summary.get("holdout", []):
        print(f"held-out speakers, {row['model']}: {row['clips']} clips, 35 words "
              f"{row['accuracy']:.4f}, command words {row['command_words_accuracy']:.4f}")


if __name__ == "__main__":
    main()
