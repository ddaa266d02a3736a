"""The run pipeline (``kwmlp.run``) every ``kwmlp embed`` goes through: the
manifest knows which file each output came from, as it was when decoded;
a run never deletes a file it did not write; every run honours the manifest.
Each test reproduces a data defect of issue #22 (it failed before the change)."""
import importlib
import os

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
try:
    from kwmlp import decoding
except ImportError:  # before #22
    decoding = None
from kwmlp.errors import KwmlpError
from kwmlp.manifest import read_records

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def model(published_checkpoint):
    return kwmlp.load_model(str(published_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def weights(published_checkpoint):
    """embed_corpus's model arguments, spelled as before #22 too (so each test
    below ran unchanged against the code it was written to fix)."""
    return {"model_file_path": str(published_checkpoint), "device": "cpu"}


def _scene(path, model):
    """The HEAR API's scene embedding of a file's audio on its own."""
    audio = torch.from_numpy(kwmlp.load_audio(path)[0])[None]
    return kwmlp.get_scene_embeddings(audio, model)[0].numpy()


def _tone(path, seconds, hz):
    t = np.arange(round(seconds * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000,
             subtype="FLOAT")


@pytest.mark.parametrize("format", ["parquet", "npz"])
def test_another_folders_file_of_the_same_name_size_and_mtime_is_embedded(tmp_path, model,
                                                                          weights, format):
    for folder, hz in (("w1", 440), ("w2", 1300)):
        (tmp_path / folder).mkdir()
        _tone(tmp_path / folder / "x.wav", 1.0, hz)
        os.utime(tmp_path / folder / "x.wav", ns=(10**18, 10**18))  # same size and mtime
    out = tmp_path / "out"
    kwmlp.embed_corpus([tmp_path / "w1"], out, format=format, **weights)
    second = kwmlp.embed_corpus([tmp_path / "w2"], out, format=format, **weights)
    assert (second.done, second.redone, second.skipped) == (1, 1, 0)
    if format == "parquet":
        saved = kwmlp.read_parquet_embeddings(out)["x.wav"]["scene"]
    else:
        saved = np.load(out / "x.npz")["scene"]
    expected = _scene(tmp_path / "w2" / "x.wav", model)
    assert np.abs(expected - _scene(tmp_path / "w1" / "x.wav", model)).max() > 0.1
    np.testing.assert_allclose(saved, expected, atol=1e-5, rtol=0)
    entry = read_records(out)["x.wav"]
    assert entry["source"] == os.fsdecode((tmp_path / "w2" / "x.wav").resolve())


@pytest.mark.parametrize("format", ["parquet", "npz"])
def test_a_file_changed_during_the_run_is_redone_by_the_next(tmp_path, model, weights,
                                                            monkeypatch, format):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _tone(corpus / "x.wav", 1.0, 440)
    # Where decode reads the file (kwmlp.files before #22, which this test ran against too).
    reader = (decoding if hasattr(decoding, "decode_clip")
              else importlib.import_module("kwmlp.files"))
    real_load = reader.load_audio

    def load_then_overwrite(path, resampler):  # the user saves a new take meanwhile
        audio = real_load(path, resampler)
        _tone(path, 3.51, 700)
        return audio

    out = tmp_path / "out"
    monkeypatch.setattr(reader, "load_audio", load_then_overwrite)
    first = kwmlp.embed_corpus([corpus], out, format=format, **weights)
    monkeypatch.undo()
    assert first.done == 1
    rerun = kwmlp.embed_corpus([corpus], out, format=format, **weights)
    assert (rerun.done, rerun.redone, rerun.skipped) == (1, 1, 0)
    if format == "parquet":
        row = kwmlp.read_parquet_embeddings(out)["x.wav"]
        assert row["duration_s"] == pytest.approx(3.51)
        saved = row["scene"]
    else:
        saved = np.load(out / "x.npz")["scene"]
    np.testing.assert_allclose(saved, _scene(corpus / "x.wav", model), atol=1e-5, rtol=0)
    assert kwmlp.embed_corpus([corpus], out, format=format, **weights).skipped == 1


def _user_parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"speaker": ["a", "b"], "age": [31, 47]}), path)


def test_a_run_never_deletes_a_parquet_file_it_did_not_write(tmp_path, weights, caplog):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _tone(corpus / "x.wav", 1.0, 440)
    out = tmp_path / "out"
    kwmlp.embed_corpus([corpus], out, format="parquet", **weights)
    mine = out / "part-00000-mydata.snappy.parquet"  # as Spark names its parts
    _user_parquet(mine)
    _user_parquet(out / "x.parquet")
    _tone(corpus / "y.wav", 1.0, 900)
    kwmlp.embed_corpus([corpus], out, format="parquet", **weights)
    assert mine.exists() and (out / "x.parquet").exists()
    assert "x.parquet" in caplog.text and "did not write" in caplog.text
    rows = kwmlp.read_parquet_embeddings(out)  # reads only the recorded parts
    assert sorted(rows) == ["x.wav", "y.wav"]
    with pytest.raises(KwmlpError, match=r"x\.parquet: not a kwmlp part"):
        kwmlp.read_parquet_embeddings(out / "x.parquet")
    part = out / read_records(out)["y.wav"]["outputs"][0]
    part.unlink()
    with pytest.raises(KwmlpError, match=rf"{part.name}: missing; the manifest lists it"):
        kwmlp.read_parquet_embeddings(out)


def test_a_killed_runs_own_unrecorded_part_is_removed(tmp_path, weights, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, hz in enumerate((300, 500, 700)):
        _tone(corpus / f"{i}.wav", 1.0, hz)
    out = tmp_path / "out"
    from kwmlp.manifest import Manifest

    def killed(self, entries):  # the part is in place, the run dies before recording it
        raise KeyboardInterrupt

    monkeypatch.setattr(Manifest, "record", killed)
    with pytest.raises(KeyboardInterrupt):
        kwmlp.embed_corpus([corpus], out, format="parquet", part_seconds=1, **weights)
    monkeypatch.undo()
    orphans = sorted(out.glob("kwmlp-part-*.parquet"))
    assert len(orphans) == 1
    _user_parquet(out / "part-1.parquet")
    summary = kwmlp.embed_corpus([corpus], out, format="parquet", **weights)
    assert summary.done == 3 and not orphans[0].exists() and (out / "part-1.parquet").exists()


def test_a_plain_run_into_a_parquet_folder_is_refused(tmp_path, model, weights,
                                                      published_checkpoint):
    from test_corpus import kwmlp_cli

    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    _tone(corpus / "a.wav", 1.0, 440)
    _tone(corpus / "sub" / "b.wav", 0.5, 880)
    out = tmp_path / "emb"
    kwmlp.embed_corpus([corpus], out, format="parquet", recursive=True, **weights)
    plain = kwmlp_cli("embed", corpus, "-r", "-o", out, "--model", published_checkpoint)
    assert plain.returncode == 1
    assert "holds Parquet parts (format parquet)" in plain.stderr
    assert not list(out.rglob("*.npz"))
    with pytest.raises(KwmlpError, match="holds Parquet parts"):
        kwmlp.save_embeddings([corpus], out, model, recursive=True)
    npz_out = tmp_path / "npz"
    kwmlp.save_embeddings([corpus], npz_out, model, recursive=True)
    with pytest.raises(KwmlpError, match="holds npz/npy files"):
        kwmlp.embed_corpus([corpus], npz_out, format="parquet", **weights)
    with pytest.raises(KwmlpError, match="holds npz/npy outputs, not Parquet parts"):
        kwmlp.read_parquet_embeddings(npz_out)


def test_embed_corpus_takes_a_model_as_save_embeddings_does(tmp_path, model, weights):
    _tone(tmp_path / "x.wav", 1.0, 440)
    by_model = kwmlp.embed_corpus([tmp_path / "x.wav"], tmp_path / "a", model=model)
    by_path = kwmlp.embed_corpus([tmp_path / "x.wav"], tmp_path / "b", **weights)
    assert by_model.done == by_path.done == 1
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "x.npz")["scene"],
                                  np.load(tmp_path / "b" / "x.npz")["scene"])
    with pytest.raises(ValueError, match="not both"):
        kwmlp.embed_corpus([tmp_path / "x.wav"], tmp_path / "c", model=model, **weights)
    with pytest.warns(DeprecationWarning, match="format="):
        kwmlp.save_embeddings([tmp_path / "x.wav"], tmp_path / "d", model, fmt="npy")
    assert (tmp_path / "d" / "x_scene.npy").exists()


def test_outputs_next_to_their_inputs_are_redone_when_the_input_is_newer(tmp_path, model):
    _tone(tmp_path / "x.wav", 1.0, 440)
    first = kwmlp.save_embeddings([tmp_path / "x.wav"], None, model)
    assert (first.done, first.redone) == (1, 0)  # nothing was there to call stale
    assert kwmlp.save_embeddings([tmp_path / "x.wav"], None, model).skipped == 1
    _tone(tmp_path / "x.wav", 2.0, 900)  # a new take, saved after its embedding
    later = (tmp_path / "x.npz").stat().st_mtime_ns + 10**9
    os.utime(tmp_path / "x.wav", ns=(later, later))
    again = kwmlp.save_embeddings([tmp_path / "x.wav"], None, model)
    assert (again.done, again.redone) == (1, 1)
    np.testing.assert_allclose(np.load(tmp_path / "x.npz")["scene"],
                               _scene(tmp_path / "x.wav", model), atol=1e-5, rtol=0)
    assert not (tmp_path / "_kwmlp-manifest").exists()  # no manifest among the user's audio


@pytest.mark.parametrize("beside", [True, False])
def test_x_wav_and_x_flac_embedded_in_separate_runs_each_get_their_own(tmp_path, model, beside):
    """They write the same x.npz: a later run of either must not take the other's for its own."""
    _tone(tmp_path / "x.wav", 2.0, 440)
    t = np.arange(8000) / 16000
    sf.write(tmp_path / "x.flac", (0.3 * np.sin(2 * np.pi * 900 * t)).astype(np.float32), 16000)
    old = (tmp_path / "x.wav").stat().st_mtime_ns - 10**9  # the flac is the older file
    os.utime(tmp_path / "x.flac", ns=(old, old))
    out = None if beside else tmp_path / "out"
    npz = tmp_path / "x.npz" if beside else out / "x.npz"
    for source in ("x.wav", "x.flac", "x.wav"):
        report = kwmlp.save_embeddings([tmp_path / source], out, model)
        assert report.done == 1, (source, report)
        np.testing.assert_allclose(np.load(npz)["scene"], _scene(tmp_path / source, model),
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("beside", [True, False])
def test_a_users_own_file_where_an_output_goes_is_never_written_over(tmp_path, model, beside):
    """rec.npz (or rec_metadata.json, rec_scene.npy) that kwmlp did not write, where
    rec.wav's output goes: refused and named unless overwrite; kwmlp's own arrays that
    a stopped run left without their metadata are still redone."""
    _tone(tmp_path / "rec.wav", 1.0, 440)
    out = None if beside else tmp_path / "out"
    where = tmp_path if beside else out
    where.mkdir(exist_ok=True)
    np.savez(where / "rec.npz", my_precious=np.arange(3))
    (where / "rec_metadata.json").write_text('{"mine": true}')
    np.save(where / "rec_scene.npy", np.arange(4))
    mine = {name: (where / name).read_bytes()
            for name in ("rec.npz", "rec_metadata.json", "rec_scene.npy")}
    for format, named in (("npz", "rec.npz"), ("npy", "rec_metadata.json, ")):
        report = kwmlp.save_embeddings([tmp_path / "rec.wav"], out, model, format=format)
        assert (report.done, len(report.failures)) == (0, 1), format
        assert f"{where / named}" in report.failures[0].message
        assert "where its output goes" in report.failures[0].message
    assert "rec_scene.npy" in report.failures[0].message
    # JSON that merely mentions model_id is not kwmlp's metadata either
    for text in ('["model_id"]', '"a model_id of mine"', '{"model_id": "resnet-7"}'):
        (where / "rec_metadata.json").write_text(text)
        report = kwmlp.save_embeddings([tmp_path / "rec.wav"], out, model, format="npy")
        assert (report.done, len(report.failures)) == (0, 1), text
        assert f"{where / 'rec_metadata.json'}" in report.failures[0].message, text
        assert (where / "rec_metadata.json").read_text() == text
    (where / "rec_metadata.json").write_bytes(mine["rec_metadata.json"])
    assert {name: (where / name).read_bytes() for name in mine} == mine
    report = kwmlp.save_embeddings([tmp_path / "rec.wav"], out, model, overwrite=True)
    assert report.done == 1 and "model_id" in np.load(where / "rec.npz").files
    # a run stopped between its arrays and their metadata: kwmlp's, so redone
    (where / "rec_metadata.json").unlink()
    np.save(where / "rec_scene.npy", np.zeros(1024, np.float32))
    np.save(where / "rec_embedding.npy", np.zeros((3, 64), np.float32))
    np.save(where / "rec_timestamps.npy", np.zeros(3, np.float32))
    report = kwmlp.save_embeddings([tmp_path / "rec.wav"], out, model, format="npy")
    assert (report.done, report.failures) == (1, [])
    np.testing.assert_allclose(np.load(where / "rec_scene.npy"),
                               _scene(tmp_path / "rec.wav", model), atol=1e-5, rtol=0)


def test_a_folder_made_by_kwmlp_0_1_resumes_without_redoing(tmp_path, weights):
    import json

    from kwmlp.manifest import MANIFEST_DIR, RECORDS_DIR

    _tone(tmp_path / "x.wav", 1.0, 440)
    out = tmp_path / "out"
    kwmlp.embed_corpus([tmp_path / "x.wav"], out, format="parquet", **weights)
    folder = out / MANIFEST_DIR
    run = json.loads((folder / "run.json").read_text())
    run.pop("outputs")
    (folder / "run.json").write_text(json.dumps(run))  # as 0.1 wrote it: no "outputs"
    for record in (folder / RECORDS_DIR).glob("*.json"):  # nor settings, nor resolved paths
        entries = json.loads(record.read_text())["entries"]
        for entry in entries:
            del entry["settings"]
            entry["source"] = os.path.relpath(entry["source"])
        record.write_text(json.dumps({"entries": entries}))
    again = kwmlp.embed_corpus([tmp_path / "x.wav"], out, format="parquet", **weights)
    assert (again.done, again.skipped) == (0, 1)
    with pytest.raises(KwmlpError, match="holds Parquet parts"):
        kwmlp.embed_corpus([tmp_path / "x.wav"], out, **weights)
