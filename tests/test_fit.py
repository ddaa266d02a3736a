"""kwmlp fit: a classifier for your own labelled folder, fitted on committed
tiny data (three synthetic voices a word, tests/data/heldout, under new label
names), and used everywhere a head is used."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
import kwmlp.cli
from kwmlp.errors import KwmlpError
from kwmlp.keywords import NO_LABEL, centred_window
from kwmlp.train import fit as fit_module
from kwmlp.vocabulary import SILENCE, UNKNOWN

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout"
NEW_LABELS = {"alpha": "cat", "bravo": "seven", "charlie": "house"}  # label -> spoken word
OTHER_WORDS = ("bed", "marvin")  # what must map to none of the labels


def _folder(root: Path, labels=NEW_LABELS, unknown=OTHER_WORDS) -> Path:
    for label, word in labels.items():
        shutil.copytree(HELDOUT / word, root / label)
    for word in unknown:
        for clip in (HELDOUT / word).iterdir():
            (root / "_unknown_").mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, root / "_unknown_" / f"{word}-{clip.name}")
    return root


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    data = _folder(root / "data")
    report = kwmlp.fit(data, root / "mine.pt", seed=0)
    return report, kwmlp.load_model(str(root / "mine.pt"), device="cpu"), data


def test_fit_writes_a_checkpoint_with_its_labels_and_recipe(fitted):
    report, model, data = fitted
    assert report.labels == ("alpha", "bravo", "charlie", SILENCE, UNKNOWN)
    assert model.metadata["labels"] == list(report.labels)
    assert model.metadata["fit"]["mode"] == "head"
    assert model.metadata["threshold"] == report.threshold
    assert kwmlp.keywords.head_words(model) == ("alpha", "bravo", "charlie")
    assert model.encoder.head.out_features == 5
    # new names start from zero; the no-keyword classes from the base head's columns
    assert model.metadata["fit"]["from_base_head"] == [SILENCE, UNKNOWN]
    assert not any("no _unknown_/ audio" in w for w in report.warnings)  # it has some
    assert model.metadata["description"].startswith("kwmlp fit: 3 labels of ")
    from kwmlp.info import model_info
    assert model_info(model)["labels"] == f"alpha, bravo, charlie, {SILENCE}, {UNKNOWN} (5)"
    # flite-rms_nohash_0: a speaker in every folder, so validation is by speaker
    assert "speakers held out" in report.validation and report.n_validation > 0


def test_head_mode_leaves_the_hear_embeddings_bit_identical(fitted):
    _, model, _ = fitted
    base = kwmlp.load_model(device="cpu")
    audio = torch.from_numpy(kwmlp.load_audio(HELDOUT / "cat" / "flite-rms_nohash_0.wav")[0])
    emb, ts = kwmlp.get_timestamp_embeddings(audio[None], model)
    base_emb, base_ts = kwmlp.get_timestamp_embeddings(audio[None], base)
    assert torch.equal(emb, base_emb) and torch.equal(ts, base_ts)
    assert torch.equal(kwmlp.get_scene_embeddings(audio[None], model),
                       kwmlp.get_scene_embeddings(audio[None], base))
    assert model.model_id() != base.model_id()  # the head differs, and the id covers it


def test_recognize_classify_spot_and_stream_use_the_fitted_labels(fitted):
    _, model, data = fitted
    clip = kwmlp.load_audio(data / "bravo" / "flite-rms_nohash_0.wav")[0]
    recognition = kwmlp.recognize(torch.from_numpy(clip)[None], model)
    assert recognition.words == ("alpha", "bravo", "charlie")
    assert recognition.probabilities.shape[-1] == 3
    answers = kwmlp.classify([clip, np.zeros(16000, np.float32)], model)
    assert answers[0].label == "bravo"  # one of the fit's clips (trained or validated on)
    assert answers[1].label == NO_LABEL  # digital silence
    talk = np.concatenate([np.zeros(8000, np.float32), centred_window(clip),
                           np.zeros(8000, np.float32)])
    detections = kwmlp.keywords.spot_audio(talk, model)[1]
    assert [d.word for d in detections] == ["bravo"]
    # kwmlp.spot on a Recognition spots at the checkpoint's threshold too (test_keywords)
    recognition = kwmlp.recognize(torch.from_numpy(talk)[None], model)
    assert recognition.threshold == model.metadata["threshold"]
    stream = kwmlp.Stream(model, embeddings=False)
    found = stream.push(torch.from_numpy(talk)).detections + stream.flush().detections
    assert [d.word for d in found] == ["bravo"]


def test_export_head_names_the_fitted_labels(fitted, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    _, model, _ = fitted
    from kwmlp.onnx_export import export_onnx

    export_onnx(model, tmp_path / "mine.onnx", head=True)
    session = ort.InferenceSession(str(tmp_path / "mine.onnx"),
                                   providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["kwmlp_labels"]) == list(model.metadata["labels"])
    assert float(meta["kwmlp_threshold"]) == model.metadata["threshold"]  # the fitted one
    chunks = np.stack([np.zeros(16000), kwmlp.load_audio(HELDOUT / "cat" / sorted(
        p.name for p in (HELDOUT / "cat").iterdir())[0])[0]]).astype(np.float32)
    _, logits = session.run(None, {"chunks": chunks})
    with torch.no_grad():
        expected = model.classify_chunks(torch.from_numpy(chunks)).numpy()
    assert expected.shape == (2, 5)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_classify_centres_a_short_clip_as_fit_trains_it(fitted):
    _, model, data = fitted
    clip = kwmlp.load_audio(data / "alpha" / "flite-rms_nohash_0.wav")[0][4000:12000]
    window = centred_window(clip)
    assert window.shape == (16000,) and np.array_equal(window[4000:12000], clip)
    assert not window[:4000].any() and not window[12000:].any()
    # classify scores the short clip as the centred window, not the clip at the start
    (answer,) = kwmlp.classify(clip, model, threshold=0.01)
    probabilities = kwmlp.recognize(torch.from_numpy(window)[None], model).probabilities[0, 0]
    assert answer.score == pytest.approx(probabilities.max().item(), abs=1e-6)
    start = kwmlp.recognize(torch.from_numpy(clip)[None], model).probabilities[0, 0]
    assert answer.score != pytest.approx(start.max().item(), abs=1e-5)
    windows = fit_module.clip_windows(np.ones(16000 + 4000 + 1, np.float32))
    assert len(windows) == 3  # at 0, 250 ms and the end: every window of a longer clip


def test_a_long_take_trains_on_its_loud_windows_only():
    take = np.zeros(30 * 16000, np.float32)
    take[14 * 16000:14 * 16000 + 8000] = 0.5  # the word, 0.5 s at 14 s; silence around it
    windows = fit_module.clip_windows(take, loud_only=True)
    # starts 13.25 ... 14.25 s: each holds at least half the word (3 dB under the
    # loudest, within 10 dB); 13.0 and 14.5 s hold none of it
    assert len(windows) == 5 and min((w != 0).sum() for w in windows) == 4000
    assert len(fit_module.clip_windows(take)) == 117  # no-keyword audio keeps every window


def _scores(rows):
    """ClipScores from (best word probability, its index, no-keyword probability)."""
    score, index, nothing = zip(*rows)
    return fit_module.ClipScores(torch.tensor(score), torch.tensor(index), torch.tensor(nothing))


def test_choose_threshold_answers_most_clips_right():
    scores = _scores([(0.95, 0, 0.02),   # word 0, sure
                      (0.55, 0, 0.05),   # word 0, unsure
                      (0.70, 0, 0.20),   # no keyword, looks like word 0
                      (0.20, 0, 0.70)])  # no keyword
    truth = torch.tensor([0, 0, -1, -1])
    # t <= 0.55 gets 3 right (the 0.70 clip wrong); 0.55 < t <= 0.70 gets 2; above 0.70
    # 3 again (the 0.55 clip wrong): the middle of the wider 0.30..0.55, not its lowest
    # point, which hugs the no-keyword clip
    assert fit_module.choose_threshold(scores, truth) == pytest.approx(0.425)
    truth = torch.tensor([0, -1, -1, -1])  # now the 0.55 clip is no keyword either
    # all four right above 0.70 and up to the range's top, 0.90
    assert fit_module.choose_threshold(scores, truth) == pytest.approx(0.80)
    # the candidates are the words' scores: only (0.451, 0.452] gets both right, and
    # the 0.01 grid has no point there
    scores = _scores([(0.452, 0, 0.30), (0.451, 0, 0.30)])
    assert fit_module.choose_threshold(scores, torch.tensor([0, -1])) == pytest.approx(0.4515)
    # a gap between no-keyword audio (0.40) and the word (0.80): (0.40, 0.80] all right
    scores = _scores([(0.80, 0, 0.10), (0.40, 0, 0.10)])
    assert fit_module.choose_threshold(scores, torch.tensor([0, -1])) == pytest.approx(0.60)
    # one validation clip and quiet silences: every threshold is as good, and the
    # choice is the range's middle, not 0.3 (which fires on most speech)
    scores = _scores([(0.95, 0, 0.01)] + [(0.10, 0, 0.80)] * 16)
    assert fit_module.choose_threshold(scores, torch.tensor([0] + [-1] * 16)) == \
        pytest.approx(0.6)
    # two equally good stretches: the wider one's middle
    scores = _scores([(0.35, 0, 0.1), (0.40, 0, 0.1), (0.50, 0, 0.1)])
    # t in [0.30, 0.35]: 2 right; (0.35, 0.40]: 1; (0.40, 0.50]: 2; above 0.50: 1
    truth = torch.tensor([0, -1, 0])
    assert fit_module.choose_threshold(scores, truth) == pytest.approx(0.45)
    # equally wide stretches, [0.30, 0.35] and (0.40, 0.45]: the lower one's middle
    scores = _scores([(0.35, 0, 0.1), (0.40, 0, 0.1), (0.45, 0, 0.1)])
    assert fit_module.choose_threshold(scores, truth) == pytest.approx(0.325)


def test_a_word_the_head_gives_less_than_nothing_is_not_the_answer():
    # 0.33 reaches a threshold of 0.3, but "no keyword" has 0.60 of the window
    scores = _scores([(0.33, 1, 0.60), (0.45, 1, 0.30)])
    assert fit_module.answers(scores, 0.3).tolist() == [-1, 1]
    assert kwmlp.keywords.answer(0.33, 0.60, 0.3) is False
    spotter = kwmlp.keywords.Spotter(("alpha", "bravo"), threshold=0.3, hop_ms=100)
    quiet = [spotter.update(torch.tensor([0.05, 0.33]), 100.0 * k) for k in range(5)]
    assert quiet == [None] * 5 and spotter.finish() is None  # 0.62 is "nothing"
    fired = [spotter.update(torch.tensor([0.05, 0.55]), 100.0 * k) for k in range(5, 12)]
    detection = next(d for d in fired + [spotter.finish()] if d)
    assert detection.word == "bravo"


def test_a_label_the_base_head_scores_starts_from_its_column():
    payload = torch.load(kwmlp.checkpoints.default_weights_path(), weights_only=True)
    base_labels = payload["metadata"]["labels"]
    weight, bias = payload["state_dict"]["head.weight"], payload["state_dict"]["head.bias"]
    encoder, metadata = kwmlp.checkpoints.load_checkpoint(kwmlp.checkpoints.default_weights_path())
    prior = fit_module.head_prior(encoder, metadata, ["cat", "zebra", SILENCE], "shipped")
    assert prior.inherited.tolist() == [True, False, True]
    assert torch.equal(prior.weight[0], weight[base_labels.index("cat")])
    assert torch.equal(prior.bias[2], bias[base_labels.index(SILENCE)])
    assert not prior.weight[1].any() and prior.bias[1] == 0
    assert prior.pull.tolist() == pytest.approx([fit_module.PRIOR_PULL, fit_module.WEIGHT_DECAY,
                                                 fit_module.PRIOR_PULL])


def test_fit_linear_minimises_cross_entropy_plus_the_pull_toward_its_start():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = np.r_[np.zeros(40, int), np.ones(15, int), np.full(5, 2)]  # unbalanced classes
    x[:, 0] += y  # a learnable signal
    start = rng.normal(size=(3, 5)).astype(np.float32)
    prior = fit_module.HeadPrior(torch.from_numpy(start), torch.zeros(3),
                                 torch.tensor([True, False, True]))
    head = fit_module.fit_linear(torch.from_numpy(x), torch.from_numpy(y), prior, steps=500)
    w, b = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
    # the gradient of the objective, in numpy: class-balanced mean cross-entropy
    # (weights n / (k n_c), normalised by their sum) plus sum_c pull_c |w_c - start_c|^2
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    sample = (60 / (3 * np.bincount(y)))[y]
    residual = (p - np.eye(3)[y]) * sample[:, None] / sample.sum()
    pull = np.array([fit_module.PRIOR_PULL, fit_module.WEIGHT_DECAY, fit_module.PRIOR_PULL])
    grad_w = residual.T @ x + 2 * pull[:, None] * (w - start)
    assert np.abs(grad_w).max() < 1e-4 and np.abs(residual.sum(0)).max() < 1e-4
    assert not np.allclose(w, start, atol=1e-2)  # it moved: the data pulls too


def test_split_by_speaker_keeps_speakers_apart():
    clips = [fit_module.Clip(Path(f"{s}_nohash_{k}.wav"), label, s)
             for s in ("ann", "bob", "cy", "dee", "eve", "fay") for label in (0, 1)
             for k in range(2)]
    train, val, how = fit_module.split_clips(clips, seed=3)
    assert {c.speaker for c in train}.isdisjoint({c.speaker for c in val}) and val
    assert {c.label for c in train} == {0, 1} and "speakers held out" in how
    random_train, random_val, how = fit_module.split_clips(
        [fit_module.Clip(Path(f"x{k}.wav"), k % 2, "") for k in range(10)], seed=0)
    assert len(random_val) == 2 and "random" in how  # a fifth of each label
    one = [fit_module.Clip(Path("a.wav"), 0, ""), fit_module.Clip(Path("b.wav"), 1, "")]
    assert fit_module.split_clips(one, seed=0)[1] == []  # a label's only clip trains


def test_bad_folders_get_clear_errors(tmp_path):
    with pytest.raises(KwmlpError, match="no such folder"):
        kwmlp.fit(tmp_path / "nope", tmp_path / "x.pt")
    shutil.copytree(HELDOUT / "cat", tmp_path / "two" / "alpha")
    shutil.copytree(HELDOUT / "dog", tmp_path / "two" / "bravo")
    with pytest.raises(KwmlpError, match="is a folder; name the checkpoint"):
        kwmlp.fit(tmp_path / "two", tmp_path / "two")  # the output is refused before fitting
    clip = next((tmp_path / "two" / "alpha").iterdir())
    before = clip.read_bytes()
    with pytest.raises(KwmlpError, match="inside the input folder"):
        kwmlp.fit(tmp_path / "two", clip)  # would have replaced a training clip
    assert clip.read_bytes() == before
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(KwmlpError, match="exists and is not a kwmlp checkpoint"):
        kwmlp.fit(tmp_path / "two", tmp_path / "notes.txt")
    with pytest.raises(KwmlpError, match="notes.txt is not a folder"):
        kwmlp.fit(tmp_path / "two", tmp_path / "notes.txt" / "x.pt")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "empty" / "alpha").mkdir(parents=True)
    shutil.copytree(HELDOUT / "cat", tmp_path / "empty" / "bravo")
    with pytest.raises(KwmlpError, match=r"alpha: no audio files for the label 'alpha'"):
        kwmlp.fit(tmp_path / "empty", tmp_path / "x.pt")
    shutil.copytree(HELDOUT / "cat", tmp_path / "one" / "alpha")
    with pytest.raises(KwmlpError, match="needs two labels, or one label and negative"):
        kwmlp.fit(tmp_path / "one", tmp_path / "x.pt")
    (tmp_path / "no_val").mkdir()
    with pytest.raises(KwmlpError, match="no_val: no validation clips"):
        kwmlp.fit(tmp_path / "two", tmp_path / "x.pt", val_dir=tmp_path / "no_val")
    # "yes " and "None" would print like "yes" and classify's "none"
    for i, name in enumerate(("_private", "none", "a\tb", "yes ", "None", "NONE")):
        bad = tmp_path / f"bad{i}"
        shutil.copytree(HELDOUT / "cat", bad / "alpha")
        shutil.copytree(HELDOUT / "dog", bad / name)
        with pytest.raises(KwmlpError, match="cannot be a label"):
            kwmlp.fit(bad, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_an_unreadable_file_is_named_and_the_fit_goes_on(tmp_path):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    (data / "alpha" / "broken.wav").write_bytes(b"RIFF\x00\x00")
    report = kwmlp.fit(data, tmp_path / "x.pt", epochs=20)
    assert len(report.failures) == 1 and "broken.wav: cannot read audio" in report.failures[0]
    assert (tmp_path / "x.pt").exists() and report.labels == ("alpha", "bravo", SILENCE)
    assert [w for w in report.warnings if "no _unknown_/ audio or --negatives" in w]
    # the command says so in its status too, as embed does for a file it could not read
    run = _kwmlp("fit", data, "-o", tmp_path / "cli.pt", "--epochs", "20")
    assert run.returncode == 1, run.stderr
    assert "unreadable:" in run.stderr and "broken.wav" in run.stderr
    assert kwmlp.load_model(str(tmp_path / "cli.pt"), device="cpu").metadata["labels"] == [
        "alpha", "bravo", SILENCE]


def test_finetune_mode_trains_the_encoder_too(tmp_path):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    report = kwmlp.fit(data, tmp_path / "ft.pt", mode="finetune", epochs=1)
    tuned = kwmlp.load_model(str(tmp_path / "ft.pt"), device="cpu")
    base = kwmlp.load_model(device="cpu")
    audio = torch.from_numpy(kwmlp.load_audio(HELDOUT / "cat" / "flite-rms_nohash_0.wav")[0])
    assert not torch.equal(kwmlp.get_scene_embeddings(audio[None], tuned),
                           kwmlp.get_scene_embeddings(audio[None], base))
    assert report.mode == "finetune" and tuned.metadata["fit"]["mode"] == "finetune"


def _kwmlp(*args):
    return subprocess.run([sys.executable, "-m", "kwmlp", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_cli_fit_classify_and_spot_plot(fitted, tmp_path):
    _, model, data = fitted
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    clip = data / "charlie" / "flite-rms_nohash_0.wav"
    run = _kwmlp("classify", clip, tmp_path / "quiet.wav", tmp_path / "missing.wav",
                 "--model", model.weights_path)
    assert run.returncode == 1, run.stderr  # the missing file
    lines = [line.split("\t") for line in run.stdout.splitlines()]
    assert [(line[0], line[1]) for line in lines] == [(str(clip), "charlie"),
                                                      (str(tmp_path / "quiet.wav"), NO_LABEL)]
    assert "missing.wav" in run.stderr
    plot = _kwmlp("spot", clip, "--model", model.weights_path, "--plot", tmp_path / "p.png")
    assert plot.returncode == 0, plot.stderr
    png = (tmp_path / "p.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "p.png").shape[:2] == (500, 1000)
    again = _kwmlp("spot", clip, "--model", model.weights_path, "--plot", tmp_path / "p.png")
    assert again.returncode == 0, again.stderr  # its own picture: drawn again
    (tmp_path / "mine.pdf").write_bytes(b"%PDF-1.4 my thesis")
    refused = _kwmlp("spot", clip, "--model", model.weights_path, "--plot", tmp_path / "mine.pdf")
    assert refused.returncode != 0 and "kwmlp did not draw it" in refused.stderr
    assert (tmp_path / "mine.pdf").read_bytes() == b"%PDF-1.4 my thesis"
    fitted_cli = _kwmlp("fit", data, "-o", tmp_path / "cli.pt", "--epochs", "20")
    assert fitted_cli.returncode == 0, fitted_cli.stderr
    assert "fitted 5 classes (head mode)" in fitted_cli.stderr
    assert "threshold" in fitted_cli.stderr
    bad = _kwmlp("fit", data, "-o", tmp_path / "bad.pt", "--mode", "sideways")
    assert bad.returncode == 2 and "--mode must be one of head, finetune" in bad.stderr


def test_a_fit_is_reproducible_from_its_seed(tmp_path):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    heads = []
    torch.manual_seed(5)
    expected = torch.rand(3)  # the caller's next draws, had no fit run
    torch.manual_seed(5)
    for seed, name in ((1, "a.pt"), (1, "b.pt"), (2, "c.pt")):
        kwmlp.fit(data, tmp_path / name, epochs=20, seed=seed)
    assert torch.equal(torch.rand(3), expected)  # the fits left the global RNG alone
    for name in ("a.pt", "b.pt", "c.pt"):
        heads.append(kwmlp.load_model(str(tmp_path / name), device="cpu").encoder.head.weight)
    assert torch.equal(heads[0], heads[1])  # same folder, same seed: the same head
    assert not torch.equal(heads[0], heads[2])  # another seed augments otherwise
    with pytest.raises(SystemExit) as exit_info:
        kwmlp.cli.parse_args(["fit", str(data), "-o", "x.pt", "--seed", "-1"])
    assert exit_info.value.code == 2


def test_a_plot_path_is_checked_before_spotting(tmp_path):
    from kwmlp.plot import check_plot_path

    check_plot_path(tmp_path / "p.png")  # a file in an existing folder: fine
    # the mark where matplotlib puts it (a PDF's Info dict ends the file): kwmlp's
    filler = bytes(1 << 20)
    (tmp_path / "drawn.pdf").write_bytes(b"%PDF-1.4" + filler + b"/Creator (kwmlp spot --plot)")
    check_plot_path(tmp_path / "drawn.pdf")
    # deep inside a large file of someone else's, it is not looked for
    (tmp_path / "thesis.pdf").write_bytes(b"%PDF-1.4" + filler + b"kwmlp spot --plot" + filler)
    with pytest.raises(KwmlpError, match="exists and kwmlp did not draw it"):
        check_plot_path(tmp_path / "thesis.pdf")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n a picture of yours")
    for bad, why in ((tmp_path / "missing" / "p.png", "cannot write the picture there"),
                     (tmp_path, "cannot write the picture there"),
                     (tmp_path / "p.jpgx", "name the picture with one of those extensions"),
                     (tmp_path / "p.jpg", "name the picture with one of those extensions"),
                     (tmp_path / "photo.png", "exists and kwmlp did not draw it")):
        with pytest.raises(KwmlpError, match=why):
            check_plot_path(bad)


def test_one_sound_under_two_labels_is_refused_before_fitting(tmp_path):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    clip = next((data / "alpha").iterdir())
    shutil.copy(clip, data / "bravo" / "copy.wav")  # the same bytes under another name
    with pytest.raises(KwmlpError, match=r"copy.wav \('bravo'\) has the bytes of .*'alpha'"):
        kwmlp.fit(data, tmp_path / "x.pt")
    (data / "bravo" / "copy.wav").unlink()
    # A --negatives folder that is one of the labels: the very same files.
    with pytest.raises(KwmlpError, match=r"\('_unknown_'\) is .*\('alpha'\)"):
        kwmlp.fit(data, tmp_path / "x.pt", negatives=[data / "alpha"])
    # noise under both no-keyword classes teaches one answer, "none": kept once
    noise, speech = sorted((HELDOUT / "bed").iterdir())[:2]
    shutil.copy(noise, tmp_path / "noise-copy.wav")
    kept, seen = fit_module.check_disjoint(
        {"alpha": [clip], SILENCE: [noise], UNKNOWN: [tmp_path / "noise-copy.wav", speech]}, [])
    assert kept == {"alpha": [clip], SILENCE: [], UNKNOWN: [tmp_path / "noise-copy.wav", speech]}
    assert noise.resolve() not in seen  # what is not trained on is not named as trained on
    with pytest.raises(KwmlpError, match=r"\('_silence_'\) has the bytes of .*noise-copy.wav "
                                         r"\('alpha'\)"):
        fit_module.check_disjoint({SILENCE: [noise], "alpha": [tmp_path / "noise-copy.wav"]}, [])
    with pytest.raises(KwmlpError, match="not a folder"):
        kwmlp.fit(data, tmp_path / "x.pt", negatives=[clip])
    with pytest.raises(KwmlpError, match="no such folder"):
        kwmlp.fit(data, tmp_path / "x.pt", negatives=[tmp_path / "nope"])
    assert not (tmp_path / "x.pt").exists()


def test_a_broken_link_is_named_and_a_label_of_silence_warns(tmp_path):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    (data / "alpha" / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    (data / "hush").mkdir()
    for k, n in enumerate((16000, 1)):
        sf.write(data / "hush" / f"q{k}.wav", np.zeros(n, np.float32), 16000)
    report = kwmlp.fit(data, tmp_path / "x.pt", epochs=5)
    assert any("gone.wav" in failure for failure in report.failures)
    assert report.warnings[0] == ("every clip of 'hush' is near-silent; the label may not be "
                                  "what you meant")
    assert len(report.warnings) == 2 and "no _unknown_/ audio" in report.warnings[1]
    assert "warning: every clip of 'hush'" in str(report)


def test_cli_classify_reads_stdin_and_warns_once_about_a_loud_file(fitted, tmp_path):
    _, model, data = fitted
    clip = data / "charlie" / "flite-rms_nohash_0.wav"
    pcm = sf.read(clip, dtype="int16")[0].tobytes()
    run = subprocess.run([sys.executable, "-m", "kwmlp", "classify", "-", "--model",
                          model.weights_path], input=pcm, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().split("\t")[:2] == ["-", "charlie"]
    empty = subprocess.run([sys.executable, "-m", "kwmlp", "classify", "-"], input=b"",
                           capture_output=True, timeout=600)
    assert empty.returncode == 1 and b"no audio on stdin" in empty.stderr
    loud = tmp_path / "loud.wav"
    sf.write(loud, 1.5 * np.sin(np.arange(16000) / 5).astype(np.float32), 16000,
             subtype="FLOAT")
    run = _kwmlp("classify", loud)
    assert run.returncode == 0 and run.stderr.count("exceeds 1.0") == 1, run.stderr
    # a tab or newline in a file name is escaped: one record a line, three fields
    odd = [tmp_path / "t\tab.wav", tmp_path / "n\nl.wav", tmp_path / "back\\slash.wav"]
    for path in odd:
        shutil.copy(clip, path)
    run = _kwmlp("classify", *odd)
    lines = run.stdout.splitlines()
    assert run.returncode == 0 and len(lines) == 3, run.stdout
    assert [line.split("\t")[0] for line in lines] == [
        str(tmp_path / "t\\tab.wav"), str(tmp_path / "n\\nl.wav"),
        str(tmp_path / "back\\\\slash.wav")]


def test_fit_never_writes_over_its_base_model(tmp_path):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    base = tmp_path / "base.pt"
    shutil.copy(kwmlp.checkpoints.default_weights_path(), base)
    before = base.read_bytes()
    with pytest.raises(KwmlpError, match="is the base model this fit starts from"):
        kwmlp.fit(data, base, model_file_path=str(base), epochs=20)
    assert base.read_bytes() == before
    for epochs in (0, -1, 2.5):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            kwmlp.fit(data, tmp_path / "x.pt", epochs=epochs)


def test_a_file_given_as_the_data_folder_is_called_a_file(tmp_path):
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(KwmlpError, match="a file, not a folder"):
        kwmlp.fit(tmp_path / "file.wav", tmp_path / "x.pt")


def test_negatives_that_give_no_audio_stop_the_fit(tmp_path):
    shutil.copytree(HELDOUT / "cat", tmp_path / "one" / "alpha")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KwmlpError, match="no audio files in this --negatives folder"):
        kwmlp.fit(tmp_path / "one", tmp_path / "x.pt", negatives=[tmp_path / "empty"])
    (tmp_path / "unreadable").mkdir()
    for name in ("a.wav", "b.wav"):
        (tmp_path / "unreadable" / name).write_bytes(b"")
    with pytest.raises(KwmlpError, match=r"no readable training clip for \['_unknown_'\]"):
        kwmlp.fit(tmp_path / "one", tmp_path / "x.pt", negatives=[tmp_path / "unreadable"])
    assert not (tmp_path / "x.pt").exists()


def test_the_folder_skips_hidden_follows_links_and_names_what_it_cannot_read(tmp_path,
                                                                           monkeypatch):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    trash = data / "alpha" / ".Trash-1000"
    trash.mkdir()
    shutil.copy(next((HELDOUT / "bird").iterdir()), trash / "deleted.wav")
    more = _folder(tmp_path / "more", labels={"takes": "dog"}, unknown=()) / "takes"
    (data / "bravo" / "linked").symlink_to(more, target_is_directory=True)
    (more / "loop").symlink_to(data / "bravo", target_is_directory=True)  # walked once
    shutil.copytree(HELDOUT / "bed", data / "_background_noise_")  # Speech Commands' name
    folders = fit_module.list_labels(data)
    labels, files = folders.labels, folders.files
    assert labels == ["alpha", "bravo"]
    assert not any(".Trash" in str(p) for p in files["alpha"])
    n_dog = len(list((HELDOUT / "dog").iterdir()))
    assert len(files["bravo"]) == 2 * n_dog  # its own takes and the linked folder's
    assert len(files[SILENCE]) == len(list((HELDOUT / "bed").iterdir()))

    # a file that cannot be read is named and left out, the rest go on
    blocked = files["alpha"][0]
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")) if self == blocked else real_read(self))
    failures = []
    kept, _ = fit_module.check_disjoint(files, failures)
    assert blocked not in kept["alpha"] and len(kept["alpha"]) == len(files["alpha"]) - 1
    assert failures == [f"{blocked}: Permission denied"]

    (data / "charlie").symlink_to(tmp_path / "unmounted")  # a label that went missing
    with pytest.raises(KwmlpError, match="broken link"):
        fit_module.list_labels(data)


def test_a_label_named_like_a_split_warns():
    assert fit_module.split_like_labels(["alpha", "train", "Val"], "d") == [
        f"the label {name!r} is named like a dataset split: if its sub-folders are the "
        f"labels, run kwmlp fit {Path('d') / name}" for name in ("train", "Val")]


def test_validation_unknown_clips_count_as_none_without_training_negatives(tmp_path,
                                                                          monkeypatch):
    """--val's _unknown_/ is scored (as "none") even when the training folder has none."""
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    copies = _folder(tmp_path / "copies", labels={"alpha": "cat", "bravo": "dog"},
                     unknown=("bed",))
    with pytest.raises(KwmlpError, match="the validation clip is the training clip"):
        kwmlp.fit(data, tmp_path / "x.pt", val_dir=copies, epochs=20)
    val = tmp_path / "val"  # the same takes 3 dB quieter: other clips, as far as fit knows
    for clip in copies.rglob("*.wav"):
        audio, rate = sf.read(clip, dtype="float32")
        (val / clip.parent.name).mkdir(parents=True, exist_ok=True)
        sf.write(val / clip.parent.name / clip.name, audio * 0.7, rate)
    (val / "alpha" / "take.m4a").write_bytes(b"\0" * 64)
    keyed = []  # every file is read for its bytes' digest once, not once per check
    real_keys = fit_module._file_keys
    monkeypatch.setattr(fit_module, "_file_keys", lambda p: keyed.append(p) or real_keys(p))
    report = kwmlp.fit(data, tmp_path / "x.pt", val_dir=val, epochs=20)
    assert sorted(keyed) == sorted(data.rglob("*.wav")) + sorted(val.rglob("*.wav"))
    assert any(w.startswith(f"1 file(s) in the label folders of {val}") for w in report.warnings)
    n_val = sum(1 for _ in val.rglob("*.wav"))
    assert n_val == 9 and report.n_validation == n_val  # 3 + 3 label clips and 3 of "bed"
    assert NO_LABEL in report.per_label  # the unknown clips (and generated silence)
    assert UNKNOWN not in report.labels


def test_classify_checks_its_audio_as_recognize_does(fitted):
    _, model, data = fitted
    clip = kwmlp.load_audio(data / "alpha" / "flite-rms_nohash_0.wav")[0]
    with pytest.raises(TypeError, match="must be float"):
        kwmlp.classify((clip * 32767).astype(np.int16), model)
    with pytest.raises(ValueError, match="threshold must be in"):
        kwmlp.classify(clip, model, threshold=2.0)
    with pytest.raises(ValueError, match="threshold must be in"):
        kwmlp.classify(clip, model, threshold=float("nan"))
    with pytest.raises(TypeError, match="model must come from kwmlp.load_model"):
        kwmlp.classify(clip, model.weights_path)
    with pytest.raises(ValueError, match="clip 0 is empty"):
        kwmlp.classify(np.zeros(0, np.float32), model)
    with pytest.raises(ValueError, match="must be 1-D"):
        kwmlp.classify([np.stack([clip, clip], 1)], model)
    # a reversed (negative-stride) array is the same clip, reversed, not an error
    long = np.concatenate([clip, np.zeros(8000, np.float32)])
    assert len(kwmlp.classify(long[::-1], model)) == 1
    # a (n_clips, n_samples) array is n clips, each the same as alone
    (alone,) = kwmlp.classify(clip, model)
    both = kwmlp.classify(np.stack([clip, clip]), model)
    assert [b.label for b in both] == [alone.label] * 2
    # what soundfile gives for stereo, a flat list, a path, a number: refused, not taken
    # for thousands of few-sample clips
    with pytest.raises(ValueError, match=r"look like \(n_samples, n_channels\)"):
        kwmlp.classify(np.stack([clip, clip], 1), model)
    with pytest.raises(ValueError, match="a list of numbers is one clip"):
        kwmlp.classify(clip[:300].tolist(), model)
    with pytest.raises(TypeError, match="classify takes samples"):
        kwmlp.classify([str(data / "alpha" / "flite-rms_nohash_0.wav")], model)
    with pytest.raises(TypeError, match="must be audio samples"):
        kwmlp.classify(np.float32(0.1), model)
    # big-endian samples are the same clip
    assert kwmlp.classify(clip.astype(">f4"), model) == [alone]


def test_files_fit_leaves_out_unread_are_counted_in_a_warning(tmp_path):
    data = _folder(tmp_path / "data", labels={"alpha": "cat", "bravo": "dog"}, unknown=())
    assert fit_module.passed_over(fit_module.list_labels(data), data) == []
    (data / "notes.txt").write_text("takes 1-3 were noisy")
    shutil.copy(next((HELDOUT / "cat").iterdir()), data / "stray.wav")
    (data / "alpha" / "take.m4a").write_bytes(b"\0" * 64)
    (data / "bravo" / "sub").mkdir()
    (data / "bravo" / "sub" / "README").write_text("")
    (data / "bravo" / ".DS_Store").write_bytes(b"\0")  # hidden: not the user's audio
    loose, other = fit_module.passed_over(fit_module.list_labels(data), data)
    assert loose.startswith("2 file(s) beside the label folders") and "notes.txt" in loose
    assert other.startswith(f"2 file(s) in the label folders of {data} are not audio")
    assert "(none), .m4a" in other and "take.m4a" in other
