"""The encoder against the numpy oracle of eq. 1-2, and its size against the paper."""
import numpy as np
import pytest
import torch

import oracle
from kwmlp.checkpoints import load_checkpoint
from kwmlp.encoder import KWMLP, count_parameters


def expected_parameters(n_mfcc=40, n_frames=98, dim=64, dim_ff=256, depth=12):
    """Parameter count from the layer shapes of §3.2, counted by hand."""
    patch = n_mfcc * dim + dim
    block = (2 * dim  # post-norm LayerNorm
             + dim * dim_ff + dim_ff  # U
             + 2 * (dim_ff // 2)  # gate LayerNorm
             + n_frames * n_frames + n_frames  # G (Conv1d T->T, k=1)
             + (dim_ff // 2) * dim + dim)  # V
    return patch + depth * block


def test_parameter_count_matches_paper():
    model = KWMLP()
    encoder_only = count_parameters(model) - count_parameters(model.head) \
        - count_parameters(model.head_norm)
    assert encoder_only == expected_parameters() == 422_408
    assert round(encoder_only / 1e6, 2) == 0.42  # "0.42 M without head" (issue), ~0.4M (§2.5)
    assert 424_000 <= count_parameters(model) < 425_000  # "0.424 M parameters" (paper, §5)


@pytest.fixture(scope="module")
def model_and_params(published_checkpoint, published_params):
    model, _ = load_checkpoint(published_checkpoint)
    return model, published_params


@pytest.mark.parametrize("layer", [1, 4, 12])
def test_embeddings_match_oracle(model_and_params, layer):
    model, params = model_and_params
    mfcc = np.random.default_rng(layer).standard_normal((3, 40, 98)).astype(np.float32) * 20
    with torch.no_grad():
        got = model.embed(torch.from_numpy(mfcc), layer=layer).numpy()
    np.testing.assert_allclose(got, oracle.encoder_embed(mfcc, params, layer), atol=1e-5)


def test_logits_match_oracle(model_and_params):
    model, params = model_and_params
    mfcc = np.random.default_rng(7).standard_normal((2, 40, 98)).astype(np.float32) * 20
    with torch.no_grad():
        got = model(torch.from_numpy(mfcc)).numpy()
    np.testing.assert_allclose(got, oracle.encoder_logits(mfcc, params), atol=1e-4)


def test_embedding_layernorm_has_no_affine(model_and_params):
    model, _ = model_and_params
    with torch.no_grad():
        emb = model.embed(torch.randn(2, 40, 98) * 20).double()
    np.testing.assert_allclose(emb.mean(-1).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(emb.var(-1, unbiased=False).numpy(), 1, atol=1e-3)


def test_stochastic_depth_only_in_training():
    torch.manual_seed(0)
    model = KWMLP(depth=12, block_survival=0.5)
    x = torch.randn(2, 40, 98)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    kept = [len(model._active_blocks(12)) for _ in range(2000)]
    assert min(kept) >= 1
    assert abs(np.mean(kept) - 6.0) < 0.2  # Binomial(12, 0.5), floor of one block
    order = {id(block): i for i, block in enumerate(model.blocks)}
    for _ in range(50):  # a subset of the first `layer` blocks, in their order
        drawn = [order[id(block)] for block in model._active_blocks(4)]
        assert drawn == sorted(set(drawn)) and drawn[-1] < 4
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # training forward drops blocks
        assert torch.equal(model.embed(x), model.embed(x))  # embeddings never do


def test_never_drops_every_block():
    torch.manual_seed(0)
    model = KWMLP(depth=1, block_survival=0.01).train()
    assert all(len(model._active_blocks(1)) == 1 for _ in range(50))


@pytest.mark.parametrize("kwargs", [dict(dim=0), dict(dim_ff=255), dict(block_survival=0.0),
                                    dict(block_survival=1.5), dict(depth=2.5)])
def test_bad_config_raises(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        KWMLP(**kwargs)


def test_bad_layer_raises():
    with pytest.raises(ValueError, match="layer"):
        KWMLP(depth=4).forward_features(torch.zeros(1, 40, 98), layer=5)


def test_a_batch_of_no_chunks_gives_empty_outputs(model_and_params):
    model, _ = model_and_params
    with torch.no_grad():
        assert model.embed(torch.zeros(0, 40, 98), 4).shape == (0, 98, 64)
        assert model(torch.zeros(0, 40, 98)).shape == (0, 35)
