"""Both checkpoint formats load; bad files fail loudly, naming path and problem."""
import os

import numpy as np
import pytest
import torch

import kwmlp
import oracle
from kwmlp.checkpoints import load_checkpoint, published_to_kwmlp, save_checkpoint
from kwmlp.encoder import KWMLP
from kwmlp.errors import KwmlpError
from kwmlp.info import model_info


def _mfcc():
    return np.random.default_rng(3).standard_normal((2, 40, 98)).astype(np.float32) * 20


def test_published_layout_loads_and_matches_oracle(published_checkpoint, published_params):
    model, metadata = load_checkpoint(published_checkpoint)
    assert not model.training and "published" in metadata["source"]
    with torch.no_grad():
        got = model.embed(torch.from_numpy(_mfcc())).numpy()
    np.testing.assert_allclose(got, oracle.encoder_embed(_mfcc(), published_params), atol=1e-5)


def test_own_format_round_trip(tmp_path, published_checkpoint, published_params):
    model, _ = load_checkpoint(published_checkpoint)
    path = tmp_path / "own.pt"
    save_checkpoint(path, model, {"trained_on": "test", "version": kwmlp.__version__})
    payload = torch.load(path, weights_only=True)  # plain tensors and builtins only
    assert payload["format"] == "kwmlp" and payload["config"]["depth"] == 12
    again, metadata = load_checkpoint(path)
    assert metadata == {"trained_on": "test", "version": kwmlp.__version__}
    with torch.no_grad():
        got = again.embed(torch.from_numpy(_mfcc())).numpy()
    np.testing.assert_allclose(got, oracle.encoder_embed(_mfcc(), published_params), atol=1e-5)


def test_own_format_keeps_non_default_config(tmp_path):
    model = KWMLP(depth=3, dim=32, dim_ff=64)
    save_checkpoint(tmp_path / "small.pt", model)
    again, _ = load_checkpoint(tmp_path / "small.pt")
    assert again.config() == model.config()
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_published_shallower_depth_loads(tmp_path):
    params = oracle.random_published_params(np.random.default_rng(0), depth=8)
    torch.save({"model_state_dict": {k: torch.from_numpy(v) for k, v in params.items()}},
               tmp_path / "kw8.pth")
    model = kwmlp.load_model(str(tmp_path / "kw8.pth"))
    assert model.encoder.depth == 8
    with torch.no_grad():
        got = model.encoder.embed(torch.from_numpy(_mfcc())).numpy()
    np.testing.assert_allclose(got, oracle.encoder_embed(_mfcc(), params), atol=1e-5)


def test_missing_file(tmp_path):
    # caught by either of the two handlers a user would write
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        kwmlp.load_model(str(tmp_path / "nope.pt"))
    with pytest.raises(kwmlp.KwmlpError, match="checkpoint not found: .*nope.pt"):
        kwmlp.load_model(str(tmp_path / "nope.pt"))


def test_truncated_file(tmp_path, published_checkpoint):
    data = published_checkpoint.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(KwmlpError, match="truncated.pth.*not a readable torch checkpoint"):
        kwmlp.load_model(str(bad))


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(KwmlpError, match="notes.txt"):
        kwmlp.load_model(str(text))
    other = tmp_path / "other.pt"
    torch.save({"encoder": {"w": torch.zeros(2)}}, other)
    with pytest.raises(KwmlpError, match="other.pt.*neither"):
        kwmlp.load_model(str(other))
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    with pytest.raises(KwmlpError, match="expected a dict"):
        kwmlp.load_model(str(listed))


def test_mismatched_shapes_named(tmp_path, published_params):
    params = {k: torch.from_numpy(v) for k, v in published_params.items()}
    params["layers.3.fn.fn.proj_out.weight"] = torch.zeros(64, 100)
    torch.save({"model_state_dict": params}, tmp_path / "bad.pth")
    with pytest.raises(KwmlpError, match=r"bad.pth.*blocks\.3\.proj_out\.weight"):
        kwmlp.load_model(str(tmp_path / "bad.pth"))


def test_missing_and_unknown_keys_named(tmp_path, published_params):
    params = {k: torch.from_numpy(v) for k, v in published_params.items()}
    del params["layers.5.fn.norm.bias"]
    torch.save({"model_state_dict": params}, tmp_path / "missing.pth")
    with pytest.raises(KwmlpError, match=r"missing.pth.*blocks\.5\.norm\.bias"):
        kwmlp.load_model(str(tmp_path / "missing.pth"))
    with pytest.raises(KwmlpError, match="layers.0.fn.extra.weight"):
        published_to_kwmlp({"layers.0.fn.extra.weight": torch.zeros(1)})


def test_no_default_weights_is_clear(monkeypatch, tmp_path):
    import kwmlp.checkpoints as ck

    monkeypatch.setattr(ck, "__file__", str(tmp_path / "kwmlp" / "checkpoints.py"))
    with pytest.raises(KwmlpError, match="no default weights"):
        ck.default_weights_path()


@pytest.mark.parametrize("payload, match", [
    ({"format": "kwmlp", "format_version": 1}, r"'config' must be a dict, but it is missing"),
    ({"format": "kwmlp", "format_version": 1, "config": [1], "state_dict": {}},
     r"'config' must be a dict, but it is a list"),
    ({"format": "kwmlp", "format_version": 1, "config": {}}, r"'state_dict' must be a dict"),
    ({"format": "kwmlp", "format_version": 1, "config": {},
      "state_dict": {"patch_embed.weight": [0.0]}}, r"not tensors: \['patch_embed.weight'\]"),
    ({"format": "kwmlp", "format_version": 1, "config": {"depth": 2}, "state_dict": {},
      "metadata": "trained somewhere"}, r"'metadata' must be a dict, but it is a str"),
    ({"model_state_dict": [1, 2]}, r"'model_state_dict' must be a dict, but it is a list"),
    ({"model_state_dict": {}}, r"lacks the tensor 'patch_embed.weight'"),
])
def test_malformed_checkpoints_name_path_and_problem(tmp_path, payload, match):
    path = tmp_path / "x.pt"
    torch.save(payload, path)
    with pytest.raises(KwmlpError, match=match) as info:
        kwmlp.load_model(str(path))
    assert str(info.value).startswith(f"{path}: ")


def test_folder_and_fifo_are_not_reported_missing(tmp_path):
    with pytest.raises(KwmlpError, match="is a folder"):
        kwmlp.load_model(str(tmp_path))
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    with pytest.raises(KwmlpError, match="not a regular file"):  # and does not block on it
        kwmlp.load_model(str(fifo))


@pytest.mark.parametrize("key, value", [("blocks.3.proj_in.weight", float("nan")),
                                        ("head.bias", float("inf")),
                                        ("patch_embed.bias", float("-inf"))])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, key, value):
    model = KWMLP(depth=4)
    with torch.no_grad():
        model.state_dict()[key].view(-1)[1] = value
    save_checkpoint(tmp_path / "nan.pt", model)
    with pytest.raises(KwmlpError, match=rf"nan.pt: .*NaN or inf.*\['{key}'\]"):
        kwmlp.load_model(str(tmp_path / "nan.pt"))


def test_non_finite_published_weights_name_the_published_key(tmp_path, published_params):
    params = {k: torch.from_numpy(v.copy()) for k, v in published_params.items()}
    params["layers.7.fn.fn.sgu.proj.weight"][0, 0] = float("nan")
    torch.save({"model_state_dict": params}, tmp_path / "nan.pth")
    with pytest.raises(KwmlpError, match=r"\['layers\.7\.fn\.fn\.sgu\.proj\.weight'\]"):
        kwmlp.load_model(str(tmp_path / "nan.pth"))


def test_published_layout_without_its_classifier_loads_for_embeddings(tmp_path,
                                                                      published_params):
    """The HEAR API needs no head: a published checkpoint saved without to_logits
    embeds as the full one does; everything that needs the head says it is not there."""
    params = {k: torch.from_numpy(v) for k, v in published_params.items()
              if not k.startswith("to_logits.")}
    torch.save({"model_state_dict": params}, tmp_path / "headless.pth")
    model = kwmlp.load_model(str(tmp_path / "headless.pth"), device="cpu")
    with torch.no_grad():
        got = model.encoder.embed(torch.from_numpy(_mfcc())).numpy()
    np.testing.assert_allclose(got, oracle.encoder_embed(_mfcc(), published_params), atol=1e-5)
    assert kwmlp.get_scene_embeddings(torch.zeros(1, 8000), model).shape == (1, 1024)
    with pytest.raises(KwmlpError, match="no keyword head"):
        kwmlp.recognize(torch.zeros(1, 16000), model)
    with pytest.raises(KwmlpError, match="no keyword head"):
        kwmlp.Stream(model)
    kwmlp.Stream(model, keywords=False).push(torch.zeros(16000))
    assert "no keyword head" in model_info(model)["parameters"]
    # kept in kwmlp's own format, it is still an encoder without a head
    save_checkpoint(tmp_path / "headless.pt", model.encoder)
    again = kwmlp.load_model(str(tmp_path / "headless.pt"), device="cpu")
    assert again.model_id() == model.model_id() and again.encoder.config()["n_classes"] == 0
    with pytest.raises(KwmlpError, match="no keyword head"):
        kwmlp.recognize(torch.zeros(1, 16000), again)
    with pytest.raises(ValueError, match="no classifier"):
        again.encoder(torch.zeros(1, 40, 98))


def test_half_a_published_classifier_is_refused(tmp_path, published_params):
    params = {k: torch.from_numpy(v) for k, v in published_params.items()
              if not k.startswith("to_logits.2.")}
    torch.save({"model_state_dict": params}, tmp_path / "half.pth")
    with pytest.raises(KwmlpError, match=r"half.pth.*head_norm"):
        kwmlp.load_model(str(tmp_path / "half.pth"))
