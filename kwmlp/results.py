"""What an embedding run gives back: per file its embeddings or why it failed,
per run a summary. Every engine yields ``Result`` pairs; every sink and the
run orchestrator (``kwmlp.run``) consume them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

ARRAY_NAMES = {"both": ("embedding", "timestamps", "scene"),
               "timestamp": ("embedding", "timestamps"),
               "scene": ("scene",)}


class SourceStat(NamedTuple):
    """A file's identity as it was when read: what a manifest compares on rerun."""

    size: int  # bytes
    mtime_ns: int


@dataclass(frozen=True)
class FileEmbedding:
    """The embeddings of one file; those its ``kind`` did not ask for are None."""

    path: Path
    duration_s: float  # of the audio at 16 kHz
    embedding: Optional[np.ndarray] = None  # (T, 64) float32, one per 10 ms
    timestamps: Optional[np.ndarray] = None  # (T,) float32, ms: 10, 20, ...
    scene: Optional[np.ndarray] = None  # (1024,) float32
    source: Optional[SourceStat] = None  # the file as it was just before it was decoded

    def arrays(self) -> Dict[str, np.ndarray]:
        """The computed arrays by name (``embedding``, ``timestamps``, ``scene``)."""
        return {name: getattr(self, name) for name in ARRAY_NAMES["both"]
                if getattr(self, name) is not None}


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be embedded or saved; ``message`` starts with its path."""

    path: Path
    message: str


Result = Tuple[int, Union[FileEmbedding, FileFailure]]  # (index into the run's inputs, result)


@dataclass(frozen=True)
class RunSummary:
    """What a run (``save_embeddings``, ``embed_corpus``) did."""

    done: int
    skipped: int  # complete outputs of this model, options and arrays existed
    failures: List[FileFailure] = field(default_factory=list)
    audio_s: float = 0.0  # audio embedded this run
    wall_s: float = 0.0
    redone: int = 0  # of ``done``: existing outputs that were stale or incomplete

    def __str__(self) -> str:
        redone = f" ({self.redone} replacing stale or incomplete outputs)" if self.redone else ""
        return (f"{self.done} files embedded{redone}, {self.skipped} skipped (outputs exist), "
                f"{len(self.failures)} failed; {self.audio_s / 3600:.2f} h "
                f"({self.audio_s:.1f} s) of audio in {self.wall_s:.1f} s")
