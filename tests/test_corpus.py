"""embed_corpus: every engine and format against the HEAR API on the same
audio, the same failure report as save_embeddings, Parquet round trip,
resume by manifest (incl. after SIGKILL mid-write), refusing to mix options."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import kwmlp
from kwmlp import engines, extras
from kwmlp.errors import KwmlpError
from kwmlp.manifest import Manifest, read_records

GOOD = ["a.wav", "b.flac", "c.ogg", "sub/d.wav", "sub/e.flac", "f.wav"]
BAD = {"bad.wav": "cannot read audio", "tiny.wav": "too short to embed"}


@pytest.fixture(scope="module")
def model(published_checkpoint):
    return kwmlp.load_model(str(published_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Mixed formats, rates and channels; a.wav and f.wav share a length (one
    encoder pass); a corrupt and a too-short file. Read-only."""
    folder = tmp_path_factory.mktemp("corpus") / "data"
    rng = np.random.default_rng(7)
    specs = {"a.wav": (1.0, 16000, 1), "b.flac": (1.3, 44100, 2), "c.ogg": (0.7, 48000, 1),
             "sub/d.wav": (1.6, 48000, 2), "sub/e.flac": (0.5, 22050, 1),
             "f.wav": (1.0, 16000, 1)}
    for name, (seconds, rate, channels) in specs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        audio = 0.2 * rng.standard_normal((round(seconds * rate), channels))
        sf.write(folder / name, audio.astype(np.float32), rate)
    (folder / "bad.wav").write_text("not audio")
    sf.write(folder / "tiny.wav", np.full(1, 0.1, np.float32), 16000)
    return folder


@pytest.fixture(scope="module")
def references(data, model):
    """What the HEAR API gives for each file's audio on its own."""
    out = {}
    for name in GOOD:
        audio = torch.from_numpy(kwmlp.load_audio(data / name)[0])[None]
        emb, ts = kwmlp.get_timestamp_embeddings(audio, model)
        out[name] = {"embedding": emb[0].numpy(), "timestamps": ts[0].numpy(),
                     "scene": kwmlp.get_scene_embeddings(audio, model)[0].numpy()}
    return out


@pytest.fixture(scope="module")
def single_process_failures(data, model, tmp_path_factory):
    summary = kwmlp.save_embeddings([data], tmp_path_factory.mktemp("single"), model,
                                    recursive=True)
    return sorted(f.message for f in summary.failures)


@pytest.fixture
def ray_session():
    """A local 2-CPU Ray instance the test did not start, shut down after it (so the
    tests that need Ray not running are not skipped)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def saved_arrays(out, fmt, name):
    stem = out / os.path.splitext(name)[0]
    if fmt == "npz":
        return dict(np.load(f"{stem}.npz"))
    return {array: np.load(f"{stem}_{array}.npy") for array in ("embedding", "timestamps",
                                                                 "scene")}


def assert_matches(arrays, reference):
    np.testing.assert_allclose(arrays["embedding"], reference["embedding"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(arrays["timestamps"], reference["timestamps"])
    np.testing.assert_allclose(arrays["scene"], reference["scene"], atol=1e-6, rtol=0)


def check_run(out, fmt, summary, model, references, single_process_failures):
    assert (summary.done, summary.skipped) == (len(GOOD), 0)
    assert sorted(f.message for f in summary.failures) == single_process_failures
    assert {f.path.name for f in summary.failures} == set(BAD)
    for failure in summary.failures:
        assert BAD[failure.path.name] in failure.message
    if fmt == "parquet":
        rows = kwmlp.read_parquet_embeddings(out)
        assert sorted(rows) == sorted(GOOD)
        for name, row in rows.items():
            assert_matches(row, references[name])
            assert (row["model_id"], row["sample_rate"], row["resampler"]) == (
                model.model_id(), 16000, "soxr")
            assert row["model_options"] == {"layer": "12", "pooling": "iterative",
                                            "scene_frames": "all", "frontend": "nnaudio"}
            assert row["duration_s"] == pytest.approx(len(row["timestamps"]) / 100, abs=0.011)
    else:
        for name in GOOD:
            assert_matches(saved_arrays(out, fmt, name), references[name])
    assert sorted(read_records(out)) == sorted(GOOD)


@pytest.mark.parametrize("workers, fmt", [(1, "npz"), (2, "npy"), (2, "parquet")])
def test_local_engine_gives_the_hear_api_embeddings_and_the_same_report(
        data, model, references, single_process_failures, published_checkpoint, tmp_path,
        workers, fmt):
    out = tmp_path / "out"
    summary = kwmlp.embed_corpus([data], out, workers=workers, format=fmt, recursive=True,
                                 model_file_path=str(published_checkpoint), device="cpu",
                                 part_seconds=2.0)
    check_run(out, fmt, summary, model, references, single_process_failures)
    if fmt == "parquet":  # 6.1 s of audio, parts of >= 2 s: several parts
        assert 2 <= len(list(out.glob("kwmlp-part-*.parquet"))) <= 4


def test_local_one_worker_writes_the_files_save_embeddings_writes(data, model,
                                                                  published_checkpoint, tmp_path):
    kwmlp.save_embeddings([data], tmp_path / "single", model, recursive=True)
    kwmlp.embed_corpus([data], tmp_path / "corpus", recursive=True,
                       model_file_path=str(published_checkpoint), device="cpu")
    for name in GOOD:
        single = np.load((tmp_path / "single" / name).with_suffix(".npz"))
        again = np.load((tmp_path / "corpus" / name).with_suffix(".npz"))
        assert single.files == again.files
        for key in single.files:
            np.testing.assert_array_equal(single[key], again[key])


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_ray_engine_gives_the_hear_api_embeddings_and_the_same_report(
        ray_session, data, model, references, single_process_failures, published_checkpoint,
        tmp_path, fmt):
    out = tmp_path / "out"
    summary = kwmlp.embed_corpus([data], out, engine="ray", workers=2, format=fmt,
                                 recursive=True, model_file_path=str(published_checkpoint),
                                 device="cpu")
    check_run(out, fmt, summary, model, references, single_process_failures)
    assert ray_session.is_initialized()  # a session it did not start is left running


def test_parquet_reads_back_with_pyarrow_and_pandas(data, published_checkpoint, references,
                                                   tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pd = pytest.importorskip("pandas")
    out = tmp_path / "out"
    kwmlp.embed_corpus([data], out, format="parquet", recursive=True,
                       model_file_path=str(published_checkpoint), device="cpu")
    (part,) = out.glob("kwmlp-part-*.parquet")
    table = pq.read_table(part)
    assert table.column_names == ["path", "model_id", "model_options", "sample_rate",
                                  "resampler", "duration_s", "scene", "embedding", "timestamps"]
    frame = pd.read_parquet(out)  # the folder: the manifest beside the part is skipped
    assert len(frame) == len(GOOD)
    row = frame.set_index("path").loc["sub/d.wav"]
    embedding = np.stack(row["embedding"])  # a list of 64-vectors, one per 10 ms
    np.testing.assert_allclose(embedding, references["sub/d.wav"]["embedding"], atol=1e-6,
                               rtol=0)
    assert json.loads(row["model_options"])["layer"] == "12"
    assert kwmlp.read_parquet_embeddings(part).keys() == set(GOOD)
    scene_only = tmp_path / "scene"
    kwmlp.embed_corpus([data / "a.wav"], scene_only, format="parquet", kind="scene",
                       model_file_path=str(published_checkpoint), device="cpu")
    (row,) = kwmlp.read_parquet_embeddings(scene_only).values()
    assert set(row) >= {"scene"} and not {"embedding", "timestamps"} & set(row)
    np.testing.assert_allclose(row["scene"], references["a.wav"]["scene"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_resume_does_only_what_is_missing_or_changed(data, published_checkpoint, tmp_path,
                                                     fmt):
    out = tmp_path / "out"
    options = dict(format=fmt, recursive=True, model_file_path=str(published_checkpoint),
                   device="cpu")
    first = kwmlp.embed_corpus([data / "sub"], out, **options)
    assert first.done == 2
    rerun = kwmlp.embed_corpus([data / "sub"], out, **options)
    assert (rerun.done, rerun.skipped) == (0, 2)
    changed = tmp_path / "copy"
    changed.mkdir()
    for name in ("d.wav", "e.flac"):
        (changed / name).write_bytes((data / "sub" / name).read_bytes())
    os.utime(changed / "d.wav", ns=(1, 1))
    first = kwmlp.embed_corpus([changed], tmp_path / "out2", **options)
    os.utime(changed / "d.wav", ns=(2, 2))  # touched: embedded again, e.flac skipped
    again = kwmlp.embed_corpus([changed], tmp_path / "out2", **options)
    assert (again.done, again.redone, again.skipped) == (1, 1, 1)
    if fmt == "parquet":
        rows = kwmlp.read_parquet_embeddings(tmp_path / "out2")
        assert sorted(rows) == ["d.wav", "e.flac"]  # the current row of each, once


def test_overwrite_with_the_same_settings_keeps_the_other_inputs_rows(data, published_checkpoint,
                                                                    tmp_path):
    """--overwrite recomputes the inputs given; a Parquet folder's other inputs stay."""
    out = tmp_path / "out"
    options = dict(format="parquet", model_file_path=str(published_checkpoint), device="cpu")
    kwmlp.embed_corpus([data / "a.wav", data / "f.wav"], out, **options)
    first = kwmlp.read_parquet_embeddings(out)
    again = kwmlp.embed_corpus([data / "f.wav"], out, overwrite=True, **options)
    assert again.done == 1
    rows = kwmlp.read_parquet_embeddings(out)
    assert sorted(rows) == ["a.wav", "f.wav"]
    np.testing.assert_array_equal(rows["a.wav"]["scene"], first["a.wav"]["scene"])
    np.testing.assert_allclose(rows["f.wav"]["scene"], first["f.wav"]["scene"], atol=1e-6)


def test_other_options_are_refused_and_overwrite_replaces(data, published_checkpoint,
                                                         tmp_path):
    out = tmp_path / "out"
    options = dict(format="parquet", model_file_path=str(published_checkpoint), device="cpu")
    kwmlp.embed_corpus([data / "a.wav"], out, **options)
    before = sorted(out.glob("kwmlp-part-*"))
    with pytest.raises(KwmlpError, match=r"model_options layer=12 .*this run would make "
                                         r"model_options layer=4 .*another output folder"):
        kwmlp.embed_corpus([data / "a.wav", data / "f.wav"], out, layer=4, **options)
    with pytest.raises(KwmlpError, match="format parquet"):
        kwmlp.embed_corpus([data / "a.wav"], out, format="npz",
                           model_file_path=str(published_checkpoint))
    assert sorted(out.glob("kwmlp-part-*")) == before and not list(out.glob("*.npz"))
    replaced = kwmlp.embed_corpus([data / "f.wav"], out, layer=4, overwrite=True, **options)
    assert replaced.done == 1
    rows = kwmlp.read_parquet_embeddings(out)
    assert list(rows) == ["f.wav"] and rows["f.wav"]["model_options"]["layer"] == "4"
    assert not set(before) & set(out.glob("kwmlp-part-*"))  # the old parts are gone


def test_a_folder_in_use_is_refused(tmp_path):
    settings = {"model_id": "x"}
    with Manifest(tmp_path, settings, overwrite=False):
        with pytest.raises(KwmlpError, match="another kwmlp run is writing"):
            Manifest(tmp_path, settings, overwrite=False)
    Manifest(tmp_path, settings, overwrite=False).close()  # released with the first


def test_missing_extra_names_it(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_pyarrow(name, *args):
        if name.startswith("pyarrow"):
            raise ImportError(f"No module named '{name}'")
        return real(name, *args)

    monkeypatch.setattr(extras.importlib, "import_module", no_pyarrow)
    with pytest.raises(KwmlpError, match=r"pip install 'kwmlp\[parquet\]'"):
        kwmlp.read_parquet_embeddings("anything")


def test_plain_import_loads_no_optional_dependency():
    code = ("import sys, kwmlp; kwmlp.embed_corpus; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'pyarrow', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("argv, message", [
    (["embed", "d", "--workers", "2"], "need -o/--output-dir"),
    (["embed", "d", "--format", "parquet"], "need -o/--output-dir"),
    (["embed", "d", "-o", "o", "--ray-address", "auto"], "goes with --engine ray"),
    (["embed", "d", "-o", "o", "--engine", "spark"], "invalid choice"),
    (["embed", "d", "-o", "o", "--workers", "0"], "positive integer"),
    (["embed", "d", "-o", "o", "--part-seconds", "5"], "goes with --format parquet"),
    (["embed", "d", "-o", "o", "--format", "npy", "--part-seconds", "5"], "goes with --format"),
])
def test_corpus_arguments_exit_2(capsys, argv, message):
    from kwmlp.cli import parse_args

    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def kwmlp_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "kwmlp", *map(str, args)],
                          capture_output=True, text=True, timeout=600, **kwargs)


def test_cli_exit_codes_and_report(data, published_checkpoint, tmp_path):
    out = tmp_path / "out"
    run = kwmlp_cli("embed", data, "-r", "-o", out, "--workers", "2", "--format", "parquet",
                    "--model", published_checkpoint, "--threads", "1")
    assert run.returncode == 1, run.stderr  # the bad files
    assert f"{len(GOOD)} files embedded, 0 skipped (outputs exist), 2 failed" in run.stderr
    assert f"{data / 'bad.wav'}: cannot read audio" in run.stderr
    good = kwmlp_cli("embed", data / "a.wav", data / "f.wav", "-o", out, "--workers", "2",
                     "--format", "parquet", "--model", published_checkpoint)
    assert good.returncode == 0 and "0 files embedded, 2 skipped" in good.stderr
    refused = kwmlp_cli("embed", data / "a.wav", "-o", out, "--format", "parquet",
                        "--model", published_checkpoint, "--layer", "4")
    assert refused.returncode == 1 and "pass --overwrite" in refused.stderr


# SIGKILL mid-write: a run killed while writing a part (or an npz) never
# leaves it counted as done, and the rerun finishes the rest.

STALL_SECOND_WRITE = textwrap.dedent("""
    import io, os, sys, time
    import pyarrow.parquet as pq
    from kwmlp.cli import main

    real, calls = pq.write_table, []

    def stalling(table, where, **kwargs):  # the second part: half written, then stuck
        calls.append(1)
        if len(calls) < 2:
            return real(table, where, **kwargs)
        buffer = io.BytesIO()
        real(table, buffer, **kwargs)
        where.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        where.flush()
        print("STALLED", flush=True)
        time.sleep(600)

    pq.write_table = stalling
    sys.exit(main(sys.argv[1:]))
""")


@contextlib.contextmanager
def stalled_run(command, env=None):
    """``kwmlp <command>`` under ``STALL_SECOND_WRITE``, in its own session, yielded
    once it is stuck in its second part; its whole process group is killed after."""
    process = subprocess.Popen([sys.executable, "-c", STALL_SECOND_WRITE, *command], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        line = ""
        while "STALLED" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                pytest.fail(f"the run ended before stalling: {process.stderr.read()}")
        assert "STALLED" in line
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is gone already
            pass
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize("engine, workers", [("local", 1), ("local", 2), ("ray", 2)])
def test_sigkill_mid_write_leaves_nothing_partial_counted(data, published_checkpoint,
                                                          references, tmp_path, engine,
                                                          workers):
    if engine == "ray":
        pytest.importorskip("ray")
    out = tmp_path / "out"
    command = ["embed", str(data), "-r", "-o", str(out), "--format", "parquet",
               "--part-seconds", "1", "--model", str(published_checkpoint), "--engine",
               engine, "--workers", str(workers), "--threads", "1"]
    # Its own session, so the killed run's helpers (workers, Ray) are ended with it.
    with stalled_run(command) as process:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    recorded = read_records(out)
    parts = {entry["outputs"][0] for entry in recorded.values()}
    assert len(parts) == 1 and 0 < len(recorded) < len(GOOD)
    assert [p.name for p in out.glob(".kwmlp-part-*.tmp")]  # the half-written part, not counted
    assert kwmlp.read_parquet_embeddings(out).keys() == recorded.keys()

    rerun = kwmlp_cli(*command)
    assert rerun.returncode == 1, rerun.stderr  # the two bad files, as before
    assert (f"{len(GOOD) - len(recorded)} files embedded, {len(recorded)} skipped"
            in rerun.stderr)
    rows = kwmlp.read_parquet_embeddings(out)
    assert sorted(rows) == sorted(GOOD)
    for name, row in rows.items():
        assert_matches(row, references[name])
    assert not list(out.glob(".*.tmp"))
    listed = {entry["outputs"][0] for entry in read_records(out).values()}
    assert {p.name for p in out.glob("kwmlp-part-*.parquet")} == listed  # no orphan part


def test_workers_decode_ahead_boundedly_and_their_warnings_reach_the_caller(
        data, model, tmp_path, monkeypatch):
    from concurrent.futures import Future

    loud = tmp_path / "loud.wav"
    sf.write(loud, np.full(16000, 2.0, np.float32), 16000, subtype="FLOAT")
    paths = [data / name for name in GOOD] + [loud, data / "bad.wav"]
    in_flight, most = [0], [0]

    class CountingFuture(Future):
        def result(self, timeout=None):
            in_flight[0] -= 1
            return super().result(timeout)

    class InlineExecutor:  # runs each job at once, counts jobs submitted but not taken
        def __init__(self, workers, mp_context, initializer=None, initargs=()):
            pass  # no worker processes, so no parent to watch

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return None

        def submit(self, fn, *args):
            future = CountingFuture()
            future.set_result(fn(*args))
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            return future

    monkeypatch.setattr(engines, "ProcessPoolExecutor", InlineExecutor)
    with pytest.warns(UserWarning, match=r"loud\.wav: peak 2 exceeds 1\.0"):
        results = dict(engines.embed_indexed(paths, model, "both", 0.5, "soxr", workers=2))
    assert most[0] == 2 * engines.QUEUED_BATCHES_PER_WORKER  # never more decoded ahead
    assert len(results) == len(paths)
    assert isinstance(results[len(paths) - 1], kwmlp.files.FileFailure)
    for index, name in enumerate(GOOD):
        np.testing.assert_allclose(results[index].scene, kwmlp.embed_file(data / name, model).scene,
                                   atol=1e-6, rtol=0)


def test_ray_that_cannot_start_is_a_clear_error(data, published_checkpoint, tmp_path,
                                                monkeypatch):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray session is running")

    def fail(**kwargs):
        raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(ray, "init", fail)
    with pytest.raises(KwmlpError, match=r"cannot start or reach a local Ray instance \(The "
                                         r"current node timed out"):
        kwmlp.embed_corpus([data / "a.wav"], tmp_path / "out", engine="ray",
                           model_file_path=str(published_checkpoint), device="cpu")


def test_ray_leaves_the_callers_sigterm_handler_in_place(data, published_checkpoint,
                                                         tmp_path):
    # ray.init sets SIGTERM to sys.exit; the CLI's handler (SIGTERM unwinds like
    # Ctrl-C: temporaries removed, exit 130) and a library user's must survive it.
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray session is running")

    def handler(number, frame):
        pass

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        summary = kwmlp.embed_corpus([data / "a.wav"], tmp_path / "out", engine="ray",
                                     workers=1, model_file_path=str(published_checkpoint),
                                     device="cpu")
        assert summary.done == 1
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def _children(pid):
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_die_with_a_sigkilled_parent(data, published_checkpoint, tmp_path):
    """``kill -9`` of ``kwmlp embed --workers 2`` leaves no orphaned worker or
    resource tracker behind (each worker watches its parent)."""
    command = ["embed", str(data), "-r", "-o", str(tmp_path / "out"), "--format", "parquet",
               "--part-seconds", "1", "--model", str(published_checkpoint), "--workers", "2",
               "--threads", "1"]
    with stalled_run(command) as process:
        helpers = _children(process.pid)
        assert len(helpers) >= 2  # two workers (and the resource tracker)
        process.kill()  # the parent only: its helpers get no signal
        process.wait(timeout=60)
        deadline = time.monotonic() + 20
        while any(map(_alive, helpers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in helpers if _alive(pid)], "helpers outlived their parent"
