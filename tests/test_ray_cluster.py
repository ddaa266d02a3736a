"""``kwmlp embed --engine ray --ray-address`` against a real multi-node Ray cluster
started on this machine: a head and a second worker node (``ray start``), one CPU
each, token authentication on as a user's cluster has it. Outputs must equal the
single-process run, a bad file is reported, Ray's log lines stay off the terminal,
and a SIGKILLed client run resumes with every input exactly once.

The cluster is stopped at the end (``ray stop --force``, which ends every Ray
process of this user on the machine: run this file on its own or last, as CI does,
never beside a Ray cluster you care about)."""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import kwmlp
from kwmlp.manifest import read_records
from test_corpus import (BAD, GOOD, assert_matches, data, kwmlp_cli, model,  # noqa: F401
                         references, stalled_run)

pytest.importorskip("ray")
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
RAY_LOG_MARKS = ("core_worker", "streaming_executor", "WARNING", "INFO", "logging.cc")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive_nodes(address, env) -> int:
    code = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0


@pytest.fixture(scope="module")
def cluster():
    """``(address, environment)`` of a two-node cluster; the environment carries
    the token every node and the client share."""
    if not Path(RAY).exists():
        pytest.skip("the ray command is not installed")
    temp_dir = tempfile.mkdtemp(prefix="kwray", dir="/tmp")  # unix sockets: keep it short
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    try:
        subprocess.run([RAY, "start", "--head", f"--port={address.split(':')[1]}",
                        "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={temp_dir}"],
                       env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([RAY, "start", f"--address={address}", "--num-cpus=1"],
                       env=env, check=True, capture_output=True, timeout=300)
        deadline = time.monotonic() + 120
        while _alive_nodes(address, env) < 2:
            assert time.monotonic() < deadline, "the worker node never joined"
            time.sleep(2)
        yield address, env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=300)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_run_on_a_two_node_cluster_equals_the_single_process_one(
        cluster, data, published_checkpoint, references, tmp_path):  # noqa: F811
    address, env = cluster
    out = tmp_path / "out"
    run = kwmlp_cli("embed", data, "-r", "-o", out, "--engine", "ray", "--ray-address",
                    address, "--format", "parquet", "--model", published_checkpoint, env=env)
    assert run.returncode == 1, run.stderr  # the bad files, reported
    assert f"{len(GOOD)} files embedded, 0 skipped (outputs exist), 2 failed" in run.stderr
    for name, reason in BAD.items():
        assert f"{data / name}: {reason}" in run.stderr
    assert not [m for m in RAY_LOG_MARKS if m in run.stderr], run.stderr  # no Ray log lines
    rows = kwmlp.read_parquet_embeddings(out)
    assert sorted(rows) == sorted(GOOD)
    for name, row in rows.items():
        assert_matches(row, references[name])

    wrong = kwmlp_cli("embed", data, "-r", "-o", tmp_path / "other", "--engine", "ray",
                      "--ray-address", address, "--model", published_checkpoint,
                      env={**env, "RAY_AUTH_TOKEN": "not-the-token"})
    assert wrong.returncode == 1 and "cannot start or reach" in wrong.stderr


def test_a_sigkilled_client_resumes_with_every_input_once(
        cluster, data, published_checkpoint, references, tmp_path):  # noqa: F811
    address, env = cluster
    out = tmp_path / "out"
    command = ["embed", str(data), "-r", "-o", str(out), "--format", "parquet",
               "--part-seconds", "1", "--model", str(published_checkpoint), "--engine", "ray",
               "--ray-address", address]
    with stalled_run(command, env) as process:
        os.killpg(process.pid, signal.SIGKILL)  # the client only: the cluster lives on
        process.wait(timeout=60)
    done_before = read_records(out)
    assert 0 < len(done_before) < len(GOOD)
    rerun = kwmlp_cli(*command, env=env)
    assert rerun.returncode == 1, rerun.stderr
    assert (f"{len(GOOD) - len(done_before)} files embedded, {len(done_before)} skipped"
            in rerun.stderr)
    records = read_records(out)
    assert sorted(records) == sorted(GOOD)  # every input recorded exactly once
    rows = kwmlp.read_parquet_embeddings(out)
    assert sorted(rows) == sorted(GOOD)
    for name, row in rows.items():
        assert_matches(row, references[name])
