"""End-to-end corpus throughput: generate a mixed corpus, embed it with each
engine and format, interleaved in one invocation, and say where time goes.

    python benchmarks/corpus.py                          # 1,000 files, every run, 1 round
    python benchmarks/corpus.py --rounds 3 --corpus-dir /tmp/kwmlp-corpus --json corpus.json
    python benchmarks/corpus.py --files 8 --max-seconds 3 --runs single-npz,local2-parquet
    python benchmarks/corpus.py --runs single-npz --checkout before=/path/to/other/checkout

The corpus (seeded: the same files from the same ``--seed``) mixes WAV, FLAC
and OGG/Vorbis at 16, 44.1 and 48 kHz, mono and stereo, 2 s to
``--max-seconds`` (30) each, written to ``--corpus-dir`` (kept, and reused
when its parameters match) or to a temporary folder (deleted). It is never
part of the repository.

Each run is ``kwmlp embed <corpus> -r -o <fresh folder> ...`` in a
subprocess (``--checkout NAME=PATH`` adds a single-npz run of another
checkout's code, interleaved with the rest, for before/after figures); its
wall time covers start-up, model loading and (for Ray) starting a local Ray
instance. Peak RSS is the largest sum of the
resident memory of the run's process tree (the command, its decoding
workers, Ray's processes), sampled every ``RSS_SAMPLE_S``. The runs are repeated
``--rounds`` times in a rotating order, so a slow spell of a shared machine
hits all alike; each figure is the median over rounds. The stage split
(decode, resample, embed, write) times each stage separately, in one
process, on up to ``--stage-files`` of the files.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = {  # name: extra `kwmlp embed` arguments
    "single-npz": [],  # the single-process run, no manifest
    "single-resampy": ["--resampler", "resampy"],  # as before soxr became the default
    "local2-npz": ["--engine", "local", "--workers", "2"],
    "ray2-npz": ["--engine", "ray", "--workers", "2"],
    "single-parquet": ["--engine", "local", "--format", "parquet"],
    "local2-parquet": ["--engine", "local", "--workers", "2", "--format", "parquet"],
    "ray2-parquet": ["--engine", "ray", "--workers", "2", "--format", "parquet"],
}
FORMATS = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}
SAMPLE_RATES = (16000, 44100, 48000)
MIN_SECONDS = 2.0
RSS_SAMPLE_S = 0.2
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


# corpus

def make_corpus(folder: Path, n_files: int, max_seconds: float, seed: int) -> float:
    """Write the corpus (see the module docstring) unless ``folder`` already
    holds this one; returns its seconds of audio."""
    import numpy as np
    import soundfile as sf

    params = {"files": n_files, "max_seconds": max_seconds, "seed": seed}
    stamp = folder / "corpus.json"
    if stamp.exists() and json.loads(stamp.read_text())["params"] == params:
        return json.loads(stamp.read_text())["audio_s"]
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(seed)
    total_s = 0.0
    for i in range(n_files):
        ext = ("wav", "flac", "ogg")[rng.integers(3)]
        rate = int(rng.choice(SAMPLE_RATES))
        channels = int(rng.integers(1, 3))
        seconds = float(rng.uniform(min(MIN_SECONDS, max_seconds), max_seconds))
        n = round(seconds * rate)
        # noise and a tone under a random envelope that changes every 0.1 s
        envelope = np.repeat(rng.uniform(0.05, 0.4, n // (rate // 10) + 1), rate // 10)[:n]
        tone = np.sin(2 * np.pi * rng.uniform(100, 3000) * np.arange(n) / rate)
        audio = (envelope * (0.5 * rng.standard_normal(n) + 0.5 * tone))[:, None]
        audio = np.repeat(audio, channels, axis=1).astype(np.float32)
        path = folder / f"d{i % 10}" / f"clip{i:05d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio, rate, subtype=FORMATS[ext])
        total_s += n / rate
    stamp.write_text(json.dumps({"params": params, "audio_s": total_s}))
    return total_s


# one run

def _tree_rss_bytes(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (Linux /proc)."""
    parent, rss = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(entry.name)
        parent[pid], rss[pid] = int(fields[1]), int(fields[21]) * PAGE_BYTES  # ppid, rss pages
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(rss.get(pid, 0) for pid in tree)


def run_once(name: str, arguments: list, repo: Path, corpus: Path, out: Path, model: str,
             audio_s: float, n_files: int) -> dict:
    """Run ``kwmlp embed ... arguments`` with the code of ``repo``; wall time
    and peak RSS."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "kwmlp", "embed", str(corpus), "-r", "-o", str(out), "-q",
               *arguments, *(["--model", model] if model else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, env=env)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss_bytes(process.pid))
            time.sleep(RSS_SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    wall_s = time.perf_counter() - start
    sampler.join()
    expected = f"{n_files} files embedded, 0 skipped (outputs exist), 0 failed"
    if process.returncode != 0 or expected not in stderr:
        raise RuntimeError(f"{name}: exit {process.returncode}, expected '{expected}':\n"
                           f"{stderr[-3000:]}")
    return {"run": name, "wall_s": wall_s, "audio_s_per_s": audio_s / wall_s,
            "files_per_s": n_files / wall_s, "peak_rss_mb": peak[0] / 2**20}


# where time goes

def stage_split(corpus: Path, n_files: int, model_path: str) -> dict:
    """Seconds spent decoding (libsndfile + downmix), resampling (soxr),
    embedding and writing (``np.savez``, to a temporary folder) ``n_files`` of
    the corpus, each stage timed on its own, in this process."""
    import numpy as np
    import soundfile as sf
    import torch

    import kwmlp
    from kwmlp.audio import downmix, resample
    from kwmlp.files import find_audio_files

    model = kwmlp.load_model(model_path, device="cpu")
    paths = [path for path, _ in find_audio_files([corpus], recursive=True)[0]][:n_files]
    seconds = {"decode": 0.0, "resample": 0.0, "embed": 0.0, "write": 0.0}
    with tempfile.TemporaryDirectory() as scratch:
        for i, path in enumerate(paths):
            start = time.perf_counter()
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            mono = downmix(audio)
            decoded = time.perf_counter()
            mono = resample(mono, rate)
            resampled = time.perf_counter()
            arrays = {k: v[0].numpy() for k, v in model.embed(torch.from_numpy(mono)[None]).items()}
            embedded = time.perf_counter()
            np.savez(Path(scratch) / f"{i}.npz", **arrays)
            written = time.perf_counter()
            seconds["decode"] += decoded - start
            seconds["resample"] += resampled - decoded
            seconds["embed"] += embedded - resampled
            seconds["write"] += written - embedded
    total = sum(seconds.values())
    return {"files": len(paths), "seconds": seconds,
            "shares": {stage: s / total for stage, s in seconds.items()}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the corpus")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="longest clip (clips are 2 s to this)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus-dir", type=Path,
                        help="generate (or reuse) the corpus here; default: a temporary folder")
    parser.add_argument("--runs", default=",".join(RUNS),
                        help=f"comma-separated, of: {', '.join(RUNS)}")
    parser.add_argument("--checkout", action="append", default=[],
                        help="NAME=PATH: also a single-npz run of the kwmlp checkout at PATH")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--stage-files", type=int, default=100,
                        help="files timed stage by stage (0: skip the split)")
    parser.add_argument("--model", default="", help="checkpoint (default: shipped weights)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    runs = args.runs.split(",")
    unknown = set(runs) - set(RUNS)
    if unknown:
        parser.error(f"unknown runs {sorted(unknown)}; choose from {list(RUNS)}")
    setups = {name: (RUNS[name], REPO) for name in runs}  # name: (arguments, code)
    for value in args.checkout:
        name, sep, path = value.partition("=")
        if not sep or name in setups or not (Path(path) / "kwmlp").is_dir():
            parser.error(f"--checkout takes NAME=PATH of a kwmlp checkout, with a new "
                         f"NAME; got {value!r}")
        setups[name] = (RUNS["single-npz"], Path(path).resolve())
    runs = list(setups)

    with tempfile.TemporaryDirectory(prefix="kwmlp-corpus-") as scratch:
        corpus = args.corpus_dir or Path(scratch) / "corpus"
        audio_s = make_corpus(corpus, args.files, args.max_seconds, args.seed)
        print(f"corpus: {args.files} files, {audio_s:.0f} s of audio, in {corpus}", flush=True)
        figures = {name: [] for name in runs}
        for round_index in range(args.rounds):
            shift = round_index % len(runs)
            for name in runs[shift:] + runs[:shift]:
                figure = run_once(name, *setups[name], corpus, Path(scratch) / "out",
                                  args.model, audio_s, args.files)
                figures[name].append(figure)
                print(f"round {round_index + 1}: {name}: {figure['audio_s_per_s']:.1f} audio-s/s, "
                      f"{figure['files_per_s']:.2f} files/s, {figure['peak_rss_mb']:.0f} MB",
                      flush=True)
        stages = stage_split(corpus, args.stage_files, args.model) if args.stage_files else None

    rows = []
    for name in runs:
        rows.append({"run": name, "arguments": setups[name][0], "code": str(setups[name][1]),
                     **{key: statistics.median(f[key] for f in figures[name])
                        for key in ("wall_s", "audio_s_per_s", "files_per_s", "peak_rss_mb")},
                     "all": figures[name]})
    base = next((row for row in rows if row["run"] == "single-npz"), None)
    print("\n| run | audio s / wall s | files / s | vs single-npz | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        ratio = f"{row['audio_s_per_s'] / base['audio_s_per_s']:.2f}x" if base else ""
        print(f"| {row['run']} | {row['audio_s_per_s']:.1f} | {row['files_per_s']:.2f} | "
              f"{ratio} | {row['peak_rss_mb']:.0f} MB |")
    if stages:
        print(f"\nwhere time goes ({stages['files']} files, one process, stage by stage): "
              + ", ".join(f"{stage} {share:.0%}" for stage, share in stages["shares"].items()))
    result = {"corpus": {"files": args.files, "audio_s": audio_s, "max_seconds": args.max_seconds,
                         "seed": args.seed},
              "rounds": args.rounds, "rows": rows, "stages": stages}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
