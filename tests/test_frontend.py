"""MFCC frontend against a float64 numpy MFCC written from the definition."""
import numpy as np
import pytest
import torch

import oracle
from kwmlp.frontend import CHUNK_SAMPLES, FRAMES_PER_CHUNK, MFCC, chunk_batches, n_chunks


def test_frames_per_chunk():
    # center=False: 1 + (16000 - 480) // 160 frames of a 1 s chunk
    assert FRAMES_PER_CHUNK == 98


def _signals():
    rng = np.random.default_rng(0)
    t = np.arange(CHUNK_SAMPLES) / 16000
    x = np.stack([
        rng.standard_normal(CHUNK_SAMPLES) * 0.1,  # white noise
        rng.standard_normal(CHUNK_SAMPLES) * 1e-4,  # very quiet noise
        np.where(t < 0.5, 0.0, rng.standard_normal(CHUNK_SAMPLES) * 0.3),  # half silence
        0.5 * np.sin(2 * np.pi * 440 * t),  # pure tone: most bins at the top_db floor
        0.5 * np.sin(2 * np.pi * (100 + 3000 * t) * t),  # chirp
    ])
    return x.astype(np.float32)


@pytest.mark.parametrize("backend", ["nnaudio", "fft"])
def test_mfcc_matches_numpy_definition(backend):
    x = _signals()
    got = MFCC(backend=backend)(torch.from_numpy(x)).numpy()
    want = oracle.mfcc(x)
    assert got.shape == (5, 40, 98)
    # float32 STFT/DCT vs float64: values reach ~600 (c0), so 1e-3 is ~2 ulp-scale
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_top_db_floor_is_per_chunk():
    """A loud chunk next to a quiet one must not raise the quiet one's floor."""
    x = _signals()[[0, 1]]
    m = MFCC()
    together = m(torch.from_numpy(x))
    alone = m(torch.from_numpy(x[1:]))
    np.testing.assert_allclose(together[1:].numpy(), alone.numpy(), atol=1e-4)


@pytest.mark.parametrize("n_samples, batch_size", [(5, 4), (16000, 1), (15680, 3),
                                                    (16001, 2), (47000, 5)])
def test_chunk_batches_equal_padding_then_splitting(n_samples, batch_size):
    audio = torch.randn(3, n_samples, dtype=torch.float64)
    padded = np.pad(audio.numpy(), ((0, 0), (80, 240)))
    whole = -(-padded.shape[1] // 16000) * 16000  # ceil to whole seconds
    want = np.pad(padded, ((0, 0), (0, whole - padded.shape[1]))).reshape(-1, 16000)
    batches = list(chunk_batches(audio, batch_size=batch_size, pad_start=80, pad_end=240))
    assert all(b.dtype == torch.float32 and len(b) <= batch_size for b in batches)
    np.testing.assert_allclose(torch.cat(batches).numpy(), want, atol=1e-7)
    assert n_chunks(n_samples + 320) == len(want) // 3


def test_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        MFCC(backend="librosa")


def test_fft_backend_matches_nnaudio():
    """The fast frontend reproduces nnAudio to 1e-4 on broadband signals. On
    pure tones and chirps nnAudio's own float32 conv-STFT is up to ~2.6e-4 off
    the exact (float64) MFCC, so there both are held to the exact MFCC above."""
    x = torch.from_numpy(_signals()[:3])  # white, quiet and half-silent noise
    fast, reference = MFCC(backend="fft")(x), MFCC(backend="nnaudio")(x)
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, reference, atol=1e-4, rtol=0)


def test_fft_backend_embeddings_match_nnaudio(published_checkpoint):
    import kwmlp

    broadband = np.clip(_signals()[:3].reshape(1, -1), -1, 1)  # 3 s: the signals above
    audio = torch.from_numpy(np.concatenate([broadband[:, :40000], broadband[:, 5000:45000]]))
    fast = kwmlp.load_model(str(published_checkpoint), frontend="fft")
    reference = kwmlp.load_model(str(published_checkpoint), frontend="nnaudio")
    for fn in (kwmlp.get_scene_embeddings, lambda a, m: kwmlp.get_timestamp_embeddings(a, m)[0]):
        torch.testing.assert_close(fn(audio, fast), fn(audio, reference), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["nnaudio", "fft"])
def test_a_batch_of_no_chunks_is_an_empty_mfcc(backend):
    mfcc = MFCC(backend=backend)(torch.zeros(0, CHUNK_SAMPLES))
    assert mfcc.shape == (0, 40, FRAMES_PER_CHUNK) and mfcc.dtype == torch.float32
