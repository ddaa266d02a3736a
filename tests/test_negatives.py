"""Non-keyword audio (kwmlp.train.negatives) and a head trained to say "no keyword"."""
import gzip
import re
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp.checkpoints import load_checkpoint, save_checkpoint
from kwmlp.encoder import KWMLP
from kwmlp.train import negatives, train as train_module
from kwmlp.train.export import export_run
from kwmlp.vocabulary import LABELS, SILENCE, UNKNOWN, WORDS
from test_train import TINY, make_corpus

SR = 16_000


def test_texts_hold_no_keyword():
    negatives.check_keyword_free(negatives.TEXT_SENTENCES + negatives.NON_KEYWORDS)
    spoken = {t for text in negatives.TEXT_SENTENCES + negatives.NON_KEYWORDS
              for t in re.findall(r"[a-z]+", text.lower())}
    assert not spoken & set(WORDS)
    negatives.check_keyword_free(["a phone call"], inside_words=False)
    for bad in ("turn left now", "the downtown bus", "a gift to you", "I know", "the birds sang"):
        with pytest.raises(ValueError, match="keywords or homophones"):
            negatives.check_keyword_free([bad])


def test_composed_phrases_are_seeded_keyword_free_strings_of_ordinary_words():
    phrases = negatives.composed_phrases(50, seed=1)
    negatives.check_keyword_free(phrases)
    assert phrases == negatives.composed_phrases(50, seed=1)
    assert phrases != negatives.composed_phrases(50, seed=2)
    low, high = negatives.PHRASE_WORDS
    for phrase in phrases:
        words = phrase.rstrip(".").lower().split()
        assert low <= len(words) <= high and set(words) <= set(negatives.NON_KEYWORDS)


def test_default_sources_are_the_recipes_and_every_source_has_a_licence():
    """The sources added after the shipped recipes are opt-in, so the recipes' command
    (no --sources) still builds the same clips."""
    assert negatives.DEFAULT_SOURCES == ("fr_prompts", "tts_sentence", "tts_word",
                                         "music_midi", "effects", "noise")
    assert set(negatives._sources(0, "")) == set(negatives.LICENCES)


def test_prompts_leave_out_numbers_and_letters(tmp_path):
    for relpath in ("hello.wav", "vm/intro.wav", "digits/1.wav", "letters/a.wav", "x.gsm"):
        (tmp_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relpath).write_bytes(b"")
    kept = [p.relative_to(tmp_path).as_posix() for p in negatives._prompts(tmp_path)]
    assert kept == ["hello.wav", "vm/intro.wav"]


def test_english_prompts_are_those_whose_transcript_holds_no_keyword(tmp_path):
    """Real English speech for "no keyword": a prompt goes in only when its transcript
    says so; a keyword, a plural or a homophone of one, a number in digits, a described
    sound, a skipped folder or a missing transcript keep it out."""
    said = {"hello": "Hello and welcome.", "vm/intro": "Press the pound key.",
            "vm/go": "Go ahead.", "birds": "The birds sang.", "gift": "A gift to you.",
            "beep": "[a simple beep tone]", "silence/6": "(6 seconds of silence)",
            "vm-cust5": "folder 5", "spy-h323": "H.323", "digits/1": "one"}
    for name in list(said) + ["unlisted"]:
        (tmp_path / f"{name}.wav").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{name}.wav").write_bytes(b"")
    lines = ["; Core Asterisk Sounds in English", ""] + [f"{k}: {v}" for k, v in said.items()]
    listing = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(listing, "wt") as f:
        f.write("\n".join(lines) + "\n")
    kept = negatives.keyword_free_prompts(tmp_path, listing)
    assert [p.relative_to(tmp_path).as_posix() for p in kept] == ["hello.wav", "vm/intro.wav"]
    assert negatives.keyword_free_prompts(tmp_path, tmp_path / "missing.txt.gz") == []


def test_a_short_chime_lands_at_several_places_and_levels(tmp_path, monkeypatch):
    theme = tmp_path / "theme"
    theme.mkdir()
    t = np.arange(4_000) / SR
    sf.write(theme / "ding.oga", 0.5 * np.sin(2 * np.pi * 880 * t), SR, format="OGG")
    monkeypatch.setattr(negatives, "SOUND_THEMES", (theme,))
    monkeypatch.setattr(negatives, "OXYGEN_SOUNDS", tmp_path / "none")
    summary = negatives.build_negatives(tmp_path / "out", seed=0, sources=["chimes"])
    assert sum(summary["sources"]["chimes"]["clips"].values()) == negatives.CHIME_PLACEMENTS
    data = np.load(tmp_path / "out" / negatives.NEGATIVES_NAME)
    audio = data["audio"].astype(np.float64)
    assert set(data["label"].tolist()) == {LABELS.index(UNKNOWN)}
    onsets = {int(np.flatnonzero(np.abs(clip) > 100)[0]) for clip in audio}
    peaks = {int(np.abs(clip).max()) for clip in audio}
    assert len(onsets) == len(peaks) == negatives.CHIME_PLACEMENTS
    for clip, onset in zip(audio, (int(np.flatnonzero(np.abs(c) > 100)[0]) for c in audio)):
        assert not clip[onset + 4_100:].any()  # the chime, 250 ms, then silence
    # a source whose Debian packages are missing says so instead of adding nothing
    monkeypatch.setattr(negatives, "SOUND_THEMES", (tmp_path / "missing",))
    with pytest.raises(kwmlp.KwmlpError, match="chimes gave no clips.*yaru-theme-sound"):
        negatives.build_negatives(tmp_path / "out2", seed=0, sources=["chimes"])


def test_windows_cut_every_hop_pad_the_end_and_drop_quiet_ones():
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 40_000)
    audio[16_000:32_000] = 0.0  # the windows at 8000 and 24000 are half silent, 16000 all
    out = negatives.windows(audio, 8_000)
    starts = [0, 8_000, 24_000]
    assert len(out) == 3
    for window, start in zip(out, starts):
        np.testing.assert_array_equal(window, audio[start:start + SR])
    quiet = np.random.default_rng(1).uniform(-0.5, 0.5, 40_000)
    quiet[:SR] = 0.0
    # [0, 16000) is silent; [16000, 32000) is not, nor [32000, 40000) zero-padded to 1 s
    assert len(negatives.windows(quiet, SR)) == 2
    short = negatives.windows(audio[:5_000], 8_000)
    assert len(short) == 1 and short[0].shape == (SR,) and not short[0][5_000:].any()
    spread = negatives.windows(audio, 8_000, limit=2)
    np.testing.assert_array_equal(spread[1], audio[24_000:40_000])  # first and last kept


def test_midi_file_is_a_valid_standard_midi_file():
    data = negatives.midi_file(np.random.default_rng(0), 5.0)
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 480)
    assert data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    assert len(data) == 22 + length and data.endswith(b"\xff\x2f\x00")


@pytest.fixture(scope="module")
def noise_negatives(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(negatives, "SILENCE_CLIPS", 60)
    out = tmp_path_factory.mktemp("negatives")
    summary = negatives.build_negatives(out, seed=3, sources=["noise"])
    return out, summary


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_build_writes_silence_clips_split_by_item(noise_negatives, tmp_path):
    out, summary = noise_negatives
    clips = summary["sources"]["noise"]["clips"]
    assert summary["sources"]["noise"]["label"] == SILENCE
    assert clips["training"] + clips["validation"] == 60 and clips["validation"] > 0
    data = negatives.load_negatives(out)
    audio, labels = data["training"]
    assert audio.dtype == torch.int16 and audio.shape == (clips["training"], SR)
    assert set(labels.tolist()) == {LABELS.index(SILENCE)}
    assert len(data["validation"][0]) == clips["validation"]
    # The split is a fixed hash of each item's name: 10 % of many items, none moved by a rebuild.
    names = [f"silence{k}" for k in range(2000)]
    share = np.mean([negatives._is_validation(n) for n in names])
    assert abs(share - negatives.VALIDATION_PERCENT / 100) < 0.02
    again = negatives.build_negatives(tmp_path, seed=3, sources=["noise"])
    assert again == summary
    np.testing.assert_array_equal(negatives.load_negatives(tmp_path)["training"][0], audio)
    with pytest.raises(kwmlp.KwmlpError, match="unknown negative sources"):
        negatives.build_negatives(tmp_path, sources=["radio"])
    with pytest.raises(kwmlp.KwmlpError, match="does not exist"):
        negatives.load_negatives(tmp_path / "nowhere")


def test_a_35_word_checkpoint_seeds_a_head_with_the_no_keyword_classes(tmp_path):
    torch.manual_seed(0)
    words = KWMLP(dim=8, dim_ff=16, depth=2).eval()
    save_checkpoint(tmp_path / "words.pt", words, {})
    model = KWMLP(dim=8, dim_ff=16, depth=2, n_classes=len(LABELS)).eval()
    train_module.init_from(model, tmp_path / "words.pt")
    mfcc = torch.randn(3, 40, 98)
    with torch.no_grad():
        old, new = words(mfcc), model(mfcc)
    torch.testing.assert_close(new[:, :len(WORDS)], old, rtol=0, atol=0)
    assert new.shape == (3, len(LABELS))


def test_training_with_negatives_gives_a_head_that_names_no_keyword(noise_negatives, tmp_path):
    out, _ = noise_negatives
    corpus = make_corpus(tmp_path / "corpus")
    run_dir = tmp_path / "run"
    train_module.main(["--data", str(corpus), "--out", str(run_dir), "--epochs", "2",
                       "--negatives", str(out), "--negatives-repeat", "2", *TINY])
    log = train_module.read_log(run_dir)
    assert "negatives_val_acc" in log[-1]
    exported = tmp_path / "kwmlp.pt"
    export_run(run_dir, exported, weights="last")
    model, meta = load_checkpoint(exported)
    assert model.head.out_features == len(LABELS)
    assert meta["labels"] == list(LABELS) and meta["keywords"] == list(WORDS)
    negatives_data = meta["training_data"]["negatives"]
    assert negatives_data["repeat"] == 2 and negatives_data["sources"]["noise"]["label"] == SILENCE
    assert "_silence_ clips (x2 per epoch)" in meta["trained_on"]
    embedder = kwmlp.load_model(str(exported), device="cpu")
    recognition = kwmlp.recognize(torch.zeros(1, SR), embedder)
    assert recognition.probabilities.shape[-1] == len(WORDS)  # the 35 word columns only
    total = recognition.probabilities.sum(-1) + recognition.no_keyword
    torch.testing.assert_close(total, torch.ones_like(total))
    assert UNKNOWN in meta["labels"]
    # the head learned "no keyword": the held-out noise clips, scored by the exported
    # model, come out as their class as often as the run logged, and mostly
    audio, labels = negatives.load_negatives(out)["validation"]
    with torch.no_grad():
        said = embedder.classify_chunks(audio.float() / 32768).argmax(-1)
    assert set(labels.tolist()) == {LABELS.index(SILENCE)}
    accuracy = (said == labels).float().mean().item()
    assert accuracy == pytest.approx(log[-1]["negatives_val_acc"], abs=1e-4)
    assert accuracy >= 0.9, accuracy
