"""Today's code and shipped weights reproduce the committed reference
embeddings (tests/make_reference.py). A change that moves an embedding fails
here until the references are deliberately regenerated."""
import re

import numpy as np
import pytest
import torch

import kwmlp
from make_reference import REFERENCE, embed, fixtures


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.mark.parametrize("name, seconds", [("noise", 0.5), ("sweep", 1.0), ("spoken", 3.7)])
def test_reproduces_reference(reference, name, seconds):
    audio = fixtures()[name]
    assert len(audio) == round(seconds * 16000)
    np.testing.assert_array_equal(audio, reference[f"{name}/audio"])  # inputs unchanged
    got = embed(audio, kwmlp.load_model(device="cpu"))
    for key in ("embedding", "timestamps", "scene"):
        np.testing.assert_allclose(got[key], reference[f"{name}/{key}"], atol=1e-5, rtol=0,
                                   err_msg=f"{name}/{key}")


# kwmlp's module names -> the published checkpoint's, which tests/oracle.py reads
_PUBLISHED_MODULES = {"patch_embed": "to_patch_embed.1", "head_norm": "to_logits.0",
                      "head": "to_logits.2", "norm": "fn.norm", "proj_in": "fn.fn.proj_in.0",
                      "sgu.norm": "fn.fn.sgu.norm", "sgu.proj": "fn.fn.sgu.proj",
                      "proj_out": "fn.fn.proj_out"}


def _published_params(model) -> dict:
    params = {}
    for name, value in model.encoder.state_dict().items():
        module, param = name.rsplit(".", 1)
        block = re.fullmatch(r"blocks\.(\d+)\.(.+)", module)
        published = (f"layers.{block[1]}.{_PUBLISHED_MODULES[block[2]]}" if block
                     else _PUBLISHED_MODULES[module])
        params[f"{published}.{param}"] = value.numpy()
    return params


@pytest.mark.parametrize("name", ["noise", "sweep", "spoken"])
def test_reference_is_what_the_numpy_oracle_computes_with_the_shipped_weights(reference, name):
    """The references are not merely what the code once printed: the paper's
    equations in numpy (tests/oracle.py) with the shipped weights give them too."""
    from kwmlp.frontend import MFCC
    import oracle

    model = kwmlp.load_model(device="cpu")
    mfcc = MFCC()

    def mfcc_fn(chunks):
        with torch.no_grad():
            return mfcc(torch.from_numpy(chunks)).double().numpy()

    emb, ts, scene = oracle.published_embeddings(reference[f"{name}/audio"], mfcc_fn,
                                                 _published_params(model))
    np.testing.assert_allclose(reference[f"{name}/embedding"], emb, atol=1e-4, rtol=0)
    np.testing.assert_allclose(reference[f"{name}/timestamps"], ts)
    np.testing.assert_allclose(reference[f"{name}/scene"], scene, atol=1e-4, rtol=0)
