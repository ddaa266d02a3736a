"""The HEAR 2021 common API: ``load_model``, ``get_timestamp_embeddings``,
``get_scene_embeddings``, thin wrappers around ``KWMLPEmbedder``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import torch

from .allocator import retain_freed_memory
from .checkpoints import default_weights_path, load_checkpoint
from .embedder import DEFAULT_CHUNK_BATCH_SIZE, KWMLPEmbedder, check_model


def load_model(model_file_path: str = "", *, layer: Optional[int] = None,
               pooling: str = "iterative", scene_frames: str = "all",
               frontend: str = "nnaudio", chunk_batch_size: int = DEFAULT_CHUNK_BATCH_SIZE,
               device: Optional[str] = None) -> KWMLPEmbedder:
    """Load a checkpoint (either format; the shipped default when the path is
    empty) and wrap it for the HEAR API, in eval mode on ``device`` (default:
    CUDA when available). The other options are ``KWMLPEmbedder``'s.

    On Linux/glibc this also keeps freed heap memory for reuse, process-wide
    (``kwmlp.allocator``; ``KWMLP_TUNE_MALLOC=0`` opts out)."""
    device = _check_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    retain_freed_memory()
    path = Path(model_file_path) if model_file_path else default_weights_path()
    encoder, metadata = load_checkpoint(path)
    model = KWMLPEmbedder(encoder, layer=layer, pooling=pooling, scene_frames=scene_frames,
                          frontend=frontend, chunk_batch_size=chunk_batch_size,
                          weights_path=path, metadata=metadata)
    return model.eval().to(device)


def _check_device(device: str) -> torch.device:
    """``device`` as a ``torch.device``; ``ValueError`` for a name torch does not
    know or a CUDA device this machine lacks, before the checkpoint is read."""
    try:
        checked = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got "
                         f"{device!r}") from None
    if checked.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no CUDA device here; use 'cpu'")
    if checked.type == "meta":
        raise ValueError("device 'meta' holds shapes but no weights, so it cannot embed; "
                         "use 'cpu' or 'cuda'")
    return checked


def get_timestamp_embeddings(audio: torch.Tensor,
                             model: KWMLPEmbedder) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(n_sounds, n_samples)`` 16 kHz float audio -> embeddings
    ``(n_sounds, n_timestamps, 64)`` and their times ``(n_sounds, n_timestamps)``
    in ms (10, 20, ...), both float32 on ``audio``'s device."""
    out = check_model(model, audio, "get_timestamp_embeddings").embed(audio, "timestamp")
    return out["embedding"], out["timestamps"]


def get_scene_embeddings(audio: torch.Tensor, model: KWMLPEmbedder) -> torch.Tensor:
    """``(n_sounds, n_samples)`` 16 kHz float audio -> ``(n_sounds, 1024)``
    float32 on ``audio``'s device."""
    return check_model(model, audio, "get_scene_embeddings").embed(audio, "scene")["scene"]

