"""Turn a finished run into the shipped checkpoint: the best model (by real-voice
validation when the run had real speech) or the weights after its final epoch,
evaluated on the corpus' held-out test
voices and on the real-voice validation speakers, saved with ``save_checkpoint``
and metadata that says what it was trained on (``datacard``) and how.

Several finished runs fine-tuned from one start export their *soup*, the mean of
their final weights (``final_weights``), with each member's recipe in the metadata::

    python -m kwmlp.train.export --run runs/a runs/b runs/c --weights last --out soup.pt
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch

from .. import __version__
from ..checkpoints import load_checkpoint, save_checkpoint
from ..info import summarize_training_data
from ..keywords import check_threshold
from .datacard import describe_corpus, describe_negatives, describe_real_data
from .evaluate import Evaluation, evaluate_model, evaluate_real
from .._types import PathLike
from ..encoder import KWMLP
from .speech_commands import WORDS, list_clips, load_clips
from .train import (BEST_NAME, EMA_PREFIX, INIT_NAME, LAST_NAME, TrainConfig, as_paths,
                    read_log)

LICENCE = "MIT"
SELECTIONS = {  # --weights: how the exported epoch was chosen
    "best": "the epoch with the best validation figure the run selects on (best.pt)",
    "last": "the weights after the final epoch, no selection (last.pt)",
}
SOUP_SELECTION = "the mean of several runs' weights after their final epochs (a uniform soup)"


def earlier_stages(init: str) -> List[dict]:
    """The training stages behind a fine-tune's ``--init`` checkpoint, latest first:
    each stage's recipe, epochs run, best epoch and summed epoch time. Follows the chain
    through run directories (``best.pt`` beside its ``log.jsonl``) and through exported
    checkpoints (which carry their own ``recipe`` and ``earlier_stages``); stops where a
    checkpoint no longer exists."""
    stages: List[dict] = []
    while init and Path(init).is_file():
        _, meta = load_checkpoint(init)
        if "run" in meta:  # a best.pt written by kwmlp.train.train
            log = read_log(Path(init).parent)
            stages.append({"checkpoint": init, "recipe": meta["run"], "epochs": len(log),
                           "exported_epoch": meta["epoch"],
                           "wall_time_s": round(sum(r["epoch_time_s"] for r in log), 1)})
            init = meta["run"].get("init", "")
        else:  # an exported checkpoint: it already describes its own history
            stages.append({"checkpoint": init, "recipe": meta.get("recipe"),
                           "epochs": meta.get("epochs"),
                           "exported_epoch": meta.get("exported_epoch", meta.get("best_epoch")),
                           "wall_time_s": meta.get("wall_time_s")})
            return stages + list(meta.get("earlier_stages", []))
    return stages


def run_weights(run_dir: Path, weights: str) -> Tuple[KWMLP, dict]:
    """The model a run exports (``SELECTIONS``) and its epoch's record: ``epoch``,
    the validation figures of those weights, ``run`` (the recipe)."""
    if weights not in SELECTIONS:
        raise ValueError(f"weights must be one of {tuple(SELECTIONS)}, got {weights!r}")
    model, best = load_checkpoint(run_dir / BEST_NAME)
    if weights == "best":
        return model, best
    state = torch.load(run_dir / LAST_NAME, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    record = next(r for r in read_log(run_dir) if r["epoch"] == state["epoch"])
    figures = {k: v for k, v in record.items() if k.endswith("val_acc")
               and not k.startswith(EMA_PREFIX)}
    return model, {"epoch": state["epoch"], **figures, "run": best["run"]}


def soup(models: Sequence[KWMLP]) -> KWMLP:
    """One model whose every floating-point weight is the mean of ``models``'
    (same architecture; the first model is overwritten and returned)."""
    states = [m.state_dict() for m in models]
    models[0].load_state_dict({k: torch.stack([s[k] for s in states]).mean(0)
                               if v.is_floating_point() else v for k, v in states[0].items()})
    return models[0]


# Recipe fields a soup's runs must share: the start and the real-voice fold make the
# mean a model of that fold; the rest make one training-data description true of all.
SOUP_SHARED = ("init", "seed", "cv_folds", "cv_fold", "real_data", "dim", "dim_ff", "depth",
               "labels", "epochs", "data", "real_repeat", "real_balance", "fsdd_repeat",
               "real_noise", "negatives_repeat", "extra_repeat")


def _soup_member(run_dir: Path) -> Tuple[KWMLP, dict]:
    """A run's final weights and record, refused if it has no start to share or has
    not finished."""
    model, record = run_weights(run_dir, "last")
    run = record["run"]
    if not run.get("init"):
        raise ValueError(f"{run_dir} was trained from a random start (no init): its weights "
                         "average with no other run's")
    if record["epoch"] != run["epochs"]:
        raise ValueError(f"{run_dir} has finished {record['epoch']} of its {run['epochs']} "
                         "epochs: a soup takes finished runs only")
    return model, record


def final_weights(run_dirs: Union[PathLike, Sequence[PathLike]]) -> Tuple[KWMLP, dict]:
    """A run's final weights and epoch record (``run_weights(..., "last")``), or,
    given several finished runs fine-tuned from one start (same ``init`` file, by its
    ``init.sha256`` where every run recorded one, and seed) on one fold, their
    *soup* (Wortsman et al., 2022): one model, the mean of their final weights. A
    soup's record is ``{"epoch", "run": the first run's recipe, "soup_of": [{"run",
    "recipe", "epochs", "wall_time_s"}, ...]}``, without validation figures: no run
    measured the mean."""
    run_dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, os.PathLike)) else [
        Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("final_weights needs at least one run directory")
    if len(run_dirs) == 1:
        return run_weights(run_dirs[0], "last")
    resolved = [d.resolve() for d in run_dirs]
    if len(set(resolved)) < len(resolved):
        raise ValueError(f"a soup names one run twice: {[str(d) for d in run_dirs]}")
    loaded = [_soup_member(d) for d in run_dirs]
    first = TrainConfig.from_json(loaded[0][1]["run"])
    digests = [(d / INIT_NAME).read_text().strip() if (d / INIT_NAME).exists() else None
               for d in run_dirs]
    for run_dir, digest, (_, record) in zip(run_dirs[1:], digests[1:], loaded[1:]):
        config = TrainConfig.from_json(record["run"])
        differ = [k for k in SOUP_SHARED if getattr(config, k) != getattr(first, k)]
        if None not in digests and digest != digests[0]:
            differ.append(f"the weights in {config.init} ({INIT_NAME})")
        if differ:
            raise ValueError(f"{run_dir} cannot join a soup with {run_dirs[0]}: they differ "
                             f"in {', '.join(differ)}")
    members = [{"run": str(path), "recipe": record["run"], "epochs": record["epoch"],
                "wall_time_s": round(sum(r["epoch_time_s"] for r in read_log(path)), 1)}
               for path, (_, record) in zip(resolved, loaded)]
    return soup([m for m, _ in loaded]), {"epoch": loaded[0][1]["epoch"],
                                          "run": loaded[0][1]["run"], "soup_of": members}


def _training_data(run: dict, data_dir: Path, generator: Optional[str]) -> dict:
    """``metadata["training_data"]`` of a run's recipe (``datacard``); ``extra_data``
    and ``negatives`` may list several folders (a soup's, ``_merged_recipe``)."""
    training_data = describe_corpus(data_dir, generator)
    if run.get("real_data"):
        training_data["real"] = describe_real_data(
            run["real_data"], {"speech_commands": run["real_repeat"], "fsdd": run["fsdd_repeat"]},
            run["real_noise"], run.get("cv_folds", 0), run.get("cv_fold", 0))
    extra = as_paths(run.get("extra_data"))
    if extra:
        training_data["extra"] = [{**describe_corpus(path), "repeat": run.get("extra_repeat", 1)}
                                  for path in extra]
    described = [describe_negatives(path, run.get("negatives_repeat", 1))
                 for path in as_paths(run.get("negatives"))]
    if described:  # one folder (a dict), or a soup's several (a list)
        training_data["negatives"] = described[0] if len(described) == 1 else described
    return training_data


def _merged_recipe(recipes: Sequence[dict]) -> dict:
    """The first recipe with every recipe's extra corpora and negatives folders (in
    order, once each): what a soup's runs were trained on, together (``SOUP_SHARED``
    makes their repeats and the rest of the data one)."""
    def union(key: str) -> List[str]:
        return list(dict.fromkeys(p for recipe in recipes for p in as_paths(recipe.get(key))))
    return {**recipes[0], "extra_data": union("extra_data"), "negatives": union("negatives")}


def export_run(run_dir: Union[PathLike, Sequence[PathLike]], out: PathLike,
               data_dir: Optional[PathLike] = None, generator: Optional[str] = None,
               weights: str = "best", threshold: Optional[float] = None) -> Evaluation:
    """Evaluate the run's ``weights`` (``SELECTIONS``) on the testing split and
    save them to ``out``.

    Several run directories (``weights="last"`` only) export their soup
    (``final_weights``): ``recipe`` is the first run's, ``soup_of`` lists every run's
    recipe, epochs and wall time, ``training_data`` describes every run's data
    together, ``wall_time_s`` is their sum and ``trained_on`` says it is a soup.
    ``data_dir`` defaults to the corpus the run was trained on; ``threshold`` (e.g.
    ``operating_point``'s choice) becomes the checkpoint's default spotting
    threshold. Returns the test evaluation (also stored in the metadata)."""
    if threshold is not None:
        check_threshold(threshold)
    run_dirs = [Path(run_dir)] if isinstance(run_dir, (str, os.PathLike)) else [
        Path(d) for d in run_dir]
    if len(run_dirs) > 1 and weights != "last":
        raise ValueError("a soup of runs is made of their final weights: use weights='last'")
    model, best = (run_weights(run_dirs[0], weights) if len(run_dirs) == 1
                   else final_weights(run_dirs))
    run = best["run"]
    data_dir = Path(data_dir or run["data"])
    audio, labels = load_clips(list_clips(data_dir)["testing"])
    evaluation = evaluate_model(model, audio, labels, "testing")
    logs = [read_log(d) for d in run_dirs]
    log = logs[0]
    stages = earlier_stages(run.get("init", ""))
    recipes = [member["recipe"] for member in best.get("soup_of", [{"recipe": run}])]
    training_data = _training_data(_merged_recipe(recipes), data_dir, generator)
    metadata = {
        "description": "KW-MLP trained on a 35-word Speech Commands-layout corpus; the "
                       "encoder is the embedding model, the head the keyword classifier",
        "labels": list(TrainConfig.from_json(run).labels),  # the head's classes, logit order
        "keywords": list(WORDS),
        "training_data": training_data,
        "recipe": run,
        "earlier_stages": stages,
        "epochs": len(log),
        "epochs_all_stages": len(log) + sum(stage["epochs"] or 0 for stage in stages),
        "exported_epoch": best["epoch"],
        "selection": SELECTIONS[weights] if len(run_dirs) == 1 else SOUP_SELECTION,
        "wall_time_s": round(sum(r["epoch_time_s"] for log in logs for r in log), 1),
        "val_accuracy": best.get("val_acc"),  # none for a soup: no run measured it
        "held_out_accuracy": evaluation.accuracy,
        "held_out_split": "testing (voices not used in training)",
        "most_confused": evaluation.most_confused(),
        "kwmlp_version": __version__,
        "licence": LICENCE,
    }
    if "soup_of" in best:
        metadata["soup_of"] = best["soup_of"]
    if run.get("real_data"):
        real = {source: e.summary() for source, e in evaluate_real(
            model, run["real_data"], run.get("cv_folds", 0), run.get("cv_fold", 0)).items()}
        if "speech_commands" in real:  # none when the run trained on every fold
            metadata["real_voice_accuracy"] = real["speech_commands"]["accuracy"]
        metadata["real_voice"] = real
    if threshold is not None:
        metadata["threshold"] = threshold
    metadata["trained_on"] = summarize_training_data(training_data)
    if "soup_of" in best:
        metadata["trained_on"] = (f"the mean of {len(best['soup_of'])} runs' weights, which "
                                  f"together trained on: {metadata['trained_on']}")
    save_checkpoint(out, model, metadata)
    return evaluation


# command line

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kwmlp.train.export",
        description="Evaluate a run's best (or last) model, or several runs' soup, on the "
                    "testing split and save it with kwmlp.checkpoints.save_checkpoint and a "
                    "description of its training.")
    parser.add_argument("--run", required=True, nargs="+", metavar="RUN_DIR",
                        help="run directory written by kwmlp.train.train; several (with "
                             "--weights last) export the mean of their final weights (a soup)")
    parser.add_argument("--out", required=True, help="checkpoint to write, e.g. weights/kwmlp.pt")
    parser.add_argument("--data", help="corpus directory (default: the one the run used)")
    parser.add_argument("--weights", choices=tuple(SELECTIONS), default="best",
                        help="best: best.pt (the selected epoch); last: the raw weights "
                             "after the final epoch")
    parser.add_argument("--generator", help="how the corpus was made (command line, seed), "
                                            "recorded in the metadata")
    parser.add_argument("--threshold", type=float,
                        help="default spotting threshold stored in the checkpoint "
                             "(python -m kwmlp.train.operating_point chooses one)")
    args = parser.parse_args(argv)
    if len(args.run) > 1 and args.weights != "last":
        parser.error("several --run directories export the mean of their final weights: "
                     "add --weights last")
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    evaluation = export_run(args.run, args.out, args.data, args.generator, args.weights,
                            args.threshold)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB); "
          f"held-out accuracy {evaluation.accuracy:.4f}")


if __name__ == "__main__":
    main()
