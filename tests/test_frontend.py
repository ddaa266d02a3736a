"""MFCC frontend against a float64 numpy MFCC written from the definition."""
import numpy as np
import pytest
import torch

import oracle
from kwmlp.frontend import CHUNK_SAMPLES, FRAMES_PER_CHUNK, MFCC, chunk_audio


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


def test_chunk_audio_pads_to_whole_seconds():
    audio = torch.arange(1, 16001 + 1, dtype=torch.float32).reshape(1, -1)  # 16001 samples
    chunks = chunk_audio(audio)
    assert chunks.shape == (1, 2, 16000)
    assert chunks[0, 1, 0] == 16001 and chunks[0, 1, 1:].eq(0).all()
    assert chunk_audio(torch.zeros(2, 5)).shape == (2, 1, 16000)
    assert chunk_audio(torch.zeros(1, 32000)).shape == (1, 2, 16000)


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
