"""Per-hop compute of ``kwmlp.Stream`` on one thread: how long ``push`` of one
hop of audio takes (p50/p99 ms), and the stream's algorithmic latency.

    PYTHONPATH=. python benchmarks/stream.py                      # 60 s, 100 ms hops
    PYTHONPATH=. python benchmarks/stream.py --hop-ms 50 --seconds 120 --json stream.json

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
import statistics
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
    args = parser.parse_args(argv)
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
