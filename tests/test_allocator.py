"""load_model keeps freed heap memory, so repeated batches reuse their buffers
instead of page-faulting fresh ones in (kwmlp/allocator.py)."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

FAULTS = """
import resource, torch, kwmlp
torch.set_num_threads(1)
model = kwmlp.load_model(chunk_batch_size=32)
audio = torch.randn(1, 16000 * 20) * 0.1
kwmlp.get_scene_embeddings(audio, model)  # warm-up: the heap grows once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    kwmlp.get_scene_embeddings(audio, model)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


def _run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "KWMLP_"))}
    out = subprocess.run([sys.executable, "-c", code], env={**environ, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_repeated_embedding_does_not_fault_its_buffers_in_again():
    # One call allocates ~100 MB of activations (21 chunks x 12 blocks x several
    # 98 x 256 float tensors); once they are reused, a call faults in at most a
    # few MB of pages (output buffers and the like), not its activations.
    faults_per_call = float(_run(FAULTS))
    assert faults_per_call < 1024, faults_per_call


@pytest.mark.parametrize("env", [{"KWMLP_TUNE_MALLOC": "0"},
                                 {"MALLOC_TRIM_THRESHOLD_": "1000000"}])
def test_opt_out_and_user_settings_are_respected(env):
    code = "from kwmlp.allocator import retain_freed_memory as r; print(r())"
    assert _run(code, **env) == "False"
    assert _run(code) == "True"
