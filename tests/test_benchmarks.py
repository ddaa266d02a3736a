"""The speed/memory scripts in benchmarks/ run and count what they claim to
(their timings are figures to read, not to assert)."""
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
import bench  # noqa: E402


def _run(script: str, *args: str, timeout_s: float = 300) -> str:
    # Its own process group, so a timeout ends the script's own subprocesses too.
    process = subprocess.Popen([sys.executable, str(BENCH_DIR / script), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    return stdout


def test_model_figures_match_published_shapes(published_params):
    figures = bench.model_figures()
    assert figures["params_total"] == sum(v.size for v in published_params.values())
    # 98 frames, 40 MFCCs, d = 64, d_ff = 256, 12 blocks: patch embedding, then U, the
    # temporal projection over half the channels, and V per block (paper §3.1, eq. 1-2).
    macs = 98 * 40 * 64 + 12 * (98 * 64 * 256 + 98 * 98 * 128 + 98 * 128 * 64)
    assert math.isclose(figures["mflops_per_chunk"], 2 * macs / 1e6)


def test_bench_runs_side_by_side_and_writes_json(tmp_path):
    out_json = tmp_path / "results.json"
    stdout = _run("bench.py", "--cases", "a", "--repeats", "1", "--rounds", "2",
                  "--variant", 'fft={"frontend": "fft"}', "--json", str(out_json))
    result = json.loads(out_json.read_text())
    rows = {r["run"]: r for r in result["rows"]}
    assert set(rows) == {"this", "fft"} and rows["fft"]["options"] == {"frontend": "fft"}
    n_clips, seconds = 16, 2.0  # case a; 80 + 32000 + 240 samples -> 3 chunks each
    for row in rows.values():
        assert row["n_chunks"] == n_clips * math.ceil((32000 + 320) / 16000)
        assert row["audio_seconds"] == n_clips * seconds
        assert len(row["scene_all"]) == 2  # one repeat in each of two rounds
        assert row["scene_s"] > 0 and math.isclose(row["scene_s"], np.median(row["scene_all"]))
        assert row["peak_rss_mb"] > 100  # python + torch + the model, at least
    # Other options report their error against the default: the fft frontend
    # computes nnAudio's MFCC another way, so float rounding only.
    assert "max_abs_err" not in rows["this"]
    assert 0 < rows["fft"]["max_abs_err"] < 1e-4
    assert "scene xRT" in stdout and "fft" in stdout and "max |error| vs default" in stdout


def test_bench_chunk_paths_run_and_report_their_error(tmp_path):
    """The onnxruntime and bf16 paths (torch.compile is left out: compiling
    takes minutes on a busy 2-core CI machine)."""
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    out_json = tmp_path / "results.json"
    stdout = _run("bench.py", "--cases", "a", "--repeats", "1", "--rounds", "1",
                  "--threads", "1", "--path", "ort=onnxruntime", "--path", "bf16=bf16",
                  "--json", str(out_json))
    rows = {r["run"]: r for r in json.loads(out_json.read_text())["rows"]}
    assert "max_abs_err" not in rows["this"]
    assert rows["ort"]["max_abs_err"] <= 1e-4  # the exported graph is the same computation
    # bfloat16 keeps 8 bits of mantissa: off, but an embedding of unit-variance features
    assert 1e-4 < rows["bf16"]["max_abs_err"] < 1.0
    assert "max |error| vs default" in stdout


def test_memory_script_reports_growth(tmp_path):
    out_json = tmp_path / "memory.json"
    _run("memory.py", "--minutes", "0.5", "--kinds", "scene", "--json", str(out_json))
    idle, half_minute = json.loads(out_json.read_text())
    assert (idle["minutes"], half_minute["minutes"]) == (0.0, 0.5)
    assert half_minute["peak_rss_mb"] > idle["peak_rss_mb"]


def test_profile_script_reports_op_shares():
    stdout = _run("profile_encoder.py", "--batch", "4", "--iters", "2")
    assert "aten::baddbmm" in stdout and "GFLOP/s" in stdout and "bfloat16" in stdout


def test_resample_benchmark_runs_every_resampler_and_compares_embeddings():
    out = _run("resample.py", "--seconds", "1", "--repeats", "1", "--clips", "2")
    for name in ("resampy kaiser_best", "resampy kaiser_fast", "scipy resample_poly",
                 "soxr HQ", "soxr VHQ"):
        speeds = [float(v) for v in out.split(name)[1].splitlines()[0].split()[-4:]]
        assert len(speeds) == 4 and all(v > 0 for v in speeds), name
    rows = [line.split("|") for line in out.splitlines() if line.strip().startswith("44100 |")]
    cosine = float(rows[-1][1].split()[0])  # soxr vs resampy: the same speech, nearly
    assert 0.9 < cosine <= 1.0


def test_corpus_benchmark_makes_the_mixed_corpus_it_claims(tmp_path):
    import soundfile as sf

    import corpus

    audio_s = corpus.make_corpus(tmp_path / "c", 40, 4.0, seed=3)
    infos = [sf.info(p) for p in sorted((tmp_path / "c").rglob("clip*"))]
    assert len(infos) == 40
    assert {i.format for i in infos} == {"WAV", "FLAC", "OGG"}
    assert {i.samplerate for i in infos} == {16000, 44100, 48000}
    assert {i.channels for i in infos} == {1, 2}
    assert all(2.0 <= i.duration <= 4.0 + 1e-3 for i in infos)
    assert math.isclose(audio_s, sum(i.duration for i in infos), rel_tol=1e-6)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "c").rglob("clip*")}
    assert corpus.make_corpus(tmp_path / "c", 40, 4.0, seed=3) == audio_s  # reused as is
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_corpus_benchmark_runs_each_engine_and_format(tmp_path, published_checkpoint):
    runs = ["single-npz", "local2-parquet"]  # the Ray engine: tests/test_corpus.py
    out_json = tmp_path / "corpus.json"
    stdout = _run("corpus.py", "--files", "4", "--max-seconds", "2.5", "--runs", ",".join(runs),
                  "--stage-files", "2", "--model", str(published_checkpoint),
                  "--checkout", f"again={BENCH_DIR.parent}", "--json", str(out_json),
                  timeout_s=900)
    result = json.loads(out_json.read_text())
    assert [row["run"] for row in result["rows"]] == runs + ["again"]
    again = result["rows"][-1]  # another checkout's single-process run (here: this one)
    assert again["arguments"] == [] and again["code"] == str(BENCH_DIR.parent)
    for row in result["rows"]:
        assert row["audio_s_per_s"] > 0 and row["files_per_s"] > 0
        assert math.isclose(row["audio_s_per_s"] / row["files_per_s"],
                            result["corpus"]["audio_s"] / 4)
        assert row["peak_rss_mb"] > 100  # python + torch + the model, at least
    assert set(result["stages"]["shares"]) == {"decode", "resample", "embed", "write"}
    assert math.isclose(sum(result["stages"]["shares"].values()), 1.0)
    assert "| local2-parquet |" in stdout and "where time goes" in stdout


def test_false_accept_speech_comes_from_the_held_out_test_voices():
    import false_accepts
    from kwmlp.train.synth.voices import build_voice_inventory

    voices = false_accepts.held_out_voices()
    # the engines _tts_speech alternates between, and never a speaker training hears
    assert {v.engine for v in voices} >= {"espeak-ng", "flite", "festival"}
    training = {v.speaker for v in build_voice_inventory() if v.split == "training"}
    assert not {v.speaker for v in voices} & training
