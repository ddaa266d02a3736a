"""Resampling to 16 kHz: speed of each resampler, and how far the embeddings move
when kwmlp's default (soxr) replaces resampy (openl3's).

    python benchmarks/resample.py                 # 20 s clips at 44.1 and 48 kHz
    python benchmarks/resample.py --seconds 60 --repeats 7

Prints, per source rate, audio seconds resampled per wall second (x real time,
median of ``--repeats`` timed calls after one warm-up, 1 thread) for resampy
kaiser_best / kaiser_fast, scipy's resample_poly and soxr HQ / VHQ, then the
largest difference between scene and timestamp embeddings of the same real
speech clips resampled by soxr and by resampy, next to what a one-sample delay
of the input does.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's kwmlp, whatever is installed
TARGET_HZ = 16_000
SOURCE_RATES = (44_100, 48_000, 22_050, 8_000)


def resamplers() -> Dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    import resampy
    import soxr
    from scipy.signal import resample_poly

    def poly(x: np.ndarray, rate: int) -> np.ndarray:
        ratio = Fraction(TARGET_HZ, rate)
        return resample_poly(x, ratio.numerator, ratio.denominator)

    return {
        "resampy kaiser_best (openl3)": lambda x, r: resampy.resample(x, r, TARGET_HZ,
                                                                      filter="kaiser_best"),
        "resampy kaiser_fast": lambda x, r: resampy.resample(x, r, TARGET_HZ,
                                                             filter="kaiser_fast"),
        "scipy resample_poly": poly,
        "soxr HQ (kwmlp default)": lambda x, r: soxr.resample(x, r, TARGET_HZ, quality="HQ"),
        "soxr VHQ": lambda x, r: soxr.resample(x, r, TARGET_HZ, quality="VHQ"),
    }


def speech_like(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Noise shaped by a moving formant-like band and a syllable-rate envelope,
    ``(round(seconds * rate),)`` float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    carrier = np.sin(2 * np.pi * np.cumsum(300 + 2500 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)))
                     / rate)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    audio = envelope * (0.3 * carrier + 0.05 * rng.standard_normal(n))
    return (audio / np.abs(audio).max() * 0.7).astype(np.float32)


def time_resamplers(seconds: float, repeats: int) -> None:
    print(f"resampling one {seconds:g} s float32 clip to 16 kHz, 1 thread, x real time "
          f"(median of {repeats}):")
    print(f"{'resampler':30s}" + "".join(f"{rate:>10d}" for rate in SOURCE_RATES))
    for name, fn in resamplers().items():
        row = []
        for rate in SOURCE_RATES:
            x = speech_like(seconds, rate)
            fn(x, rate)  # warm-up: resampy's numba compilation, soxr's filter design
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn(x, rate)
                times.append(time.perf_counter() - start)
            row.append(seconds / statistics.median(times))
        print(f"{name:30s}" + "".join(f"{v:>10.0f}" for v in row))


def real_speech(rate: int, n_clips: int) -> List[np.ndarray]:
    """Real speech: the first ``n_clips`` 1 s clips of tests/data/real (16 kHz),
    taken to ``rate`` by scipy's polyphase resampler, float32."""
    import soundfile as sf
    from scipy.signal import resample_poly

    ratio = Fraction(rate, TARGET_HZ)
    paths = sorted((REPO / "tests" / "data" / "real").glob("*/*.flac"))[::3][:n_clips]
    return [resample_poly(sf.read(path, dtype="float32")[0], ratio.numerator,
                          ratio.denominator).astype(np.float32) for path in paths]


def embedding_difference(n_clips: int) -> None:
    """Scene cosine similarity and largest differences, soxr vs resampy; for scale,
    the same figures for resampy on the clip delayed by one source sample."""
    import torch

    import kwmlp
    from kwmlp.audio import resample

    model = kwmlp.load_model(device="cpu")
    # Full-scale clips overshoot 1.0 a little after resampling; that is not news here.
    warnings.filterwarnings("ignore", message="audio peak")

    def embed(audio: np.ndarray):
        audio = torch.from_numpy(audio[: (len(audio) // 160) * 160])[None]
        return (kwmlp.get_timestamp_embeddings(audio, model)[0][0],
                kwmlp.get_scene_embeddings(audio, model)[0])

    def compare(a, b) -> np.ndarray:
        n = min(len(a[0]), len(b[0]))
        return np.array([torch.nn.functional.cosine_similarity(a[1], b[1], dim=0).item(),
                         (a[1] - b[1]).abs().max().item(),
                         (a[0][:n] - b[0][:n]).abs().max().item()])

    def row(values: List[np.ndarray]) -> str:
        cosine, scene, timestamp = np.array(values).T
        return f"{cosine.min():>9.5f} {scene.max():>8.3f} {timestamp.max():>8.3f}"

    print(f"\nembeddings of {n_clips} real 1 s speech clips (tests/data/real, brought to the "
          f"source rate by scipy), shipped weights:\nworst scene cosine, largest |difference| "
          f"of scene / timestamp embeddings")
    print(f"{'source rate':>12s} | {'soxr vs resampy':^27s} | {'resampy, 1-sample delay':^27s}")
    for rate in SOURCE_RATES:
        pairs, delays = [], []
        for x in real_speech(rate, n_clips):
            delayed = np.concatenate([[0.0], x[:-1]]).astype(np.float32)
            by_resampy = embed(resample(x, rate, "resampy"))
            pairs.append(compare(embed(resample(x, rate, "soxr")), by_resampy))
            delays.append(compare(by_resampy, embed(resample(delayed, rate, "resampy"))))
        print(f"{rate:>12d} | {row(pairs)} | {row(delays)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clips", type=int, default=20, help="real clips for the embeddings")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    time_resamplers(args.seconds, args.repeats)
    embedding_difference(args.clips)


if __name__ == "__main__":
    main()
