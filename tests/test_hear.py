"""The HEAR API end to end, against the step-by-step numpy reimplementation of
the published behaviour (tests/oracle.py) and hand-computed arithmetic."""

import numpy as np
import pytest
import torch

import kwmlp
import oracle
from kwmlp.embedder import extend_chunk_frames, n_timestamps


@pytest.fixture(scope="module")
def model(published_checkpoint):
    return kwmlp.load_model(str(published_checkpoint))


def test_hear_attributes(model):
    assert model.sample_rate == 16000 and type(model.sample_rate) is int
    assert model.timestamp_embedding_size == 64 and type(model.timestamp_embedding_size) is int
    assert model.scene_embedding_size == 1024 and type(model.scene_embedding_size) is int
    assert not model.training and isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("seconds, n_chunks, n_stamps", [
    (0.3, 1, 30),  # 4800 + 320 = 5120 samples -> (320 ms - 30) / 10 + 1
    (1.0, 2, 100),  # 16320 padded samples spill into a second chunk
    (2.5, 3, 250),  # 40320 samples -> 3 chunks, 2520 ms -> 250 stamps
    (1.98, 2, 198),  # 31680 + 320 = 32000: exactly 2 s, every stitched frame stamped
])
def test_padding_chunking_and_timestamps(model, seconds, n_chunks, n_stamps):
    n_samples = round(seconds * 16000)
    audio = torch.rand(2, n_samples) * 0.2 - 0.1
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)
    assert n_timestamps(n_samples + 320) == n_stamps
    assert emb.shape == (2, n_stamps, 64) and ts.shape == (2, n_stamps)
    np.testing.assert_array_equal(ts[0].numpy(), 10.0 * np.arange(1, n_stamps + 1))
    frames, count = model(audio)  # every stitched frame, timestamped or not
    assert frames.shape == (2, 100 * n_chunks - 2, 64) and count == n_stamps <= frames.shape[1]
    torch.testing.assert_close(frames[:, :count], emb, atol=0, rtol=0)


def test_chunk_extension_by_hand():
    # two chunks of three 1-d "frames": [a b c] [d e f] -> [a a b c c] [d d e f f]
    frames = torch.tensor([[[1.], [2.], [3.]], [[4.], [5.], [6.]]])
    assert extend_chunk_frames(frames)[..., 0].tolist() == [[1, 1, 2, 3, 3], [4, 4, 5, 6, 6]]


@pytest.mark.parametrize("seconds", [0.37, 1.0, 2.5, 7.3])
def test_matches_independent_implementation(model, published_params, seconds):
    """Acceptance: default timestamp and scene embeddings of a batch of 3 match
    the oracle (MFCC by nnAudio, the definition; everything after it numpy)."""
    nn_mfcc = kwmlp.frontend.MFCC(backend="nnaudio")

    def mfcc_fn(chunks):
        with torch.no_grad():
            return nn_mfcc(torch.from_numpy(chunks)).double().numpy()

    rng = np.random.default_rng(int(seconds * 100))
    n = round(seconds * 16000)
    t = np.arange(n) / 16000
    audio = np.stack([np.clip(0.3 * rng.standard_normal(n), -1, 1),
                      0.5 * np.sin(2 * np.pi * 300 * t * (1 + t)),
                      np.where(t < seconds / 2, 0, 0.2 * np.tanh(rng.standard_normal(n)))])
    audio = audio.astype(np.float32)
    emb, ts = kwmlp.get_timestamp_embeddings(torch.from_numpy(audio), model)
    scene = kwmlp.get_scene_embeddings(torch.from_numpy(audio), model)
    for i, sound in enumerate(audio):
        want_emb, want_ts, want_scene = oracle.published_embeddings(sound, mfcc_fn,
                                                                    published_params)
        np.testing.assert_allclose(emb[i].numpy(), want_emb, atol=1e-5)
        np.testing.assert_allclose(ts[i].numpy(), want_ts)
        np.testing.assert_allclose(scene[i].numpy(), want_scene, atol=1e-5)


@pytest.mark.parametrize("n_samples", [20000, 12000])  # 2 chunks each; 1 chunk each
def test_batch_equals_items_and_is_deterministic(model, n_samples):
    audio = torch.rand(3, n_samples) - 0.5
    batch = kwmlp.get_scene_embeddings(audio, model)
    items = torch.cat([kwmlp.get_scene_embeddings(a[None], model) for a in audio])
    torch.testing.assert_close(batch, items, atol=1e-6, rtol=0)
    assert torch.equal(batch, kwmlp.get_scene_embeddings(audio, model))


@pytest.mark.parametrize("batch_size", [1, 2, 11])  # 12 chunks: 11 leaves a last batch of one
def test_chunk_batch_size_does_not_change_output(published_checkpoint, batch_size):
    audio = torch.rand(2, 88000) - 0.5  # 6 chunks each
    small = kwmlp.load_model(str(published_checkpoint), chunk_batch_size=batch_size)
    large = kwmlp.load_model(str(published_checkpoint), chunk_batch_size=1000)
    for fn in (kwmlp.get_scene_embeddings, lambda a, m: kwmlp.get_timestamp_embeddings(a, m)[0]):
        torch.testing.assert_close(fn(audio, small), fn(audio, large), atol=1e-6, rtol=0)


def test_options_layer_pooling_scene_frames(published_checkpoint, published_params):
    audio = torch.rand(1, 24000) - 0.5
    m4 = kwmlp.load_model(str(published_checkpoint), layer=4)
    emb, _ = kwmlp.get_timestamp_embeddings(audio, m4)
    padded = np.concatenate([np.zeros(80), audio[0].numpy(), np.zeros(240 + 16000 - 24320 % 16000)])
    mfcc = kwmlp.frontend.MFCC()(torch.from_numpy(padded.astype(np.float32)).reshape(-1, 16000))
    frames = oracle.stitch(list(oracle.encoder_embed(mfcc.numpy(), published_params, layer=4)))
    np.testing.assert_allclose(emb[0].numpy(), frames[:emb.shape[1]], atol=1e-5)

    for pooling, pool in [("single", oracle.pool_single), ("mean", oracle.pool_mean)]:
        m = kwmlp.load_model(str(published_checkpoint), layer=4, pooling=pooling)
        np.testing.assert_allclose(kwmlp.get_scene_embeddings(audio, m)[0].numpy(),
                                   pool(frames), atol=1e-5)
    m = kwmlp.load_model(str(published_checkpoint), layer=4, scene_frames="audio")
    np.testing.assert_allclose(kwmlp.get_scene_embeddings(audio, m)[0].numpy(),
                               oracle.pool_iterative(frames[:emb.shape[1]]), atol=1e-5)


@pytest.mark.parametrize("options, message", [
    (dict(layer=True), "layer must be an int in 1..12, got True"),
    (dict(layer=13), "layer must be an int in 1..12, got 13"),
    (dict(device="foo"), "device must be a torch device"),
    (dict(device="cuda:0"), "torch sees no CUDA device here"),
])
def test_load_model_refuses_bad_options_clearly(options, message):
    if "cuda" in str(options.get("device")) and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=message):
        kwmlp.load_model(**options)


def test_outputs_float32_on_input_device_and_no_grad(model):
    audio = torch.rand(1, 8000, dtype=torch.float64, requires_grad=True) - 0.5
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)
    scene = kwmlp.get_scene_embeddings(audio, model)
    for out in (emb, ts, scene):
        assert out.dtype == torch.float32 and out.device == audio.device
        assert not out.requires_grad


@pytest.mark.parametrize("bad, error, match", [
    (torch.zeros(16000), ValueError, r"audio\[None\]"),
    (torch.zeros(1, 1, 16000), ValueError, "2-D"),
    (torch.zeros(1, 16000, dtype=torch.int16), TypeError, "32768"),
    (torch.zeros(1, 0), ValueError, "empty"),
    (torch.zeros(0, 16000), ValueError, "empty"),
    (torch.tensor([[0.0, float("nan")]]), ValueError, "NaN"),
    (torch.tensor([[0.0, float("inf")]]), ValueError, "inf"),
    (torch.tensor([[0.0, -float("inf")]]), ValueError, "inf"),
    (torch.tensor([[float("nan"), 2.0, -3.0]]), ValueError, "NaN"),
    (np.zeros((1, 16000), np.float32), TypeError, "torch.from_numpy"),
])
def test_bad_audio(model, bad, error, match):
    for fn in (kwmlp.get_timestamp_embeddings, kwmlp.get_scene_embeddings):
        with pytest.raises(error, match=match):
            fn(bad, model)


def test_loud_audio_warns_and_is_not_clipped(model):
    audio = torch.rand(1, 8000) - 0.5
    with pytest.warns(UserWarning, match="exceeds 1.0") as caught:
        loud = kwmlp.get_scene_embeddings(audio * 4, model)
    assert caught[0].filename == __file__  # the caller's line, not kwmlp's
    with pytest.warns(UserWarning, match="peak 1.5 exceeds"):  # a negative peak counts too
        kwmlp.get_scene_embeddings(torch.tensor([[0.5, -1.5, 1.2]]), model)
    assert not torch.allclose(loud, kwmlp.get_scene_embeddings(audio.clamp(-0.25, 0.25) * 4, model))


def test_the_peak_warning_names_the_callers_line_from_every_entry_point():
    import warnings

    model = kwmlp.load_model(device="cpu")  # the shipped weights: a head recognize can name
    loud = 2 * (torch.rand(1, 8000) - 0.5) * 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own filter: once per location
        kwmlp.recognize(loud, model)
        kwmlp.classify(loud[0], model)
        kwmlp.classify(loud[0].numpy(), model)  # another line: warns again
        model(loud)
    lines = [(w.filename, w.lineno) for w in caught if "exceeds 1.0" in str(w.message)]
    assert len(lines) == 4 and all(name == __file__ for name, _ in lines), lines
    assert len(set(lines)) == 4


def test_foreign_model_rejected():
    with pytest.raises(TypeError, match="load_model"):
        kwmlp.get_scene_embeddings(torch.zeros(1, 16000), torch.nn.Linear(2, 2))


@pytest.mark.parametrize("options, match", [
    (dict(layer=13), "layer"), (dict(layer=0), "layer"), (dict(pooling="max"), "pooling"),
    (dict(scene_frames="some"), "scene_frames"), (dict(chunk_batch_size=0), "chunk_batch_size"),
    (dict(frontend="librosa"), "frontend"),
])
def test_bad_options(published_checkpoint, options, match):
    with pytest.raises(ValueError, match=match):
        kwmlp.load_model(str(published_checkpoint), **options)


def test_unknown_option_is_an_error(published_checkpoint):
    with pytest.raises(TypeError, match="polling"):
        kwmlp.load_model(str(published_checkpoint), polling="mean")


def test_embed_is_both_outputs_in_one_pass(model):
    audio = torch.rand(2, 12345) - 0.5
    both = model.embed(audio)
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)
    assert torch.equal(both["embedding"], emb) and torch.equal(both["timestamps"], ts)
    assert torch.equal(both["scene"], kwmlp.get_scene_embeddings(audio, model))
    assert set(model.embed(audio, "scene")) == {"scene"}
    with pytest.raises(ValueError, match="kind"):
        model.embed(audio, "all")


def test_train_mode_gives_the_eval_embeddings_and_is_left_alone(model):
    audio = torch.rand(2, 20000) - 0.5
    expected = kwmlp.get_scene_embeddings(audio, model)
    model.train()
    try:
        for _ in range(3):  # stochastic depth would make every call differ
            assert torch.equal(kwmlp.get_scene_embeddings(audio, model), expected)
        assert model.training and model.encoder.training  # the caller's mode is kept
    finally:
        model.eval()


def test_outputs_are_ordinary_tensors_a_probe_can_train_on(model):
    audio = torch.rand(2, 8000) - 0.5
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)
    scene = kwmlp.get_scene_embeddings(audio, model)
    for out in (emb, ts, scene):
        assert not out.is_inference()
    probe = torch.nn.Linear(64, 2)
    probe(emb).sum().backward()  # inference tensors cannot be saved for backward
    assert probe.weight.grad is not None and probe.weight.grad.abs().sum() > 0
    torch.nn.Linear(1024, 2)(scene).sum().backward()
    before = emb.clone()
    emb += 1  # in-place updates of inference tensors are refused outside inference mode
    assert torch.equal(emb, before + 1)


@pytest.mark.parametrize("n_samples", [1, 100, 159])
def test_scene_frames_audio_on_a_clip_without_timestamps_is_a_clear_error(
        published_checkpoint, n_samples):
    m = kwmlp.load_model(str(published_checkpoint), scene_frames="audio")
    audio = torch.rand(1, n_samples) - 0.5
    with pytest.raises(ValueError,
                       match=rf"{n_samples} samples has none .*160.*scene_frames='all'"):
        kwmlp.get_scene_embeddings(audio, m)
    emb, ts = kwmlp.get_timestamp_embeddings(audio, m)  # no scene asked: no error
    assert emb.shape == (1, 0, 64) and ts.shape == (1, 0)


def test_scene_frames_audio_pools_the_single_frame_of_a_10_ms_clip(published_checkpoint):
    m = kwmlp.load_model(str(published_checkpoint), scene_frames="audio", pooling="single")
    audio = torch.rand(1, 160) - 0.5
    emb, _ = kwmlp.get_timestamp_embeddings(audio, m)
    assert emb.shape == (1, 1, 64)
    # one frame, zero-padded to 16 steps and interpolated: step 0 is the frame itself
    scene = kwmlp.get_scene_embeddings(audio, m).reshape(64, 16)
    torch.testing.assert_close(scene[:, 0], emb[0, 0], atol=1e-6, rtol=0)


def test_swapped_arguments_are_named(model):
    audio = torch.zeros(1, 16000)
    for fn in (kwmlp.get_timestamp_embeddings, kwmlp.get_scene_embeddings):
        with pytest.raises(TypeError, match=r"takes \(audio, model\); the arguments are swapped"):
            fn(model, audio)


def test_meta_audio_and_converted_models_are_refused(published_checkpoint, model):
    with pytest.raises(ValueError, match="meta device"):
        kwmlp.get_scene_embeddings(torch.zeros(1, 16000, device="meta"), model)
    double = kwmlp.load_model(str(published_checkpoint), device="cpu").double()
    with pytest.raises(TypeError, match=r"torch.float64.*float32.*load_model"):
        kwmlp.get_scene_embeddings(torch.zeros(1, 16000, dtype=torch.float64), double)
    with pytest.raises(TypeError, match=r"torch.float16.*float32.*load_model"):
        kwmlp.Stream(kwmlp.load_model(str(published_checkpoint), device="cpu").half(),
                     keywords=False)
    with pytest.raises(ValueError, match="'meta' holds shapes but no weights"):
        kwmlp.load_model(str(published_checkpoint), device="meta")


def test_the_embedder_owns_the_pipeline(published_checkpoint, published_params):
    """The model object itself gives the stitched frames and the timestamp
    count; it is built with its provenance, not given it afterwards."""
    from kwmlp.checkpoints import load_checkpoint
    from kwmlp.embedder import KWMLPEmbedder

    encoder, metadata = load_checkpoint(published_checkpoint)
    m = KWMLPEmbedder(encoder, weights_path=published_checkpoint, metadata=metadata).eval()
    assert m.weights_path == str(published_checkpoint) and m.metadata == metadata
    audio = torch.rand(2, 24000) - 0.5  # 24320 padded samples: 2 chunks, 150 stamps
    frames, count = m(audio)
    assert frames.shape == (2, 198, 64) and count == 150
    padded = np.concatenate([np.zeros(80), audio[1].numpy(), np.zeros(32000 - 24080)])
    mfcc = kwmlp.frontend.MFCC()(torch.from_numpy(padded.astype(np.float32)).reshape(-1, 16000))
    want = oracle.stitch(list(oracle.encoder_embed(mfcc.numpy(), published_params)))
    np.testing.assert_allclose(frames[1].numpy(), want, atol=1e-5)
    emb, _ = kwmlp.get_timestamp_embeddings(audio, m)
    assert torch.equal(emb, frames[:, :count])


def test_a_batch_of_no_chunks_gives_empty_outputs(model):
    assert model.embed_chunks(torch.zeros(0, 16000)).shape == (0, 98, 64)
    assert model.classify_chunks(torch.zeros(0, 16000)).shape == (0, 35)


def test_a_float64_default_dtype_changes_nothing():
    """Users set torch.set_default_dtype(torch.float64); kwmlp computes in float32 anyway."""
    model = kwmlp.load_model(device="cpu")  # the shipped weights: a head recognize can name
    audio = torch.from_numpy(np.random.default_rng(3).uniform(-0.5, 0.5, (2, 20_000))
                             .astype(np.float32))
    scene = kwmlp.get_scene_embeddings(audio, model)
    frames, _ = kwmlp.get_timestamp_embeddings(audio, model)
    words = kwmlp.recognize(audio, model).probabilities
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for loaded in (model, kwmlp.load_model(device="cpu"),
                       kwmlp.load_model(device="cpu", frontend="fft")):
            tolerance = dict(atol=1e-5, rtol=0)  # the fft frontend rounds otherwise
            torch.testing.assert_close(kwmlp.get_scene_embeddings(audio, loaded), scene,
                                       **tolerance)
            torch.testing.assert_close(kwmlp.get_timestamp_embeddings(audio, loaded)[0],
                                       frames, **tolerance)
            again = kwmlp.recognize(audio, loaded).probabilities
            assert again.dtype == torch.float32
            torch.testing.assert_close(again, words, **tolerance)
            stream = kwmlp.Stream(loaded)
            pushed, flushed = stream.push(audio[0]), stream.flush()
            streamed = torch.cat([pushed.embedding, flushed.embedding])
            assert streamed.dtype == torch.float32
            torch.testing.assert_close(streamed, frames[0], **tolerance)
            torch.testing.assert_close(torch.cat([pushed.probabilities, flushed.probabilities]),
                                       words[0], **tolerance)
    finally:
        torch.set_default_dtype(previous)


def test_audio_far_outside_the_unit_range_is_refused_not_turned_into_nan(model):
    for peak, dtype in ((1e20, torch.float32), (1e39, torch.float64)):
        audio = torch.zeros(1, 16000, dtype=dtype)
        audio[0, 100] = peak
        with pytest.raises(ValueError, match="far outside"):
            kwmlp.get_scene_embeddings(audio, model)
    with pytest.raises(TypeError, match="real float"):
        kwmlp.get_scene_embeddings(torch.zeros(1, 16000, dtype=torch.complex64), model)
    with pytest.warns(UserWarning, match="audio peak"):  # unscaled int16 PCM: warned, computed
        out = kwmlp.get_scene_embeddings(torch.full((1, 16000), 32767.0), model)
    assert torch.isfinite(out).all()


def test_load_model_leaves_the_rng_alone_and_takes_numpy_integers(published_checkpoint):
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    model = kwmlp.load_model(str(published_checkpoint), device="cpu", layer=np.int64(4),
                             chunk_batch_size=np.int64(8))
    assert torch.equal(torch.random.get_rng_state(), state)  # a seeded script draws the same
    assert (model.layer, model.chunk_batch_size) == (4, 8) and type(model.layer) is int
    with pytest.raises(ValueError, match="chunk_batch_size must be a positive int, got True"):
        kwmlp.load_model(str(published_checkpoint), device="cpu", chunk_batch_size=True)


def test_recognize_checks_the_threshold_it_is_given():
    model = kwmlp.load_model(device="cpu")
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 5"):
        kwmlp.recognize(torch.zeros(1, 16000), model, threshold=5)
    with pytest.raises(TypeError, match="threshold must be a number"):
        kwmlp.recognize(torch.zeros(1, 16000), model, threshold="0.5")
    assert kwmlp.recognize(torch.zeros(1, 16000), model, threshold=0.7).threshold == 0.7
