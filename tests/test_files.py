"""The file API against the HEAR API on the same audio; batching, output
naming, resume, overwrite, atomic writes and bad files."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp import files
from kwmlp.errors import KwmlpError
from kwmlp.atomic import write_atomic
from kwmlp.files import FileEmbedding, find_audio_files, output_paths, save_embeddings


@pytest.fixture(scope="module")
def model(published_checkpoint):
    return kwmlp.load_model(str(published_checkpoint), device="cpu")


def write_noise(path, seconds, sample_rate=16000, channels=1, seed=0, subtype=None):
    rng = np.random.default_rng(seed)
    audio = 0.2 * rng.standard_normal((round(seconds * sample_rate), channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), sample_rate, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Lengths chosen so some clips share a length (one batch pass) and some
    differ by a single sample; several formats and rates. Read-only."""
    tmp_path = tmp_path_factory.mktemp("clips")
    return [
        write_noise(tmp_path / "a.wav", 1.0, seed=1),
        write_noise(tmp_path / "b.wav", 1.0, seed=2),
        write_noise(tmp_path / "c.wav", 1.0 + 1 / 16000, seed=3),
        write_noise(tmp_path / "d.flac", 1.3, 44100, channels=2, seed=4),
        write_noise(tmp_path / "e.ogg", 0.4, 22050, seed=5),
        write_noise(tmp_path / "f.wav", 1.0, seed=6),
    ]


def hear_reference(path, model):
    """What the HEAR API gives for the file's audio on its own."""
    audio = torch.from_numpy(kwmlp.load_audio(path)[0])[None]
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)
    return emb[0].numpy(), ts[0].numpy(), kwmlp.get_scene_embeddings(audio, model)[0].numpy()


@pytest.fixture(scope="module")
def references(clips, model):
    return [hear_reference(path, model) for path in clips]


@pytest.mark.parametrize("options", [{}, {"scene_frames": "audio", "layer": 4, "pooling": "mean"}])
def test_embed_file_equals_hear_api(tmp_path, published_checkpoint, options):
    model = kwmlp.load_model(str(published_checkpoint), device="cpu", **options)
    path = write_noise(tmp_path / "x.flac", 2.3, 44100, channels=2)
    result = kwmlp.embed_file(path, model)
    emb, ts, scene = hear_reference(path, model)
    assert result.embedding.shape == (emb.shape[0], 64) == (230, 64)
    assert result.timestamps.shape == (230,) and result.scene.shape == (1024,)
    np.testing.assert_allclose(result.embedding, emb, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(result.timestamps, ts)
    np.testing.assert_allclose(result.scene, scene, atol=1e-6, rtol=0)
    assert result.duration_s == pytest.approx(2.3, abs=1e-4)


@pytest.mark.parametrize("batch_seconds", [0.1, 1000.0])  # each alone; all in one
def test_batch_equals_single_file(clips, model, references, batch_seconds):
    batch = kwmlp.embed_files(clips, model, batch_seconds=batch_seconds)
    assert [r.path for r in batch] == clips  # input order, whatever the batching
    for result, (emb, ts, scene) in zip(batch, references):
        np.testing.assert_allclose(result.embedding, emb, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(result.timestamps, ts)
        np.testing.assert_allclose(result.scene, scene, atol=1e-6, rtol=0)


def test_batches_sort_by_duration_within_budget():
    durations_s = {0: 5.0, 1: 1.0, 2: 2.0, 3: 30.0, 4: 1.5}
    assert list(files._batches(durations_s, 4.0)) == [[1, 4], [2], [0], [3]]
    assert list(files._batches(durations_s, 100.0)) == [[1, 4, 2, 0, 3]]


def test_kinds(clips, model):
    scene = kwmlp.embed_file(clips[0], model, kind="scene")
    stamps = kwmlp.embed_file(clips[0], model, kind="timestamp")
    assert scene.embedding is None and scene.timestamps is None and scene.scene.shape == (1024,)
    assert stamps.scene is None and stamps.embedding.shape == (100, 64)
    assert set(stamps.arrays()) == {"embedding", "timestamps"}
    with pytest.raises(ValueError, match="kind"):
        kwmlp.embed_file(clips[0], model, kind="frames")


def test_embed_files_raises_on_a_bad_file(clips, model, tmp_path):
    (tmp_path / "bad.wav").write_text("not audio")
    with pytest.raises(KwmlpError, match=r"bad\.wav: cannot read audio"):
        kwmlp.embed_files([clips[0], tmp_path / "bad.wav"], model)


def test_find_audio_files(tmp_path):
    for name in ["a.wav", "B.FLAC", "notes.txt", ".hidden.wav", "x.npz",
                 "sub/c.ogg", "sub/deeper/d.wav", ".git/e.wav"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "explicit.dat").write_bytes(b"")
    flat, missing = find_audio_files([tmp_path, tmp_path / "a.wav", tmp_path / "explicit.dat",
                                      tmp_path / "nope"])
    assert [(p.name, str(r)) for p, r in flat] == [
        ("B.FLAC", "B.FLAC"), ("a.wav", "a.wav"), ("explicit.dat", "explicit.dat")]
    assert [f.path.name for f in missing] == ["nope"]
    deep, _ = find_audio_files([tmp_path], recursive=True)
    assert [str(r) for _, r in deep] == ["B.FLAC", "a.wav", "sub/c.ogg", "sub/deeper/d.wav"]


def test_output_paths(tmp_path):
    src = tmp_path / "in" / "sub" / "x.y.wav"
    rel = src.relative_to(tmp_path / "in")
    assert output_paths(src, rel) == dict.fromkeys(
        ["embedding", "timestamps", "scene"], src.with_name("x.y.npz"))
    assert output_paths(src, rel, tmp_path / "out", kind="scene") == {
        "scene": tmp_path / "out" / "sub" / "x.y.npz"}
    assert output_paths(src, rel, tmp_path / "out", fmt="npy", kind="timestamp") == {
        "embedding": tmp_path / "out" / "sub" / "x.y_embedding.npy",
        "timestamps": tmp_path / "out" / "sub" / "x.y_timestamps.npy"}


def test_save_embeddings_writes_what_the_hear_api_gives(clips, model, references, tmp_path):
    out = tmp_path / "out"
    summary = save_embeddings([clips[0].parent], out, model)
    assert (summary.done, summary.skipped, summary.failures) == (len(clips), 0, [])
    assert summary.audio_s == pytest.approx(1 + 1 + 1 + 1 / 16000 + 1.3 + 0.4 + 1, abs=1e-3)
    for path, (emb, ts, scene) in zip(clips, references):
        saved = np.load(out / f"{path.stem}.npz")
        assert set(saved.files) == {"embedding", "timestamps", "scene", "model_id",
                                    "model_options", "sample_rate"}
        np.testing.assert_allclose(saved["embedding"], emb, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(saved["timestamps"], ts)
        np.testing.assert_allclose(saved["scene"], scene, atol=1e-6, rtol=0)
        assert str(saved["model_id"]) == files.model_id(model)
        assert int(saved["sample_rate"]) == 16000
    npy = save_embeddings([clips[3]], out, model, fmt="npy", kind="scene")
    assert npy.done == 1 and np.load(out / "d_scene.npy").shape == (1024,)


def test_model_id_names_the_weights_not_the_file(tmp_path, published_checkpoint, model):
    from kwmlp.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "same.pt", model.encoder)
    again = kwmlp.load_model(str(tmp_path / "same.pt"), device="cpu")
    assert files.model_id(again) == files.model_id(model)
    # options are recorded apart (model_options), the id names the weights only
    assert files.model_id(kwmlp.load_model(str(published_checkpoint), layer=3)) == \
        files.model_id(model)
    torch.nn.init.zeros_(again.encoder.head.bias)
    assert files.model_id(again) != files.model_id(model)


def _state(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_resume_skips_and_overwrite_rewrites(clips, model, tmp_path):
    out = tmp_path / "out"
    save_embeddings(clips[:2], out, model)
    before = _state(out)
    summary = save_embeddings(clips[:3], out, model)
    assert (summary.done, summary.skipped) == (1, 2)
    after = _state(out)
    assert {p: after[p] for p in before} == before  # untouched: same mtime, same bytes
    assert len(after) == 3
    summary = save_embeddings(clips[:2], out, model, overwrite=True)
    assert (summary.done, summary.skipped) == (2, 0)
    rewritten = _state(out)
    assert all(rewritten[p][0] != before[p][0] for p in before)
    assert all(rewritten[p][1] == before[p][1] for p in before)  # deterministic


def test_stale_temporary_is_not_trusted_and_none_are_left(clips, model, references,
                                                         tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.npz.tmp").write_bytes(b"PK\x03\x04 truncated by a killed run")
    summary = save_embeddings(clips, out, model)
    assert summary.done == len(clips)
    np.testing.assert_allclose(np.load(out / "a.npz")["scene"], references[0][2], atol=1e-6,
                               rtol=0)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_interrupted_run_leaves_complete_outputs_and_resumes(clips, model, tmp_path,
                                                             monkeypatch):
    out = tmp_path / "out"
    real_savez, calls = np.savez, []

    def interrupted_savez(file, **arrays):
        calls.append(1)
        if len(calls) == 3:
            file.write(b"half a file")
            raise KeyboardInterrupt
        real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", interrupted_savez)
    with pytest.raises(KeyboardInterrupt):
        save_embeddings(clips, out, model)
    monkeypatch.undo()
    written = sorted(out.iterdir())
    assert len(written) == 2 and all(p.suffix == ".npz" for p in written)
    for path in written:
        assert np.load(path)["embedding"].shape[1] == 64
    summary = save_embeddings(clips, out, model)
    assert (summary.done, summary.skipped) == (len(clips) - 2, 2)


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "x.npz"
    target.write_bytes(b"old")

    def fail(file):
        file.write(b"new but incomplete")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, fail)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.npz"]


def test_bad_files_and_clashes_are_reported_and_the_rest_done(clips, model, tmp_path, caplog):
    folder = tmp_path / "data"
    shutil.copytree(clips[0].parent, folder)
    (folder / "bad.wav").write_text("not audio")
    write_noise(folder / "a.flac", 0.5)  # a.wav and a.flac would both write a.npz
    summary = save_embeddings([folder, tmp_path / "missing.wav"], tmp_path / "out", model)
    reasons = {f.path.name: f.message for f in summary.failures}
    assert set(reasons) == {"bad.wav", "a.wav", "a.flac", "missing.wav"}
    assert "Format not recognised" in reasons["bad.wav"]
    assert "same output" in reasons["a.wav"] and "no such file" in reasons["missing.wav"]
    assert summary.done == len(clips) - 1
    assert all(f.message in caplog.text for f in summary.failures)
    assert not (tmp_path / "out" / "a.npz").exists()


def test_outputs_next_to_inputs_by_default(tmp_path, model):
    path = write_noise(tmp_path / "data" / "sub" / "x.ogg", 0.5, 48000)
    save_embeddings([tmp_path / "data"], model=model, recursive=True, kind="timestamp")
    saved = np.load(tmp_path / "data" / "sub" / "x.npz")
    assert set(saved.files) >= {"embedding", "timestamps"} and "scene" not in saved.files
    assert isinstance(kwmlp.embed_file(path, model), FileEmbedding)


def test_model_info_summarises_the_checkpoint(tmp_path):
    from kwmlp.checkpoints import save_checkpoint
    from kwmlp.encoder import KWMLP

    metadata = {"description": "test weights", "held_out_accuracy": 0.9,
                "recipe": {"epochs": 3}, "training_data": {
                    "layout": "Speech Commands V2 (35 words)", "path": "/data",
                    "clips": {"training": 10, "validation": 2},
                    "voices": {"training": ["a", "b", "c"], "validation": ["d"]},
                    "generator": "tts --seed 1"}}
    save_checkpoint(tmp_path / "m.pt", KWMLP(depth=2), metadata)
    info = files.model_info(kwmlp.load_model(str(tmp_path / "m.pt"), device="cpu"))
    assert info["training data"] == (
        "Speech Commands V2 (35 words); 10 training, 2 validation clips; "
        "3 training, 1 validation voices; made by: tts --seed 1")
    assert info["held out accuracy"] == "0.9" and info["description"] == "test weights"
    assert "recipe" not in info and info["weights"] == str(tmp_path / "m.pt")
    assert info["options"] == "layer=2 pooling=iterative scene_frames=all frontend=nnaudio"
    assert info["scene embedding"] == "1024" and info["model id"].startswith("kwmlp-")
