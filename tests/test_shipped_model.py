"""The shipped weights learned the task: their keyword head and their scene
embeddings recognise the 35 words spoken by voices held out of training: synthetic
ones (tests/data/heldout: festival ked, flite rms, one espeak-ng Scottish voice)
and real people (tests/data/real: Speech Commands speakers held out of every
training run, kwmlp/train/holdout_speakers.txt)."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp.train.evaluate import COMMAND_WORDS
from kwmlp.train.real_speech import holdout_speakers, run_splits
from kwmlp.train.scene_probe import fit_class_means, predict_nearest_mean
from kwmlp.train.speech_commands import WORDS

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout"
REAL = Path(__file__).resolve().parent / "data" / "real"
# Just under what the shipped weights (compact v9, kwmlp-60a7d5d45d94) reach on
# tests/data/real: head 0.848, command words 0.867, leave-one-speaker-out nearest mean 0.638.
# Stage 7 before them reached 0.810, 0.833, 0.543; stage 6 0.800, 0.867, 0.467; the
# synthetic-only weights 0.667, 0.633 and 0.381.
REAL_HEAD_FLOOR = 0.83
REAL_COMMAND_FLOOR = 0.86
REAL_SCENE_FLOOR = 0.62


@pytest.fixture(scope="module")
def clips():
    """``(audio (105, 16000) float32, labels (105,), voice names)``."""
    audio, labels, voices = [], [], []
    for path in sorted(HELDOUT.glob("*/*.wav")):
        samples, rate = sf.read(path, dtype="float32")
        assert rate == 16000 and samples.shape == (16000,)
        audio.append(samples)
        labels.append(WORDS.index(path.parent.name))
        voices.append(path.name.split("_nohash_")[0].rsplit("-", 1)[0]
                      if "scotland" in path.name else path.name.split("_nohash_")[0])
    assert len(audio) == 35 * 3 and len(set(voices)) == 3
    return torch.from_numpy(np.stack(audio)), torch.tensor(labels), np.array(voices)


@pytest.fixture(scope="module")
def model():
    return kwmlp.load_model(device="cpu")


def test_head_recognises_heldout_voices(model, clips):
    audio, labels, _ = clips
    with torch.inference_mode():
        predicted = model.encoder(model.mfcc(audio)).argmax(dim=1)
    accuracy = (predicted == labels).float().mean().item()
    assert accuracy >= 0.85, f"top-1 {accuracy:.3f} on 105 held-out-voice clips"


def leave_one_group_out(scene: torch.Tensor, labels: torch.Tensor, groups: np.ndarray) -> float:
    """Nearest-class-mean accuracy, each group (voice, speaker) scored with class
    means fitted on all the other groups."""
    correct = 0
    for group in np.unique(groups):
        test = torch.from_numpy(groups == group)
        fitted = fit_class_means(scene[~test], labels[~test])
        correct += (predict_nearest_mean(scene[test], fitted) == labels[test]).sum().item()
    return correct / len(labels)


def test_scene_embeddings_separate_words_across_voices(model, clips):
    """Nearest class mean fitted on two held-out voices, scored on the third."""
    audio, labels, voices = clips
    accuracy = leave_one_group_out(kwmlp.get_scene_embeddings(audio, model), labels, voices)
    assert accuracy >= 0.8, f"leave-one-voice-out nearest-mean accuracy {accuracy:.3f}"


def read_clips(root: Path, pattern: str):
    """``(audio (n, 16000) float32 zero-padded, labels (n,), speakers (n,))`` of the
    clips under ``root`` matching ``pattern``, ``<word>/<speaker>_nohash_<k>.*``."""
    audio, labels, speakers = [], [], []
    for path in sorted(root.glob(pattern)):
        samples, rate = sf.read(path, dtype="float32")
        assert rate == 16000 and len(samples) <= 16000
        audio.append(np.pad(samples, (0, 16000 - len(samples))))
        labels.append(WORDS.index(path.parent.name))
        speakers.append(path.name.split("_nohash_")[0])
    return torch.from_numpy(np.stack(audio)), torch.tensor(labels), np.array(speakers)


@pytest.fixture(scope="module")
def real_clips():
    """``(audio (105, 16000) float32 zero-padded, labels (105,), speakers)``."""
    audio, labels, speakers = read_clips(REAL, "*/*.flac")
    assert len(audio) == 35 * 3
    return audio, labels, speakers


def test_real_clips_come_from_speakers_never_trained_on(real_clips, model):
    _, _, speakers = real_clips
    assert set(speakers) <= holdout_speakers()
    recipe, real = model.metadata["recipe"], model.metadata["training_data"]["real"]
    assert "tests/data/real in neither" in real["split_rule"]
    if not Path(real["path"]).is_dir():  # the real clips it trained on, where they are kept
        return
    # the shipped run's own split of every real clip: none of these speakers trains
    splits = run_splits(real["path"], recipe["cv_folds"], recipe["cv_fold"])
    trained = set(splits["speech_commands"]["training"][1])
    assert len(trained) > 100 and not trained & set(speakers)


def test_head_recognises_real_voices(model, real_clips):
    audio, labels, _ = real_clips
    with torch.no_grad():
        predicted = model.encoder(model.mfcc(audio)).argmax(dim=1)
    correct = predicted == labels
    accuracy = correct.float().mean().item()
    commands = torch.tensor([WORDS[label] in COMMAND_WORDS for label in labels.tolist()])
    command_accuracy = correct[commands].float().mean().item()
    assert accuracy >= REAL_HEAD_FLOOR, f"top-1 {accuracy:.3f} on 105 real clips"
    assert command_accuracy >= REAL_COMMAND_FLOOR, f"top-1 {command_accuracy:.3f} on 30 commands"


def test_scene_embeddings_separate_words_across_real_speakers(model, real_clips):
    """Nearest class mean, leave one speaker out: each speaker's clips are scored with
    means fitted on everyone else's."""
    audio, labels, speakers = real_clips
    accuracy = leave_one_group_out(kwmlp.get_scene_embeddings(audio, model), labels, speakers)
    assert accuracy >= REAL_SCENE_FLOOR, f"leave-one-speaker-out nearest-mean {accuracy:.3f}"


def test_head_says_no_keyword_to_silence_noise_and_a_single_sample(model):
    """Issue #21: digital silence, white noise and a 1-sample sound give no detection
    at the defaults (stage 6 named "up" at 0.607 in silence), because the head's own
    no-keyword classes take the probability, not because the threshold is high."""
    assert model.metadata["labels"][-2:] == ["_silence_", "_unknown_"]
    sounds = {"silence": torch.zeros(48_000),
              "white noise": 0.0316 * torch.from_numpy(
                  np.random.default_rng(1).standard_normal(48_000).astype(np.float32)),
              "one sample": torch.full((1,), 0.5)}
    for name, sound in sounds.items():
        recognition = kwmlp.recognize(sound[None], model)
        assert recognition.no_keyword.min() > 0.8, name
        assert kwmlp.spot(recognition, duration_ms=len(sound) / 16)[0] == [], name
