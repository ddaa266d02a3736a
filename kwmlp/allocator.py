"""Keep freed heap memory for reuse instead of handing it back to the kernel.

Every encoder op returns a fresh tensor of 0.5-13 MB (32-128 chunks of
98 x 256 floats). glibc's malloc serves blocks above its mmap threshold with a
fresh ``mmap`` and gives the heap top back to the kernel once it exceeds the
trim threshold, so with its defaults many of those buffers arrive as untouched
pages and are faulted in and zeroed again on every batch (what that cost on
the development machine: ``benchmarks/README.md``). Raising both thresholds
keeps such buffers in the heap, where the next batch reuses them.

The settings are process-wide, so ``load_model`` applies them once and leaves
them alone if the user chose their own (``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` in the environment) or opted out with
``KWMLP_TUNE_MALLOC=0``; other C libraries (musl, macOS) are left as they are.
"""
from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameter numbers, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 16 << 20  # blocks up to 16 MiB come from the heap
TRIM_THRESHOLD_BYTES = 128 << 20  # up to 128 MiB of free heap top stays mapped
OPT_OUT_VARIABLE = "KWMLP_TUNE_MALLOC"
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_applied = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; ``True`` if
    they are (now or already) raised by this function."""
    global _applied
    if _applied:
        return True
    if (os.environ.get(OPT_OUT_VARIABLE, "1") == "0"
            or any(v in os.environ for v in _USER_VARIABLES)):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                    and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _applied
