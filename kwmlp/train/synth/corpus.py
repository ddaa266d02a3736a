"""Render the whole corpus, in parallel, and its command line
(``python -m kwmlp.train.synth``)."""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import multiprocessing.util
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from ...errors import KwmlpError
from ...frontend import CHUNK_SAMPLES, SAMPLE_RATE
from ..speech_commands import NOISE_DIR, WORDS
from .dsp import fit_to_window, place_in_window, resample_to_16k, trim_silence, write_wav
from .engines import Renderer
from .neural import KOKORO_MIXES, kokoro_model_path
from .noise import NOISE_DURATION_S, write_background_noise
from .plan import SPLITS, ClipSpec, clip_rng, plan_clips
from .voices import DEBIAN_ENGINES, ENGINES, Voice, build_voice_inventory, check_engines

logger = logging.getLogger(__name__)

# Resampling speed perturbation as in Kaldi: tempo and pitch (and formants) move together,
# which widens every voice's apparent vocal-tract length a little.
SPEED_FACTOR = (0.92, 1.08)
PEAK_DBFS = (-20.0, -1.0)
# Trailing punctuation changes the intonation contour (statement, exclamation, question).
PUNCTUATION: Tuple[str, ...] = ("", ".", "!", "?")
PUNCTUATION_P: Tuple[float, ...] = (0.4, 0.3, 0.15, 0.15)


@dataclass(frozen=True)
class ClipResult:
    """What a worker reports back about a written clip (sample counts at 16 kHz)."""

    relpath: str
    split: str
    engine: str
    voice_id: str
    word_samples: int  # trimmed word incl. margins, before fitting: > 16000 was sped up
    offset_samples: int
    peak_dbfs: float


@dataclass
class CorpusSummary:
    """Counts and timing of a generated corpus."""

    clips_per_split: Dict[str, int]
    voices_per_split: Dict[str, int]  # voices that got at least one clip
    clips_per_engine: Dict[str, int]
    clips_sped_up: int  # words longer than 1 s, sped up to fit (see fit_to_window)
    wall_time_s: float


def render_clip(renderer: Renderer, spec: ClipSpec) -> Tuple[np.ndarray, int, int, float]:
    """The clip as int16 ``(16000,)``, the trimmed word's length before fitting and its
    offset (samples), and its peak in dBFS.

    All random draws come from ``clip_rng(seed, word, voice_id, k)`` in a fixed order.
    """
    rng = clip_rng(spec.seed, spec.word, spec.voice.voice_id, spec.k)
    punctuation = PUNCTUATION[int(rng.choice(len(PUNCTUATION), p=PUNCTUATION_P))]
    speed = float(rng.uniform(*SPEED_FACTOR))
    peak_dbfs = float(rng.uniform(*PEAK_DBFS))
    position = float(rng.random())
    audio, rate_hz = renderer.speak(spec.word + punctuation, spec.voice, rng)
    word = trim_silence(resample_to_16k(audio, rate_hz, speed))
    if not np.any(word):
        raise KwmlpError(f"{spec.voice.engine} produced silence for {spec.relpath}")
    samples, offset = place_in_window(fit_to_window(word), peak_dbfs=peak_dbfs,
                                      position=position)
    return samples, len(word), offset, peak_dbfs


# Worker-process state: one Renderer per process (its festival process lives as long).
_WORKER: Dict[str, object] = {}


def _worker_init(out_dir: str) -> None:
    renderer = Renderer()
    # Pool workers leave through os._exit, which skips atexit and __del__; a Finalize
    # with a priority still runs, so festival is stopped and the scratch dir removed.
    multiprocessing.util.Finalize(renderer, renderer.close, exitpriority=10)
    _WORKER["renderer"] = renderer
    _WORKER["out_dir"] = Path(out_dir)


def _worker_render(spec: ClipSpec) -> ClipResult:
    renderer = _WORKER["renderer"]
    out_dir = _WORKER["out_dir"]
    assert isinstance(renderer, Renderer) and isinstance(out_dir, Path)
    samples, n_word, offset, peak_dbfs = render_clip(renderer, spec)
    write_wav(out_dir / spec.relpath, samples)
    return ClipResult(relpath=spec.relpath, split=spec.voice.split, engine=spec.voice.engine,
                      voice_id=spec.voice.voice_id, word_samples=n_word, offset_samples=offset,
                      peak_dbfs=peak_dbfs)


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise KwmlpError(f"{out_dir} is not empty; pass overwrite=True (--overwrite) "
                             "or choose a new directory")
        # Only what this generator writes, so a stale clip from a larger run cannot stay.
        for name in [*WORDS, NOISE_DIR]:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in ("validation_list.txt", "testing_list.txt", "voices.json"):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _render_all(specs: Sequence[ClipSpec], out_dir: Path, workers: int,
                progress_every: int) -> Iterator[ClipResult]:
    if workers == 1:
        _worker_init(str(out_dir))
        try:
            for done, spec in enumerate(specs, 1):
                yield _worker_render(spec)
                if progress_every and done % progress_every == 0:
                    logger.info("%d/%d clips", done, len(specs))
        finally:
            renderer = _WORKER.pop("renderer")
            assert isinstance(renderer, Renderer)
            renderer.close()
        return
    # spawn, not fork: a forked worker would inherit the parent's threads and locks.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_worker_init, initargs=(str(out_dir),)) as pool:
        results = pool.imap_unordered(_worker_render, specs, chunksize=16)
        for done, result in enumerate(results, 1):
            yield result
            if progress_every and done % progress_every == 0:
                logger.info("%d/%d clips", done, len(specs))
        pool.close()
        pool.join()


def generate_corpus(out_dir: Path, *, seed: int, clips_per_word: int,
                    words: Sequence[str] = WORDS, voices: Optional[Sequence[Voice]] = None,
                    workers: int = 1, noise_duration_s: float = NOISE_DURATION_S,
                    overwrite: bool = False, progress_every: int = 1000) -> CorpusSummary:
    """Render the corpus into ``out_dir`` (see the module docstring for the layout).

    ``voices`` defaults to every voice of every engine (``build_voice_inventory()``);
    the total is ``len(words) * clips_per_word`` clips. ``workers`` processes render in
    parallel; the output is identical for any value.
    """
    start = time.perf_counter()
    unknown = [w for w in words if w not in WORDS]
    if unknown:
        raise ValueError(f"unknown words {unknown}; choose from WORDS")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    voices = list(build_voice_inventory() if voices is None else voices)
    engines = sorted({v.engine for v in voices}, key=ENGINES.index)
    versions = check_engines(engines)
    if "kokoro" in engines:
        kokoro_model_path()
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, overwrite)

    specs = plan_clips(voices, seed=seed, clips_per_word=clips_per_word, words=words)
    results = list(_render_all(specs, out_dir, workers, progress_every))
    write_background_noise(out_dir, seed=seed, voices=voices, duration_s=noise_duration_s)

    lists = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
    for split, name in lists.items():
        paths = sorted(r.relpath for r in results if r.split == split)
        (out_dir / name).write_text("".join(p + "\n" for p in paths))
    clips_per_voice: Dict[str, int] = {}
    for r in results:
        clips_per_voice[r.voice_id] = clips_per_voice.get(r.voice_id, 0) + 1
    record = {
        "seed": seed, "clips_per_word": clips_per_word, "words": list(words),
        "sample_rate_hz": SAMPLE_RATE, "engine_versions": versions,
        "voices": {v.voice_id: {"engine": v.engine, "speaker": v.speaker, "split": v.split,
                                "params": dict(v.params),
                                "clips": clips_per_voice.get(v.voice_id, 0)}
                   for v in voices},
    }
    (out_dir / "voices.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")

    return CorpusSummary(
        clips_per_split={s: sum(r.split == s for r in results) for s in SPLITS},
        voices_per_split={s: len({r.voice_id for r in results if r.split == s}) for s in SPLITS},
        clips_per_engine={e: sum(r.engine == e for r in results) for e in engines},
        clips_sped_up=sum(r.word_samples > CHUNK_SAMPLES for r in results),
        wall_time_s=time.perf_counter() - start)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The CLI's arguments (pure: no side effects)."""
    parser = argparse.ArgumentParser(
        prog="python -m kwmlp.train.synth",
        description="Render a synthetic Speech Commands V2-style corpus with espeak-ng, "
                    "flite and festival.")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips-per-word", type=int, default=1150,
                        help="clips per word; the corpus has 35x this many (default 1150)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--words", nargs="+", default=list(WORDS), choices=WORDS,
                        metavar="WORD", help="a subset of the 35 words (default: all)")
    parser.add_argument("--engines", nargs="+", default=list(DEBIAN_ENGINES), choices=ENGINES,
                        help="default: the Debian engines; kokoro and piper are neural "
                             "voices from the train extra (training split only)")
    parser.add_argument("--kokoro-mixes", type=int, default=KOKORO_MIXES, metavar="N",
                        help="Kokoro speakers mixed from its five voices, besides those five "
                             f"(default {KOKORO_MIXES})")
    parser.add_argument("--noise-seconds", type=float, default=NOISE_DURATION_S,
                        help="length of each background noise file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a corpus already in --out")
    parser.add_argument("--progress-every", type=int, default=1000, metavar="N",
                        help="log a progress line every N clips (0: never)")
    args = parser.parse_args(argv)
    if args.kokoro_mixes < 0:
        parser.error(f"--kokoro-mixes must be >= 0, got {args.kokoro_mixes}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point: generate, then print a summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        summary = generate_corpus(
            args.out, seed=args.seed, clips_per_word=args.clips_per_word, words=args.words,
            voices=build_voice_inventory(args.engines, kokoro_mixes=args.kokoro_mixes),
            workers=args.workers,
            noise_duration_s=args.noise_seconds, overwrite=args.overwrite,
            progress_every=args.progress_every)
    except KwmlpError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    total = sum(summary.clips_per_split.values())
    print(f"wrote {total} clips to {args.out} in {summary.wall_time_s:.0f} s")
    for split in SPLITS:
        print(f"  {split:<10} {summary.clips_per_split[split]:>6} clips "
              f"{summary.voices_per_split[split]:>4} voices")
    print("  per engine: " + ", ".join(f"{e} {n}" for e, n in summary.clips_per_engine.items()))
    print(f"  {summary.clips_sped_up} words longer than 1 s were sped up to fit")
    return 0

