"""Atomic file writes, shared by checkpoints, training runs and embedding outputs."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Collection

# ".<name>.<pid>.<8 hex>.tmp"; ".<name>.tmp" is what kwmlp 0.1 wrote.
_TEMPORARY = re.compile(r"\.(?P<name>.+?)(?:\.(?P<pid>\d+)\.[0-9a-f]{8})?\.tmp")


def write_atomic(path: Path, save: Callable[[BinaryIO], None]) -> None:
    """Call ``save`` on a temporary file next to ``path``, then rename it to
    ``path``: readers see the old file or the complete new one, never a part.

    The temporary's name is unique to this call and names its process
    (``.<name>.<pid>.<random>.tmp``), so concurrent writers of one output never
    share one, and ``remove_stale_temporaries`` can tell a dead writer's
    leftover from a live writer's file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:  # unlike mkstemp's 0600, honours the umask
            save(file)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name is
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt included: leave no temporary behind
        temporary.unlink(missing_ok=True)
        raise


def _running(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: Path, names: Collection[str]) -> int:
    """Delete the temporaries that writers killed outright (SIGKILL, power
    loss) left in ``folder`` for the files ``names``: those of processes no
    longer running, and kwmlp 0.1's fixed-name ones. Returns how many."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMPORARY.fullmatch(entry.name)
            if match and match["name"] in names and not (match["pid"] and
                                                         _running(match["pid"])):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed
