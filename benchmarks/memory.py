"""Peak resident memory of scene (and timestamp) embeddings for long clips.

    python benchmarks/memory.py [--minutes 5,15,30,60] [--options '{"chunk_batch_size": 128}']
    python benchmarks/memory.py --minutes 133.33 --sounds 4000  # HEAR: a batch of 2 s sounds

Each length runs in a fresh subprocess; the figure is that process's peak RSS
(``ru_maxrss``), so it includes Python, torch and the model (the "idle" row).
The audio itself is float32: 3.84 MB per minute. ``--sounds N`` splits each
length into N equal sounds passed as one batch.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SAMPLE_RATE = 16_000


def worker(minutes: float, kind: str, sounds: int, options: dict) -> dict:
    import resource

    import torch

    import kwmlp

    torch.set_num_threads(2)
    model = kwmlp.load_model(options.pop("weights", ""), device="cpu", **options)
    n_samples = int(minutes * 60 * SAMPLE_RATE) // sounds
    audio = torch.empty(sounds, n_samples).uniform_(-0.25, 0.25) if minutes else None
    start = time.perf_counter()
    if kind == "scene" and audio is not None:
        kwmlp.get_scene_embeddings(audio, model)
    elif kind == "timestamp" and audio is not None:
        kwmlp.get_timestamp_embeddings(audio, model)
    seconds = time.perf_counter() - start
    return {"minutes": minutes, "kind": kind, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="5,15,30,60")
    parser.add_argument("--kinds", default="scene,timestamp")
    parser.add_argument("--sounds", type=int, default=1, help="sounds in the batch")
    parser.add_argument("--options", default="{}", help="JSON load_model options")
    parser.add_argument("--json", default="benchmarks/memory.json")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        minutes, kind = args.worker
        print(json.dumps(worker(float(minutes), kind, args.sounds, json.loads(args.options))))
        return

    rows = []
    lengths = [0.0] + [float(m) for m in args.minutes.split(",")]
    for kind in args.kinds.split(","):
        for minutes in lengths:
            cmd = [sys.executable, __file__, "--worker", str(minutes), kind,
                   "--sounds", str(args.sounds), "--options", args.options]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'kind':<10} {'minutes':>7} {'peak RSS':>10} {'above idle':>11} {'per minute':>11} "
          f"{'seconds':>8}")
    for kind in args.kinds.split(","):
        idle = next(r for r in rows if r["kind"] == kind and r["minutes"] == 0)["peak_rss_mb"]
        for r in (r for r in rows if r["kind"] == kind):
            above = r["peak_rss_mb"] - idle
            per_minute = above / r["minutes"] if r["minutes"] else 0.0
            print(f"{kind:<10} {r['minutes']:>7.0f} {r['peak_rss_mb']:>7.0f} MB {above:>8.0f} MB "
                  f"{per_minute:>8.1f} MB {r['seconds']:>8.1f}")
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
