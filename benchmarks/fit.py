"""``kwmlp fit`` on real and synthetic voices it never heard: accuracy with 1, 5
and 20 examples per label in each mode, wall time of each fit, and the false
accepts per hour of a fitted model at its own threshold.

    python benchmarks/fit.py --real-data ../shared/data/real_speech --json fit.json
    python benchmarks/fit.py --parts fsdd --examples 5 --modes head      # one cell
    python benchmarks/fit.py --parts fsdd --examples 100  # every take: fine-tuning ~1,000 clips
    python benchmarks/fit.py --parts fsdd --examples 5 --modes head --model runs/x.pt  # a candidate

- ``fsdd``: the ten digits, fitted on FSDD speakers george and lucas (the
  shipped weights trained on them too), tested on all 1,000 clips of jackson
  and nicolas (never trained on), top-1 over the ten digits. Baseline: the
  base model's head (``--model``, default the shipped weights), its own ten
  digit columns on the same clips.
- ``unseen``: ten words outside the 35 (``UNSEEN_WORDS``), spoken by the
  synthetic corpus' training voices for the fit (one voice per example) and
  by its held-out test voices for the score.
- false accepts: the ``unseen`` head-mode model with the most examples (and, with
  ``--negatives``, the same fit plus no-keyword clips) spotting the audio of
  ``false_accepts.py`` (no keyword of the 35 and none of these ten; fair
  sources only) at its own threshold.

Each fit holds out a fifth of its examples to choose the threshold (none at 1
example: the threshold is then the default); accuracy is top-1 over the
labels, threshold aside.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # false_accepts, beside this file

import kwmlp  # noqa: E402
from kwmlp.audio import INT16_SCALE  # noqa: E402
from kwmlp.frontend import CHUNK_SAMPLES, SAMPLE_RATE  # noqa: E402
from kwmlp.keywords import centred_window, model_threshold  # noqa: E402
from kwmlp.train.real_speech import DIGIT_WORDS  # noqa: E402

UNSEEN_WORDS = ("alarm", "pizza", "robot", "camera", "rocket", "thunder", "jacket", "monkey",
                "candle", "umbrella")
FSDD_FIT_SPEAKERS, FSDD_TEST_SPEAKERS = ("george", "lucas"), ("jackson", "nicolas")
FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav")
PARTS = ("fsdd", "unseen", "false_accepts")


def top1(model, clips: Sequence[np.ndarray], truth: Sequence[str],
         columns: Sequence[str]) -> float:
    """Top-1 over ``columns`` (head words) of each clip's best window."""
    words = list(kwmlp.keywords.head_words(model))
    index = [words.index(c) for c in columns]
    right = 0
    for clip, label in zip(clips, truth):
        window = centred_window(clip) if len(clip) <= CHUNK_SAMPLES else clip
        p = kwmlp.recognize(torch.from_numpy(window)[None], model).probabilities[0]
        best = p[:, index].max(dim=0).values
        right += columns[int(best.argmax())] == label
    return right / len(truth)


def _write(folder: Path, label: str, name: str, audio: np.ndarray) -> None:
    (folder / label).mkdir(parents=True, exist_ok=True)
    sf.write(folder / label / name, audio, SAMPLE_RATE, subtype="FLOAT")


def fsdd_sets(real_dir: Path) -> Tuple[Dict[str, List[Path]], List[np.ndarray], List[str]]:
    """Fit candidates by digit word (speakers alternating, takes in order) and
    the test clips with their digit words."""
    fit: Dict[str, List[Path]] = {}
    test_clips, test_truth = [], []
    for path in sorted((real_dir / "fsdd").glob("*.wav")):
        match = FSDD_NAME.fullmatch(path.name)
        word = DIGIT_WORDS[int(match["digit"])]
        if match["speaker"] in FSDD_FIT_SPEAKERS:
            fit.setdefault(word, []).append(path)
        elif match["speaker"] in FSDD_TEST_SPEAKERS:
            test_clips.append(kwmlp.load_audio(path)[0])
            test_truth.append(word)
    for word, paths in fit.items():  # alternate the two speakers, takes 0, 1, 2, ...
        paths.sort(key=lambda p: (int(FSDD_NAME.fullmatch(p.name)["take"]),
                                  FSDD_NAME.fullmatch(p.name)["speaker"]))
    return fit, test_clips, test_truth


def unseen_sets(seed: int) -> Tuple[Dict[str, List[np.ndarray]], List[np.ndarray], List[str]]:
    """TTS of ``UNSEEN_WORDS``: 20 training voices per word for fitting, every
    test voice for scoring."""
    from kwmlp.train.negatives import speak
    from kwmlp.train.synth.engines import Renderer
    from kwmlp.train.synth.voices import build_voice_inventory

    voices = build_voice_inventory()
    train = [v for v in voices if v.split == "training"]
    test = [v for v in voices if v.split == "testing"]
    rng = np.random.default_rng(seed)
    renderer = Renderer()
    fit: Dict[str, List[np.ndarray]] = {}
    clips, truth = [], []
    try:
        for word in UNSEEN_WORDS:
            chosen = rng.choice(len(train), 20, replace=False)
            fit[word] = [speak(renderer, word, train[i], rng) for i in chosen]
            for voice in test:
                clips.append(speak(renderer, word, voice, rng))
                truth.append(word)
    finally:
        renderer.close()
    return fit, clips, truth


def write_negatives(folder: Path, negatives_dir: Path) -> int:
    """The training half of a ``kwmlp.train.negatives`` build as ``folder``'s
    ``_unknown_/`` and ``_background_/`` (sources disjoint from the hour
    ``false_accepts.py`` judges with)."""
    from kwmlp.train.negatives import load_negatives
    from kwmlp.vocabulary import LABELS, SILENCE

    audio, labels = load_negatives(negatives_dir)["training"]
    for k, (clip, label) in enumerate(zip(audio.numpy(), labels.tolist())):
        kind = "_background_" if LABELS[label] == SILENCE else "_unknown_"
        _write(folder, kind, f"negative{k}.wav", clip / INT16_SCALE)
    return len(labels)


def false_accepts_per_hour(model, cache: Path) -> dict:
    """Detections per hour of ``model`` at its own threshold on the audio of
    ``false_accepts.py`` (no keyword of the 35 and none of ``UNSEEN_WORDS``)."""
    from false_accepts import SOURCES, source_audio

    threshold = model_threshold(model)
    total_s, per_source = 0.0, {}
    for source in SOURCES:
        audio = source_audio(source, cache)
        recognition = kwmlp.recognize(torch.from_numpy(audio)[None], model)
        per_source[source] = len(kwmlp.spot(recognition, threshold=threshold,
                                            duration_ms=1000 * len(audio) / SAMPLE_RATE)[0])
        total_s += len(audio) / SAMPLE_RATE
    return {"rate": sum(per_source.values()) / total_s * 3600, "minutes": total_s / 60,
            "threshold": threshold, "detections": per_source}


def run_fit(folder: Path, out: Path, mode: str, seed: int, base: str) -> Tuple[object, float]:
    start = time.perf_counter()
    report = kwmlp.fit(folder, out, mode=mode, seed=seed, model_file_path=base)
    return report, time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-data", type=Path, default=Path("../shared/data/real_speech"))
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--examples", default="1,5,20")
    parser.add_argument("--modes", default="head,finetune")
    parser.add_argument("--cache", default="runs/false_accepts",
                        help="false_accepts.py's audio cache")
    parser.add_argument("--negatives", type=Path,
                        help="a kwmlp.train.negatives folder: also fit the false-accept model "
                             "with its training clips as _unknown_/_background_")
    parser.add_argument("--model", default="",
                        help="base checkpoint to fit on and the baseline head (default: the "
                             "shipped weights), e.g. a candidate before it ships")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts, examples = args.parts.split(","), [int(n) for n in args.examples.split(",")]
    if not set(parts) <= set(PARTS):
        parser.error(f"--parts: {', '.join(sorted(set(parts) - set(PARTS)))}; one or more of "
                     f"{','.join(PARTS)}")
    modes = args.modes.split(",")
    base = kwmlp.load_model(args.model, device="cpu")
    results: dict = {"examples": examples, "modes": modes, "base_model": base.model_id()}
    scratch = Path(tempfile.mkdtemp(prefix="kwmlp-fit-"))
    try:
        tasks = []
        if "fsdd" in parts:
            fit, clips, truth = fsdd_sets(args.real_data)
            baseline = top1(base, clips, truth, DIGIT_WORDS)
            results["fsdd_base_head_digits"] = baseline
            print(f"fsdd: the base model's head, its ten digit columns: {baseline:.3f} "
                  f"({len(clips)} clips of {', '.join(FSDD_TEST_SPEAKERS)})", flush=True)
            tasks.append(("fsdd", {w: [kwmlp.load_audio(p)[0] for p in ps]
                                   for w, ps in fit.items()}, clips, truth))
        if "unseen" in parts or "false_accepts" in parts:
            fit, clips, truth = unseen_sets(args.seed)
            print(f"unseen: {len(clips)} test clips by held-out voices", flush=True)
            tasks.append(("unseen", fit, clips, truth))
        for name, fit, clips, truth in tasks:
            labels = sorted(fit)
            for n in examples:
                if n > min(len(takes) for takes in fit.values()):
                    print(f"{name}: fewer than {n} examples per label, skipped", flush=True)
                    continue
                folder = scratch / f"{name}{n}"
                for word in labels:
                    for k, audio in enumerate(fit[word][:n]):
                        _write(folder, word, f"{word}{k}.wav", audio)
                for mode in modes:
                    out = scratch / f"{name}{n}-{mode}.pt"
                    report, wall_s = run_fit(folder, out, mode, args.seed, args.model)
                    model = kwmlp.load_model(str(out), device="cpu")
                    accuracy = top1(model, clips, truth, labels)
                    results[f"{name}_{n}_{mode}"] = {"accuracy": accuracy, "wall_s": wall_s,
                                                     "threshold": report.threshold}
                    print(f"{name}: {n:>2} examples, {mode:<8}: top-1 {accuracy:.3f}, "
                          f"fit {wall_s:.1f} s, threshold {report.threshold:.2f}", flush=True)
                    if name == "unseen" and mode == "head":  # the largest n is kept
                        shutil.copy(out, scratch / "unseen-fa.pt")
                        fa_examples = n
        if "false_accepts" in parts and (scratch / "unseen-fa.pt").exists():
            _, clips, truth = tasks[-1][1:]  # the unseen task
            fitted = {"without negatives": scratch / "unseen-fa.pt"}
            if args.negatives:
                folder = scratch / f"unseen{fa_examples}"
                n_negatives = write_negatives(folder, args.negatives)
                fitted["with negatives"] = scratch / "unseen-fa-negatives.pt"
                report, wall_s = run_fit(folder, fitted["with negatives"], "head", args.seed,
                                         args.model)
                print(f"unseen: {fa_examples} examples + {n_negatives} negative clips, head: "
                      f"fit {wall_s:.1f} s", flush=True)
            for how, path in fitted.items():
                model = kwmlp.load_model(str(path), device="cpu")
                figures = false_accepts_per_hour(model, Path(args.cache))
                figures["examples"] = fa_examples
                figures["top1"] = top1(model, clips, truth, sorted(UNSEEN_WORDS))
                figures["answered_right"] = float(np.mean(
                    [a.label == t for a, t in zip(kwmlp.classify(clips, model), truth)]))
                results[f"false_accepts_{how.replace(' ', '_')}"] = figures
                print(f"unseen {fa_examples}-example head model {how}: "
                      f"{figures['rate']:.1f} false accepts per hour at its threshold "
                      f"{figures['threshold']:.2f}; top-1 {figures['top1']:.3f}, test clips "
                      f"answered right (threshold applied) {figures['answered_right']:.3f}",
                      flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
