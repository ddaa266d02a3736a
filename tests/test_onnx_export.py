"""ONNX export: the graph run by onnxruntime gives the torch path's chunk
embeddings (<= 1e-4) and keyword decisions, and the HEAR outputs rebuilt from
it with the documented Python steps match ``get_timestamp_embeddings``."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kwmlp
from kwmlp.embedder import extend_chunk_frames, n_timestamps
from kwmlp.errors import KwmlpError
from kwmlp.vocabulary import LABELS

ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'kwmlp[onnx]'")
HELDOUT = Path(__file__).resolve().parent / "data" / "heldout"


@pytest.fixture(scope="module")
def exported_path(tmp_path_factory):
    """The shipped model exported by ``kwmlp export --head --layer 8``."""
    path = tmp_path_factory.mktemp("onnx") / "kwmlp.onnx"
    result = subprocess.run([sys.executable, "-m", "kwmlp", "export", str(path), "--head",
                             "--layer", "8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "opset 17" in result.stderr
    return path


@pytest.fixture(scope="module")
def exported(exported_path):
    """The export's session, and the same model loaded at layer 8 in torch."""
    return ort.InferenceSession(str(exported_path), providers=["CPUExecutionProvider"]), \
        kwmlp.load_model(device="cpu", layer=8)


def _heldout_chunks():
    audio = [kwmlp.load_audio(p)[0] for p in sorted(HELDOUT.glob("*/*.wav"))]
    words = [p.parent.name for p in sorted(HELDOUT.glob("*/*.wav"))]
    return torch.from_numpy(np.stack(audio)), words


def test_graph_matches_torch_on_heldout_clips(exported):
    session, model = exported
    chunks, _ = _heldout_chunks()
    embeddings, logits = session.run(None, {"chunks": chunks.numpy()})
    # the 35 words, then the no-keyword classes
    assert embeddings.shape == (105, 98, 64) and logits.shape == (105, len(LABELS))
    with torch.no_grad():
        expected_embeddings = model.embed_chunks(chunks)
        expected_logits = model.classify_chunks(chunks)
    assert np.abs(embeddings - expected_embeddings.numpy()).max() <= 1e-4
    np.testing.assert_allclose(logits, expected_logits.numpy(), atol=1e-4, rtol=0)


def test_graph_names_its_model_and_logit_columns(exported):
    session, model = exported
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["kwmlp_model_id"] == model.model_id()
    assert json.loads(meta["kwmlp_labels"]) == list(model.metadata["labels"])
    assert float(meta["kwmlp_threshold"]) == 0.65  # the shipped weights store it (folds chose it)


def test_batch_axis_is_dynamic(exported):
    session, model = exported
    chunks = torch.rand(3, 16000) - 0.5
    embeddings, logits = session.run(None, {"chunks": chunks.numpy()})
    one, _ = session.run(None, {"chunks": chunks[2:].numpy()})
    assert embeddings.shape == (3, 98, 64) and one.shape == (1, 98, 64)
    np.testing.assert_allclose(one[0], embeddings[2], atol=1e-5, rtol=0)
    none, no_logits = session.run(None, {"chunks": np.zeros((0, 16000), np.float32)})
    assert none.shape == (0, 98, 64) and no_logits.shape == (0, len(LABELS))


def test_hear_outputs_rebuilt_from_the_graph_as_documented(exported):
    """The README's recipe: pad 80/240 samples, whole seconds, 1 s chunks, graph,
    extend 98 -> 100 frames, concatenate, drop the first and last frame, keep
    the stamped ones."""
    session, model = exported
    sound = (torch.rand(2500 + 3 * 16000) - 0.5) * 0.5
    padded = torch.nn.functional.pad(sound, (80, 240))
    n_chunks = -(-len(padded) // 16000)
    chunks = torch.nn.functional.pad(padded, (0, 16000 * n_chunks - len(padded))).view(-1, 16000)
    frames, _ = session.run(None, {"chunks": chunks.numpy()})
    stitched = extend_chunk_frames(torch.from_numpy(frames)).reshape(-1, 64)[1:-1]
    count = n_timestamps(len(padded))
    embedding, timestamps = kwmlp.get_timestamp_embeddings(sound[None], model)
    assert count == embedding.shape[1]
    assert (stitched[:count] - embedding[0]).abs().max() <= 1e-4


def test_the_readme_onnx_snippet_gives_the_hear_outputs(exported, exported_path):
    """The README's Python block, run as printed (on the exported file), gives
    get_timestamp_embeddings' and get_scene_embeddings' outputs."""
    _, model = exported
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("```python\nimport numpy as np, onnxruntime as ort")
    code = readme[start + len("```python\n"):readme.index("```", start + 10)]
    sound = ((torch.rand(2500 + 3 * 16000) - 0.5) * 0.5).numpy()
    namespace = {"sound": sound}
    exec(code.replace('"kwmlp.onnx"', repr(str(exported_path))), namespace)
    embedding, _ = kwmlp.get_timestamp_embeddings(torch.from_numpy(sound)[None], model)
    scene = kwmlp.get_scene_embeddings(torch.from_numpy(sound)[None], model)
    np.testing.assert_allclose(namespace["embedding"], embedding[0].numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(namespace["scene"], scene[0].numpy(), atol=1e-4, rtol=0)


def test_export_refuses_a_head_without_words(published_checkpoint, tmp_path):
    from kwmlp.onnx_export import export_onnx

    model = kwmlp.load_model(str(published_checkpoint), device="cpu")
    with pytest.raises(KwmlpError, match="no keyword head"):
        export_onnx(model, tmp_path / "x.onnx", head=True)
    export_onnx(model, tmp_path / "x.onnx")  # the encoder alone exports
    assert (tmp_path / "x.onnx").stat().st_size > 1_000_000


def test_missing_onnx_names_the_extra(monkeypatch):
    from kwmlp.onnx_export import require_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if absent
    with pytest.raises(KwmlpError, match=r"pip install 'kwmlp\[onnx\]'"):
        require_onnx()


@pytest.mark.parametrize("where, message", [("nodir/x.onnx", "does not exist"),
                                            (".", "is a folder"),
                                            ("file.txt/x.onnx", "is not a folder")])
def test_export_to_a_bad_path_fails_before_loading_the_model(tmp_path, where, message):
    (tmp_path / "file.txt").write_text("not a folder")
    # A missing --model: the output path is checked first, so its error is the one seen.
    result = subprocess.run([sys.executable, "-m", "kwmlp", "export", str(tmp_path / where),
                             "--model", str(tmp_path / "no-such-model.pt")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "no-such-model" not in result.stderr
    assert "Traceback" not in result.stderr


def test_export_onnx_checks_its_path_too(published_checkpoint, tmp_path):
    from kwmlp.onnx_export import export_onnx

    model = kwmlp.load_model(str(published_checkpoint), device="cpu")
    with pytest.raises(KwmlpError, match="is a folder"):
        export_onnx(model, tmp_path)
    with pytest.raises(KwmlpError, match="does not exist"):
        export_onnx(model, tmp_path / "nodir" / "x.onnx")


def test_export_replaces_only_an_onnx_file_and_never_leaves_half_a_file(tmp_path, monkeypatch):
    import onnx

    from kwmlp.onnx_export import export_onnx

    model = kwmlp.load_model(device="cpu")
    checkpoint = tmp_path / "mine.pt"
    checkpoint.write_bytes(Path(model.weights_path).read_bytes())
    recording = tmp_path / "take.wav"
    recording.write_bytes((HELDOUT / "cat" / "flite-rms_nohash_0.wav").read_bytes())
    for victim in (checkpoint, recording):
        before = victim.read_bytes()
        with pytest.raises(KwmlpError, match="exists and is not an ONNX model"):
            export_onnx(model, victim)
        assert victim.read_bytes() == before
    out = tmp_path / "k.onnx"
    export_onnx(model, out)
    export_onnx(model, out)  # an earlier export is replaced
    assert onnx.load(str(out)).metadata_props[0].key == "kwmlp_model_id"

    # Interrupted while writing: the earlier file stays whole and no temporary is left.
    before = out.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("kwmlp.onnx_export._with_metadata", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, out, head=True)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.onnx", "mine.pt", "take.wav"]
