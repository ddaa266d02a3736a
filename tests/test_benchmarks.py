"""The speed/memory scripts in benchmarks/ run and count what they claim to
(their timings are figures to read, not to assert)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
import bench  # noqa: E402


def _run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(BENCH_DIR / script), *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


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
    assert "scene xRT" in stdout and "fft" in stdout


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
    assert "aten::baddbmm" in stdout and "GFLOP/s" in stdout
