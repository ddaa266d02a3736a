"""Speed and memory of kwmlp on this machine: prints a table, writes JSON.

    python benchmarks/bench.py                       # this checkout, default options
    python benchmarks/bench.py --variant baseline='{"frontend": "nnaudio", "chunk_batch_size": 1000000}'
    python benchmarks/bench.py --checkout other=/path/to/other/checkout \
        --checkout-options '{"chunk_batch_size": 1000000}'
    python benchmarks/bench.py --path ort=onnxruntime --path compile=compile --path bf16=bf16
    python benchmarks/bench.py --variant fft-compile='{"frontend": "fft", "path": "compile"}'

Every (checkout, variant, case) runs in its own subprocess, so peak RSS is that
case's own, and all of them run in one invocation, so their ratios are
comparable (absolute times on a shared machine are not, across runs). The whole
set runs ``--rounds`` times, interleaved, so a slow spell of the machine hits
every run alike; each figure is the median over all rounds of ``--repeats``
timed calls, each subprocess warming up once first. ``--env NAME=JSON`` sets
environment variables for the run called NAME (e.g. ``KWMLP_TUNE_MALLOC``).
A ``--variant`` may name a ``"path"`` among its options to combine both. Every
run of this checkout with other options or another path also reports the max
absolute error of its timestamp embeddings against the default options.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16_000
CASES = {  # name: (n_clips, seconds per clip)
    "a: 16 x 2 s": (16, 2.0),
    "b: 64 x 10 s": (64, 10.0),
    "c: 1 x 600 s": (1, 600.0),
}


# ----------------------------------------------------------------- worker
def _times(fn, repeats: int) -> list:
    """Seconds of ``repeats`` calls of ``fn``, after one warm-up call."""
    fn()  # warm-up: allocator, thread pool, lazy init
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(case: str, options: dict, repeats: int, threads: int) -> dict:
    """Time one case in this process; returns lists of seconds and peak RSS."""
    import torch

    import kwmlp
    from kwmlp import hear
    from kwmlp.pooling import scene_embedding

    torch.set_num_threads(threads)
    n_clips, seconds = CASES[case]
    audio = (torch.rand(n_clips, int(seconds * SAMPLE_RATE),
                        generator=torch.Generator().manual_seed(0)) - 0.5) * 0.5
    path = options.pop("path", None)
    weights = options.pop("weights", "")
    model = kwmlp.load_model(weights, device="cpu", **options)
    audio_seconds = n_clips * seconds
    result = {"audio_seconds": audio_seconds}
    if path:
        # The pipeline calls model.embed_chunks per batch of 1 s chunks; the
        # instance attribute shadows the method, so padding, stitching and
        # pooling stay the default code and only the chunk computation changes.
        model.embed_chunks = chunk_path(path, model, threads)
    result["scene_s"] = _times(lambda: kwmlp.get_scene_embeddings(audio, model), repeats)
    result["timestamp_s"] = _times(
        lambda: kwmlp.get_timestamp_embeddings(audio, model), repeats)
    result["peak_rss_mb"] = _peak_rss_mb()  # of the API calls, before the stage split
    if path or options:  # error against the default options, the exact path
        reference = kwmlp.get_timestamp_embeddings(
            audio, kwmlp.load_model(weights, device="cpu"))[0]
        embedding = kwmlp.get_timestamp_embeddings(audio, model)[0]
        result["max_abs_err"] = (embedding - reference).abs().max().item()

    if path:  # the stage split below times the default chunk path, not this one
        return result
    try:  # the stage split needs this checkout's internals; older ones lack them
        from kwmlp.frontend import chunk_batches
    except ImportError:
        return result
    try:
        from kwmlp import embedder as pipeline
    except ImportError:  # checkouts from before the pipeline had its own module
        pipeline = hear
    # Stage split, on the same chunk batches the API builds.
    with torch.inference_mode():
        batches = list(chunk_batches(audio, batch_size=model.chunk_batch_size,
                                     pad_start=pipeline.PAD_START_SAMPLES,
                                     pad_end=pipeline.PAD_END_SAMPLES))
        mfccs = [model.mfcc(b) for b in batches]
        frames = torch.cat([model.encoder.embed(m, model.layer) for m in mfccs])
        frames = pipeline.extend_chunk_frames(frames).reshape(n_clips, -1, frames.shape[-1])
        result["frontend_s"] = _times(lambda: [model.mfcc(b) for b in batches], repeats)
        result["encoder_s"] = _times(
            lambda: [model.encoder.embed(m, model.layer) for m in mfccs], repeats)
        result["pooling_s"] = _times(
            lambda: scene_embedding(frames[:, 1:-1], model.pooling), repeats)
    result["n_chunks"] = sum(len(b) for b in batches)
    return result


# ------------------------------------------------------ faster chunk paths
PATHS = ("onnxruntime", "compile", "freeze", "bf16")


def chunk_path(kind: str, model, threads: int):
    """A replacement for ``model.embed_chunks``: ``(n, 16000)`` chunks ->
    ``(n, 98, dim)`` float32 embeddings, computed another way.

    onnxruntime: the graph of ``kwmlp export`` (nnAudio STFT MFCC + encoder) on
    onnxruntime's CPU provider with ``threads`` intra-op threads; compile:
    ``torch.compile`` of the encoder (default inductor backend, static shapes);
    freeze: the encoder traced, frozen and ``torch.jit.optimize_for_inference``
    (oneDNN fusions); bf16: the encoder under CPU autocast to bfloat16 (matrix
    products in bf16, norms and the residual stream as autocast leaves them)."""
    import torch

    if kind == "onnxruntime":
        import tempfile

        import onnxruntime as ort

        from kwmlp.onnx_export import export_onnx

        onnx_path = Path(tempfile.mkdtemp()) / "kwmlp.onnx"
        export_onnx(model, onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(onnx_path), options,
                                       providers=["CPUExecutionProvider"])
        return lambda chunks: torch.from_numpy(session.run(None, {"chunks": chunks.numpy()})[0])
    if kind == "compile":
        encode = torch.compile(model.encoder.embed, dynamic=False)
        return lambda chunks: encode(model.mfcc(chunks), model.layer)
    if kind == "freeze":
        class Embed(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = model.encoder

            def forward(self, mfcc):
                return self.encoder.embed(mfcc, model.layer)

        example = model.mfcc(torch.zeros(model.chunk_batch_size, SAMPLE_RATE))
        with torch.no_grad():
            frozen = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.trace(Embed().eval(), example)))
        return lambda chunks: frozen(model.mfcc(chunks))
    if kind == "bf16":
        def encode_bf16(chunks):
            mfcc = model.mfcc(chunks)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model.encoder.embed(mfcc, model.layer).float()
        return encode_bf16
    raise ValueError(f"unknown path {kind!r}; one of {PATHS}")


# ------------------------------------------------------------ model figures
def model_figures() -> dict:
    """Parameters and FLOPs per 1 s chunk, counted from the layer shapes
    (a multiply-add = 2 FLOPs; norms, GELU and the frontend excluded)."""
    from kwmlp.encoder import KWMLP, count_parameters

    model = KWMLP()
    t, f, d, dff = model.n_frames, model.n_mfcc, model.dim, model.blocks[0].proj_in.out_features
    macs_patch = t * f * d
    macs_block = t * d * dff + t * t * (dff // 2) + t * (dff // 2) * d  # U, G, V
    macs = macs_patch + model.depth * macs_block
    encoder_params = count_parameters(model) - count_parameters(model.head) \
        - count_parameters(model.head_norm)
    return {"params_total": count_parameters(model), "params_encoder": encoder_params,
            "mflops_per_chunk": 2 * macs / 1e6}


def gemm_peak_gflops(threads: int, dtype: str = "float32", size: int = 2048) -> float:
    """Practical peak: a large square matmul of ``dtype`` on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = (torch.randn(size, size).to(getattr(torch, dtype)) for _ in range(2))
    seconds = statistics.median(_times(lambda: a @ b, 5))
    return 2 * size ** 3 / seconds / 1e9


# ------------------------------------------------------------ orchestrator
def _medians(row: dict) -> dict:
    """Each ``*_s`` list of seconds -> its median; the list kept as ``*_all``."""
    out = dict(row)
    for key, value in row.items():
        if key.endswith("_s"):
            out[key], out[key[:-2] + "_all"] = statistics.median(value), value
    return out


def run_case(checkout: Path, case: str, options: dict, repeats: int, threads: int,
             extra_env: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS=str(threads), **extra_env)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case,
           "--options", json.dumps(options), "--repeats", str(repeats), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker failed for {checkout} {case}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(rows: list, figures: dict) -> None:
    print(f"kwmlp: {figures['params_encoder']:,} encoder parameters "
          f"({figures['params_total']:,} with head), {figures['mflops_per_chunk']:.1f} MFLOPs "
          f"per 1 s chunk (encoder, from layer shapes); GEMM peak here "
          f"{figures['gemm_peak_gflops']:.0f} GFLOP/s on {figures['threads']} threads")
    head = (f"{'run':<22} {'case':<13} {'scene xRT':>9} {'stamp xRT':>9} {'frontend':>8} "
            f"{'encoder':>8} {'pooling':>8} {'enc GFLOP/s':>11} {'peak RSS':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "encoder_s" in r:
            stages = r["frontend_s"] + r["encoder_s"] + r["pooling_s"]
            gflops = figures["mflops_per_chunk"] * r["n_chunks"] / r["encoder_s"] / 1e3
            split = (f"{100 * r['frontend_s'] / stages:>7.0f}% "
                     f"{100 * r['encoder_s'] / stages:>7.0f}% "
                     f"{100 * r['pooling_s'] / stages:>7.1f}% {gflops:>11.1f}")
        else:
            split = f"{'(no stage split for this checkout)':>38}"
        error = ""
        if "max_abs_err" in r:  # in place of a missing stage split, else at the end
            note = f"max |error| vs default: {r['max_abs_err']:.2g}"
            if "encoder_s" in r:
                error = f"  {note}"
            else:
                split = f"{note:>38}"
        print(f"{r['run']:<22} {r['case']:<13} {r['audio_seconds'] / r['scene_s']:>9.0f} "
              f"{r['audio_seconds'] / r['timestamp_s']:>9.0f} {split} "
              f"{r['peak_rss_mb']:>6.0f} MB{error}")


def parse_named(values: list, what: str) -> dict:
    named = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep:
            raise SystemExit(f"--{what} takes NAME=VALUE, got {value!r}")
        named[name] = rest
    return named


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=JSON load_model options to run beside the default")
    parser.add_argument("--path", action="append", default=[],
                        help=f"NAME=KIND: run the chunk computation another way, KIND one of "
                             f"{', '.join(PATHS)} (see chunk_path); reports its max error")
    parser.add_argument("--checkout", action="append", default=[],
                        help="NAME=PATH of another kwmlp checkout to run side by side")
    parser.add_argument("--checkout-options", default="{}",
                        help="JSON load_model options for the --checkout runs")
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES),
                        help="which cases, by letter (default: a,b,c)")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=JSON environment variables for the run called NAME")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per subprocess")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times the whole interleaved set runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default="", help="checkpoint (default: shipped weights)")
    parser.add_argument("--json", default="benchmarks/results.json", help="where to write JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.options), args.repeats, args.threads)))
        return

    runs = [("this", REPO, {})]
    variants = parse_named(args.variant, "variant")
    runs += [(name, REPO, json.loads(opts)) for name, opts in variants.items()]
    runs += [(name, REPO, {"path": kind})
             for name, kind in parse_named(args.path, "path").items()]
    runs += [(name, Path(path).resolve(), json.loads(args.checkout_options))
             for name, path in parse_named(args.checkout, "checkout").items()]
    envs = {name: json.loads(value) for name, value in parse_named(args.env, "env").items()}
    cases = [c for c in CASES if c[0] in args.cases.split(",")]
    figures = dict(model_figures(), gemm_peak_gflops=gemm_peak_gflops(args.threads),
                   threads=args.threads, rounds=args.rounds, repeats=args.repeats)
    rows = {}
    for round_ in range(args.rounds):
        for case in cases:  # interleave runs within a case so drift hits them alike
            for name, checkout, options in runs:
                options = dict(options, **({"weights": args.weights} if args.weights else {}))
                got = run_case(checkout, case, options, args.repeats, args.threads,
                               envs.get(name, {}))
                row = rows.setdefault((name, case), dict(
                    run=name, case=case, options=options, checkout=str(checkout),
                    env=envs.get(name, {}), peak_rss_mb=0.0))
                row["peak_rss_mb"] = max(row["peak_rss_mb"], got.pop("peak_rss_mb"))
                for key, value in got.items():
                    row[key] = row.get(key, []) + value if isinstance(value, list) else value
                print(f"  done: round {round_ + 1} {name} {case}", file=sys.stderr)
    rows = [_medians(row) for row in rows.values()]
    print_table(rows, figures)
    Path(args.json).write_text(json.dumps({"figures": figures, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
