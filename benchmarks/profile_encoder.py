"""Where the encoder's time goes: a torch.profiler table of its ops, and the
FLOP rate it reaches against a large GEMM on the same threads and against the
CPU's nominal FP32 peak (threads x clock x FP32 FLOPs per cycle per core).

    python benchmarks/profile_encoder.py [--batch 64] [--threads 2] [--iters 20]

``--flops-per-cycle`` defaults to what /proc/cpuinfo's flags suggest: 64 with
AVX-512 (two 512-bit FMA pipes, 2 x 16 lanes x 2 FLOPs, as on AMD Zen 5 and
Intel server cores), 32 with AVX2 + FMA only (two 256-bit pipes, e.g. Zen 3).
The clock is the one /proc/cpuinfo reports, which on a VM is the nominal clock,
so the nominal peak is an estimate, not a measurement.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import _times, gemm_peak_gflops, model_figures  # noqa: E402

import kwmlp  # noqa: E402


GEMM_OPS = {"aten::addmm", "aten::baddbmm", "aten::mm", "aten::bmm", "aten::matmul"}


def _cpuinfo_field(name: str) -> str:
    """The first ``name : value`` of /proc/cpuinfo ("" when absent)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(name):
            return line.split(":", 1)[1].strip()
    return ""


def default_flops_per_cycle() -> int:
    """FP32 FLOPs per cycle per core from the SIMD width the CPU reports."""
    flags = _cpuinfo_field("flags").split()
    return 64 if "avx512f" in flags else 32


def nominal_peak_gflops(threads: int, flops_per_cycle: int) -> float:
    """threads x clock (the first ``cpu MHz`` in /proc/cpuinfo) x FLOPs per cycle."""
    mhz = _cpuinfo_field("cpu MHz")
    return threads * float(mhz) * flops_per_cycle / 1e3 if mhz else float("nan")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=kwmlp.embedder.DEFAULT_CHUNK_BATCH_SIZE,
                        help="1 s chunks per forward pass (default: the library's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--flops-per-cycle", type=int, default=None,
                        help="FP32 FLOPs per cycle per core for the nominal peak "
                             "(default: 64 with AVX-512, else 32)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model = kwmlp.load_model(device="cpu")
    chunks = (torch.rand(args.batch, kwmlp.frontend.CHUNK_SAMPLES,
                         generator=torch.Generator().manual_seed(0)) - 0.5) * 0.5
    with torch.inference_mode():
        mfcc = model.mfcc(chunks)
        embed = lambda: model.encoder.embed(mfcc, model.layer)  # noqa: E731
        times = _times(embed, args.iters)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.iters):
                embed()

    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"encoder ops, {args.batch} chunks x {args.iters} passes, {args.threads} threads "
          "(share of self CPU time):")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        print(f"  {e.key:<28} {100 * e.self_cpu_time_total / total:5.1f} %  ({e.count} calls)")
    gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS)
    print(f"  matrix products {100 * gemm / total:.0f} %, everything else (norms, GELU, "
          f"gating, residuals, copies) {100 - 100 * gemm / total:.0f} %")
    seconds = statistics.median(times)
    gflops = model_figures()["mflops_per_chunk"] * args.batch / seconds / 1e3
    peak = gemm_peak_gflops(args.threads)
    flops_per_cycle = args.flops_per_cycle or default_flops_per_cycle()
    nominal = nominal_peak_gflops(args.threads, flops_per_cycle)
    print(f"encoder: {args.batch / seconds:.0f} chunks/s = {gflops:.0f} GFLOP/s")
    print(f"  large 2048^2 GEMM: {peak:.0f} GFLOP/s; encoder reaches {gflops / peak:.0%} of it")
    # Whether bfloat16 products could pay here: without BF16 instructions torch
    # emulates them, far slower than FP32.
    bf16 = gemm_peak_gflops(args.threads, "bfloat16", size=1024)  # 2048 takes minutes
    print(f"  a 1024^2 GEMM in bfloat16: {bf16:.1f} GFLOP/s "
          f"(torch CPU capability: {torch.backends.cpu.get_cpu_capability()})")
    print(f"  nominal peak ({args.threads} x cpuinfo clock x {flops_per_cycle} FLOP/cycle): "
          f"{nominal:.0f} GFLOP/s; encoder reaches {gflops / nominal:.0%}, the GEMM "
          f"{peak / nominal:.0%}")


if __name__ == "__main__":
    main()
