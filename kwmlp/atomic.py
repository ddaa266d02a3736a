"""Atomic file writes, shared by checkpoints, training runs and embedding outputs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: Path, save: Callable[[BinaryIO], None]) -> None:
    """Call ``save`` on a temporary file next to ``path``, then rename it to
    ``path``: readers see the old file or the complete new one, never a part.
    The temporary name is fixed, so a run killed outright leaves at most one
    stale temporary per output, which the next write of that output replaces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            save(file)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name is
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt included: leave no temporary behind
        temporary.unlink(missing_ok=True)
        raise
