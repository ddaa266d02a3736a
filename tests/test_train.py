"""Training pipeline: corpus reader, augmentation, lr schedule, run/resume/export.

Everything runs on tiny corpora the tests write themselves."""
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp.checkpoints import load_checkpoint, save_checkpoint
from kwmlp.encoder import KWMLP
from kwmlp.errors import KwmlpError
from kwmlp.train import train as train_module
from kwmlp.train.augment import (CODECS, AugmentConfig, augment_waveform, codec_copies,
                                 codec_round_trip, colouration_db, mask_mfcc, mix_at_snr,
                                 noise_segments, reverberate, speed_perturb, time_shift,
                                 warp_frequencies)
from kwmlp.train.evaluate import confusion_matrix, evaluate_checkpoint
from kwmlp.train import export as export_module
from kwmlp.train.export import export_run
from kwmlp.train.speech_commands import WORDS, list_clips, load_background_noise, load_clips
from kwmlp.train.operating_point import FoldSweep, choose_threshold, summarize
from kwmlp.train.train import make_scheduler

SR = 16_000


def _write_wav(path, samples):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.int16), SR, subtype="PCM_16")


def _tone(word_index, n_samples=SR, seed=0):
    """A clip that identifies its word by pitch, so a tiny model can learn it."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / SR
    wave = np.sin(2 * np.pi * (300 + 250 * word_index) * t) + 0.05 * rng.standard_normal(n_samples)
    return (8000 * wave).astype(np.int16)


def make_corpus(root, words=("bed", "cat", "dog", "yes"), train_voices=("a1", "a2", "a3"),
                val_voices=("b1",), test_voices=("c1",)):
    """A Speech Commands-layout corpus: one clip per (word, voice), plus noise and a
    folder that is not a word."""
    val, test = [], []
    for word in words:
        for k, voice in enumerate(train_voices + val_voices + test_voices):
            name = f"{word}/{voice}_nohash_0.wav"
            _write_wav(root / name, _tone(WORDS.index(word), seed=k))
            (val if voice in val_voices else test if voice in test_voices else []).append(name)
    split_of = {**{v: "train" for v in train_voices}, **{v: "validation" for v in val_voices},
                **{v: "test" for v in test_voices}}
    (root / "voices.json").write_text(json.dumps({"seed": 7, "voices": {
        v: {"engine": "flite" if v == "a1" else "espeak-ng", "split": s}
        for v, s in split_of.items()}}))
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    _write_wav(root / "_background_noise_" / "white.wav",
               (3000 * np.random.default_rng(1).standard_normal(3 * SR)).astype(np.int16))
    _write_wav(root / "_unknown_" / "x_nohash_0.wav", _tone(0))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


# reader

def test_reader_splits_labels_and_ignores_other_folders(corpus):
    clips = list_clips(corpus)
    assert {s: len(c) for s, c in clips.items()} == {"training": 12, "validation": 4,
                                                      "testing": 4}
    for split, voice in [("validation", "b1"), ("testing", "c1")]:
        assert all(p.name.startswith(voice) for p in clips[split].paths)
    assert all(p.name[0] == "a" for p in clips["training"].paths)
    for split in clips.values():
        assert [WORDS[label] for label in split.labels] == [p.parent.name for p in split.paths]
    all_paths = [p for c in clips.values() for p in c.paths]
    assert not any(p.parent.name.startswith("_") for p in all_paths)


def test_reader_rejects_listed_clip_that_is_missing(tmp_path):
    root = make_corpus(tmp_path, words=("bed",))
    (root / "bed" / "b1_nohash_0.wav").unlink()
    with pytest.raises(KwmlpError, match="do not exist"):
        list_clips(root)


def test_load_clips_pads_and_trims(tmp_path):
    root = make_corpus(tmp_path, words=("bed",), train_voices=("a1", "a2"))
    short, long = _tone(1, SR // 2), _tone(1, SR + 3000)
    _write_wav(root / "bed" / "a1_nohash_0.wav", short)
    _write_wav(root / "bed" / "a2_nohash_0.wav", long)
    audio, labels = load_clips(list_clips(root)["training"])
    assert audio.dtype == torch.int16 and audio.shape == (2, SR)
    assert labels.tolist() == [WORDS.index("bed")] * 2
    np.testing.assert_array_equal(audio[0, :SR // 2].numpy(), short)
    assert not audio[0, SR // 2:].any()
    np.testing.assert_array_equal(audio[1].numpy(), long[:SR])
    noise = load_background_noise(root)
    assert len(noise) == 1 and noise[0].shape == (3 * SR,) and noise[0].abs().max() < 1


# augmentation

def test_masks_zero_exactly_the_requested_bands():
    generator = torch.Generator().manual_seed(0)
    mfcc = torch.randn(64, 40, 98) + 10  # no natural zeros
    only_time = AugmentConfig(time_masks=1, time_mask_frames=(5, 5), freq_masks=0)
    zero_frames = (mask_mfcc(mfcc, only_time, generator) == 0).all(dim=1)  # (batch, frames)
    assert (zero_frames.sum(dim=1) == 5).all()
    for row in zero_frames:  # one contiguous band
        idx = row.nonzero().flatten()
        assert (idx.diff() == 1).all()
    only_freq = AugmentConfig(time_masks=0, freq_masks=1, freq_mask_coeffs=(3, 3))
    out = mask_mfcc(mfcc, only_freq, generator)
    assert ((out == 0).all(dim=2).sum(dim=1) == 3).all()
    assert ((out == 0).sum(dim=(1, 2)) == 3 * 98).all()  # nothing else touched

    table5 = AugmentConfig()
    out = mask_mfcc(mfcc, table5, generator)
    assert out.shape == mfcc.shape
    n_frames = (out == 0).all(dim=1).sum(dim=1)
    n_coeffs = (out == 0).all(dim=2).sum(dim=1)
    assert n_frames.max() <= 50 and n_coeffs.max() <= 14 and n_frames.float().mean() > 5
    kept = out != 0
    assert torch.equal(out[kept], mfcc[kept])


def test_augmentation_is_replicable_from_the_generator():
    audio = torch.randn(8, SR) * 0.1
    noise = [torch.randn(2 * SR)]
    outs = [augment_waveform(audio, noise, AugmentConfig(), torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert torch.equal(outs[0], outs[1])
    other = augment_waveform(audio, noise, AugmentConfig(), torch.Generator().manual_seed(4))
    assert not torch.equal(outs[0], other)


def test_mix_at_snr_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    clean = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.01 * rng.standard_normal(SR),
                      np.sin(2 * np.pi * 100 * t) * (t < 0.3)])
    noise = rng.standard_normal((3, SR)) * np.array([[1.0], [0.001], [5.0]])
    snr_db = np.array([0.0, 12.5, -3.0])
    mixed = mix_at_snr(torch.tensor(clean), torch.tensor(noise), torch.tensor(snr_db)).numpy()
    added = mixed - clean
    measured = 10 * np.log10((clean ** 2).mean(axis=1) / (added ** 2).mean(axis=1))
    np.testing.assert_allclose(measured, snr_db, atol=1e-6)
    # the added signal is the noise, only scaled
    np.testing.assert_allclose(added / noise, (added / noise)[:, :1] * np.ones((1, SR)),
                               rtol=1e-9)


def test_noise_segments_stay_inside_one_recording():
    # Recording r holds r * 10^6 + sample index, so a segment can be traced back.
    recordings = [r * 1_000_000 + torch.arange(n, dtype=torch.float64)
                  for r, n in enumerate([2 * SR, 5, 3 * SR])]
    segments = noise_segments(recordings, 200, SR, torch.Generator().manual_seed(0))
    assert segments.shape == (200, SR)
    assert (segments.diff(dim=1) == 1).all()  # contiguous, never across recordings
    source = (segments[:, 0] // 1_000_000).long()
    assert set(source.tolist()) == {0, 2}  # the 5-sample recording is too short


def test_time_shift_moves_content_and_zero_fills():
    audio = torch.arange(1, 101, dtype=torch.float32).repeat(50, 1)
    out = time_shift(audio, 10, torch.Generator().manual_seed(0))
    shifts = set()
    for row in out:
        first = int(row[row != 0][0])
        shift = int((row != 0).nonzero()[0]) - (first - 1)
        shifts.add(shift)
        inside = (np.arange(100) - shift >= 0) & (np.arange(100) - shift < 100)
        np.testing.assert_array_equal(row.numpy(), np.roll(audio[0].numpy(), shift) * inside)
    assert len(shifts) > 5 and max(abs(s) for s in shifts) <= 10


def _peak_hz(signal, rate=SR):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.fft.rfftfreq(len(signal), 1 / rate)[spectrum.argmax()]


def test_speed_perturb_scales_frequency_and_keeps_the_centre():
    t = np.arange(SR) / SR
    sine = torch.tensor(np.sin(2 * np.pi * 500 * t), dtype=torch.float32)[None].repeat(3, 1)
    out = speed_perturb(sine, torch.tensor([1.0, 1.1, 0.9]))
    torch.testing.assert_close(out[0], sine[0], rtol=0, atol=1e-6)  # factor 1: unchanged
    middle = slice(SR // 4, 3 * SR // 4)  # away from the zero-filled ends of the fast clip
    assert _peak_hz(out[1, middle].numpy()) == pytest.approx(550, abs=2)
    assert _peak_hz(out[2, middle].numpy()) == pytest.approx(450, abs=2)
    # a click at the centre stays there; a sped-up clip reads past its ends as zeros
    click = torch.zeros(1, 1001)
    click[0, 500] = 1
    assert int(speed_perturb(click, torch.tensor([1.13])).argmax()) == 500
    fast = speed_perturb(sine[:1], torch.tensor([1.15]))[0]
    assert not fast[:1000].any() and not fast[-1000:].any() and fast[1100:-1100].all()


def test_vtlp_moves_a_spectral_peak_by_alpha_and_keeps_nyquist():
    n_bins = 241  # N_FFT // 2 + 1, 33.3 Hz apart
    hz = np.linspace(0, SR / 2, n_bins)
    power = torch.tensor(np.exp(-0.5 * ((hz - 1000) / 60) ** 2), dtype=torch.float32)
    power = power[None, None, :].repeat(3, 5, 1)
    warped = warp_frequencies(power, torch.tensor([1.0, 1.1, 0.9]))
    torch.testing.assert_close(warped[0], power[0], rtol=0, atol=1e-6)
    for row, alpha in ((1, 1.1), (2, 0.9)):
        assert hz[int(warped[row, 0].argmax())] == pytest.approx(1000 * alpha, abs=17)
        assert torch.equal(warped[row, 0], warped[row, 4])  # same warp for every frame
    ramp = torch.linspace(0, 1, n_bins)[None, None, :].repeat(2, 1, 1)
    ends = warp_frequencies(ramp, torch.tensor([1.1, 0.9]))[:, 0, [0, -1]]
    torch.testing.assert_close(ends, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))


def test_reverberate_is_convolution_at_the_dry_level():
    rng = np.random.default_rng(0)
    dry = rng.standard_normal((2, 4000)).astype(np.float32)
    rir = np.zeros((2, 800), dtype=np.float32)
    rir[0, 0] = 1.0  # an anechoic room leaves the clip as it is
    rir[1] = rng.standard_normal(800) * np.exp(-np.arange(800) / 100)
    wet = reverberate(torch.tensor(dry), torch.tensor(rir)).numpy()
    np.testing.assert_allclose(wet[0], dry[0], atol=1e-5)
    expected = np.convolve(dry[1], rir[1])[:4000]
    expected *= np.sqrt((dry[1] ** 2).mean() / (expected ** 2).mean())
    np.testing.assert_allclose(wet[1], expected, atol=1e-4)


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip_is_lossy_but_keeps_a_speech_band_tone(codec):
    t = np.arange(SR) / SR
    tone = (8000 * np.sin(2 * np.pi * 700 * t)).astype(np.int16)
    for compression in (0.3, 0.9):
        out = codec_round_trip(tone, codec, compression)
        assert out.shape == tone.shape and out.dtype == np.int16
        assert not np.array_equal(out, tone)
        middle = slice(2000, 14000)  # away from the codec's start-up and padding
        spectrum = np.abs(np.fft.rfft(out[middle].astype(np.float64)))
        assert np.fft.rfftfreq(12000, 1 / SR)[spectrum.argmax()] == pytest.approx(700, abs=2)
        level_db = 20 * np.log10(out[middle].std() / tone[middle].std())
        assert abs(level_db) < 1.0, (codec, compression, level_db)


def test_codec_copies_are_fixed_by_the_seed_and_taken_at_codec_prob():
    audio = torch.from_numpy(np.stack([_tone(i, seed=i) for i in range(4)]))
    config = AugmentConfig(codec_prob=1.0, noise_prob=0.0, gain_db=(0.0, 0.0), max_shift_ms=0.0)
    coded = codec_copies(audio, config, seed=3)
    assert torch.equal(coded, codec_copies(audio, config, seed=3)) and coded.shape == audio.shape
    generator = torch.Generator().manual_seed(0)
    out = augment_waveform(audio.float(), [], config, generator, coded=coded.float())
    assert torch.equal(out, coded.float())  # every clip from its codec copy, nothing else
    off = AugmentConfig(noise_prob=0.0, gain_db=(0.0, 0.0), max_shift_ms=0.0)
    assert torch.equal(augment_waveform(audio.float(), [], off, generator), audio.float())
    with pytest.raises(ValueError, match="codec"):
        augment_waveform(audio.float(), [], config, generator)


def test_colouration_band_limits_and_eq_peak():
    generator = torch.Generator().manual_seed(0)
    hz = np.linspace(0, SR / 2, 241)
    telephone = AugmentConfig(bandlimit_prob=1.0, highpass_hz=(300.0, 300.0),
                              lowpass_hz=(3400.0, 3400.0))
    gain = colouration_db(telephone, 4, 241, generator).numpy()
    assert (gain[:, np.abs(hz - 1000).argmin()] > -0.05).all()  # pass band untouched
    assert (gain[:, hz <= 150] < -23).all() and (gain[:, hz >= 6800] < -23).all()
    eq = colouration_db(AugmentConfig(eq_prob=1.0, eq_max_db=6.0), 16, 241, generator)
    torch.testing.assert_close(eq.abs().amax(dim=1), torch.full((16,), 6.0))
    assert eq.std(dim=0).mean() > 1  # curves differ between clips
    assert not colouration_db(AugmentConfig(), 4, 241, generator).any()  # all off by default


# lr schedule

def test_schedule_matches_closed_form_warmup_cosine():
    base_lr, warmup, total = 1e-3, 20, 100
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = make_scheduler(optimizer, warmup_steps=warmup, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])  # lr used by this step
        optimizer.step()
        scheduler.step()
    for step in (0, 9, 19, 20, 50, 75, 99):
        if step < warmup:
            expected = base_lr * (step + 1) / warmup
        else:
            expected = base_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert lrs[step] == pytest.approx(expected, rel=1e-9, abs=1e-15), step
    assert max(lrs) == pytest.approx(base_lr)


# run, resume, evaluate, export

TINY = ["--dim", "8", "--dim-ff", "16", "--depth", "2", "--batch-size", "4",
        "--warmup-epochs", "1", "--threads", "1"]


def _argv(corpus, run_dir, epochs=2):
    return ["--data", str(corpus), "--out", str(run_dir), "--epochs", str(epochs), *TINY]


@pytest.fixture
def start(corpus, tmp_path):
    """A one-epoch model exported as a checkpoint: one start for several fine-tunes."""
    train_module.main(_argv(corpus, tmp_path / "start_run", epochs=1))
    export_run(tmp_path / "start_run", tmp_path / "start.pt", weights="last")
    return tmp_path / "start.pt"


def test_training_writes_checkpoints_and_resumes_after_a_kill(corpus, tmp_path, monkeypatch,
                                                              capsys):
    train_module.main(_argv(corpus, tmp_path / "straight"))
    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").open()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert {"train_loss", "train_acc", "val_acc", "lr", "samples_per_s",
            "epoch_time_s"} <= set(log[0])
    model, meta = load_checkpoint(tmp_path / "straight" / "best.pt")
    assert meta["val_acc"] == max(r["val_acc"] for r in log)

    # Kill during epoch 2: validation of epoch 2 never returns.
    run_dir = tmp_path / "killed"
    real_predict, calls = train_module.predict, []

    def predict_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(train_module, "predict", predict_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_module.main(_argv(corpus, run_dir))
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(train_module, "predict", real_predict)

    capsys.readouterr()
    train_module.main(_argv(corpus, run_dir))  # the same command again
    assert "after epoch 1" in capsys.readouterr().out
    resumed_log = [json.loads(line) for line in (run_dir / "log.jsonl").open()]
    assert [r["epoch"] for r in resumed_log] == [1, 2]
    resumed = torch.load(run_dir / "last.pt", weights_only=True)
    # Model, optimiser, schedule and RNG state all carried over: same weights as unbroken.
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=0)

    with pytest.raises(KwmlpError, match="different config"):
        train_module.main(_argv(corpus, run_dir, epochs=3))


def test_epoch_order_draws_a_fresh_corpus_share_and_keeps_every_other_clip():
    n_corpus, n_clips = 1000, 1300
    generator = torch.Generator().manual_seed(0)
    epochs = [train_module.epoch_order(n_clips, n_corpus, 0.25, generator) for _ in range(2)]
    for order in epochs:
        assert len(set(order.tolist())) == len(order) == 250 + 300  # no clip twice
        assert set(range(n_corpus, n_clips)) <= set(order.tolist())
        assert not (order[:300] >= n_corpus).all()  # shuffled together, not appended
    corpus_sets = [set(o[o < n_corpus].tolist()) for o in epochs]
    assert len(corpus_sets[0] & corpus_sets[1]) < 150  # ~62 expected for independent draws
    whole = train_module.epoch_order(n_clips, n_corpus, 1.0, generator)
    assert sorted(whole.tolist()) == list(range(n_clips))
    with pytest.raises(ValueError, match="corpus_fraction"):
        train_module.TrainConfig(data="x", corpus_fraction=0.0)


def test_update_ema_follows_the_closed_form_average():
    """After n updates from a0 with weights p1..pn: d^n a0 + sum_k (1 - d) d^(n-k) pk."""
    decay, generator = 0.9, torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 2)
    average = train_module.copy.deepcopy(model)
    start = [p.detach().numpy().astype(np.float64).copy() for p in average.parameters()]
    expected = [decay ** 4 * a for a in start]
    for k in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
        for e, p in zip(expected, model.parameters()):
            e += (1 - decay) * decay ** (4 - k) * p.detach().numpy().astype(np.float64)
        train_module.update_ema(average, model, decay)
    for e, a in zip(expected, average.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), e, rtol=1e-5, atol=1e-6)


def test_moving_average_is_validated_selected_and_resumed(corpus, tmp_path, monkeypatch):
    argv = ["--ema-decay", "0.8"]
    train_module.main(_argv(corpus, tmp_path / "straight") + argv)
    log = train_module.read_log(tmp_path / "straight")
    assert {"val_acc", "ema_val_acc"} <= set(log[0])
    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    assert not all(torch.equal(straight["ema"][k], v) for k, v in straight["model"].items())
    best, meta = load_checkpoint(tmp_path / "straight" / "best.pt")
    assert meta["weights"] == "moving average"
    assert meta["val_acc"] == max(r["ema_val_acc"] for r in log)
    if meta["epoch"] == 2:
        for key, value in best.state_dict().items():
            torch.testing.assert_close(value, straight["ema"][key], rtol=0, atol=0)
    # The figure stored with best.pt is that of the weights it holds.
    audio, labels = load_clips(list_clips(corpus)["validation"])
    predicted = train_module.predict(best, train_module.MFCC(backend="fft"), audio)
    assert (predicted == labels).float().mean().item() == pytest.approx(meta["val_acc"], abs=1e-5)

    # Killed in epoch 2's validation, then resumed: the average carries over exactly.
    real_predict, calls = train_module.predict, []

    def predict_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # epoch 1 validates the weights and their average
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    run_dir = tmp_path / "killed"
    monkeypatch.setattr(train_module, "predict", predict_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_module.main(_argv(corpus, run_dir) + argv)
    monkeypatch.setattr(train_module, "predict", real_predict)
    train_module.main(_argv(corpus, run_dir) + argv)
    resumed = torch.load(run_dir / "last.pt", weights_only=True)
    for key, value in straight["ema"].items():
        torch.testing.assert_close(resumed["ema"][key], value, rtol=0, atol=0)


def test_run_recorded_before_a_config_field_existed_still_resumes(corpus, tmp_path):
    run_dir = tmp_path / "run"
    train_module.main(_argv(corpus, run_dir, epochs=1))
    recorded = json.loads((run_dir / "config.json").read_text())
    del recorded["ema_decay"]
    (run_dir / "config.json").write_text(json.dumps(recorded))
    train_module.main(_argv(corpus, run_dir, epochs=1))  # must not refuse
    assert [r["epoch"] for r in train_module.read_log(run_dir)] == [1]


def test_tiny_model_learns_the_tone_corpus(tmp_path):
    """Words told apart by pitch: a 2-block model must get the held-out voices right."""
    corpus = make_corpus(tmp_path / "corpus", train_voices=tuple(f"a{i}" for i in range(1, 7)))
    run_dir = tmp_path / "run"
    train_module.main(_argv(corpus, run_dir, epochs=8) + ["--lr", "1e-2", "--noise-prob", "0"])
    log = train_module.read_log(run_dir)
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert log[-1]["val_acc"] == 1.0  # chance is 1/4
    assert evaluate_checkpoint(run_dir / "best.pt", corpus, "testing").accuracy >= 0.75


def test_evaluate_and_export(corpus, tmp_path):
    run_dir = tmp_path / "run"
    train_module.main(_argv(corpus, run_dir))
    evaluation = evaluate_checkpoint(run_dir / "best.pt", corpus, "testing")
    assert evaluation.confusion.shape == (35, 35) and evaluation.confusion.sum() == 4
    out = tmp_path / "kwmlp.pt"
    exported = export_run(run_dir, out)
    assert exported.accuracy == evaluation.accuracy
    model, meta = load_checkpoint(out)
    assert meta["held_out_accuracy"] == evaluation.accuracy and meta["licence"] == "MIT"
    assert meta["training_data"]["clips"] == {"training": 12, "validation": 4, "testing": 4}
    assert meta["training_data"]["voices"] == {  # the corpus says "train"/"test": renamed
        "training": {"espeak-ng": ["a2", "a3"], "flite": ["a1"]},
        "validation": {"espeak-ng": ["b1"]}, "testing": {"espeak-ng": ["c1"]}}
    assert meta["training_data"]["seed"] == 7
    assert meta["epochs"] == 2 and model.head.out_features == 35
    assert meta["exported_epoch"] == load_checkpoint(run_dir / "best.pt")[1]["epoch"]

    # --weights last: the raw weights of last.pt, with the final epoch's figures.
    last = tmp_path / "last.pt"
    export_run(run_dir, last, weights="last")
    model, meta = load_checkpoint(last)
    state = torch.load(run_dir / "last.pt", weights_only=True)
    for key, value in state["model"].items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert meta["exported_epoch"] == 2 and "after the final epoch" in meta["selection"]
    assert meta["val_accuracy"] == train_module.read_log(run_dir)[-1]["val_acc"]
    assert meta["keywords"] == list(WORDS)  # the head's labels, for kwmlp.recognize
    assert "threshold" not in meta

    # --threshold: the checkpoint's own default, which spot/Stream/classify then use.
    export_run(run_dir, last, weights="last", threshold=0.8)
    assert load_checkpoint(last)[1]["threshold"] == 0.8
    assert kwmlp.keywords.model_threshold(kwmlp.load_model(str(last), device="cpu")) == 0.8
    with pytest.raises(ValueError, match="threshold"):
        export_run(run_dir, last, weights="last", threshold=1.5)


def test_export_of_a_fine_tune_records_the_stages_before_it(corpus, tmp_path):
    train_module.main(_argv(corpus, tmp_path / "first", epochs=1))
    train_module.main(_argv(corpus, tmp_path / "second", epochs=2)
                      + ["--init", str(tmp_path / "first" / "best.pt")])
    export_run(tmp_path / "second", tmp_path / "second.pt")
    train_module.main(_argv(corpus, tmp_path / "third", epochs=1)
                      + ["--init", str(tmp_path / "second.pt")])
    export_run(tmp_path / "third", tmp_path / "third.pt")
    _, meta = load_checkpoint(tmp_path / "third.pt")
    assert meta["epochs"] == 1 and meta["recipe"]["init"] == str(tmp_path / "second.pt")
    stages = meta["earlier_stages"]
    assert [s["epochs"] for s in stages] == [2, 1]  # latest first: second, then first
    assert meta["epochs_all_stages"] == 4
    assert stages[1]["checkpoint"] == str(tmp_path / "first" / "best.pt")
    assert stages[1]["recipe"]["init"] == "" and stages[1]["exported_epoch"] == 1


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 0])
    matrix = confusion_matrix(labels, predictions, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [2, 0, 1]]


def test_evaluation_counts_no_keyword_answers_as_wrong_and_reports_their_share():
    from kwmlp.train.evaluate import evaluation_of

    # four clips of "bed" and "yes": one right, one a wrong word, two "_unknown_"
    bed, yes, unknown = WORDS.index("bed"), WORDS.index("yes"), len(WORDS) + 1
    labels = torch.tensor([bed, bed, yes, yes])
    evaluation = evaluation_of(torch.tensor([bed, yes, unknown, unknown]), labels,
                               len(WORDS) + 2, "t")
    assert evaluation.accuracy == 0.25
    assert evaluation.no_keyword_share() == 0.5
    assert evaluation.summary()["no_keyword_answers"] == 0.5


# real speech, rooms and the training-data description

def test_training_with_real_speech_selects_on_real_voices(corpus, tmp_path):
    pytest.importorskip("pyroomacoustics")
    from test_real_speech import make_real_dir

    real_dir = make_real_dir(tmp_path / "real")
    run_dir = tmp_path / "run"
    train_module.main(_argv(corpus, run_dir, epochs=2) + [
        "--real-data", str(real_dir), "--real-repeat", "2", "--fsdd-repeat", "1", "--real-noise",
        "--speed-prob", "0.5", "--vtlp-prob", "0.5", "--reverb-prob", "0.5", "--eq-prob", "0.5",
        "--bandlimit-prob", "0.5", "--codec-prob", "0.5", "--rir-rooms", "3"])
    log = train_module.read_log(run_dir)
    assert {"val_acc", "real_val_acc", "fsdd_val_acc"} <= set(log[0])
    _, meta = load_checkpoint(run_dir / "best.pt")
    assert meta["real_val_acc"] == max(r["real_val_acc"] for r in log)
    assert np.load(run_dir / "rirs.npy").shape[0] == 3

    out = tmp_path / "kwmlp.pt"
    export_run(run_dir, out)
    _, meta = load_checkpoint(out)
    real = meta["training_data"]["real"]
    n_clips = len([p for p in (real_dir / "speech_commands").glob("*/*.wav")
                   if p.parent.name != "_background_noise_"])
    n_val = n_clips - real["training"]["speech_commands"]["clips"]
    assert real["validation"]["speech_commands"]["clips"] == n_val
    assert real["training"]["speech_commands"]["repeat"] == 2 and real["background_noise"]
    assert meta["real_voice"]["speech_commands"]["n_clips"] == n_val
    assert "CC-BY-4.0" in real["licences"]["speech_commands"]
    assert "real speech:" in meta["trained_on"] and "synthetic TTS speech" in meta["trained_on"]


def test_summary_counts_voices_not_engines():
    from kwmlp.info import summarize_training_data

    data = {"layout": "Speech Commands V2 (35 words)", "synthetic": True,
            "clips": {"training": 12, "validation": 4, "testing": 4},
            "voices": {"train": {"espeak-ng": ["a2", "a3"], "flite": ["a1"]},
                       "validation": {"espeak-ng": ["b1"]}, "test": {"espeak-ng": ["c1"]}}}
    line = summarize_training_data(data)
    # one vocabulary beside "... training clips", also for voices recorded as "train"/"test"
    assert "3 training, 1 validation, 1 testing voices" in line
    assert line.startswith("synthetic TTS speech")


def test_summary_reads_an_extra_corpus_recorded_as_one_dict():
    """Checkpoints exported before 2026-12-06 (compact v2's) record one extra corpus as a
    dict; later ones a list."""
    from kwmlp.info import summarize_training_data

    corpus = {"clips": {"training": 4200}, "voices": {"train": {"kokoro": ["k0"]}}, "repeat": 1}
    one = summarize_training_data({"extra": corpus})
    assert one == summarize_training_data({"extra": [corpus]})
    assert "extra corpus: 4,200 training clips (kokoro) (x1 per epoch)" in one
    assert "extra corpus" not in summarize_training_data({"extra": "junk"})


def test_summary_names_each_negatives_folder_of_a_soup():
    """A soup of runs that trained on different negatives folders records a list."""
    from kwmlp.info import summarize_training_data

    def folder(clips: int, repeat: int) -> dict:
        return {"repeat": repeat, "sources": {
            "noise": {"label": "_silence_", "clips": {"training": clips}},
            "tts": {"label": "_unknown_", "clips": {"training": 2 * clips}}}}

    one = summarize_training_data({"negatives": folder(10, 2)})
    assert one.endswith("; no-keyword audio: 10 _silence_ clips, 20 _unknown_ clips (x2 per epoch)")
    both = summarize_training_data({"negatives": [folder(10, 2), folder(30, 1)]})
    assert both == one + "; no-keyword audio: 30 _silence_ clips, 60 _unknown_ clips (x1 per epoch)"


def test_simulated_rooms_start_at_the_direct_path_and_decay():
    pytest.importorskip("pyroomacoustics")
    from kwmlp.train.rooms import RIR_SAMPLES, simulate_rirs

    bank = simulate_rirs(4, seed=0)
    assert bank.shape == (4, RIR_SAMPLES)
    np.testing.assert_allclose((bank.astype(np.float64) ** 2).sum(axis=1), 1.0, rtol=1e-4)
    assert (np.abs(bank).argmax(axis=1) == 0).all()
    early, late = (bank[:, :1600] ** 2).sum(axis=1), (bank[:, 6400:8000] ** 2).sum(axis=1)
    assert (late < early / 10).all()
    np.testing.assert_array_equal(bank, simulate_rirs(4, seed=0))


def test_missing_pyroomacoustics_names_the_extra(monkeypatch):
    import sys

    from kwmlp.train.rooms import simulate_rirs

    monkeypatch.setitem(sys.modules, "pyroomacoustics", None)
    with pytest.raises(ImportError, match=r"kwmlp\[train\]"):
        simulate_rirs(1, seed=0)


def test_cross_validation_folds_train_and_score_on_disjoint_speakers(corpus, start, tmp_path,
                                                                     monkeypatch):
    import kwmlp.train.real_speech as real_speech
    from kwmlp.train import crossval
    from kwmlp.train.evaluate import predict
    from kwmlp.frontend import MFCC
    from test_real_speech import make_real_dir

    real_dir = make_real_dir(tmp_path / "real")
    held_out = tmp_path / "holdout.txt"
    held_out.write_text("spk00\n")
    monkeypatch.setattr(real_speech, "HOLDOUT_SPEAKERS_FILE", held_out)
    for fold in (0, 1):
        train_module.main(_argv(corpus, tmp_path / "cv" / f"fold{fold}", epochs=1) + [
            "--init", str(start), "--real-data", str(real_dir), "--real-repeat", "1",
            "--cv-folds", "2", "--cv-fold", str(fold)])
    config = train_module.TrainConfig.from_json(
        json.loads((tmp_path / "cv" / "fold0" / "config.json").read_text()))
    train_audio, _, validation, _, _ = train_module.load_training_data(config)
    n_corpus = len(load_clips(list_clips(corpus)["training"])[0])
    fold_of = {f"spk{i:02d}": real_speech.speaker_fold(f"spk{i:02d}", 2) for i in range(1, 12)}
    n_fold0 = 2 * sum(f == 0 for f in fold_of.values())  # two words a speaker
    assert len(validation["real_val_acc"][0]) == n_fold0
    assert len(train_audio) == n_corpus + 22 - n_fold0  # spk00 in neither

    summary = crossval.summarize([crossval.fold_evaluation([run])
                                  for run in crossval.fold_runs(tmp_path / "cv")])
    assert [f["clips"] for f in summary["folds"]] == [n_fold0, 22 - n_fold0]
    assert summary["pooled"]["n_clips"] == 22
    # fold 0's figure, recomputed from its final weights on its own speakers' clips
    model, _ = export_module.run_weights(tmp_path / "cv" / "fold0", "last")
    audio, labels = validation["real_val_acc"]
    expected = (predict(model, MFCC(backend="fft"), audio) == labels).float().mean().item()
    assert summary["folds"][0]["accuracy"] == round(expected, 4)
    mean = (summary["folds"][0]["accuracy"] + summary["folds"][1]["accuracy"]) / 2
    assert summary["accuracy"]["mean"] == pytest.approx(mean, abs=1e-4)

    # the held-out speaker (spk00, in no fold): each fold, their ensemble, their soup
    runs = crossval.fold_runs(tmp_path / "cv")
    held = crossval.holdout_evaluations([[run] for run in runs])
    assert list(held) == ["fold0", "fold1", "ensemble", "soup"]
    assert all(int(e.confusion.sum()) == 2 for e in held.values())
    audio, labels = real_speech.load_real_clips(real_speech.holdout_clips(real_dir))
    assert len(labels) == 2
    models = [export_module.run_weights(run, "last")[0].eval() for run in runs]
    features = MFCC(backend="fft")(audio.float() / 32768)
    with torch.no_grad():
        probabilities = [m(features).softmax(dim=1).numpy() for m in models]
    for name, p in zip(("fold0", "fold1"), probabilities):
        assert held[name].accuracy == (p.argmax(1) == labels.numpy()).mean()
    mean_p = (probabilities[0] + probabilities[1]) / 2
    assert held["ensemble"].accuracy == (mean_p.argmax(1) == labels.numpy()).mean()
    weights = [m.head.weight.detach().numpy().copy() for m in models]
    souped = crossval.soup(models)
    np.testing.assert_allclose(souped.head.weight.detach().numpy(), (weights[0] + weights[1]) / 2,
                               rtol=1e-6)

    # the operating point: each fold spots its own speakers' clips (35-word heads here)
    from kwmlp.train import operating_point
    negatives = np.zeros(3 * 16000, np.float32)
    sweeps = [operating_point.sweep_fold(runs, negatives, thresholds=(0.5, 0.9))
              for runs in crossval.fold_groups([tmp_path / "cv"])]
    assert [s.words for s in sweeps] == [n_fold0, 22 - n_fold0]
    assert all(len(s.found) == len(s.false_accepts) == 2 and s.negative_s == 3.0
               for s in sweeps)
    assert all(0 <= f <= s.words for s in sweeps for f in s.found)

    # a second recipe from the same start: fold 0's soup is the mean of the two
    # recipes' fold-0 weights, scored on fold 0's speakers
    import shutil
    shutil.copytree(tmp_path / "cv", tmp_path / "cv2")
    last = tmp_path / "cv2" / "fold0" / "last.pt"
    state = torch.load(last, weights_only=True)
    generator = torch.Generator().manual_seed(1)
    state["model"] = {k: v + torch.randn(v.shape, generator=generator) * 0.05
                      if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, last)
    groups = crossval.fold_groups([tmp_path / "cv", tmp_path / "cv2"])
    assert [[run.parent.name for run in group] for group in groups] == [["cv", "cv2"]] * 2
    one = export_module.run_weights(tmp_path / "cv" / "fold0", "last")[0].state_dict()
    mean = {k: (v + state["model"][k]) / 2 if v.is_floating_point() else v
            for k, v in one.items()}
    model.load_state_dict(mean)
    audio, labels = validation["real_val_acc"]
    expected = (predict(model, MFCC(backend="fft"), audio) == labels).float().mean().item()
    assert crossval.fold_evaluation(groups[0]).accuracy == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="cv_fold"):  # folds of other speakers never mix
        export_module.final_weights([tmp_path / "cv" / "fold0", tmp_path / "cv2" / "fold1"])
    shutil.rmtree(tmp_path / "cv2" / "fold1")
    with pytest.raises(ValueError, match="same folds"):
        crossval.fold_groups([tmp_path / "cv", tmp_path / "cv2"])


def test_the_runtime_never_imports_the_training_package():
    """Layers point one way: embedding, keywords, streaming and ``kwmlp info`` run
    without ``kwmlp.train`` (which needs the ``train`` extra)."""
    code = ("import sys, torch, kwmlp\n"
            "from kwmlp.cli import main\n"
            "from kwmlp.info import model_info\n"
            "m = kwmlp.load_model(device='cpu')\n"
            "model_info(m)\n"
            "kwmlp.Stream(m).push(torch.zeros(16000))\n"
            "print([name for name in sys.modules if name.startswith('kwmlp.train')])")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_extra_corpus_joins_every_epoch_whole_after_the_main_one(corpus, tmp_path):
    extra = make_corpus(tmp_path / "extra", words=("cat", "yes"), train_voices=("n1", "n2"),
                        val_voices=("n3",), test_voices=())
    config = train_module.TrainConfig(data=str(corpus), extra_data=(str(extra),), extra_repeat=3,
                                      corpus_fraction=0.5)
    audio, labels, validation, _, n_corpus = train_module.load_training_data(config)
    assert n_corpus == 12  # the main corpus' training clips come first, as before
    # The extra corpus' 4 training clips (not its validation voice n3), three times over,
    # read back from the files themselves.
    files = sorted(p for p in extra.glob("*/n[12]_nohash_0.wav"))
    expected = np.stack([sf.read(str(p), dtype="int16")[0] for p in files])
    tail = audio[n_corpus:].numpy()
    assert tail.shape == (12, SR)
    for copy in range(3):
        np.testing.assert_array_equal(tail[copy * 4:(copy + 1) * 4], expected)
    assert labels[n_corpus:].tolist() == [WORDS.index(p.parent.name) for p in files] * 3
    assert len(validation["val_acc"][0]) == 4  # validation stays the main corpus'
    order = train_module.epoch_order(len(audio), n_corpus, 0.5, torch.Generator().manual_seed(0))
    assert set(range(n_corpus, len(audio))) <= set(order.tolist())
    assert sum(i < n_corpus for i in order.tolist()) == 6


def test_export_records_the_extra_corpora(corpus, tmp_path):
    extra = make_corpus(tmp_path / "extra", words=("cat",), train_voices=("n1", "n2"),
                        val_voices=(), test_voices=())
    more = make_corpus(tmp_path / "more", words=("dog", "yes"), train_voices=("m1", "m2", "m3"),
                       val_voices=(), test_voices=())
    run_dir = tmp_path / "run"
    train_module.main(_argv(corpus, run_dir, epochs=1)
                      + ["--extra-data", str(extra), str(more), "--extra-repeat", "2"])
    out = tmp_path / "kwmlp.pt"
    export_run(run_dir, out)
    _, meta = load_checkpoint(out)
    assert [c["clips"]["training"] for c in meta["training_data"]["extra"]] == [2, 6]
    assert [c["repeat"] for c in meta["training_data"]["extra"]] == [2, 2]
    assert "extra corpus: 2 training clips (espeak-ng) (x2 per epoch)" in meta["trained_on"]
    assert "extra corpus: 6 training clips (espeak-ng) (x2 per epoch)" in meta["trained_on"]


def test_export_of_a_soup_averages_the_runs_final_weights_and_names_every_recipe(
        corpus, start, tmp_path):
    import hashlib

    extra = make_corpus(tmp_path / "extra", words=("cat",), train_voices=("n1", "n2"),
                        val_voices=(), test_voices=())
    more = make_corpus(tmp_path / "more", words=("dog", "yes"), train_voices=("m1", "m2", "m3"),
                       val_voices=(), test_voices=())
    runs = [tmp_path / "a", tmp_path / "b"]
    train_module.main(_argv(corpus, runs[0], epochs=1) + ["--init", str(start),
                                                          "--extra-data", str(extra)])
    train_module.main(_argv(corpus, runs[1], epochs=1) + ["--init", str(start), "--extra-data",
                                                          str(extra), str(more), "--lr", "3e-3"])
    # each run recorded which weights it started from
    digest = hashlib.sha256(start.read_bytes()).hexdigest()
    assert [(run / "init.sha256").read_text() for run in runs] == [digest, digest]
    out = tmp_path / "soup.pt"
    export_module.main(["--run", *map(str, runs), "--weights", "last", "--out", str(out)])
    model, meta = load_checkpoint(out)
    states = [torch.load(run / "last.pt", weights_only=True)["model"] for run in runs]
    assert not torch.equal(states[0]["head.weight"], states[1]["head.weight"])
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2)
    assert [m["run"] for m in meta["soup_of"]] == [str(run.resolve()) for run in runs]
    assert [m["recipe"]["lr"] for m in meta["soup_of"]] == [1e-3, 3e-3]
    assert [m["epochs"] for m in meta["soup_of"]] == [1, 1]
    assert "soup" in meta["selection"] and meta["val_accuracy"] is None
    # trained on: every recipe's corpora, once each, said to be the runs' together
    assert [c["clips"]["training"] for c in meta["training_data"]["extra"]] == [2, 6]
    assert meta["trained_on"].startswith("the mean of 2 runs' weights, which together")
    with pytest.raises(ValueError, match="final weights"):
        export_run(runs, tmp_path / "best.pt", weights="best")
    with pytest.raises(SystemExit):  # the command line says so before loading anything
        export_module.parse_args(["--run", *map(str, runs), "--out", str(tmp_path / "x.pt")])

    # refused: one run twice, a random start, another seed, an unfinished run, other
    # weights at the start's path
    with pytest.raises(ValueError, match="twice"):
        export_module.final_weights([runs[0], tmp_path / "." / "a"])
    with pytest.raises(ValueError, match="random start"):
        export_module.final_weights([runs[0], tmp_path / "start_run"])
    train_module.main(_argv(corpus, tmp_path / "seed", epochs=1) + ["--init", str(start),
                                                                    "--seed", "3"])
    with pytest.raises(ValueError, match="seed"):
        export_module.final_weights([runs[0], tmp_path / "seed"])
    import shutil
    shutil.copytree(runs[1], tmp_path / "unfinished")
    best_model, best_meta = load_checkpoint(tmp_path / "unfinished" / "best.pt")
    best_meta["run"]["epochs"] = 3
    save_checkpoint(tmp_path / "unfinished" / "best.pt", best_model, best_meta)
    with pytest.raises(ValueError, match="finished 1 of its 3"):
        export_module.final_weights([runs[0], tmp_path / "unfinished"])
    shutil.copytree(runs[1], tmp_path / "other_start")
    (tmp_path / "other_start" / "init.sha256").write_text("0" * 64)
    with pytest.raises(ValueError, match="init.sha256"):
        export_module.final_weights([runs[0], tmp_path / "other_start"])
    export_run(runs[1], start, weights="last")  # the start's path now holds other weights
    with pytest.raises(KwmlpError, match="as its init"):
        train_module.main(_argv(corpus, runs[0], epochs=1) + ["--init", str(start),
                                                              "--extra-data", str(extra)])


def test_extra_corpora_load_in_order(corpus, tmp_path):
    first = make_corpus(tmp_path / "first", words=("cat",), train_voices=("n1",),
                        val_voices=(), test_voices=())
    second = make_corpus(tmp_path / "second", words=("yes",), train_voices=("n1", "n2"),
                         val_voices=(), test_voices=())
    config = train_module.TrainConfig(data=str(corpus), extra_data=(str(first), str(second)))
    _, labels, _, _, n_corpus = train_module.load_training_data(config)
    assert labels[n_corpus:].tolist() == [WORDS.index("cat")] + [WORDS.index("yes")] * 2


def test_a_run_recorded_with_one_extra_path_resumes(corpus, tmp_path):
    """Runs started before --extra-data took several corpora wrote it as one string."""
    extra = make_corpus(tmp_path / "extra", words=("cat",), train_voices=("n1",),
                        val_voices=(), test_voices=())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = train_module.TrainConfig(data=str(corpus), extra_data=(str(extra),))
    recorded = {**config.to_json(), "extra_data": str(extra)}
    (run_dir / train_module.CONFIG_NAME).write_text(json.dumps(recorded))
    train_module._check_config(run_dir, config)  # same run: no error
    other = train_module.TrainConfig(data=str(corpus), extra_data=(str(extra), str(corpus)))
    with pytest.raises(KwmlpError, match="extra_data"):
        train_module._check_config(run_dir, other)


def test_balanced_copies_give_every_label_the_mean_share():
    # labels 0,0,0,1 at repeat 2: mean 2 clips a label, so 2*2/3 -> 1 copy and 2*2/1 -> 4
    assert train_module.balanced_copies(torch.tensor([0, 0, 0, 1]), 2).tolist() == [1, 1, 1, 4]
    # absent labels do not count in the mean: 1.5 clips a label, 3*1.5/2 = 2.25 -> 2, 4.5 -> 4
    assert train_module.balanced_copies(torch.tensor([2, 2, 5]), 3).tolist() == [2, 2, 4]
    # a label with far more clips than the mean still keeps one copy of each
    assert train_module.balanced_copies(torch.tensor([0] * 9 + [1]), 1).tolist() == [1] * 9 + [5]


def test_real_balance_evens_out_the_real_words(corpus, tmp_path):
    from kwmlp.train.real_speech import list_real_clips
    from test_real_speech import make_real_dir

    real_dir = make_real_dir(tmp_path / "real")
    trained = sorted(set(list_real_clips(real_dir)["speech_commands"]["training"][1]))
    manifest = real_dir / "MANIFEST.tsv"
    rows = manifest.read_text().splitlines()
    # "yes" by two training speakers only; "bed" by every one
    keep = [r for r in rows if "/yes/" not in r or r.split("\t")[3] in trained[:2]]
    manifest.write_text("\n".join(keep) + "\n")
    n_bed, n_yes = len(trained), 2
    assert n_bed >= 6
    common = dict(data=str(corpus), real_data=str(real_dir), real_repeat=4)
    plain = train_module.load_training_data(train_module.TrainConfig(**common))
    balanced = train_module.load_training_data(
        train_module.TrainConfig(**common, real_balance=True))
    n_corpus = plain[4]
    assert balanced[4] == n_corpus

    def real_counts(labels):
        tail = labels[n_corpus:].tolist()
        return tail.count(WORDS.index("bed")), tail.count(WORDS.index("yes"))

    assert real_counts(plain[1]) == (4 * n_bed, 4 * n_yes)
    mean = (n_bed + n_yes) / 2
    bed, yes = real_counts(balanced[1])
    assert bed == n_bed * max(1, round(4 * mean / n_bed))
    assert yes == n_yes * round(4 * mean / n_yes)
    assert abs(bed - yes) <= n_bed  # about 4 * mean each, where plain gives 4*n_bed vs 8
    # every balanced copy is one of the real clips, unchanged
    real_rows = {bytes(row.numpy()) for row in plain[0][n_corpus:]}
    assert all(bytes(row.numpy()) in real_rows for row in balanced[0][n_corpus:])


def test_operating_point_takes_the_highest_threshold_that_keeps_pooled_recall():
    """Two folds, thresholds 0.5/0.6/0.7: pooled recall 18/20, 15/20, 12/20; false accepts
    6, 3, 0 in one hour of negatives (half an hour per fold)."""
    thresholds = (0.5, 0.6, 0.7)
    sweeps = [FoldSweep("fold0", 10, (9, 8, 7), 1800.0, (4, 2, 0)),
              FoldSweep("fold1", 10, (9, 7, 5), 1800.0, (2, 1, 0))]
    assert choose_threshold(sweeps, thresholds, recall_floor=0.75) == 0.6
    assert choose_threshold(sweeps, thresholds, recall_floor=0.6) == 0.7
    assert choose_threshold(sweeps, thresholds, recall_floor=0.95) is None
    summary = summarize(sweeps, thresholds)
    assert summary["threshold"] == 0.6 and summary["rule"].endswith(">= 0.75")
    assert summarize(sweeps, thresholds, recall_floor=0.9)["threshold"] == 0.5
    rows = summary["sweep"]
    assert [r["recall"] for r in rows] == [0.9, 0.75, 0.6]
    assert [r["false_accepts_per_hour"] for r in rows] == [6.0, 3.0, 0.0]


def test_mix_batch_blends_each_clip_with_one_partner_at_a_folded_beta_weight():
    generator = torch.Generator().manual_seed(0)
    batch = torch.eye(8, dtype=torch.float64)  # row i: a one at sample i, so parts are visible
    weights = []
    for _ in range(4000):
        mixed, partner, weight = train_module.mix_batch(batch, 1.0, generator)
        weights.append(weight)
    assert sorted(partner.tolist()) == list(range(8))
    expected = np.eye(8) * weight
    expected[np.arange(8), partner.numpy()] += 1.0 - weight
    np.testing.assert_allclose(mixed.numpy(), expected)
    # Beta(1, 1) is uniform: max(u, 1 - u) is uniform on [0.5, 1], mean 0.75, sd 1/sqrt(48)
    assert min(weights) >= 0.5 and max(weights) <= 1.0
    assert abs(np.mean(weights) - 0.75) < 0.01
    assert abs(np.std(weights) - 1 / math.sqrt(48)) < 0.01
    # a small alpha keeps most clips almost whole
    small = [train_module.mix_batch(batch, 0.05, generator)[2] for _ in range(500)]
    assert np.median(small) > 0.99


def test_mixup_is_recorded_and_a_negative_alpha_refused(corpus, tmp_path):
    run_dir = tmp_path / "run"
    train_module.main(_argv(corpus, run_dir, epochs=1) + ["--mixup-alpha", "0.4"])
    assert json.loads((run_dir / "config.json").read_text())["mixup_alpha"] == 0.4
    assert math.isfinite(train_module.read_log(run_dir)[0]["train_loss"])
    with pytest.raises(ValueError, match="mixup_alpha"):
        train_module.TrainConfig(data=str(corpus), mixup_alpha=-1.0)


def test_distill_loss_is_the_softened_kl_times_t_squared():
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    for t in (1.0, 2.0, 4.0):
        log_p, log_q = log_softmax(teacher / t), log_softmax(student / t)
        expected = t * t * np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1))
        got = train_module.distill_loss(torch.from_numpy(student), torch.from_numpy(teacher), t)
        assert float(got) == pytest.approx(expected, rel=1e-10)
    same = torch.from_numpy(teacher)
    assert float(train_module.distill_loss(same, same, 2.0)) == pytest.approx(0.0, abs=1e-12)


def test_a_teacher_is_recorded_and_must_answer_the_same_classes(corpus, tmp_path):
    train_module.main(_argv(corpus, tmp_path / "teacher", epochs=1))
    teacher = tmp_path / "teacher" / "best.pt"
    run_dir = tmp_path / "student"
    train_module.main(_argv(corpus, run_dir, epochs=1)
                      + ["--teacher", str(teacher), "--distill-weight", "0.7"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["teacher"] == str(teacher.resolve()) and config["distill_weight"] == 0.7
    assert math.isfinite(train_module.read_log(run_dir)[0]["train_loss"])
    # the teacher file changed under a run that learns from it: its resume is refused
    model, _ = load_checkpoint(teacher)
    teacher_bytes = teacher.read_bytes()
    save_checkpoint(teacher, KWMLP(**model.config()))
    again = _argv(corpus, run_dir, epochs=1) + ["--teacher", str(teacher),
                                                 "--distill-weight", "0.7"]
    with pytest.raises(KwmlpError, match="other weights"):
        train_module.main(again)
    teacher.write_bytes(teacher_bytes)
    train_module.main(again)  # the teacher it started with: resumes (nothing left to do)
    save_checkpoint(tmp_path / "wide.pt", KWMLP(**{**model.config(), "n_classes": 40}))
    save_checkpoint(tmp_path / "headless.pt", KWMLP(**{**model.config(), "n_classes": 0}))
    for wrong, classes in (("wide.pt", 40), ("headless.pt", 0)):
        with pytest.raises(KwmlpError, match=f"answers {classes} classes"):
            train_module.main(_argv(corpus, tmp_path / "other", epochs=1)
                              + ["--teacher", str(tmp_path / wrong)])
        # a start that failed records no config, so the corrected command can use the folder
        assert not (tmp_path / "other" / train_module.CONFIG_NAME).exists()
    for bad in ({"distill_weight": 1.5}, {"distill_temperature": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            train_module.TrainConfig(data=str(corpus), **bad)


def test_the_teacher_sees_the_students_augmented_input_in_eval_mode(corpus, tmp_path,
                                                                     monkeypatch):
    train_module.main(_argv(corpus, tmp_path / "teacher", epochs=1))
    teacher = tmp_path / "teacher" / "best.pt"
    inputs, seen = [], []
    real_mfcc, real_loss = train_module.augmented_mfcc, train_module.distill_loss

    def recording_mfcc(*args):
        inputs.append(real_mfcc(*args))
        return inputs[-1]

    def recording_loss(logits, teacher_logits, temperature):
        seen.append((logits.detach(), teacher_logits))
        return real_loss(logits, teacher_logits, temperature)

    monkeypatch.setattr(train_module, "augmented_mfcc", recording_mfcc)
    monkeypatch.setattr(train_module, "distill_loss", recording_loss)
    train_module.main(_argv(corpus, tmp_path / "student", epochs=1)
                      + ["--teacher", str(teacher)])
    # Frozen, as a teacher is: on some CPUs (seen on an AVX2 one without AVX-512) weights that
    # require grad take another kernel, 1e-7 apart, even under no_grad.
    model = load_checkpoint(teacher)[0].float().requires_grad_(False)
    assert len(seen) == len(inputs) > 0
    for mfcc, (logits, teacher_logits) in zip(inputs, seen):
        with torch.no_grad():
            torch.testing.assert_close(teacher_logits, model(mfcc), rtol=0, atol=0)
        assert not torch.equal(logits, teacher_logits)  # the student is its own model


def test_a_new_run_trusts_no_cache_a_failed_start_left(corpus, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(KwmlpError):
        train_module.main(_argv(corpus, run_dir, epochs=1)
                          + ["--teacher", str(tmp_path / "missing.pt")])
    stale = run_dir / train_module.RIR_NAME
    np.save(stale, np.zeros((2, 3), np.float32))  # as a start with other rooms would leave
    train_module.main(_argv(corpus, run_dir, epochs=1))
    assert not stale.exists() and (run_dir / train_module.CONFIG_NAME).exists()


def test_paired_differences_are_fold_by_fold_points_and_pay_only_when_both_means_gain():
    from kwmlp.train.crossval import paired_differences

    def summary(pairs):
        return {"folds": [{"fold": f"fold {i} of 2", "clips": 10, "accuracy": a,
                           "command_words_accuracy": c} for i, (a, c) in enumerate(pairs)]}

    base = summary([(0.70, 0.60), (0.80, 0.90)])
    paired = paired_differences(summary([(0.75, 0.50), (0.79, 1.00)]), base)
    assert paired["accuracy"] == {"differences": [5.0, -1.0], "mean": 2.0}
    assert paired["command_words_accuracy"] == {"differences": [-10.0, 10.0], "mean": 0.0}
    assert paired["pays"] is False  # a mean of zero is no gain
    assert paired_differences(summary([(0.71, 0.61), (0.80, 0.91)]), base)["pays"] is True
    other = summary([(0.7, 0.6), (0.8, 0.9)])
    other["folds"][1]["clips"] = 11
    with pytest.raises(ValueError, match="same speakers"):
        paired_differences(other, base)
