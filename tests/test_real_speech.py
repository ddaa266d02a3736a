"""The real-speech reader: speaker-disjoint splits fixed by a hash of the speaker,
FSDD digits as words, any sample rate to 16 kHz 1 s int16 clips."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwmlp.errors import KwmlpError
from kwmlp.train.real_speech import (DIGIT_WORDS, VALIDATION_PERCENT, list_real_clips,
                                     load_real_clips, load_real_noise, split_of_speaker)
from kwmlp.train.speech_commands import WORDS

HEADER = "relpath\tsha256\tword_or_digit\tspeaker\tsource_repo\tsource_path\tsample_rate\tseconds"


def _bucket(name):  # written out again, so a change to the split rule fails here
    return int.from_bytes(hashlib.sha1(name.encode()).digest(), "big") % 100


def make_real_dir(root):
    rows = []
    rng = np.random.default_rng(0)
    for k, speaker in enumerate(f"spk{i:02d}" for i in range(12)):
        for word in ("bed", "yes"):
            rel = f"speech_commands/{word}/{speaker}_nohash_0.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, (rng.standard_normal(12000 + 600 * k) * 3000).astype(np.int16),
                     16000, subtype="PCM_16")
            rows.append(f"{rel}\tx\t{word}\t{speaker}\tr\tp\t16000\t1")
    for speaker in ("george", "jackson", "nicolas", "lucas"):
        rel = f"fsdd/7_{speaker}_0.wav"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(4000) / 8000
        sf.write(root / rel, (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16), 8000,
                 subtype="PCM_16")
        rows.append(f"{rel}\tx\t7\t{speaker}\tr\tp\t8000\t0.5")
    noise = root / "speech_commands" / "_background_noise_" / "tap.wav"
    noise.parent.mkdir(parents=True, exist_ok=True)
    sf.write(noise, (rng.standard_normal(40000) * 1000).astype(np.int16), 16000, subtype="PCM_16")
    rows.append("speech_commands/_background_noise_/tap.wav\tx\t\t\tr\tp\t16000\t2.5")
    (root / "MANIFEST.tsv").write_text("\n".join([HEADER, *rows]) + "\n")
    return root


def test_splits_are_by_speaker_hash_and_disjoint(tmp_path):
    real = list_real_clips(make_real_dir(tmp_path))
    clips, speakers = real["speech_commands"]["validation"]
    train_clips, train_speakers = real["speech_commands"]["training"]
    assert len(clips) + len(train_clips) == 24  # the noise recording is not a clip
    assert not set(speakers) & set(train_speakers)
    for name in speakers:
        assert _bucket(name) < VALIDATION_PERCENT["speech_commands"]
    for name in train_speakers:
        assert _bucket(name) >= VALIDATION_PERCENT["speech_commands"]
    for split_clips, split_speakers in (real["speech_commands"]["validation"],
                                        real["speech_commands"]["training"]):
        for path, label, speaker in zip(split_clips.paths, split_clips.labels, split_speakers):
            assert path.parent.name == WORDS[label] and path.name.startswith(speaker)
    # the four FSDD speakers: george 38, lucas 26 train; jackson 10, nicolas 8 validate
    assert set(real["fsdd"]["validation"][1]) == {"jackson", "nicolas"}
    assert set(real["fsdd"]["training"][1]) == {"george", "lucas"}
    assert set(real["fsdd"]["training"][0].labels) == {WORDS.index(DIGIT_WORDS[7])} == {
        WORDS.index("seven")}


def test_split_of_a_speaker_never_depends_on_the_other_clips():
    assert [split_of_speaker(s, "speech_commands") for s in ("0a7c2a8d", "george")] == [
        "validation" if _bucket(s) < 50 else "training" for s in ("0a7c2a8d", "george")]


def test_load_real_clips_resamples_pads_and_trims(tmp_path):
    real = list_real_clips(make_real_dir(tmp_path))
    audio, labels = load_real_clips(real["fsdd"]["training"][0])
    assert audio.shape == (2, 16000) and str(audio.dtype) == "torch.int16"
    assert labels.tolist() == [WORDS.index("seven")] * 2
    first = audio[0].numpy() / 32768
    assert not first[8000:].any()  # 0.5 s at 8 kHz -> 8000 samples at 16 kHz, then zeros
    spectrum = np.abs(np.fft.rfft(first[1000:7000]))
    assert np.fft.rfftfreq(6000, 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=3)
    assert np.abs(first).max() == pytest.approx(0.5, abs=0.02)
    sc_audio, _ = load_real_clips(real["speech_commands"]["training"][0])
    assert sc_audio.shape[1] == 16000  # clips longer than 1 s are trimmed
    assert len(load_real_noise(tmp_path)) == 1


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(KwmlpError, match="MANIFEST.tsv"):
        list_real_clips(tmp_path)


# cross-validation folds

TESTS_REAL = Path(__file__).resolve().parent / "data" / "real"


def test_the_held_out_speakers_are_those_of_the_committed_real_clips():
    from kwmlp.train.real_speech import holdout_speakers

    committed = {p.name.split("_nohash_")[0] for p in TESTS_REAL.glob("*/*.flac")}
    assert len(committed) == 82 and holdout_speakers() == committed


def _fold(name, k):  # written out again, as _bucket
    return int.from_bytes(hashlib.sha1(f"fold:{name}".encode()).digest(), "big") % k


def test_folds_are_by_speaker_hash_and_never_hold_the_held_out_speakers(tmp_path, monkeypatch):
    import kwmlp.train.real_speech as real_speech

    real = list_real_clips(make_real_dir(tmp_path))
    clips, speakers = real_speech.pooled_clips(real["speech_commands"])
    assert len(clips) == 24 and sorted(clips.paths) == list(clips.paths)
    held_out = tmp_path / "holdout.txt"
    held_out.write_text("spk03\nspk07\n")
    monkeypatch.setattr(real_speech, "HOLDOUT_SPEAKERS_FILE", held_out)
    speaker_of = dict(zip(clips.paths, speakers))
    validated = []
    for fold in range(3):
        parts = real_speech.cv_split(clips, speakers, 3, fold)
        assert all([speaker_of[p] for p in split_clips.paths] == list(split_speakers)
                   for split_clips, split_speakers in parts.values())
        train = {speaker_of[p] for p in parts["training"][0].paths}
        val = {speaker_of[p] for p in parts["validation"][0].paths}
        assert set(parts["validation"][1]) == val
        assert val == {s for s in set(speakers) - {"spk03", "spk07"} if _fold(s, 3) == fold}
        assert train == set(speakers) - {"spk03", "spk07"} - val
        assert all(clips.labels[clips.paths.index(p)] == n
                   for p, n in zip(parts["validation"][0].paths, parts["validation"][0].labels))
        validated += parts["validation"][0].paths
    assert sorted(validated) == sorted(p for p, s in speaker_of.items()
                                       if s not in ("spk03", "spk07"))  # every clip once
    everything = real_speech.cv_split(clips, speakers, 3, real_speech.ALL_FOLDS)
    assert len(everything["validation"][0]) == 0 and len(everything["training"][0]) == 20
    for folds, fold in ((1, 0), (3, 3), (3, -2)):
        with pytest.raises(ValueError, match="folds"):
            real_speech.cv_split(clips, speakers, folds, fold)
