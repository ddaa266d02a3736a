"""Today's code and shipped weights reproduce the committed reference
embeddings (tests/make_reference.py). A change that moves an embedding fails
here until the references are deliberately regenerated."""
import numpy as np
import pytest

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
