"""The HEAR 2021 common API: ``load_model``, ``get_timestamp_embeddings``,
``get_scene_embeddings``.

Audio flows: pad 5 ms / 15 ms -> 1 s chunks -> MFCC -> encoder (98 frames per
chunk) -> stitch chunks into one 10 ms frame sequence -> timestamp embeddings,
and -> scene pooling. The defaults reproduce the published HEAR 2021 ``kwmlp``
submission exactly (see ``_frames`` and ``n_timestamps``).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .allocator import retain_freed_memory
from .checkpoints import default_weights_path, load_checkpoint
from .encoder import KWMLP
from .frontend import BACKENDS, MFCC, SAMPLE_RATE, chunk_batches, n_chunks
from .pooling import METHODS as POOLING_METHODS
from .pooling import SCENE_STEPS, scene_embedding

PAD_START_SAMPLES = 80  # 5 ms: the first 30 ms window is then centred on 10 ms, its timestamp
PAD_END_SAMPLES = 240  # 15 ms
HOP_MS = 10.0
WINDOW_MS = 30.0
BLOCK_FRAMES = 100  # frames a 1 s chunk contributes after stitching
DEFAULT_CHUNK_BATCH_SIZE = 64  # chunks per frontend+encoder pass; bounds memory
SCENE_FRAMES = ("all", "audio")
EMBEDDING_KINDS = ("both", "scene", "timestamp")


class KWMLPEmbedder(nn.Module):
    """Frontend + encoder + pooling settings, as returned by ``load_model``.

    ``layer`` takes embeddings after that many blocks (paper §6.3; default:
    all). ``pooling`` is ``"iterative"`` (published), ``"single"`` or ``"mean"``
    (§6.1). ``scene_frames="all"`` pools every stitched frame, padding included
    (published); ``"audio"`` pools only the frames that are timestamped.
    ``chunk_batch_size`` bounds how many 1 s chunks are in flight at once.
    """

    # HEAR common API attributes.
    sample_rate: int = SAMPLE_RATE
    timestamp_embedding_size: int
    scene_embedding_size: int
    # Set by load_model: the checkpoint file and its metadata (training data, version).
    weights_path: str
    metadata: dict

    def __init__(self, encoder: KWMLP, *, layer: Optional[int] = None,
                 pooling: str = "iterative", scene_frames: str = "all",
                 frontend: str = "nnaudio",
                 chunk_batch_size: int = DEFAULT_CHUNK_BATCH_SIZE) -> None:
        super().__init__()
        layer = encoder.depth if layer is None else layer
        if not isinstance(layer, int) or not 1 <= layer <= encoder.depth:
            raise ValueError(f"layer must be an int in 1..{encoder.depth}, got {layer!r}")
        if pooling not in POOLING_METHODS:
            raise ValueError(f"pooling must be one of {POOLING_METHODS}, got {pooling!r}")
        if scene_frames not in SCENE_FRAMES:
            raise ValueError(f"scene_frames must be one of {SCENE_FRAMES}, got {scene_frames!r}")
        if frontend not in BACKENDS:
            raise ValueError(f"frontend must be one of {BACKENDS}, got {frontend!r}")
        if not isinstance(chunk_batch_size, int) or chunk_batch_size < 1:
            raise ValueError(f"chunk_batch_size must be a positive int, got {chunk_batch_size!r}")
        self.encoder = encoder
        self.mfcc = MFCC(backend=frontend)
        self.layer, self.pooling, self.scene_frames = layer, pooling, scene_frames
        self.chunk_batch_size = chunk_batch_size
        self.timestamp_embedding_size = encoder.dim
        self.scene_embedding_size = encoder.dim * SCENE_STEPS

    def embed_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """``(n, CHUNK_SAMPLES)`` 1 s chunks -> ``(n, 98, dim)`` timestamp embeddings."""
        return self.encoder.embed(self.mfcc(chunks), self.layer)


def load_model(model_file_path: str = "", *, layer: Optional[int] = None,
               pooling: str = "iterative", scene_frames: str = "all",
               frontend: str = "nnaudio", chunk_batch_size: int = DEFAULT_CHUNK_BATCH_SIZE,
               device: Optional[str] = None) -> KWMLPEmbedder:
    """Load a checkpoint (either format; the shipped default when the path is
    empty) and wrap it for the HEAR API, in eval mode on ``device`` (default:
    CUDA when available). The other options are ``KWMLPEmbedder``'s.

    On Linux/glibc this also keeps freed heap memory for reuse, process-wide
    (``kwmlp.allocator``; ``KWMLP_TUNE_MALLOC=0`` opts out)."""
    retain_freed_memory()
    path = Path(model_file_path) if model_file_path else default_weights_path()
    encoder, metadata = load_checkpoint(path)
    model = KWMLPEmbedder(encoder, layer=layer, pooling=pooling, scene_frames=scene_frames,
                          frontend=frontend, chunk_batch_size=chunk_batch_size)
    model.weights_path, model.metadata = str(path), metadata
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.eval().to(device)


def check_audio(audio: torch.Tensor) -> None:
    """Raise ``TypeError``/``ValueError`` for audio the API cannot embed
    faithfully; the messages say how to fix it."""
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor of shape (n_sounds, n_samples), got "
                        f"{type(audio).__name__} (use torch.from_numpy for numpy arrays)")
    if audio.ndim != 2:
        hint = " (for a single 1-D sound pass audio[None])" if audio.ndim == 1 else ""
        raise ValueError(f"audio must be 2-D (n_sounds, n_samples), got shape "
                         f"{tuple(audio.shape)}{hint}")
    if not audio.is_floating_point():
        raise TypeError(f"audio must be float in [-1, 1], got {audio.dtype}; scale integer PCM "
                        f"first, e.g. audio.float() / 32768 for int16")
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ValueError(f"audio is empty: shape {tuple(audio.shape)}")
    # One reduction, no audio-sized temporaries (isfinite/abs would each copy an
    # hour-long clip): NaN propagates into both extremes and inf shows in one.
    low, high = (value.item() for value in torch.aminmax(audio))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("audio contains NaN or inf samples")
    peak = max(-low, high)
    if peak > 1.0:
        warnings.warn(f"audio peak {peak:.3g} exceeds 1.0; kwmlp expects float audio in "
                      f"[-1, 1] and does not clip or rescale it", stacklevel=4)


def _check_model(model: object) -> None:
    if not isinstance(model, KWMLPEmbedder):
        raise TypeError(f"model must come from kwmlp.load_model(), got {type(model).__name__}")


def n_timestamps(n_padded_samples: int) -> int:
    """Frames reported for a sound of ``n_padded_samples`` (after the 5/15 ms
    padding): one per 10 ms hop whose 30 ms window fits. The float expression
    is the published one, kept verbatim so the count matches it exactly."""
    return int((1000 * n_padded_samples / SAMPLE_RATE - WINDOW_MS) / HOP_MS + 1)


def extend_chunk_frames(frames: torch.Tensor) -> torch.Tensor:
    """``(n, 98, dim)`` -> ``(n, 100, dim)``: a 1 s chunk spans 100 hops, so its
    first and last frame are repeated, as the published code did."""
    return torch.cat([frames[:, :1], frames, frames[:, -1:]], dim=1)


def _frames(audio: torch.Tensor, model: KWMLPEmbedder) -> Tuple[torch.Tensor, int]:
    """All stitched frames ``(n_sounds, 100 * n_chunks - 2, dim)`` and the
    number of them that carry timestamps.

    Chunks are embedded ``model.chunk_batch_size`` at a time and written
    straight into one output buffer: the extended 100-frame blocks laid end to
    end, minus the first and last frame of the whole sequence.
    """
    check_audio(audio)
    _check_model(model)
    device = next(model.parameters()).device
    n_padded = PAD_START_SAMPLES + audio.shape[1] + PAD_END_SAMPLES
    blocks = torch.empty(audio.shape[0] * n_chunks(n_padded), BLOCK_FRAMES,
                         model.timestamp_embedding_size, device=device)
    row = 0
    for batch in chunk_batches(audio, batch_size=model.chunk_batch_size, device=device,
                               pad_start=PAD_START_SAMPLES, pad_end=PAD_END_SAMPLES):
        blocks[row:row + len(batch)] = extend_chunk_frames(model.embed_chunks(batch))
        row += len(batch)
    stitched = blocks.reshape(audio.shape[0], -1, blocks.shape[-1])[:, 1:-1]
    return stitched, n_timestamps(n_padded)


def _timestamped(frames: torch.Tensor, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    times_ms = HOP_MS * torch.arange(1, count + 1, dtype=torch.float32)
    return frames[:, :count].contiguous(), times_ms.expand(len(frames), count).contiguous()


def _scene(frames: torch.Tensor, count: int, model: KWMLPEmbedder) -> torch.Tensor:
    return scene_embedding(frames[:, :count] if model.scene_frames == "audio" else frames,
                           model.pooling)


def get_timestamp_embeddings(audio: torch.Tensor,
                             model: KWMLPEmbedder) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(n_sounds, n_samples)`` 16 kHz float audio -> embeddings
    ``(n_sounds, n_timestamps, 64)`` and their times ``(n_sounds, n_timestamps)``
    in ms (10, 20, ...), both float32 on ``audio``'s device."""
    with torch.inference_mode():
        embeddings, timestamps = _timestamped(*_frames(audio, model))
        return embeddings.to(audio.device), timestamps.to(audio.device)


def get_scene_embeddings(audio: torch.Tensor, model: KWMLPEmbedder) -> torch.Tensor:
    """``(n_sounds, n_samples)`` 16 kHz float audio -> ``(n_sounds, 1024)``
    float32 on ``audio``'s device."""
    with torch.inference_mode():
        return _scene(*_frames(audio, model), model).to(audio.device)


def get_embeddings(audio: torch.Tensor, model: KWMLPEmbedder,
                   kind: str = "both") -> Dict[str, torch.Tensor]:
    """Both HEAR outputs from one encoder pass: ``{"embedding", "timestamps"}``
    as ``get_timestamp_embeddings`` gives them (``kind`` "both" or
    "timestamp") and ``{"scene"}`` as ``get_scene_embeddings`` (``kind``
    "both" or "scene"), on ``audio``'s device."""
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
    with torch.inference_mode():
        frames, count = _frames(audio, model)
        out = {}
        if kind != "scene":
            out["embedding"], out["timestamps"] = _timestamped(frames, count)
        if kind != "timestamp":
            out["scene"] = _scene(frames, count, model)
        return {name: tensor.to(audio.device) for name, tensor in out.items()}
