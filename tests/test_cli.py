"""The ``kwmlp`` command: ``parse_args`` as a pure function, and the command
itself run as a user would (``python -m kwmlp ...`` in a subprocess)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from kwmlp import get_scene_embeddings, load_audio, load_model
from kwmlp.cli import parse_args
from kwmlp.manifest import MANIFEST_DIR


# parse_args

def test_embed_defaults():
    args = parse_args(["embed", "/does/not/need/to/exist"])
    assert args.command == "embed" and args.paths == ["/does/not/need/to/exist"]
    assert (args.kind, args.format, args.output_dir, args.model) == ("both", "npz", None, None)
    assert not (args.recursive or args.overwrite or args.quiet)
    assert (args.device, args.threads, args.layer, args.pooling) == (None, None, None, None)
    assert args.batch_seconds == 60.0 and args.resampler == "soxr"


def test_embed_options():
    args = parse_args(["embed", "a.wav", "dir", "-o", "out", "--scene-only", "--model", "m.pt",
                       "-r", "--format", "npy", "--overwrite", "--device", "cpu",
                       "--threads", "2", "--layer", "4", "--pooling", "mean",
                       "--batch-seconds", "5", "--resampler", "resampy", "-q"])
    assert args.paths == ["a.wav", "dir"] and args.output_dir == "out"
    assert (args.kind, args.model, args.format, args.device) == ("scene", "m.pt", "npy", "cpu")
    assert args.recursive and args.overwrite and args.quiet
    assert (args.threads, args.layer, args.pooling, args.batch_seconds) == (2, 4, "mean", 5.0)
    assert args.resampler == "resampy"
    assert parse_args(["embed", "a.wav", "--timestamp-only"]).kind == "timestamp"


@pytest.mark.parametrize("argv, message", [
    (["embed", "a.wav", "--scene-only", "--timestamp-only"], "not allowed with"),
    (["embed"], "required: PATH"),
    (["embed", "a.wav", "--threads", "0"], "positive integer"),
    (["embed", "a.wav", "--threads", str(10 * (os.cpu_count() or 1))], "at most"),
    (["embed", "a.wav", "--batch-seconds", "0"], "positive number"),
    (["embed", "a.wav", "--format", "csv"], "invalid choice"),
    (["embed", "a.wav", "--device", "tpu"], "invalid choice"),
    (["embed", "a.wav", "--pooling", "max"], "invalid choice"),
    (["embed", "a.wav", "--resampler", "sinc"], "invalid choice"),
    (["spot"], "required: FILE"),
    (["spot", "a.wav", "--hop-ms", "15"], "multiple of 10 ms"),
    (["spot", "a.wav", "--hop-ms", "inf"], "multiple of 10 ms"),
    (["spot", "a.wav", "--hop-ms", "1e400"], "multiple of 10 ms"),
    (["spot", "a.wav", "--hop-ms", "nan"], "multiple of 10 ms"),
    (["spot", "a.wav", "--hop-ms=-inf"], "multiple of 10 ms"),
    (["spot", "a.wav", "--threshold", "0"], "must be in (0, 1]"),
    (["spot", "a.wav", "--refractory-ms", "-1"], "must be >= 0"),
    (["spot", "a.wav", "--threshold", "abc"], "--threshold: not a number: 'abc'"),
    (["embed", "a.wav", "--workers", "two"], "--workers: not an integer: 'two'"),
    (["fit", "d", "-o", "x.pt", "--seed", "1.5"], "--seed: not an integer: '1.5'"),
    (["export"], "required: OUT.onnx"),
    ([], "required: COMMAND"),
    (["train"], "invalid choice"),
    (["export", "-"], "- (standard output) cannot take them"),
    (["fit", "data", "-o", "-"], "- (standard output) cannot take them"),
    (["spot", "a.wav", "--plot", "-"], "- (standard output) cannot take them"),
    (["embed", "a.wav", "-o", "-"], "- (standard output) cannot take them"),
])
def test_bad_arguments_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_a_misused_option_prints_its_commands_usage(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["spot", "a.wav", "b.wav", "--plot", "x.png"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: kwmlp spot ")
    assert "kwmlp spot: error: --plot draws one FILE" in err


def test_version(capsys):
    import kwmlp

    with pytest.raises(SystemExit) as info:
        parse_args(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"kwmlp {kwmlp.__version__}\n"


def test_info_args():
    assert parse_args(["info"]).model is None
    assert parse_args(["info", "--model", "m.pt"]).model == "m.pt"


def test_spot_and_export_args():
    args = parse_args(["spot", "a.wav", "-", "--threshold", "0.8", "--hop-ms", "50"])
    assert (args.paths, args.threshold, args.hop_ms) == (["a.wav", "-"], 0.8, 50.0)
    assert (args.refractory_ms, args.model, args.threads) == (500.0, None, None)
    args = parse_args(["export", "m.onnx", "--layer", "8", "--head"])
    assert (args.output, args.layer, args.head, args.model) == ("m.onnx", 8, True, None)
    assert not parse_args(["export", "m.onnx"]).head


@pytest.mark.parametrize("command", ["embed", "info", "spot", "export"])
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as info:
        parse_args([command, "--help"])
    assert info.value.code == 0 and f"kwmlp {command}" in capsys.readouterr().out.split(
        "examples:")[1]


# the command, as a subprocess

def kwmlp(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "kwmlp", *map(str, args)],
                          capture_output=True, text=True, timeout=300, **kwargs)


def write_clips(folder, n, seconds=1.0):
    rng = np.random.default_rng(0)
    for i in range(n):
        rate = (16000, 44100, 8000)[i % 3]
        audio = 0.1 * rng.standard_normal(round((seconds + 0.1 * i) * rate))
        sf.write(folder / f"clip{i:02d}.{('wav', 'flac', 'ogg')[i % 3]}", audio, rate)
    return sorted(folder.iterdir())


def _state(folder):
    """Every file below ``folder`` (hidden ones too) but its manifest: mtime and bytes."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and MANIFEST_DIR not in p.parts}


def _outputs(folder):
    """The names in ``folder`` but its manifest's."""
    return sorted(name for name in os.listdir(folder) if name != MANIFEST_DIR)


def test_embed_reports_bad_files_continues_and_resumes(tmp_path, published_checkpoint):
    data, out = tmp_path / "data", tmp_path / "out"
    (data / "sub").mkdir(parents=True)
    write_clips(data, 3)
    sf.write(data / "sub" / "deep.wav", np.zeros(8000), 16000)
    (data / "broken.wav").write_bytes(b"RIFF\x00\x00")

    first = kwmlp("embed", data, "-o", out, "-r", "--model", published_checkpoint,
                  "--threads", "1")
    assert first.returncode == 1, first.stderr
    assert f"{data / 'broken.wav'}: cannot read audio" in first.stderr
    assert "\r" not in first.stderr  # no progress-bar frames: stderr is not a terminal
    assert "4 files embedded, 0 skipped (outputs exist), 1 failed" in first.stderr
    assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST_DIR) == [
        "clip00.npz", "clip01.npz", "clip02.npz", "sub"]
    saved = np.load(out / "sub" / "deep.npz")
    assert saved["embedding"].shape == (50, 64) and saved["scene"].shape == (1024,)
    np.testing.assert_array_equal(saved["timestamps"], 10.0 * np.arange(1, 51))
    assert int(saved["sample_rate"]) == 16000 and str(saved["model_id"]).startswith("kwmlp-")

    before = _state(out)
    again = kwmlp("embed", data, "-o", out, "-r", "--model", published_checkpoint, "-q")
    assert again.returncode == 1 and "broken.wav" in again.stderr
    assert "0 files embedded, 4 skipped (outputs exist), 1 failed" in again.stderr
    assert "file/s" not in again.stderr  # --quiet
    assert _state(out) == before


def test_verbose_lists_outputs_with_shapes(tmp_path, published_checkpoint):
    sf.write(tmp_path / "a.wav", np.zeros(24000), 16000)  # 1.5 s -> 150 timestamps
    run = kwmlp("embed", tmp_path / "a.wav", "-o", tmp_path / "out", "--model",
                published_checkpoint, "-v", "-q")
    assert run.returncode == 0, run.stderr
    assert (f"{tmp_path / 'a.wav'} -> {tmp_path / 'out' / 'a.npz'}: embedding (150, 64), "
            f"timestamps (150,), scene (1024,)") in run.stderr


def test_resampler_option_reaches_the_outputs(tmp_path, published_checkpoint):
    t = np.arange(44100) / 44100
    sf.write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    for resampler in ("resampy", "soxr"):
        run = kwmlp("embed", tmp_path / "a.wav", "-o", tmp_path / resampler, "--model",
                    published_checkpoint, "--resampler", resampler, "-q")
        assert run.returncode == 0, run.stderr
        saved = np.load(tmp_path / resampler / "a.npz")
        assert str(saved["resampler"]) == resampler
        audio = torch.from_numpy(load_audio(tmp_path / "a.wav", resampler)[0])[None]
        model = load_model(str(published_checkpoint), device="cpu")
        np.testing.assert_allclose(saved["scene"], get_scene_embeddings(audio, model)[0],
                                   atol=1e-6, rtol=0)


def test_info(published_checkpoint):
    result = kwmlp("info", "--model", published_checkpoint)
    assert result.returncode == 0, result.stderr
    for expected in ["model id:", "kwmlp-", "parameters:", "sample rate:", "16000 Hz",
                     "timestamp embedding: 64", "1024", str(published_checkpoint),
                     "published HEAR 2021"]:
        assert expected in result.stdout


def test_missing_model_is_an_error(tmp_path):
    result = kwmlp("info", "--model", tmp_path / "nope.pt")
    assert result.returncode == 1
    assert f"checkpoint not found: {tmp_path / 'nope.pt'}" in result.stderr


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_then_resume(tmp_path, published_checkpoint, signum, status):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    # Many short files, one per batch, so outputs appear one by one and the run outlasts
    # the signal however fast decoding gets (soxr made 12 files take 0.2 s).
    inputs = write_clips(data, 200, seconds=0.5)
    command = ["embed", data, "-o", out, "--model", published_checkpoint, "--threads", "1",
               "--batch-seconds", "0.5"]
    # A shell starts background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt; reset it so this is the Ctrl-C of a foreground run wherever
    # pytest itself was started.
    process = subprocess.Popen([sys.executable, "-m", "kwmlp", *map(str, command)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("*.npz"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    assert "interrupted" in stderr
    done = _state(out)
    assert 0 < len(done) < len(inputs)
    assert not [name for name in done if not name.endswith(".npz")]  # no temporaries
    assert not list((out / MANIFEST_DIR).rglob("*.tmp"))
    for name in done:
        assert np.load(out / name)["embedding"].shape[1] == 64

    rerun = kwmlp(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert (f"{len(inputs) - len(done)} files embedded, {len(done)} skipped (outputs exist), "
            f"0 failed") in rerun.stderr
    after = _state(out)
    assert len(after) == len(inputs) and {n: after[n] for n in done} == done


def test_bad_names_short_and_corrupt_files_fail_alone_and_reruns_never_mix(
        tmp_path, published_checkpoint):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    write_clips(data, 3)
    odd = os.fsdecode(b"\xff\xfe.wav")
    (data / odd).write_bytes((data / "clip00.wav").read_bytes())
    sf.write(data / "one-sample.wav", np.array([0.1]), 16000)
    (data / "corrupt.wav").write_bytes(b"RIFF\x00\x00")
    first = kwmlp("embed", data, "-o", out, "--model", published_checkpoint, "--threads", "1")
    assert first.returncode == 1, first.stderr
    assert "4 files embedded, 0 skipped (outputs exist), 2 failed" in first.stderr
    assert f"{data / 'one-sample.wav'}: too short to embed" in first.stderr
    assert f"{data / 'corrupt.wav'}: cannot read audio" in first.stderr
    assert _outputs(out) == sorted(["clip00.npz", "clip01.npz", "clip02.npz",
                                    os.fsdecode(b"\xff\xfe.npz")])
    second = kwmlp("embed", data, "-o", out, "--model", published_checkpoint, "--threads", "1",
                   "--layer", "4", "--pooling", "mean")
    assert second.returncode == 1, second.stderr
    assert "4 files embedded (4 replacing stale or incomplete outputs)" in second.stderr
    for name in _outputs(out):
        assert str(np.load(out / name)["model_options"]).startswith("layer=4 pooling=mean")


def test_an_output_dir_that_is_a_file_is_an_error(tmp_path, published_checkpoint):
    sf.write(tmp_path / "a.wav", np.zeros(16000), 16000)
    (tmp_path / "out").write_text("a file")
    run = kwmlp("embed", tmp_path / "a.wav", "-o", tmp_path / "out", "--model",
                published_checkpoint)
    assert run.returncode == 1 and "out: exists and is not a folder" in run.stderr
    assert "files embedded" not in run.stderr
    # below a file, or an empty name (an unset variable): refused, no traceback
    for where, message in ((tmp_path / "out" / "sub", "is a file, so no folder can be made"),
                           ("", "the output folder is an empty string")):
        run = kwmlp("embed", tmp_path / "a.wav", "-o", where, "--model", published_checkpoint,
                    cwd=tmp_path)
        assert run.returncode == 1 and message in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "a.npz").exists()


def test_the_progress_bar_is_drawn_on_a_terminal(tmp_path, published_checkpoint):
    import fcntl
    import pty
    import struct
    import termios

    write_clips(tmp_path, 2)
    controller, terminal = pty.openpty()
    # 24 x 80: a fresh pty has 0 columns, and tqdm draws nothing in zero width
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        run = subprocess.run([sys.executable, "-m", "kwmlp", "embed", tmp_path, "-o",
                              tmp_path / "out", "--model", published_checkpoint],
                             stdout=subprocess.DEVNULL, stderr=terminal, timeout=300)
        os.close(terminal)
        terminal = None
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal side is closed and drained
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        if terminal is not None:
            os.close(terminal)
    assert run.returncode == 0
    assert b"\r" in output and b"file/s" in output


def test_spot_warns_once_about_a_loud_file(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "loud.wav", (rng.standard_normal(24_000) * 0.5).astype(np.float32),
             16000, subtype="FLOAT")  # peaks near 2.5
    result = kwmlp("spot", tmp_path / "loud.wav")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("exceeds 1.0") == 1, result.stderr
    assert "loud.wav" in result.stderr  # the warning that names the file is the one kept


def test_a_reader_that_leaves_ends_spot_quietly(tmp_path):
    """``kwmlp spot - | head -1``: once stdout's reader is gone, exit 141 (what a shell
    reports for a tool ended by SIGPIPE) with nothing on stderr, as Unix tools do."""
    # "yes" and a second of silence, 15 times: a detection ends early on, more meet the
    # closed pipe (noise would give none: the head calls it "nothing" at any threshold)
    word, _ = sf.read(os.path.join(os.path.dirname(__file__), "data", "real", "yes",
                                   "6272b231_nohash_1.flac"), dtype="float32")
    noise = (np.tile(np.pad(word, (0, 32000 - len(word))), 15) * 32767).astype("<i2")
    process = subprocess.Popen(
        [sys.executable, "-m", "kwmlp", "spot", "-", "--threshold", "0.01",
         "--refractory-ms", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    process.stdin.write(noise[:16000 * 5].tobytes())
    process.stdin.flush()
    assert process.stdout.readline().startswith(b"-\t")  # a detection: the stream runs
    process.stdout.close()  # the reader leaves; later detections meet a closed pipe
    try:
        process.stdin.write(noise[16000 * 5:].tobytes())
        process.stdin.close()
    except BrokenPipeError:  # it may already have gone
        pass
    assert process.wait(timeout=300) == 141
    assert process.stderr.read() == b""


def test_a_broken_pipe_that_is_not_stdout_is_not_swallowed(monkeypatch):
    from kwmlp import cli

    read_end, write_end = os.pipe()  # a reader is there: stdout is not the broken pipe
    try:
        monkeypatch.setattr(sys, "stdout", os.fdopen(write_end, "w", closefd=False))
        assert not cli._stdout_closed()

        def worker_pipe_breaks(args):
            raise BrokenPipeError(32, "Broken pipe")  # e.g. a worker's pipe, not stdout

        monkeypatch.setattr(cli, "_run", worker_pipe_breaks)
        with pytest.raises(BrokenPipeError):
            cli.main(["info"])
        os.close(read_end)
        read_end = None
        assert cli.main(["info"]) == 141  # now it is stdout's reader that left: quietly
    finally:
        if read_end is not None:
            os.close(read_end)
        os.close(write_end)


def test_spot_says_so_when_stdin_holds_no_audio():
    result = subprocess.run([sys.executable, "-m", "kwmlp", "spot", "-"], input=b"",
                            capture_output=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert b"stdin: no audio on the input" in result.stderr
    assert result.stdout == b"" and b"Traceback" not in result.stderr
