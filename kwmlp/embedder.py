"""The embedding pipeline as one object: ``KWMLPEmbedder`` takes 16 kHz audio
to the stitched 10 ms frame sequence and from it to the HEAR outputs.

Audio flows: pad 5 ms / 15 ms -> 1 s chunks -> MFCC -> encoder (98 frames per
chunk) -> stitch chunks into one 10 ms frame sequence -> timestamp embeddings,
and -> scene pooling. The defaults reproduce the published HEAR 2021 ``kwmlp``
submission exactly (see ``KWMLPEmbedder.forward`` and ``n_timestamps``).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import sys
import warnings
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

import torch
from torch import nn

from ._types import PathLike
from .encoder import KWMLP
from .frontend import (BACKENDS, CHUNK_SAMPLES, HOP_SAMPLES, MFCC, N_FFT, SAMPLE_RATE,
                       chunk_batches, n_chunks)
from .pooling import METHODS as POOLING_METHODS
from .pooling import SCENE_STEPS, scene_embedding

PAD_START_SAMPLES = 80  # 5 ms: the first 30 ms window is then centred on 10 ms, its timestamp
PAD_END_SAMPLES = 240  # 15 ms
HOP_MS = 1000 * HOP_SAMPLES / SAMPLE_RATE  # 10 ms between timestamps
WINDOW_MS = 1000 * N_FFT / SAMPLE_RATE  # 30 ms analysis window
BLOCK_FRAMES = CHUNK_SAMPLES // HOP_SAMPLES  # 100 hops: a chunk's frames after stitching
# The shortest sound with one timestamp: padded, it holds exactly one window (10 ms).
MIN_TIMESTAMPED_SAMPLES = N_FFT - PAD_START_SAMPLES - PAD_END_SAMPLES
DEFAULT_CHUNK_BATCH_SIZE = 64  # chunks per frontend+encoder pass; bounds memory
SCENE_FRAMES = ("all", "audio")
EMBEDDING_KINDS = ("both", "scene", "timestamp")
PEAK_WARNING = "audio peak"  # how check_samples' warning starts
# Refused, not warned about: unscaled integer PCM (int16 peaks at 32767) is far below;
# from about 1e18 the MFCC's power overflows float32 and outputs turn NaN (measured on
# uniform noise: none NaN at 1e17, half at 1e18, all at 1e20).
MAX_PEAK = 1e6
MAX_CHANNELS = 8  # (n > 8, <= 8) audio is taken for (n_samples, n_channels), not sounds


def check_model(model: object, audio: object = None, function: str = "") -> "KWMLPEmbedder":
    """``model`` if it comes from ``load_model``, else ``TypeError`` (saying so when
    ``function``'s ``(audio, model)`` arguments came swapped)."""
    if isinstance(audio, KWMLPEmbedder) and not isinstance(model, KWMLPEmbedder):
        raise TypeError(f"{function} takes (audio, model); the arguments are swapped")
    if not isinstance(model, KWMLPEmbedder):
        raise TypeError(f"model must come from kwmlp.load_model(), got {type(model).__name__}")
    return model


def _is_int(value: object) -> bool:
    """An integer (numpy's too), but not a bool: ``layer=True`` is a mistake, not 1."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_audio(audio: torch.Tensor) -> None:
    """Raise ``TypeError``/``ValueError`` for audio the pipeline cannot embed
    faithfully; the messages say how to fix it. Warns if the peak exceeds 1."""
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor of shape (n_sounds, n_samples), got "
                        f"{type(audio).__name__} (use torch.from_numpy for numpy arrays)")
    if audio.ndim != 2:
        hint = " (for a single 1-D sound pass audio[None])" if audio.ndim == 1 else ""
        raise ValueError(f"audio must be 2-D (n_sounds, n_samples), got shape "
                         f"{tuple(audio.shape)}{hint}")
    check_samples(audio)
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ValueError(f"audio is empty: shape {tuple(audio.shape)}")
    if audio.shape[1] <= MAX_CHANNELS < audio.shape[0]:
        # what soundfile returns for a multi-channel file: thousands of "sounds"
        # of a few samples each would be embedded without a word otherwise
        raise ValueError(f"audio of shape {tuple(audio.shape)} looks like (n_samples, "
                         f"n_channels); kwmlp takes mono (n_sounds, n_samples): mix down, "
                         f"e.g. audio.mean(dim=1)[None]")


def outside_stacklevel() -> int:
    """``warnings.warn``'s ``stacklevel``, for a warning raised by this function's
    caller, that names the first frame outside kwmlp and torch: the user's line,
    however deep in kwmlp (``classify`` -> ``recognize`` -> ...) the check runs."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and \
            frame.f_globals.get("__name__", "").partition(".")[0] in ("kwmlp", "torch"):
        frame, level = frame.f_back, level + 1
    return level


def check_samples(samples: torch.Tensor, *, name: str = "audio") -> None:
    """The checks of a tensor's samples (any shape) shared by ``check_audio``
    and ``kwmlp.Stream.push``: float (``TypeError``), with data (not on the
    meta device), finite and peaking at most ``MAX_PEAK`` (``ValueError``); warns
    if the peak exceeds 1, naming the user's line (``outside_stacklevel``). An
    empty tensor passes: whether it may be is the caller's rule."""
    if samples.is_complex():
        raise TypeError(f"{name} must be real float samples in [-1, 1], got {samples.dtype}")
    if not samples.is_floating_point():
        raise TypeError(f"{name} must be float in [-1, 1], got {samples.dtype}; scale integer "
                        f"PCM first, e.g. {name}.float() / 32768 for int16")
    if samples.is_meta:
        raise ValueError(f"{name} is on the meta device, which holds shapes but no samples; "
                         f"pass a tensor with data (e.g. on 'cpu')")
    if samples.numel() == 0:
        return
    # One reduction, no audio-sized temporaries (isfinite/abs would each copy an
    # hour-long clip): NaN propagates into both extremes and inf shows in one.
    low, high = (value.item() for value in torch.aminmax(samples))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf samples")
    peak = max(-low, high)
    if peak > MAX_PEAK:
        raise ValueError(f"{name} peaks at {peak:.3g}, far outside [-1, 1]: its power would "
                         f"overflow float32 and every output be NaN; scale it to [-1, 1]")
    if peak > 1.0:
        warnings.warn(f"{PEAK_WARNING} {peak:.3g} exceeds 1.0; kwmlp expects float audio in "
                      f"[-1, 1] and does not clip or rescale it",
                      stacklevel=outside_stacklevel())


@contextlib.contextmanager
def peak_warned_already() -> Iterator[None]:
    """Silence ``check_samples``' peak warning inside: for audio from
    ``load_audio``, which has warned about a loud file already, naming it (what
    else exceeds 1 is resampling overshoot of full-scale audio)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEAK_WARNING)
        yield


def n_timestamps(n_padded_samples: int) -> int:
    """Frames reported for a sound of ``n_padded_samples`` (after the 5/15 ms
    padding): one per 10 ms hop whose 30 ms window fits. The float expression
    is the published one, kept verbatim so the count matches it exactly."""
    return int((1000 * n_padded_samples / SAMPLE_RATE - WINDOW_MS) / HOP_MS + 1)


def extend_chunk_frames(frames: torch.Tensor) -> torch.Tensor:
    """``(n, 98, dim)`` -> ``(n, 100, dim)``: a 1 s chunk spans 100 hops, so its
    first and last frame are repeated, as the published code did."""
    return torch.cat([frames[:, :1], frames, frames[:, -1:]], dim=1)


class KWMLPEmbedder(nn.Module):
    """Frontend + encoder + pooling: ``(n_sounds, n_samples)`` 16 kHz audio to
    HEAR embeddings, as ``load_model`` returns it.

    ``layer`` takes embeddings after that many blocks (paper §6.3; default:
    all). ``pooling`` is ``"iterative"`` (published), ``"single"`` or ``"mean"``
    (§6.1). ``scene_frames="all"`` pools every stitched frame, padding included
    (published); ``"audio"`` pools only the frames that are timestamped.
    ``chunk_batch_size`` bounds how many 1 s chunks are in flight at once.
    ``weights_path`` and ``metadata`` say where the encoder's weights came from.

    Embedding runs without autograd and never drops blocks, so results are
    the same in train and eval mode and come back as ordinary tensors.
    """

    # HEAR common API attributes.
    sample_rate: int = SAMPLE_RATE
    timestamp_embedding_size: int
    scene_embedding_size: int

    def __init__(self, encoder: KWMLP, *, layer: Optional[int] = None,
                 pooling: str = "iterative", scene_frames: str = "all",
                 frontend: str = "nnaudio",
                 chunk_batch_size: int = DEFAULT_CHUNK_BATCH_SIZE,
                 weights_path: PathLike = "", metadata: Optional[Mapping] = None) -> None:
        super().__init__()
        layer = encoder.depth if layer is None else layer
        if not _is_int(layer) or not 1 <= layer <= encoder.depth:
            raise ValueError(f"layer must be an int in 1..{encoder.depth}, got {layer!r}")
        if pooling not in POOLING_METHODS:
            raise ValueError(f"pooling must be one of {POOLING_METHODS}, got {pooling!r}")
        if scene_frames not in SCENE_FRAMES:
            raise ValueError(f"scene_frames must be one of {SCENE_FRAMES}, got {scene_frames!r}")
        if frontend not in BACKENDS:
            raise ValueError(f"frontend must be one of {BACKENDS}, got {frontend!r}")
        if not _is_int(chunk_batch_size) or chunk_batch_size < 1:
            raise ValueError(f"chunk_batch_size must be a positive int, got {chunk_batch_size!r}")
        self.encoder = encoder
        self.mfcc = MFCC(backend=frontend)
        self.layer, self.pooling, self.scene_frames = int(layer), pooling, scene_frames
        self.chunk_batch_size = int(chunk_batch_size)
        self.timestamp_embedding_size = encoder.dim
        self.scene_embedding_size = encoder.dim * SCENE_STEPS
        self.weights_path = str(weights_path)
        self.metadata = dict(metadata or {})

    # pipeline

    def embed_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """``(n, CHUNK_SAMPLES)`` 1 s chunks -> ``(n, 98, dim)`` timestamp embeddings."""
        return self.encoder.embed(self.mfcc(chunks), self.layer)

    @torch.no_grad()
    def classify_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """``(n, CHUNK_SAMPLES)`` 1 s chunks -> keyword logits ``(n, n_classes)``
        from all blocks (``layer`` does not apply), never dropping blocks."""
        features = self.encoder.forward_features(self.mfcc(chunks), stochastic_depth=False)
        return self.encoder.classify(features)

    def map_chunks(self, stage: Callable[[torch.Tensor], torch.Tensor], chunks: torch.Tensor
                   ) -> Iterator[Tuple[int, torch.Tensor]]:
        """``stage`` (``embed_chunks``, ``classify_chunks``) over ``(n,
        CHUNK_SAMPLES)`` float chunks (a view is fine), ``chunk_batch_size`` at a
        time as float32 on the model's device: ``(first row, stage's output)`` per
        batch, so memory is bounded however many chunks."""
        for first in range(0, len(chunks), self.chunk_batch_size):
            batch = chunks[first:first + self.chunk_batch_size]
            yield first, stage(batch.to(self.device, torch.float32).contiguous())

    def forward(self, audio: torch.Tensor) -> Tuple[torch.Tensor, int]:
        """``(n_sounds, n_samples)`` 16 kHz float audio -> all stitched frames
        ``(n_sounds, 100 * n_chunks - 2, dim)`` on the model's device, and how
        many of them (from the first) carry timestamps."""
        self.check_input(audio)
        return self._frames(audio)

    def embed(self, audio: torch.Tensor, kind: str = "both") -> Dict[str, torch.Tensor]:
        """``(n_sounds, n_samples)`` 16 kHz float audio -> from one encoder pass,
        ``"embedding"`` ``(n_sounds, T, dim)`` and ``"timestamps"`` ``(n_sounds,
        T)`` in ms (10, 20, ...) when ``kind`` is "both" or "timestamp", and
        ``"scene"`` ``(n_sounds, 1024)`` when it is "both" or "scene"; float32,
        on ``audio``'s device."""
        if kind not in EMBEDDING_KINDS:
            raise ValueError(f"kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
        self.check_input(audio)
        if kind != "timestamp" and self.scene_frames == "audio" \
                and audio.shape[1] < MIN_TIMESTAMPED_SAMPLES:
            raise ValueError(
                f"scene_frames='audio' pools only timestamped frames, and a sound of "
                f"{audio.shape[1]} samples has none (the first needs "
                f"{MIN_TIMESTAMPED_SAMPLES}, {HOP_MS:g} ms); pad the audio or use "
                f"scene_frames='all'")
        frames, count = self._frames(audio, every_frame=kind != "timestamp"
                                     and self.scene_frames == "all")
        out = {}
        if kind != "scene":
            times_ms = HOP_MS * torch.arange(1, count + 1, dtype=torch.float32)
            out["embedding"] = frames[:, :count].contiguous()
            out["timestamps"] = times_ms.expand(len(frames), count).contiguous()
        if kind != "timestamp":
            pooled = frames[:, :count] if self.scene_frames == "audio" else frames
            out["scene"] = scene_embedding(pooled, self.pooling)
        return {name: tensor.to(audio.device) for name, tensor in out.items()}

    @property
    def device(self) -> torch.device:
        """Where the model's weights are, and so where it computes."""
        return self.encoder.patch_embed.weight.device

    def check_input(self, audio: torch.Tensor) -> None:
        """Raise (``TypeError``/``ValueError``) unless ``audio`` is ``(n_sounds,
        n_samples)`` finite float audio this model can take."""
        check_audio(audio)
        self.check_weights()

    def check_weights(self) -> None:
        """Raise ``TypeError`` unless the weights are float32, as ``load_model`` gives
        them (kwmlp computes in float32; ``.double()``/``.half()`` would fail deep in
        torch)."""
        dtype = self.encoder.patch_embed.weight.dtype
        if dtype != torch.float32:
            raise TypeError(f"the model's weights are {dtype}, but kwmlp computes in float32; "
                            f"use the model as load_model returns it (no .double()/.half())")

    @torch.no_grad()
    def _frames(self, audio: torch.Tensor, every_frame: bool = True
                ) -> Tuple[torch.Tensor, int]:
        # Each chunk's extended 100-frame block is written straight to its place
        # in the stitched sequence (blocks end to end, minus the first and last
        # frame of the whole), so no second copy of the frames is ever made;
        # without every_frame only the timestamped ones are kept.
        n_padded = PAD_START_SAMPLES + audio.shape[1] + PAD_END_SAMPLES
        per_sound, count = n_chunks(n_padded), n_timestamps(n_padded)
        kept = BLOCK_FRAMES * per_sound - 2 if every_frame else count
        frames = torch.empty(audio.shape[0], kept, self.timestamp_embedding_size,
                             dtype=torch.float32, device=self.device)
        row = 0
        for batch in chunk_batches(audio, batch_size=self.chunk_batch_size, device=self.device,
                                   pad_start=PAD_START_SAMPLES, pad_end=PAD_END_SAMPLES):
            for block in extend_chunk_frames(self.embed_chunks(batch)):
                sound, chunk = divmod(row, per_sound)
                start = chunk * BLOCK_FRAMES - 1  # where the block's first frame lands
                lo, hi = max(start, 0), min(start + BLOCK_FRAMES, kept)
                if lo < hi:
                    frames[sound, lo:hi] = block[lo - start:hi - start]
                row += 1
        return frames, count

    # provenance

    def model_id(self) -> str:
        """``kwmlp-`` and 12 hex digits of a SHA-256 over every weight, the keyword
        head's included (a fitted head is another model, though its embeddings are the
        base model's): the same weights give the same id whichever file held them."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"kwmlp-{digest.hexdigest()[:12]}"

    def model_options(self) -> str:
        """The options that change the embeddings, as ``key=value`` words."""
        return (f"layer={self.layer} pooling={self.pooling} scene_frames={self.scene_frames} "
                f"frontend={self.mfcc.backend}")
