"""The file API against the HEAR API on the same audio; batching, output
naming, resume, overwrite, atomic writes and bad files."""
import concurrent.futures
import json
import os
import shutil
import subprocess
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp import decoding
from kwmlp import run as run_module
from kwmlp.errors import KwmlpError
from kwmlp.atomic import write_atomic
from kwmlp.decoding import prefetched
from kwmlp.files import FileEmbedding, find_audio_files, save_embeddings
from kwmlp.manifest import MANIFEST_DIR
from kwmlp.sinks import output_paths
from kwmlp.embedder import KWMLPEmbedder
from kwmlp.info import model_info


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
    assert list(decoding.batches(durations_s, 4.0)) == [[1, 4], [2], [0], [3]]
    assert list(decoding.batches(durations_s, 100.0)) == [[1, 4, 2, 0, 3]]


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


def test_a_linked_alias_leaves_the_file_under_its_own_name(tmp_path):
    import os

    (tmp_path / "x.wav").write_bytes(b"")
    (tmp_path / "alias.wav").symlink_to("x.wav")  # sorts first
    os.mkfifo(tmp_path / "pipe.wav")
    found, failures = find_audio_files([tmp_path, tmp_path / "pipe.wav"])
    assert [(p.name, str(r)) for p, r in found] == [("x.wav", "x.wav")]
    message = (f"{tmp_path / 'pipe.wav'}: not a regular file or folder (a pipe or device); "
               f"save the audio to a file first")
    assert [f.message for f in failures] == [message, message]  # found in the folder, and named


def test_output_paths(tmp_path):
    src = tmp_path / "in" / "sub" / "x.y.wav"
    rel = src.relative_to(tmp_path / "in")
    assert output_paths(src, rel) == dict.fromkeys(
        ["embedding", "timestamps", "scene"], src.with_name("x.y.npz"))
    assert output_paths(src, rel, tmp_path / "out", kind="scene") == {
        "scene": tmp_path / "out" / "sub" / "x.y.npz"}
    assert output_paths(src, rel, tmp_path / "out", format="npy", kind="timestamp") == {
        "embedding": tmp_path / "out" / "sub" / "x.y_embedding.npy",
        "timestamps": tmp_path / "out" / "sub" / "x.y_timestamps.npy",
        "metadata": tmp_path / "out" / "sub" / "x.y_metadata.json"}


def test_save_embeddings_writes_what_the_hear_api_gives(clips, model, references, tmp_path):
    out = tmp_path / "out"
    summary = save_embeddings([clips[0].parent], out, model)
    assert (summary.done, summary.skipped, summary.failures) == (len(clips), 0, [])
    assert summary.audio_s == pytest.approx(1 + 1 + 1 + 1 / 16000 + 1.3 + 0.4 + 1, abs=1e-3)
    for path, (emb, ts, scene) in zip(clips, references):
        saved = np.load(out / f"{path.stem}.npz")
        assert set(saved.files) == {"embedding", "timestamps", "scene", "model_id",
                                    "model_options", "sample_rate", "resampler", "source"}
        assert str(saved["source"]) == path.name
        np.testing.assert_allclose(saved["embedding"], emb, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(saved["timestamps"], ts)
        np.testing.assert_allclose(saved["scene"], scene, atol=1e-6, rtol=0)
        assert str(saved["model_id"]) == model.model_id()
        assert int(saved["sample_rate"]) == 16000 and str(saved["resampler"]) == "soxr"
    npy = save_embeddings([clips[3]], out, model, format="npy", kind="scene")
    assert npy.done == 1 and np.load(out / "d_scene.npy").shape == (1024,)


def test_model_id_names_the_weights_not_the_file(tmp_path, published_checkpoint, model):
    from kwmlp.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "same.pt", model.encoder)
    again = kwmlp.load_model(str(tmp_path / "same.pt"), device="cpu")
    assert again.model_id() == model.model_id()
    # options are recorded apart (model_options), the id names the weights only
    assert kwmlp.load_model(str(published_checkpoint), layer=3).model_id() == model.model_id()
    torch.nn.init.zeros_(again.encoder.head.bias)
    assert again.model_id() != model.model_id()


def _state(folder):
    """The outputs in ``folder`` (its manifest aside): mtime and bytes by path."""
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and MANIFEST_DIR not in p.parts}


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
    written = sorted(p for p in out.iterdir() if p.name != MANIFEST_DIR)
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
                    "clips": {"training": 10, "validation": 2}, "synthetic": True,
                    # split -> engine -> voice ids, as kwmlp.train.export writes it
                    "voices": {"training": {"espeak-ng": ["a", "b"], "flite": ["c"]},
                               "validation": {"espeak-ng": ["d"]}},
                    "generator": "tts --seed 1"}}
    save_checkpoint(tmp_path / "m.pt", KWMLP(depth=2), metadata)
    info = model_info(kwmlp.load_model(str(tmp_path / "m.pt"), device="cpu"))
    assert info["training data"] == (
        "synthetic TTS speech, Speech Commands V2 (35 words); 10 training, 2 validation clips; "
        "3 training, 1 validation voices; made by: tts --seed 1")
    assert info["held out accuracy"] == "0.9" and info["description"] == "test weights"
    assert "recipe" not in info and info["weights"] == str(tmp_path / "m.pt")
    assert info["options"] == "layer=2 pooling=iterative scene_frames=all frontend=nnaudio"
    assert info["scene embedding"] == "1024" and info["model id"].startswith("kwmlp-")
    assert "labels" not in info  # a checkpoint that names none


def test_concurrent_writers_of_one_output_do_not_share_a_temporary(tmp_path):
    target = tmp_path / "x.npz"

    def slow_writer(file):  # another writer finishes while this one is midway
        file.write(b"first ")
        write_atomic(target, lambda other: other.write(b"second"))
        file.write(b"half")

    write_atomic(target, slow_writer)
    assert target.read_bytes() == b"first half"  # the last rename wins, whole
    assert os.listdir(tmp_path) == ["x.npz"]


def test_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    from kwmlp.atomic import remove_stale_temporaries

    dead = _dead_pid()
    names = {
        f".a.npz.{dead}.0123abcd.tmp": False,  # its writer is gone
        ".a.npz.tmp": False,  # kwmlp 0.1's fixed name
        f".a.npz.{os.getpid()}.0123abcd.tmp": True,  # a live writer's
        f".b.npz.{dead}.0123abcd.tmp": True,  # not an output asked about
        "a.npz": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert remove_stale_temporaries(tmp_path, {"a.npz"}) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, kept in names.items() if kept)


def _dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_folder_with_a_non_utf8_name_is_embedded_whole(clips, model, tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    odd = folder / os.fsdecode(b"\xff\xfe.wav")
    shutil.copy(clips[0], odd)
    shutil.copy(clips[1], folder / "ok.wav")
    summary = save_embeddings([folder], tmp_path / "out", model)
    assert (summary.done, summary.failures) == (2, [])
    saved = np.load(tmp_path / "out" / os.fsdecode(b"\xff\xfe.npz"))
    np.testing.assert_array_equal(saved["scene"], kwmlp.embed_file(clips[0], model).scene)


def _saved_options(folder):
    return {p.name: str(np.load(p)["model_options"]) for p in sorted(folder.glob("*.npz"))}


def test_resume_redoes_outputs_of_other_options_or_arrays(clips, published_checkpoint,
                                                           model, tmp_path, caplog):
    caplog.set_level("INFO", logger="kwmlp")
    out = tmp_path / "out"
    save_embeddings(clips[:2], out, model, kind="scene")
    layer4 = kwmlp.load_model(str(published_checkpoint), device="cpu", layer=4, pooling="mean")
    save_embeddings(clips[2:4], out, layer4)
    summary = save_embeddings(clips[:4], out, model)  # the full default run
    assert (summary.done, summary.redone, summary.skipped) == (4, 4, 0)
    assert "replacing stale or incomplete outputs" in str(summary)
    assert "its recorded output was made with kind scene" in caplog.text
    assert "its recorded output was made with model_options layer=4 pooling=mean" in caplog.text
    for path in sorted(out.glob("*.npz")):
        saved = np.load(path)
        assert set(saved.files) >= {"embedding", "timestamps", "scene"}
        assert str(saved["model_options"]) == model.model_options()
    again = save_embeddings(clips[:4], out, model)
    assert (again.done, again.skipped) == (0, 4)
    again = save_embeddings(clips[:4], out, layer4)
    assert (again.done, again.redone) == (4, 4)
    assert set(_saved_options(out).values()) == {layer4.model_options()}


def test_resume_redoes_outputs_of_the_other_resampler(clips, model, tmp_path):
    out = tmp_path / "out"
    first = save_embeddings(clips, out, model, resampler="resampy")
    assert first.done == len(clips)
    again = save_embeddings(clips, out, model)  # soxr: only the 16 kHz files are the same audio,
    assert (again.done, again.redone) == (len(clips), len(clips))  # but the record differs
    for path in clips:
        saved = np.load(out / f"{path.stem}.npz")
        assert str(saved["resampler"]) == "soxr"
        np.testing.assert_allclose(saved["scene"], kwmlp.embed_file(path, model).scene,
                                   atol=1e-6, rtol=0)
    d = np.load(out / "d.npz")["scene"]  # the 44.1 kHz file: the resamplers differ a little
    d_resampy = kwmlp.embed_file(clips[3], model, resampler="resampy").scene
    assert 0 < np.abs(d - d_resampy).max() < 0.1 * np.abs(d).max()


def test_resume_redoes_outputs_of_other_weights(clips, model, tmp_path):
    from kwmlp.checkpoints import save_checkpoint

    out = tmp_path / "out"
    save_embeddings(clips[:1], out, model)
    other = KWMLPEmbedder(model.encoder.__class__(**model.encoder.config()))
    save_checkpoint(tmp_path / "other.pt", other.encoder)
    other = kwmlp.load_model(str(tmp_path / "other.pt"), device="cpu")
    summary = save_embeddings(clips[:1], out, other)
    assert summary.redone == 1
    assert str(np.load(out / "a.npz")["model_id"]) == other.model_id() != model.model_id()


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(b"junk"),
    lambda p: p.write_bytes(p.read_bytes()[:-100]),  # cut short
    lambda p: np.savez(p, scene=np.zeros(1024, np.float32)),  # no metadata
    lambda p: np.savez(p, **{**np.load(p), "scene": np.zeros(7, np.float32)}),  # wrong shape
    lambda p: np.savez(p, **{k: v for k, v in np.load(p).items() if k != "timestamps"}),
])
def test_resume_redoes_invalid_outputs(clips, model, references, tmp_path, damage):
    out = tmp_path / "out"
    save_embeddings(clips[:1], out, model)
    damage(out / "a.npz")
    summary = save_embeddings(clips[:1], out, model)
    assert (summary.done, summary.redone, summary.skipped) == (1, 1, 0)
    np.testing.assert_allclose(np.load(out / "a.npz")["scene"], references[0][2], atol=1e-6,
                               rtol=0)


def test_npy_outputs_record_what_made_them(clips, model, tmp_path):
    out = tmp_path / "out"
    save_embeddings(clips[:1], out, model, format="npy", kind="timestamp")
    record = json.loads((out / "a_metadata.json").read_text())
    assert record == {"model_id": model.model_id(), "model_options": model.model_options(),
                      "sample_rate": 16000, "resampler": "soxr", "source": clips[0].name,
                      "arrays": ["embedding", "timestamps"]}
    assert save_embeddings(clips[:1], out, model, format="npy", kind="timestamp").skipped == 1
    summary = save_embeddings(clips[:1], out, model, format="npy")  # now the scene too
    assert (summary.done, summary.redone) == (1, 1)
    (out / "a_scene.npy").write_bytes(b"junk")
    assert save_embeddings(clips[:1], out, model, format="npy").redone == 1
    (out / "a_metadata.json").unlink()  # as a run stopped between arrays leaves it
    assert save_embeddings(clips[:1], out, model, format="npy").redone == 1
    assert np.load(out / "a_scene.npy").shape == (1024,)


@pytest.mark.parametrize("n_samples", [1, 100])
def test_clips_too_short_for_a_timestamp_fail_alone(clips, published_checkpoint, tmp_path,
                                                    n_samples):
    audio_frames = kwmlp.load_model(str(published_checkpoint), device="cpu",
                                    scene_frames="audio")
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(clips[0], folder / "a.wav")
    sf.write(folder / "tiny.wav", np.full(n_samples, 0.1, np.float32), 16000)
    sf.write(folder / "tiny2.wav", np.full(n_samples, 0.2, np.float32), 16000)  # same batch
    summary = save_embeddings([folder], tmp_path / "out", audio_frames)
    assert summary.done == 1
    assert sorted(f.path.name for f in summary.failures) == ["tiny.wav", "tiny2.wav"]
    assert all(f"{n_samples} samples at 16 kHz; one timestamp takes 160" in f.message
               for f in summary.failures)


def test_an_output_that_would_replace_an_input_is_refused(clips, model, tmp_path):
    rec = tmp_path / "rec.npz"
    shutil.copy(clips[0], rec)  # audio that happens to be named .npz
    before = rec.read_bytes()
    summary = save_embeddings([rec], model=model, overwrite=True)
    assert summary.done == 0
    (failure,) = summary.failures
    assert "would replace the input" in failure.message
    assert rec.read_bytes() == before


def test_inputs_may_be_one_str(clips, model, tmp_path):
    summary = save_embeddings(str(clips[0].parent) + "/", str(tmp_path / "out"), model)
    assert summary.done == len(clips) and summary.failures == []
    assert len(kwmlp.embed_files(str(clips[0]), model)) == 1
    assert len(find_audio_files(str(clips[0].parent))[0]) == len(clips)


def test_an_output_dir_that_is_a_file_fails_before_embedding(clips, model, tmp_path,
                                                             monkeypatch):
    (tmp_path / "out").write_text("a file")
    monkeypatch.setattr(run_module, "embed_indexed", lambda *a: pytest.fail("embedded anyway"))
    with pytest.raises(KwmlpError, match="out: exists and is not a folder"):
        save_embeddings(clips, tmp_path / "out", model)


def test_progress_without_a_terminal_is_plain_lines(clips, model, tmp_path, monkeypatch,
                                                    capsys, caplog):
    monkeypatch.setattr(run_module, "PROGRESS_LINE_S", 0.0)
    caplog.set_level("INFO", logger="kwmlp")
    save_embeddings(clips[:2], tmp_path / "out", model, progress=True)
    assert "\r" not in capsys.readouterr().err  # pytest's stderr is no terminal
    assert "1/2 files" in caplog.text and "2/2 files" in caplog.text


# decoding ahead

class _InlineExecutor(concurrent.futures.Executor):
    """Runs each job at submit time and logs it, so the order of events is exact."""

    def __init__(self, events):
        self.events = events

    def submit(self, fn, *args):
        self.events.append(("decode", args[0]))
        future = concurrent.futures.Future()
        future.set_result(fn(*args))
        return future


@pytest.mark.parametrize("ahead", [1, 2])
def test_prefetched_keeps_order_and_decodes_exactly_ahead_items_early(ahead):
    events = []
    for item, decoded in prefetched(_InlineExecutor(events), range(5), lambda i: i * 10, ahead):
        assert decoded == item * 10
        events.append(("use", item))
    uses = [i for kind, i in events if kind == "use"]
    assert uses == [0, 1, 2, 3, 4]
    for item in range(5):  # when item is in use, items up to item + ahead were submitted
        submitted = [i for kind, i in events[:events.index(("use", item))] if kind == "decode"]
        assert submitted == list(range(min(5, item + ahead + 1)))


def test_prefetched_cancels_what_has_not_started_on_early_exit():
    started, one_started, release = [], threading.Event(), threading.Event()

    def decode(item):
        started.append(item)
        if item == 1:
            one_started.set()
            release.wait(10)
        return item

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stream = prefetched(pool, range(10), decode, ahead=3)
        assert next(stream) == (0, 0)
        assert one_started.wait(10)
        stream.close()  # item 1 is decoding, 2 and 3 are queued
        release.set()
    assert started == [0, 1]


def test_prefetched_rejects_no_lookahead():
    with pytest.raises(ValueError, match="at least 1"):
        list(prefetched(concurrent.futures.ThreadPoolExecutor(1), range(2), str, 0))


def _write_with_a_signal_held(send, steps: list) -> None:
    import time

    from kwmlp.sinks import signals_held

    with signals_held():
        send()
        time.sleep(0.3)  # the handler's C half runs in the receiving thread: let it
        for _ in range(1000):
            steps.append("writing")  # bytecode on which Python runs pending handlers
        steps.append("recorded")
    steps.append("after")


@pytest.mark.parametrize("receiver", ["main thread", "other thread"])
def test_an_interrupt_during_a_write_is_raised_after_it(receiver):
    """What keeps a written output from going unrecorded on Ctrl-C (sinks.FileSink.write),
    also when the kernel hands the signal to another thread (torch and Ray start many)."""
    import signal

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    if receiver == "main thread":
        send = lambda: signal.raise_signal(signal.SIGINT)  # noqa: E731
    else:
        send = lambda: signal.pthread_kill(other.ident, signal.SIGINT)  # noqa: E731
    steps = []
    # A background job starts with SIGINT ignored (CI does): give this test Ctrl-C's handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _write_with_a_signal_held(send, steps)
        handler_after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
        stop.set()
        other.join()
    assert steps == ["writing"] * 1000 + ["recorded"]
    assert handler_after is signal.default_int_handler


def test_a_held_signal_stays_ignored_where_it_was_ignored():
    import signal

    steps = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job
    try:
        _write_with_a_signal_held(lambda: signal.raise_signal(signal.SIGINT), steps)
        handler_after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert steps == ["writing"] * 1000 + ["recorded", "after"]
    assert handler_after == signal.SIG_IGN


def test_a_held_signal_reaches_the_handler_it_was_held_from():
    import signal

    steps = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: steps.append("handled"))
    try:
        _write_with_a_signal_held(lambda: signal.raise_signal(signal.SIGTERM), steps)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert steps == ["writing"] * 1000 + ["recorded", "handled", "after"]
