#!/usr/bin/env python3
"""Write two tiny HEAR 2021 tasks, synthesised with numpy, for smoke-testing
the heareval pipeline end to end without downloading anything.

- ``smoke_scene-v1-full``: scene classification (multiclass, ``top1_acc``),
  2 s clips of four kinds of sound: harmonic tone, chirp, band-limited noise
  burst, click train; 30 clips per class over train / valid / test.
- ``smoke_events-v1-full``: sound event detection (multilabel,
  ``event_onset_200ms_fms`` and ``segment_1s_er``), 5 s clips of quiet noise
  holding 1-3 tone events labelled by pitch band (low / mid / high).

Each task directory has the hearpreprocess layout that heareval reads::

    <out>/<task>-<version>-<mode>/
        task_metadata.json  labelvocabulary.csv  train.json valid.json test.json
        16000/{train,valid,test}/*.wav          (16-bit PCM, mono)

Event times in the split JSONs are in milliseconds. Output depends only on
``--seed``. Needs numpy and the standard library.

    python benchmarks/hear/make_smoke_tasks.py --out /tmp/hear-tasks
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import wave
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

SAMPLE_RATE = 16_000  # Hz; heareval reads <task>/<model.sample_rate>/<split>/
SPLITS = ("train", "valid", "test")
VERSION = "v1"
MODE = "full"

SCENE_TASK = "smoke_scene"
SCENE_DURATION_S = 2.0
SCENE_CLIPS_PER_CLASS = {"train": 20, "valid": 5, "test": 5}

EVENT_TASK = "smoke_events"
EVENT_DURATION_S = 5.0
EVENT_CLIPS = {"train": 32, "valid": 8, "test": 8}
EVENT_BANDS_HZ = {"low": (250.0, 400.0), "mid": (700.0, 1100.0), "high": (1800.0, 2800.0)}
EVENT_MIN_MS, EVENT_MAX_MS = 300, 900
EVENT_GAP_MS = 150  # silence kept between events, so onsets are unambiguous
FADE_MS = 10.0

# heareval's grids are sized for HEAR's tasks: with batch_size 1024 a task of
# ~100 clips gets one optimiser step per epoch and learns nothing in the
# `faster` grid's 10 epochs. Each smoke task therefore carries a
# task-specific grid (heareval merges evaluation_params.task_specific_param_grid
# over the chosen grid) with batches and epochs to fit its size.
SCENE_PARAM_GRID = {"batch_size": [16], "lr": [1e-3], "max_epochs": [40], "patience": [8],
                    "check_val_every_n_epoch": [1]}
EVENT_PARAM_GRID = {"batch_size": [256], "lr": [1e-3], "max_epochs": [20], "patience": [5],
                    "check_val_every_n_epoch": [1]}


# helpers

def _fade(signal: np.ndarray, fade_ms: float = FADE_MS) -> np.ndarray:
    """Raised-cosine fade in and out, to avoid clicks at the edges."""
    n_fade = min(int(fade_ms * SAMPLE_RATE / 1000), len(signal) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n_fade))
    out = signal.copy()
    out[:n_fade] *= ramp
    out[len(out) - n_fade:] *= ramp[::-1]
    return out


def _tone(rng: np.random.Generator, n_samples: int, f0_hz: float) -> np.ndarray:
    """Harmonic tone: f0 plus 2-4 decaying harmonics, random phases."""
    t = np.arange(n_samples) / SAMPLE_RATE
    out = np.zeros(n_samples)
    for k in range(1, rng.integers(3, 6)):
        if k * f0_hz < SAMPLE_RATE / 2:
            out += np.sin(2 * np.pi * k * f0_hz * t + rng.uniform(0, 2 * np.pi)) / k
    return out / np.abs(out).max()


def _chirp(rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """Exponential sweep between two random frequencies, up or down."""
    f_start, f_end = rng.uniform(200.0, 600.0), rng.uniform(2000.0, 5000.0)
    if rng.random() < 0.5:
        f_start, f_end = f_end, f_start
    duration_s = n_samples / SAMPLE_RATE
    t = np.arange(n_samples) / SAMPLE_RATE
    rate = np.log(f_end / f_start) / duration_s
    phase = 2 * np.pi * f_start * (np.exp(rate * t) - 1) / rate
    return np.sin(phase)


def _noise_burst(rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """White noise band-passed around a random centre, in 2-5 bursts."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples, 1 / SAMPLE_RATE)
    centre_hz = rng.uniform(500.0, 4000.0)
    spectrum[np.abs(freqs - centre_hz) > centre_hz / 2] = 0
    noise = np.fft.irfft(spectrum, n_samples)
    envelope = np.zeros(n_samples)
    for _ in range(rng.integers(2, 6)):
        length = int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)
        start = rng.integers(0, n_samples - length)
        envelope[start:start + length] = 1.0
    return _fade(noise * envelope, 2.0) / (np.abs(noise).max() + 1e-9)


def _clicks(rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """Click train at 4-20 Hz: short decaying noise impulses."""
    rate_hz = rng.uniform(4.0, 20.0)
    click_len = int(0.005 * SAMPLE_RATE)
    click = rng.standard_normal(click_len) * np.exp(-np.arange(click_len) / (click_len / 4))
    out = np.zeros(n_samples)
    period = int(SAMPLE_RATE / rate_hz)
    for start in range(rng.integers(0, period), n_samples - click_len, period):
        out[start:start + click_len] += click
    return out / np.abs(out).max()


SCENE_CLASSES: Dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "tone": lambda rng, n: _tone(rng, n, rng.uniform(150.0, 1000.0)),
    "chirp": _chirp,
    "noise": _noise_burst,
    "clicks": _clicks,
}


def _write_wav(path: Path, audio: np.ndarray) -> None:
    """Mono 16-bit PCM at SAMPLE_RATE, as hearpreprocess writes."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(pcm.tobytes())


def _write_task(task_dir: Path, metadata: dict, labels: List[str],
                split_labels: Dict[str, dict]) -> None:
    """Metadata, label vocabulary and one ``<split>.json`` per split."""
    (task_dir / "task_metadata.json").write_text(json.dumps(metadata, indent=4) + "\n")
    with open(task_dir / "labelvocabulary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["idx", "label"])
        writer.writerows(enumerate(labels))
    for split, labels_by_file in split_labels.items():
        (task_dir / f"{split}.json").write_text(json.dumps(labels_by_file, indent=4) + "\n")


def _new_task_dir(out: Path, task: str) -> Path:
    task_dir = out / f"{task}-{VERSION}-{MODE}"
    if task_dir.exists():
        shutil.rmtree(task_dir)
    for split in SPLITS:
        (task_dir / str(SAMPLE_RATE) / split).mkdir(parents=True)
    return task_dir


def _metadata(task: str, *, embedding_type: str, prediction_type: str,
              sample_duration_s: float, evaluation: List[str], **extra) -> dict:
    return {
        "task_name": task,
        "version": VERSION,
        "mode": MODE,
        "embedding_type": embedding_type,
        "prediction_type": prediction_type,
        "split_mode": "trainvaltest",
        "splits": list(SPLITS),
        "sample_duration": sample_duration_s,
        "evaluation": evaluation,
        **extra,
    }


# main functions

def make_scene_task(out: Path, rng: np.random.Generator) -> Path:
    """Four-class scene task; each clip is one sound over quiet noise."""
    task_dir = _new_task_dir(out, SCENE_TASK)
    n_samples = int(SCENE_DURATION_S * SAMPLE_RATE)
    split_labels: Dict[str, dict] = {}
    for split in SPLITS:
        split_labels[split] = {}
        for label, synth in SCENE_CLASSES.items():
            for i in range(SCENE_CLIPS_PER_CLASS[split]):
                gain = 10 ** (rng.uniform(-12.0, -3.0) / 20)
                audio = gain * _fade(synth(rng, n_samples))
                audio += 0.01 * rng.standard_normal(n_samples)
                name = f"{label}_{i:03d}.wav"
                _write_wav(task_dir / str(SAMPLE_RATE) / split / name, audio)
                split_labels[split][name] = [label]
    metadata = _metadata(SCENE_TASK, embedding_type="scene", prediction_type="multiclass",
                         sample_duration_s=SCENE_DURATION_S, evaluation=["top1_acc"],
                         evaluation_params={"task_specific_param_grid": SCENE_PARAM_GRID})
    _write_task(task_dir, metadata, list(SCENE_CLASSES), split_labels)
    return task_dir


def _event_times_ms(rng: np.random.Generator, n_events: int) -> List[tuple]:
    """Non-overlapping (start, end) times in ms inside the clip, EVENT_GAP_MS apart."""
    clip_ms = EVENT_DURATION_S * 1000
    while True:
        durations = rng.integers(EVENT_MIN_MS, EVENT_MAX_MS + 1, n_events)
        slack = clip_ms - durations.sum() - EVENT_GAP_MS * (n_events + 1)
        if slack > 0:
            break
    gaps = rng.dirichlet(np.ones(n_events + 1)) * slack + EVENT_GAP_MS
    times, t = [], 0.0
    for gap, duration in zip(gaps, durations):
        start = round(t + gap)
        times.append((start, start + int(duration)))
        t = start + duration
    return times


def make_event_task(out: Path, rng: np.random.Generator) -> Path:
    """Three-label event task: tones whose pitch band is the label."""
    task_dir = _new_task_dir(out, EVENT_TASK)
    n_samples = int(EVENT_DURATION_S * SAMPLE_RATE)
    labels = list(EVENT_BANDS_HZ)
    split_labels: Dict[str, dict] = {}
    for split in SPLITS:
        split_labels[split] = {}
        for i in range(EVENT_CLIPS[split]):
            audio = 0.02 * rng.standard_normal(n_samples)
            events = []
            for start_ms, end_ms in _event_times_ms(rng, int(rng.integers(1, 4))):
                label = labels[rng.integers(len(labels))]
                lo, hi = EVENT_BANDS_HZ[label]
                start, end = (int(ms * SAMPLE_RATE / 1000) for ms in (start_ms, end_ms))
                gain = 10 ** (rng.uniform(-10.0, -3.0) / 20)
                audio[start:end] += gain * _fade(_tone(rng, end - start, rng.uniform(lo, hi)))
                events.append({"label": label, "start": float(start_ms),
                               "end": float(end_ms)})
            name = f"clip_{i:03d}.wav"
            _write_wav(task_dir / str(SAMPLE_RATE) / split / name, audio)
            split_labels[split][name] = events
    metadata = _metadata(
        EVENT_TASK, embedding_type="event", prediction_type="multilabel",
        sample_duration_s=EVENT_DURATION_S,
        evaluation=["event_onset_200ms_fms", "segment_1s_er"],
        # Events are 300-900 ms, so the postprocessing heareval searches over
        # (median filter width, minimum event length, both in ms) is shorter
        # than its DCASE 2016 default of 250 / 125-250.
        evaluation_params={
            "event_postprocessing_grid": {"median_filter_ms": [100], "min_duration": [50, 150]},
            "task_specific_param_grid": EVENT_PARAM_GRID,
        },
    )
    _write_task(task_dir, metadata, labels, split_labels)
    return task_dir


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="tasks directory to write (task folders are replaced)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # One generator per task, so each task is fixed by the seed alone.
    scene_rng, event_rng = (np.random.default_rng([args.seed, k]) for k in range(2))
    for task_dir in (make_scene_task(args.out, scene_rng),
                     make_event_task(args.out, event_rng)):
        print(f"wrote {task_dir}")


if __name__ == "__main__":
    main()
