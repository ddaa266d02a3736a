"""The shipped weights learned the task: their keyword head and their scene
embeddings recognise the 35 words spoken by voices held out of training
(tests/data/heldout: festival ked, flite rms, one espeak-ng Scottish voice)."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp.train.scene_probe import fit_class_means, predict_nearest_mean
from kwmlp.train.speech_commands import WORDS

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout"


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


def test_scene_embeddings_separate_words_across_voices(model, clips):
    """Nearest class mean fitted on two held-out voices, scored on the third."""
    audio, labels, voices = clips
    scene = kwmlp.get_scene_embeddings(audio, model)
    correct = 0
    for voice in np.unique(voices):
        test = torch.from_numpy(voices == voice)
        fitted = fit_class_means(scene[~test], labels[~test])
        correct += (predict_nearest_mean(scene[test], fitted) == labels[test]).sum().item()
    accuracy = correct / len(labels)
    assert accuracy >= 0.8, f"leave-one-voice-out nearest-mean accuracy {accuracy:.3f}"
