"""Per-hop compute of ``kwmlp.Stream`` on one thread: how long ``push`` of one
hop of audio takes (p50/p99 ms), and the stream's algorithmic latency; with
``--memory``, the peak memory of one long push beside offline ``recognize``.

    PYTHONPATH=. python benchmarks/stream.py                      # 60 s, 100 ms hops
    PYTHONPATH=. python benchmarks/stream.py --hop-ms 50 --seconds 120 --json stream.json
    PYTHONPATH=. python benchmarks/stream.py --memory --hop-ms 10 --seconds 60

Memory: each of ``push`` (the whole audio in one ``Stream.push``, then ``flush``)
and ``recognize`` (the same audio offline, same hop) runs in a fresh process,
after a 2 s warm-up through the same path; the figure is the growth of the
process' peak RSS (``ru_maxrss``) over what it was after the warm-up.

The audio is tests/data/example.wav (ten spoken keywords) repeated. The
stream first takes 1 s (warm-up: the first window and chunk), then one
``push`` per hop is timed. A push computes one 1 s keyword window (the head,
all 12 blocks), and every tenth 100 ms push also completes a 1 s embedding
chunk, so p50 is one window and p99 one window plus one chunk. Real-time
headroom = hop / p99: how many such streams one core keeps up with.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

import kwmlp
from kwmlp.frontend import SAMPLE_RATE
from kwmlp.keywords import hop_samples

EXAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "example.wav"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation, numpy's default."""
    return float(np.percentile(np.asarray(values), q))


def measure(model: kwmlp.KWMLPEmbedder, *, seconds: float, hop_ms: float) -> dict:
    """Milliseconds of each timed hop push, after a 1 s warm-up push."""
    hop = hop_samples(hop_ms)
    n_hops = int(round(seconds * SAMPLE_RATE / hop))
    speech, _ = kwmlp.load_audio(EXAMPLE)
    audio = torch.from_numpy(np.resize(speech, SAMPLE_RATE + n_hops * hop))
    stream = kwmlp.Stream(model, hop_ms=hop_ms)
    stream.push(audio[:SAMPLE_RATE])
    push_ms = []
    for k in range(n_hops):
        block = audio[SAMPLE_RATE + k * hop:SAMPLE_RATE + (k + 1) * hop]
        start = time.perf_counter()
        stream.push(block)
        push_ms.append(1000 * (time.perf_counter() - start))
    return {"hop_ms": hop_ms, "hops": n_hops, "threads": torch.get_num_threads(),
            "push_ms_p50": percentile(push_ms, 50), "push_ms_p99": percentile(push_ms, 99),
            "push_ms_mean": statistics.fmean(push_ms), "push_ms_all": push_ms}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_worker(kind: str, seconds: float, hop_ms: float) -> dict:
    """Peak-RSS growth (MB) of ``kind`` ("push" or "recognize") on ``seconds`` of
    audio, in this process (run it in a fresh one)."""
    torch.set_num_threads(1)
    model = kwmlp.load_model(device="cpu")
    speech, _ = kwmlp.load_audio(EXAMPLE)
    audio = torch.from_numpy(np.resize(speech, int(seconds * SAMPLE_RATE)))

    def run(samples: torch.Tensor) -> None:
        if kind == "push":
            stream = kwmlp.Stream(model, hop_ms=hop_ms)
            stream.push(samples)
            stream.flush()
        else:
            kwmlp.recognize(samples[None], model, hop_ms=hop_ms)

    run(audio[:2 * SAMPLE_RATE])
    before = _peak_rss_mb()
    run(audio)
    return {"kind": kind, "seconds": seconds, "hop_ms": hop_ms,
            "peak_rss_growth_mb": round(_peak_rss_mb() - before, 1)}


def measure_memory(seconds: float, hop_ms: float) -> dict:
    """``memory_worker`` for a push and for recognize, each in a fresh process."""
    figures = {}
    for kind in ("push", "recognize"):
        out = subprocess.run([sys.executable, __file__, "--memory-worker", kind, "--seconds",
                              str(seconds), "--hop-ms", str(hop_ms)],
                             capture_output=True, text=True, check=True)
        figures[kind] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_growth_mb"]
    return {"seconds": seconds, "hop_ms": hop_ms, "peak_rss_growth_mb": figures,
            "ratio": round(figures["push"] / max(figures["recognize"], 0.1), 2)}


LATENCY = """algorithmic latency (audio ms from a sound to its output, compute excluded):
  keyword window: out when its last sample arrives (0 ms); a word is scored once a whole 1 s
    window holds it, i.e. within one hop of the word's end
  detection: when its run of firing windows ends, up to ~1 s after the word ends
  timestamp embedding: frame at t ms (window t-15 .. t+15) out when its 1 s chunk completes
    (audio at 1000 c + 995 ms): 5..995 ms after t, 500 ms on average"""


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="checkpoint (default: shipped weights)")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio timed")
    parser.add_argument("--hop-ms", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--memory", action="store_true",
                        help="peak memory of one long push beside offline recognize")
    parser.add_argument("--memory-worker", choices=("push", "recognize"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args.seconds, args.hop_ms)))
        return
    if args.memory:
        figures = measure_memory(args.seconds, args.hop_ms)
        growth = figures["peak_rss_growth_mb"]
        print(f"{args.seconds:g} s at {args.hop_ms:g} ms hops, peak RSS growth: one push "
              f"{growth['push']:.1f} MB, offline recognize {growth['recognize']:.1f} MB "
              f"(push / recognize {figures['ratio']:.2f})")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))
        return
    torch.set_num_threads(args.threads)
    model = kwmlp.load_model(args.model, device="cpu")
    figures = measure(model, seconds=args.seconds, hop_ms=args.hop_ms)
    print(f"model {model.model_id()}, {figures['threads']} thread(s), {figures['hops']} hops "
          f"of {args.hop_ms:g} ms")
    print(f"push per hop: p50 {figures['push_ms_p50']:.2f} ms, p99 {figures['push_ms_p99']:.2f} "
          f"ms, mean {figures['push_ms_mean']:.2f} ms; real-time headroom (hop / p99) "
          f"{args.hop_ms / figures['push_ms_p99']:.1f}x")
    print(LATENCY)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
