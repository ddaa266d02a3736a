#!/usr/bin/env python3
"""Evaluate kwmlp with the HEAR 2021 tools, the way HEAR ran submissions:

1. ``hear-validator kwmlp [-m MODEL]``: the package obeys the common API;
2. ``heareval.embeddings.runner`` on every task in ``--tasks-dir``;
3. ``heareval.predictions.runner`` (through ``launcher.py``, which fixes
   event tasks under current pytorch-lightning) trains and tests the
   downstream probes on each task's embeddings;
4. prints a table of task, metric, test score and embedding time, and writes
   it to ``OUT/scores.json`` and ``OUT/scores.csv``.

The tools run from the evaluation venv built by ``setup_venv.sh``; this
script itself needs only the standard library. Every tool's output goes to
``OUT/run-logs/``; heareval's own training logs land in ``OUT/logs/``.
Exits non-zero if any step fails (the other tasks still run).

    python benchmarks/hear/run.py --tasks-dir /data/hear-2021/tasks --out runs/hear/full
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
REPO_DIR = HERE.parents[1]
MODULE = "kwmlp"
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class Score:
    """One row of the results table; ``score_std`` is set for k-fold tasks."""

    task: str
    metric: str
    score: float
    score_std: Optional[float]
    embedding_time_s: Optional[float]


# helpers

def log(message: str) -> None:
    print(f"[hear] {message}", file=sys.stderr, flush=True)


def find_tasks(tasks_dir: Path) -> List[Path]:
    """Task folders (those holding ``task_metadata.json``), sorted by name."""
    return sorted(p for p in tasks_dir.iterdir() if (p / "task_metadata.json").is_file())


def run_step(name: str, command: List[str], *, cwd: Path, log_dir: Path,
             env: Optional[dict] = None) -> bool:
    """Run ``command`` with output to ``log_dir/<name>.log``; on failure print
    the log's tail. Returns whether it succeeded."""
    log_path = log_dir / f"{name}.log"
    log(f"{name}: {' '.join(command)}")
    start = time.monotonic()
    with open(log_path, "w") as log_file:
        result = subprocess.run(command, cwd=cwd, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    elapsed_s = time.monotonic() - start
    if result.returncode == 0:
        log(f"{name}: ok in {elapsed_s:.1f} s")
        return True
    tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    log(f"{name}: FAILED (exit {result.returncode}) after {elapsed_s:.1f} s; "
        f"end of {log_path}:\n" + "\n".join(tail))
    return False


def embeddings_name(python: Path, model_options: str) -> str:
    """The folder heareval names for this module and options (it slugifies
    them with python-slugify, which lives in the venv)."""
    code = (
        "import json, sys\n"
        "from slugify import slugify\n"
        "options = json.loads(sys.argv[2])\n"
        "pairs = ['%s=%s' % (slugify(k), slugify(str(v))) for k, v in options.items()]\n"
        "print(sys.argv[1] + ('-' + '-'.join(pairs) if pairs else ''))\n"
    )
    return subprocess.run([str(python), "-c", code, MODULE, model_options], check=True,
                          capture_output=True, text=True).stdout.strip()


def read_scores(task_dir: Path) -> List[Score]:
    """Test scores of one task's predictions, one row per metric in its
    ``task_metadata.json`` (mean and std over folds for k-fold tasks)."""
    metadata = json.loads((task_dir / "task_metadata.json").read_text())
    results = json.loads((task_dir / "test.predicted-scores.json").read_text())
    profile = task_dir / "profile.embeddings.json"
    embedding_time_s = (json.loads(profile.read_text())["time_elapsed"]
                        if profile.is_file() else None)
    rows = []
    for metric in metadata["evaluation"]:
        if "aggregated_scores" in results:
            aggregated = results["aggregated_scores"]
            score = aggregated[f"test_{metric}_mean"]
            score_std = aggregated[f"test_{metric}_std"]
        else:
            score, score_std = results["test"][f"test_{metric}"], None
        rows.append(Score(task_dir.name, metric, float(score),
                          None if score_std is None else float(score_std), embedding_time_s))
    return rows


def format_table(rows: List[Score]) -> str:
    """Fixed-width text table of the scores."""
    header = ("task", "metric", "score", "embedding time (s)")
    lines = [header]
    for row in rows:
        score = f"{row.score:.4f}"
        if row.score_std is not None:
            score += f" ± {row.score_std:.4f}"
        seconds = "" if row.embedding_time_s is None else f"{row.embedding_time_s:.1f}"
        lines.append((row.task, row.metric, score, seconds))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def write_scores(rows: List[Score], out: Path) -> None:
    (out / "scores.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    with open(out / "scores.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Score.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


# main

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks-dir", type=Path, required=True,
                        help="hearpreprocess output: one folder per task")
    parser.add_argument("--venv", type=Path, default=REPO_DIR / ".hear-venv",
                        help="evaluation venv from setup_venv.sh (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=None,
                        help="checkpoint for load_model (default: the shipped weights)")
    parser.add_argument("--model-options", default="{}",
                        help='JSON dict of load_model options, e.g. \'{"layer": 8}\'')
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: runs/hear/<time> in the repo)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse a non-empty --out; heareval skips finished tasks")
    parser.add_argument("--grid", default="faster", choices=("default", "fast", "faster"),
                        help="heareval's hyperparameter grid (default: %(default)s)")
    parser.add_argument("--grid-points", type=int, default=1,
                        help="grid points heareval tries per task (default: %(default)s)")
    parser.add_argument("--nice", type=int, default=10,
                        help="niceness for the tools, to share the CPU (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        options = json.loads(args.model_options)
    except json.JSONDecodeError as err:
        parser.error(f"--model-options is not JSON: {err}")
    if not isinstance(options, dict):
        parser.error(f"--model-options must be a JSON dict, got {args.model_options!r}")
    if args.grid_points < 1:
        parser.error(f"--grid-points must be >= 1, got {args.grid_points}")
    if args.out is None:
        args.out = REPO_DIR / "runs" / "hear" / time.strftime("%Y%m%d-%H%M%S")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    python = args.venv / "bin" / "python"
    if not python.is_file():
        log(f"no venv at {args.venv}; build it with benchmarks/hear/setup_venv.sh {args.venv}")
        return 2
    tasks_dir = args.tasks_dir.resolve()
    tasks = find_tasks(tasks_dir) if tasks_dir.is_dir() else []
    if not tasks:
        log(f"no tasks (folders with task_metadata.json) in {tasks_dir}")
        return 2
    out = args.out.resolve()
    if out.is_dir() and any(out.iterdir()) and not args.resume:
        log(f"{out} is not empty: pass --resume to continue that run, or a new --out")
        return 2
    log_dir = out / "run-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    model = [] if args.model is None else [str(args.model.resolve())]
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", TF_CPP_MIN_LOG_LEVEL="2")
    os.nice(args.nice)  # inherited by every tool below
    log(f"{len(tasks)} task(s) from {tasks_dir}; output in {out}")

    validator = [str(args.venv / "bin" / "hear-validator"), MODULE]
    if not run_step("validator", validator + [a for m in model for a in ("-m", m)],
                    cwd=out, log_dir=log_dir, env=env):
        return 1

    name = embeddings_name(python, args.model_options)
    failed = []
    for task in tasks:
        command = [str(python), "-m", "heareval.embeddings.runner", MODULE,
                   "--tasks-dir", str(tasks_dir), "--task", task.name,
                   "--embeddings-dir", "embeddings", "--model-options", args.model_options]
        command += [a for m in model for a in ("--model", m)]
        if not run_step(f"embeddings-{task.name}", command, cwd=out, log_dir=log_dir, env=env):
            failed.append(task.name)
            continue
        # A relative path, so heareval's ./logs/<path> stays inside OUT.
        command = [str(python), str(HERE / "launcher.py"), f"embeddings/{name}/{task.name}",
                   "--grid", args.grid, "--grid-points", str(args.grid_points)]
        if not run_step(f"predictions-{task.name}", command, cwd=out, log_dir=log_dir, env=env):
            failed.append(task.name)

    rows = [row for task in tasks if task.name not in failed
            for row in read_scores(out / "embeddings" / name / task.name)]
    write_scores(rows, out)
    print(format_table(rows))
    if failed:
        log(f"failed: {', '.join(failed)} (logs in {log_dir})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
