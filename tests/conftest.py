import numpy as np
import pytest
import torch

from oracle import random_published_params


@pytest.fixture(scope="session")
def published_params():
    """Random weights under the published key names (numpy, float32)."""
    return random_published_params(np.random.default_rng(1234))


@pytest.fixture(scope="session")
def published_checkpoint(tmp_path_factory, published_params):
    """A checkpoint in the published HEAR 2021 layout, written by the test."""
    path = tmp_path_factory.mktemp("ckpt") / "kwmlp.pth"
    torch.save({"model_state_dict": {k: torch.from_numpy(v) for k, v in published_params.items()}},
               path)
    return path
