"""The synthetic Speech Commands generator: layout, splits, bit-for-bit replicability.

Needs espeak-ng (``kwmlp/train/install_tts.sh``); flite and festival voices join the
tiny corpus when they are installed too.
"""
import hashlib
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from kwmlp.frontend import CHUNK_SAMPLES
from kwmlp.train import synth
from kwmlp.train.speech_commands import NOISE_DIR

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng not installed (kwmlp/train/install_tts.sh)")

WORDS = ("dog", "visual")
CLIPS_PER_WORD = 10
NOISE_SECONDS = 1.0


def _tiny_voices():
    """Two espeak-ng variants under a train, a validation and a test accent, plus one
    voice per split of flite/festival when installed."""
    engines = ["espeak-ng"] + [e for e in ("flite", "festival") if shutil.which(e)]
    keep = {"espeak-en-us-m1", "espeak-en-us-f3", "espeak-en-gb-x-gbcwmd-m1",
            "espeak-en-gb-x-gbcwmd-f3", "espeak-en-gb-scotland-m1", "espeak-en-gb-scotland-f3",
            "flite-kal16", "flite-awb", "flite-rms", "festival-kal-diphone",
            "festival-ked-diphone"}
    return [v for v in synth.build_voice_inventory(engines) if v.voice_id in keep]


def _generate(out: Path, seed: int, workers: int = 1) -> Path:
    synth.generate_corpus(out, seed=seed, clips_per_word=CLIPS_PER_WORD, words=WORDS,
                          voices=_tiny_voices(), workers=workers,
                          noise_duration_s=NOISE_SECONDS, progress_every=0)
    return out


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("synth_a"), seed=0)


def test_same_seed_gives_identical_bytes(corpus, tmp_path):
    # Two workers in the second run: scheduling order must not matter either.
    again = _generate(tmp_path / "b", seed=0, workers=2)
    assert _hashes(corpus) == _hashes(again)


def test_different_seed_gives_different_audio(corpus, tmp_path):
    other = _generate(tmp_path / "c", seed=1)
    a, b = _hashes(corpus), _hashes(other)
    clips = [p for p in a if p.endswith(".wav") and not p.startswith(NOISE_DIR)]
    # Clip names are plan-dependent, so compare the audio itself.
    assert sorted(a[p] for p in clips) != sorted(b.get(p, "") for p in clips)
    assert sum(a[p] != b.get(p) for p in clips) > len(clips) // 2


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as handle:
        assert handle.getnchannels() == 1
        assert handle.getsampwidth() == 2
        assert handle.getframerate() == 16000
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")


def test_layout_and_audio(corpus):
    clips = sorted(p for p in corpus.glob("*/*.wav") if p.parent.name != NOISE_DIR)
    assert {p.parent.name for p in clips} == set(WORDS)
    assert len(clips) == len(WORDS) * CLIPS_PER_WORD
    for path in clips:
        voice_id, _, k = path.stem.partition("_nohash_")
        assert voice_id and k.isdigit()
        samples = _read(path)
        assert samples.shape == (CHUNK_SAMPLES,)
        assert np.sqrt(np.mean((samples / 32768.0) ** 2)) > 1e-3  # not silent
        # Near-silence in the first and last 10 ms: the window does not cut the word.
        peak = np.abs(samples.astype(np.int32)).max()
        assert np.abs(samples[:160].astype(np.int32)).max() <= 0.02 * peak
        assert np.abs(samples[-160:].astype(np.int32)).max() <= 0.02 * peak
    noises = sorted(p.name for p in (corpus / NOISE_DIR).glob("*.wav"))
    assert {"white_noise.wav", "pink_noise.wav", "brown_noise.wav", "babble.wav"} <= set(noises)
    for name in noises:
        samples = _read(corpus / NOISE_DIR / name)
        assert samples.shape == (int(NOISE_SECONDS * 16000),) and samples.std() > 100


def test_lists_and_voices_give_voice_disjoint_splits(corpus):
    voices = json.loads((corpus / "voices.json").read_text())["voices"]
    listed = {"validation": (corpus / "validation_list.txt").read_text().split(),
              "testing": (corpus / "testing_list.txt").read_text().split()}
    all_clips = {f"{p.parent.name}/{p.name}" for p in corpus.glob("*/*_nohash_*.wav")}
    listed["training"] = sorted(all_clips - set(listed["validation"]) - set(listed["testing"]))
    speakers = {}
    for split, paths in listed.items():
        assert paths, split
        assert set(paths) <= all_clips
        for path in paths:
            voice = voices[path.split("/")[1].split("_nohash_")[0]]
            assert voice["split"] == split
            speakers.setdefault(split, set()).add(voice["speaker"])
    assert not speakers["training"] & speakers["validation"]
    assert not speakers["training"] & speakers["testing"]
    assert not speakers["validation"] & speakers["testing"]


def test_full_inventory_splits():
    voices = synth.build_voice_inventory()
    test = [v for v in voices if v.split == "testing"]
    assert {v.engine for v in test} == set(synth.ENGINES)
    # A whole held-out accent: every one of its variants is in test.
    for accent in synth.TEST_ACCENTS:
        assert all(v.split == "testing" for v in voices if v.params.get("accent") == accent)
    by_speaker = {}
    for v in voices:
        by_speaker.setdefault(v.speaker, set()).add(v.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())
    assert len({v.voice_id for v in voices}) == len(voices)
    assert all("_" not in v.voice_id for v in voices)


def test_plan_counts_and_names():
    voices = synth.build_voice_inventory()
    specs = synth.plan_clips(voices, seed=0, clips_per_word=100, words=("go",))
    assert len(specs) == 100
    assert len({s.relpath for s in specs}) == 100
    assert sum(s.voice.split == "training" for s in specs) == 80


def test_parse_args_is_pure():
    args = synth.parse_args(["--out", "x", "--clips-per-word", "3", "--words", "go", "no"])
    assert args.clips_per_word == 3 and args.words == ["go", "no"] and args.workers == 2


def test_runs_as_a_module():
    run = subprocess.run([sys.executable, "-m", "kwmlp.train.synth", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "--clips-per-word" in run.stdout
