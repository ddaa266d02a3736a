"""Scene pooling against the numpy oracle of eq. 3 and the §6.1 ablations."""
import numpy as np
import pytest
import torch

import oracle
from kwmlp import pooling
from kwmlp.pooling import METHODS, scene_embedding

ORACLES = {"iterative": oracle.pool_iterative, "single": oracle.pool_single,
           "mean": oracle.pool_mean}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_frames", [1, 5, 16, 17, 31, 32, 33, 63, 98, 198, 298, 730, 1024])
def test_matches_oracle(method, n_frames):
    x = np.random.default_rng(n_frames).standard_normal((2, n_frames, 8)).astype(np.float32)
    got = scene_embedding(torch.from_numpy(x), method).numpy()
    want = np.stack([ORACLES[method](item) for item in x])
    assert got.shape == (2, 16 * 8)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("n_frames, sizes", [
    (98, [49, 24, 16]),  # floor(log2(98 / 16)) = 2 halvings, then one step to 16
    (64, [32, 16]),  # 64 / 16 is a power of two: halvings only
    (16, []),  # already 16 steps
    (17, [16]),  # no halving, one step to 16
    (5, []),  # zero-padded to 16 steps: nothing to interpolate
])
def test_iterative_halving_sequence(monkeypatch, n_frames, sizes):
    """The interpolation steps eq. 3 takes; a constant-slope ramp stays a ramp
    through every one of them."""
    calls = []
    real = pooling._interpolate
    monkeypatch.setattr(pooling, "_interpolate",
                        lambda x, size: calls.append(size) or real(x, size))
    ramp = torch.arange(n_frames, dtype=torch.float32).reshape(1, n_frames, 1)
    out = scene_embedding(ramp, "iterative")[0].numpy()
    assert calls == sizes
    if n_frames >= 16:
        np.testing.assert_allclose(out, np.linspace(0, n_frames - 1, 16), atol=1e-4)


def test_feature_major_layout():
    x = torch.zeros(1, 16, 3)
    x[0, :, 1] = 1.0  # feature 1 everywhere
    out = scene_embedding(x, "iterative")[0]
    assert torch.equal(out[16:32], torch.ones(16)) and out[:16].abs().sum() == 0


def test_short_input_zero_padded_at_end():
    x = torch.ones(1, 4, 2)
    out = scene_embedding(x, "single")[0].reshape(2, 16)
    assert out[:, 0].eq(1).all() and out[:, -1].eq(0).all()


def test_bad_method_and_shape():
    with pytest.raises(ValueError, match="pooling method"):
        scene_embedding(torch.zeros(1, 20, 4), "max")
    with pytest.raises(ValueError, match=r"expected \(batch, n_frames > 0, dim\), got \(20, 4\)"):
        scene_embedding(torch.zeros(20, 4))
    with pytest.raises(ValueError, match=r"n_frames > 0"):
        scene_embedding(torch.zeros(1, 0, 4))
