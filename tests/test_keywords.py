"""Keyword recognition and spotting: ``kwmlp.recognize`` against the head run
on hand-cut windows, the ``Spotter`` rules on hand-made probabilities, and
``kwmlp spot`` on recordings made from the committed held-out clips."""
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp.errors import KwmlpError
from kwmlp.keywords import Recognition, Spotter, hop_samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import spotting  # noqa: E402

CLIPS = sorted(p for name in spotting.SETS for p in spotting.SETS[name].glob("*/*")
               if p.suffix in (".wav", ".flac"))


@pytest.fixture(scope="module")
def model():
    return kwmlp.load_model(device="cpu")


# recognize

def test_recognize_scores_every_hop_window_like_the_head_on_that_window(model):
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.uniform(-0.3, 0.3, (2, 37_600)).astype(np.float32))
    out = kwmlp.recognize(audio, model, hop_ms=250)
    # windows start every 4000 samples until one reaches the end: 0 .. 24000 (7)
    assert out.probabilities.shape == (2, 7, 35) and len(out.words) == 35
    assert out.start_ms.tolist() == [250.0 * k for k in range(7)]
    assert torch.equal(out.end_ms, out.start_ms + 1000)
    padded = torch.nn.functional.pad(audio, (0, 24_000 + 16_000 - 37_600))
    for k in (0, 3, 6):
        window = padded[:, 4000 * k:4000 * k + 16_000]
        with torch.no_grad():
            # one softmax over every class the head has; recognize keeps the 35 word columns
            expected = model.encoder(model.mfcc(window)).softmax(dim=-1)[:, :35]
        torch.testing.assert_close(out.probabilities[:, k], expected, atol=1e-5, rtol=0)


def test_recognize_a_short_sound_is_one_zero_padded_window(model):
    audio = torch.rand(1, 5000) - 0.5
    out = kwmlp.recognize(audio, model)
    padded = torch.nn.functional.pad(audio, (0, 11_000)).expand(2, -1)
    with torch.no_grad():
        expected = model.encoder(model.mfcc(padded))[:1].softmax(dim=-1)[:, :35]
    assert out.start_ms.tolist() == [0.0]
    torch.testing.assert_close(out.probabilities[:, 0], expected, atol=1e-5, rtol=0)


def test_recognize_and_classify_take_float64_audio_as_the_embeddings_do(model):
    audio = torch.rand(1, 20_000, dtype=torch.float64) - 0.5  # what numpy code often holds
    single = kwmlp.recognize(audio.float(), model)
    double = kwmlp.recognize(audio, model)
    assert torch.equal(double.probabilities, single.probabilities)
    assert kwmlp.classify(audio[0].numpy(), model) == kwmlp.classify(audio[0].float().numpy(),
                                                                    model)


def test_a_published_layout_checkpoint_has_no_keyword_head(published_checkpoint):
    model = kwmlp.load_model(str(published_checkpoint), device="cpu")
    with pytest.raises(KwmlpError, match="published HEAR 2021 layout has no keyword head"):
        kwmlp.recognize(torch.zeros(1, 16000), model)
    with pytest.raises(KwmlpError, match="no keyword head"):
        kwmlp.Stream(model)
    kwmlp.Stream(model, keywords=False)  # embeddings alone need no head


@pytest.mark.parametrize("hop_ms", [0, 5, 15, 1010, -10, True, float("inf"), float("-inf"),
                                    float("nan"), pytest.param(10 ** 400, id="10**400"), 1e300,
                                    "100", None])
def test_hop_must_be_a_multiple_of_the_frame_hop(hop_ms):
    with pytest.raises(ValueError, match="multiple of 10 ms"):
        hop_samples(hop_ms)


@pytest.mark.parametrize("hop_ms", [10, 10.0, 1000, np.float32(250), np.int64(30)])
def test_hop_in_range_is_samples(hop_ms):
    assert hop_samples(hop_ms) == 16 * int(hop_ms)


@pytest.mark.parametrize("hop_ms", [float("inf"), float("nan")])
def test_recognize_and_stream_refuse_a_non_finite_hop(model, hop_ms):
    with pytest.raises(ValueError, match="multiple of 10 ms"):
        kwmlp.recognize(torch.zeros(1, 16000), model, hop_ms=hop_ms)
    with pytest.raises(ValueError, match="multiple of 10 ms"):
        kwmlp.Stream(model, hop_ms=hop_ms)


# the spotting rules, on hand-made probabilities (3 words, 100 ms hop, 3-window smoothing)

LOW = [1 / 3, 1 / 3, 1 / 3]


def _burst(word):
    row = [0.05, 0.05, 0.05]
    row[word] = 0.9
    return row


def _run_spotter(rows, **options):
    spotter = Spotter(("a", "b", "c"), hop_ms=100, threshold=0.6, **options)
    found = [d for k, row in enumerate(rows) if (d := spotter.update(torch.tensor(row), 100 * k))]
    return found + [d for d in [spotter.finish()] if d]


def test_spotter_smooths_merges_and_places_a_word():
    rows = [LOW] * 10 + [_burst(0)] * 5 + [LOW] * 10
    # Smoothed "a": window 10 (1/3 + 1/3 + .9) / 3 = .52 < .6; 11 .. 15 >= .6 -> one
    # detection. Raw "a" >= .6 in windows 10 .. 14 -> the word lies in all of
    # [1000, 2000) .. [1400, 2400): 1400 .. 2000 ms.
    [detection] = _run_spotter(rows, refractory_ms=0)
    assert (detection.word, detection.start_ms, detection.end_ms) == ("a", 1400, 2000)
    assert detection.score == pytest.approx(0.9)


def test_spotter_refractory_period():
    rows = [LOW] * 10 + [_burst(0)] * 5 + [LOW] + [_burst(1)] * 5 + [LOW] * 10
    # "a" fires in windows 11 .. 15 (last window starts at 1500 ms); "b" (burst in
    # windows 16 .. 20) fires in 17 .. 21 once smoothed.
    first, second = _run_spotter(rows, refractory_ms=0)
    assert (second.word, second.start_ms, second.end_ms) == ("b", 2000, 2600)
    # 500 ms: no start before 2000 ms, so "b" starts at window 20; raw "b" >= .6 only there
    first, late = _run_spotter(rows, refractory_ms=500)
    assert (late.word, late.start_ms, late.end_ms) == ("b", 2000, 3000)
    # 1000 ms: quiet until 2500 ms, by when "b" no longer fires
    assert [d.word for d in _run_spotter(rows, refractory_ms=1000)] == ["a"]


def test_spotter_reports_a_word_that_dips_and_recovers_once():
    rows = [LOW] * 10 + [_burst(0)] * 5 + [LOW] * 2 + [_burst(0)] * 10 + [LOW] * 10
    # Smoothed "a" fires in windows 11 .. 15 (last at 1500 ms), dips in 16 and 17, and
    # fires again from 18 (1800 ms) to 28. With no refractory period: two detections.
    assert [d.word for d in _run_spotter(rows, refractory_ms=0)] == ["a", "a"]
    # 500 ms: quiet until 2000 ms. The recovery began at 1800 ms, inside that period, so
    # the whole run is the first word's tail, also once the period is over.
    [once] = _run_spotter(rows, refractory_ms=500)
    assert (once.word, once.start_ms, once.end_ms) == ("a", 1400, 2000)
    # a new run of "a" that starts after the period is a new detection
    later = rows[:17] + [LOW] * 5 + [_burst(0)] * 5 + [LOW] * 10
    assert [d.start_ms for d in _run_spotter(later, refractory_ms=500)] == [1400, 2600]


def test_spot_uses_the_recognitions_own_threshold_unless_given_one():
    """A checkpoint's threshold (kwmlp fit, export --threshold) travels in its
    Recognition; kwmlp.spot(recognition) spotted at 0.6 whatever the checkpoint said."""
    rows = [LOW] * 5 + [[0.75, 0.2, 0.05]] * 5 + [LOW] * 5
    probabilities = torch.tensor([rows])
    starts = torch.arange(len(rows), dtype=torch.float32) * 100
    no_keyword = torch.zeros(1, len(rows))
    strict = Recognition(probabilities, starts, ("a", "b", "c"), no_keyword, threshold=0.8)
    assert kwmlp.spot(strict) == [[]]
    assert [d.word for d in kwmlp.spot(strict, threshold=0.6)[0]] == ["a"]
    lenient = Recognition(probabilities, starts, ("a", "b", "c"), no_keyword, threshold=0.6)
    assert [d.word for d in kwmlp.spot(lenient)[0]] == ["a"]


def test_spotter_threshold_rejects_a_flat_posterior():
    assert _run_spotter([LOW] * 20, refractory_ms=0) == []


# spotting recordings of the committed held-out clips

@pytest.fixture(scope="module")
def confident_clips(model):
    """Clips whose word the head gives >= 0.8 on the clip alone (so the test holds
    for any head good enough to ship), 24 of them, spread over the words."""
    audio = torch.stack([torch.from_numpy(np.pad(a, (0, 16000 - len(a))))
                         for a, _ in map(kwmlp.load_audio, CLIPS)])
    recognition = kwmlp.recognize(audio, model)
    probabilities, words = recognition.probabilities[:, 0], recognition.words
    truth = torch.tensor([words.index(p.parent.name) for p in CLIPS])
    confident = probabilities[torch.arange(len(CLIPS)), truth] >= 0.8
    picked, seen = [], set()
    for path, ok in zip(CLIPS, confident.tolist()):
        if ok and path.parent.name not in seen:
            picked.append(path)
            seen.add(path.parent.name)
    assert len(picked) >= 20, f"only {len(picked)} words recognised with p >= 0.8 in isolation"
    return picked[:24]


def test_spot_finds_the_words_of_a_recording_at_their_times(model, confident_clips):
    result = spotting.evaluate(model, confident_clips, seed=0)
    assert result["recall"] >= 0.8 and result["precision"] >= 0.75, result


def test_kwmlp_spot_on_a_file_and_on_stdin(model, confident_clips, tmp_path):
    audio, words = spotting.make_recording(confident_clips[:8], seed=1)
    path = tmp_path / "recording.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    pcm, _ = sf.read(path, dtype="int16")
    result = subprocess.run([sys.executable, "-m", "kwmlp", "spot", str(path), "-"],
                            input=pcm.tobytes(), capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    lines = [line.split("\t") for line in result.stdout.decode().splitlines()]
    from_file = [line[1:] for line in lines if line[0] == str(path)]
    from_stdin = [line[1:] for line in lines if line[0] == "-"]
    assert from_file == from_stdin and len(from_file) >= 1
    detections = [kwmlp.Detection(w, 1000 * float(s), 1000 * float(e), float(p))
                  for w, s, e, p in from_file]
    assert spotting.match(detections, words) >= 6, (from_file, words)


# the no-keyword classes

def _with_head_rows(tmp_path: Path, model, extra_bias: Optional[float]) -> kwmlp.KWMLPEmbedder:
    """The shipped encoder with its 35 word rows of the head only, plus (unless
    ``extra_bias`` is None) the two no-keyword classes, whose logit is
    ``extra_bias`` whatever the audio (zero weights)."""
    from kwmlp.checkpoints import save_checkpoint
    from kwmlp.encoder import KWMLP
    from kwmlp.vocabulary import LABELS, WORDS

    labels = WORDS if extra_bias is None else LABELS
    encoder = KWMLP(**{**model.encoder.config(), "n_classes": len(labels)})
    state = model.encoder.state_dict()
    state["head.weight"], state["head.bias"] = state["head.weight"][:35], state["head.bias"][:35]
    if extra_bias is not None:
        state["head.weight"] = torch.cat([state["head.weight"], torch.zeros(2, 64)])
        state["head.bias"] = torch.cat([state["head.bias"], torch.full((2,), extra_bias)])
    encoder.load_state_dict(state)
    path = tmp_path / f"rows{extra_bias}.pt"
    save_checkpoint(path, encoder, {"labels": list(labels), "keywords": list(WORDS)})
    return kwmlp.load_model(str(path), device="cpu")


def test_no_keyword_probability_is_the_softmax_share_of_the_extra_classes(tmp_path, model):
    words_only = _with_head_rows(tmp_path, model, None)
    rejecting = _with_head_rows(tmp_path, model, 1.5)
    audio = torch.rand(1, 24_000) - 0.5
    plain, out = kwmlp.recognize(audio, words_only), kwmlp.recognize(audio, rejecting)
    assert out.words == plain.words and out.probabilities.shape == plain.probabilities.shape
    assert torch.equal(plain.no_keyword, torch.zeros_like(plain.no_keyword))
    # softmax over (z_1..z_35, b, b): the two extra classes take 2 e^b / (sum e^z + 2 e^b)
    # and the words keep their ratios to each other
    with torch.no_grad():
        logits = words_only.encoder(words_only.mfcc(
            torch.nn.functional.pad(audio, (0, 8000))[:, :16000]))
    share = 2 * np.exp(1.5) / (torch.exp(logits).sum().item() + 2 * np.exp(1.5))
    assert out.no_keyword[0, 0].item() == pytest.approx(share, abs=1e-5)
    torch.testing.assert_close(out.probabilities,
                               plain.probabilities * (1 - out.no_keyword[..., None]),
                               atol=1e-5, rtol=0)


def test_a_dominant_no_keyword_class_never_fires_offline_or_streaming(tmp_path, model):
    rejecting = _with_head_rows(tmp_path, model, 50.0)
    audio, _ = spotting.make_recording(CLIPS[:6], seed=0)
    assert kwmlp.spot(kwmlp.recognize(torch.from_numpy(audio)[None], model))[0]  # words fire...
    recognition = kwmlp.recognize(torch.from_numpy(audio)[None], rejecting)
    assert kwmlp.spot(recognition, threshold=0.01) == [[]]  # ...not beside a certain "none"
    assert recognition.no_keyword.min().item() > 0.999
    stream = kwmlp.Stream(rejecting, embeddings=False)
    pieces = [stream.push(torch.from_numpy(audio[i:i + 7000])) for i in range(0, len(audio), 7000)]
    pieces.append(stream.flush())
    assert not [d for p in pieces for d in p.detections]
    torch.testing.assert_close(torch.cat([p.no_keyword for p in pieces]),
                               recognition.no_keyword[0], atol=1e-5, rtol=0)


def test_labels_that_do_not_match_the_head_are_refused(tmp_path, model):
    from kwmlp.checkpoints import save_checkpoint

    path = tmp_path / "mislabelled.pt"
    save_checkpoint(path, model.encoder, {"labels": ["yes", "no"]})
    with pytest.raises(KwmlpError, match="scores 37 classes but the checkpoint names 2"):
        kwmlp.recognize(torch.zeros(1, 16000), kwmlp.load_model(str(path), device="cpu"))
    labels = list(model.metadata["labels"])
    save_checkpoint(path, model.encoder, {"labels": ["a"] * len(labels)})
    with pytest.raises(KwmlpError, match=r"names \['a'\] for more than one class"):
        kwmlp.recognize(torch.zeros(1, 16000), kwmlp.load_model(str(path), device="cpu"))


@pytest.mark.parametrize("stored", [1.7, float("nan"), "0.5", 0.0])
def test_a_checkpoint_threshold_out_of_range_is_named_not_a_traceback(tmp_path, model, stored):
    from kwmlp.checkpoints import save_checkpoint

    path = tmp_path / "odd.pt"
    save_checkpoint(path, model.encoder, {**model.metadata, "threshold": stored})
    odd = kwmlp.load_model(str(path), device="cpu")
    with pytest.raises(KwmlpError, match=r"odd.pt: the checkpoint's threshold is unusable"):
        kwmlp.recognize(torch.zeros(1, 16000), odd)
    assert kwmlp.spot(kwmlp.recognize(torch.zeros(1, 16000), odd, threshold=0.6)) == [[]]
    assert kwmlp.classify(np.zeros(8000, np.float32), odd, threshold=0.6)[0].label == "none"
    assert kwmlp.Stream(odd, threshold=0.6).spotter.threshold == 0.6
    result = subprocess.run([sys.executable, "-m", "kwmlp", "classify", "--model", str(path),
                             str(CLIPS[0])], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "threshold is unusable" in result.stderr
    given = subprocess.run([sys.executable, "-m", "kwmlp", "classify", "--model", str(path),
                            "--threshold", "0.6", str(CLIPS[0])], capture_output=True,
                           text=True, timeout=300)
    assert given.returncode == 0, given.stderr


def test_a_multichannel_array_is_refused_not_taken_for_many_sounds(model):
    """soundfile gives (n_samples, n_channels): that is no batch of 2-sample sounds."""
    stereo = torch.zeros(16000, 2)
    with pytest.raises(ValueError, match=r"looks like \(n_samples, n_channels\)"):
        kwmlp.recognize(stereo, model)
    with pytest.raises(ValueError, match=r"looks like \(n_samples, n_channels\)"):
        kwmlp.get_scene_embeddings(stereo, model)
    # the same samples the right way round (one sound per channel) are fine
    assert kwmlp.recognize(stereo.T.contiguous(), model).probabilities.shape[0] == 2


def test_misused_calls_say_what_is_wrong(model):
    with pytest.raises(TypeError, match=r"recognize takes \(audio, model\); the arguments are"):
        kwmlp.recognize(model, torch.zeros(1, 16000))
    with pytest.raises(TypeError, match=r"classify takes \(audio, model\)"):
        kwmlp.classify(model, np.zeros(16000, np.float32))
    with pytest.raises(TypeError, match="spot takes the Recognition kwmlp.recognize returns"):
        kwmlp.spot(torch.zeros(1, 5, 35))
    heard = kwmlp.recognize(torch.zeros(1, 16000), model)
    with pytest.raises(TypeError, match="duration_ms must be a number"):
        kwmlp.spot(heard, duration_ms="5")
    with pytest.raises(ValueError, match="duration_ms must be >= 0"):
        kwmlp.spot(heard, duration_ms=-5)
