"""Streaming: 16 kHz samples in, in pieces of any size; timestamp embeddings,
keyword probabilities and detections out as soon as they are final.

``Stream`` gives exactly what the offline API gives for the whole audio pushed
so far (to float rounding, ~1e-6):

- *embeddings*: the frames of ``get_timestamp_embeddings`` (same values, same
  times 10, 20, ... ms). The offline pipeline cuts the padded audio (80 zeros
  first) into fixed 1 s chunks and the encoder mixes all 98 frames of a chunk,
  so a chunk's frames are final only once the whole chunk has arrived: the
  frames of chunk ``c`` (times ``1000 c`` .. ``1000 c + 990`` ms, 99 for the
  first chunk) come out when sample ``16000 (c + 1) - 80`` arrives, i.e. when
  the audio reaches ``1000 c + 995`` ms. Latency: a frame at ``t`` ms comes out
  5 to 995 ms after ``t`` (500 ms on average), plus compute. (Its 30 ms window
  ends at ``t + 15``; the last frame of each chunk is the published stitching's
  copy of the one before, so it is out before its nominal window ends.)
- *keyword probabilities*: the windows of ``kwmlp.recognize(audio, model,
  hop_ms)``: window ``k`` (``[k hop, k hop + 1000)`` ms) comes out when its last
  sample arrives, so its probabilities lag the audio by the compute time only;
  but a word is scored only once a whole 1 s window holds it.
- *detections*: ``kwmlp.keywords.Spotter`` on those windows, as ``kwmlp.spot``;
  a detection is reported when its run of firing windows ends (the next window
  no longer fires, or ``flush``), so up to ~1 s after the word ends.

``flush`` ends the stream as the offline API ends the audio: the last chunk
and window are zero-padded, and only the frames the offline API timestamps are
returned. ``reset`` starts a new stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, List, Optional

import numpy as np
import torch

from .audio import read_pcm16
from .embedder import (BLOCK_FRAMES, HOP_MS, PAD_END_SAMPLES, PAD_START_SAMPLES,
                       KWMLPEmbedder, check_model, check_samples, extend_chunk_frames,
                       n_timestamps)
from .errors import KwmlpError
from .frontend import CHUNK_SAMPLES, SAMPLE_RATE, n_chunks
from .keywords import (DEFAULT_HOP_MS, DEFAULT_REFRACTORY_MS, Detection, Spotter,
                       clip_detection, head_labels, hop_samples, keyword_probabilities,
                       model_threshold, n_windows)
from .vocabulary import keywords_of


def _zeros(*shape: int) -> torch.Tensor:
    """float32 zeros whatever torch's default dtype (kwmlp computes in float32)."""
    return torch.zeros(*shape, dtype=torch.float32)


@dataclass
class StreamOutput:
    """What one ``push``/``flush`` made available: ``embedding`` ``(n_frames,
    dim)`` with ``timestamps`` ``(n_frames,)`` ms; ``probabilities``
    ``(n_windows, n_words)`` of the keywords and ``no_keyword`` ``(n_windows,)``
    (as ``kwmlp.Recognition``) for the 1 s windows starting at
    ``window_start_ms`` ``(n_windows,)``; the ``detections`` that ended.
    Float32 CPU tensors."""

    embedding: torch.Tensor
    timestamps: torch.Tensor
    probabilities: torch.Tensor
    window_start_ms: torch.Tensor
    no_keyword: torch.Tensor
    detections: List[Detection] = field(default_factory=list)


def _joined(outputs: List[StreamOutput]) -> StreamOutput:
    """One ``StreamOutput`` of consecutive ones, in order."""
    if len(outputs) == 1:
        return outputs[0]
    tensors = {name: torch.cat([getattr(o, name) for o in outputs])
               for name in ("embedding", "timestamps", "probabilities", "window_start_ms",
                            "no_keyword")}
    return StreamOutput(**tensors, detections=[d for o in outputs for d in o.detections])


def _tensor_from_numpy(samples: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy``, also for what it refuses: a byte-swapped
    (big-endian) or negative-stride array is copied to native order first, a
    non-numeric one is a ``TypeError`` in kwmlp's words."""
    if samples.dtype.kind not in "biuf":
        raise TypeError(f"samples must be float in [-1, 1], got a numpy array of "
                        f"{samples.dtype}")
    if not samples.dtype.isnative or any(stride < 0 for stride in samples.strides):
        samples = samples.astype(samples.dtype.newbyteorder("="), order="C")
    return torch.from_numpy(samples)


class Stream:
    """A live stream through ``model`` (from ``kwmlp.load_model``); see the
    module docstring for what comes out when. ``keywords=False`` skips the
    head (needed for a published-layout checkpoint, which has none kwmlp can
    name); ``embeddings=False`` skips the timestamp embeddings."""

    def __init__(self, model: KWMLPEmbedder, *, hop_ms: float = DEFAULT_HOP_MS,
                 threshold: Optional[float] = None,
                 refractory_ms: float = DEFAULT_REFRACTORY_MS,
                 embeddings: bool = True, keywords: bool = True) -> None:
        check_model(model)
        for name, value in (("embeddings", embeddings), ("keywords", keywords)):
            if not isinstance(value, bool):  # keywords=["yes"] would read as True
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if not (embeddings or keywords):
            raise ValueError("a stream with embeddings=False and keywords=False has no output")
        model.check_weights()
        self.model, self.embeddings, self.keywords = model, embeddings, keywords
        self.hop = hop_samples(hop_ms)
        self.labels = head_labels(model) if keywords else ()
        self.words = keywords_of(self.labels)
        self.spotter = Spotter(self.words, hop_ms=hop_ms,
                               threshold=model_threshold(model, threshold),
                               refractory_ms=refractory_ms) if keywords else None
        self.reset()

    def reset(self) -> None:
        """Forget all audio: the next sample pushed is time 0."""
        self._buffer = _zeros(0)  # samples from self._offset on
        self._offset = 0  # absolute index of self._buffer[0]
        self._received = 0
        self._next_chunk = 0
        self._next_window = 0
        self._flushed = False
        if self.spotter:
            self.spotter.reset()

    def push(self, samples) -> StreamOutput:
        """Append ``(n,)`` 16 kHz float samples in [-1, 1] (tensor or numpy
        array, any ``n`` >= 0); returns what became final."""
        if self._flushed:
            raise KwmlpError("the stream was flushed; call reset() to start a new one")
        samples = self._check(samples)
        # A long push is taken a batch of windows at a time, so its memory is bounded by
        # the model's chunk_batch_size, not by its length; the outputs are the same.
        piece = self.hop * self.model.chunk_batch_size
        return _joined([self._append(samples[i:i + piece])
                        for i in range(0, max(1, len(samples)), piece)])

    def flush(self) -> StreamOutput:
        """End the stream: the rest, as the offline API computes the end."""
        if self._flushed:
            raise KwmlpError("the stream was already flushed; call reset() to start a new one")
        self._flushed = True
        return self._emit(final=True)

    # internals

    def _append(self, samples: torch.Tensor) -> StreamOutput:
        self._buffer = torch.cat([self._buffer, samples])
        self._received += len(samples)
        return self._emit(final=False)

    def _check(self, samples) -> torch.Tensor:
        if isinstance(samples, np.ndarray):
            samples = _tensor_from_numpy(samples)
        if not isinstance(samples, torch.Tensor):
            raise TypeError(f"push takes a torch tensor or numpy array of samples, got "
                            f"{type(samples).__name__}")
        if samples.ndim != 1:
            raise ValueError(f"push takes 1-D samples (n,), got shape {tuple(samples.shape)}")
        check_samples(samples, name="samples")  # the offline API's checks and peak warning
        return samples.detach().float().cpu()

    def _span(self, start: int) -> torch.Tensor:
        """Samples ``[start, start + CHUNK_SAMPLES)`` (absolute; zeros outside
        what was received, as the offline padding)."""
        out = _zeros(CHUNK_SAMPLES)
        lo, hi = max(start, self._offset), min(start + CHUNK_SAMPLES, self._received)
        if hi > lo:
            out[lo - start:hi - start] = self._buffer[lo - self._offset:hi - self._offset]
        return out

    @torch.no_grad()
    def _emit(self, final: bool) -> StreamOutput:
        n = self._received
        embedding, timestamps = self._frames(n, final)
        probabilities, no_keyword, window_start_ms, detections = self._windows(n, final)
        keep_from = min(([self._next_chunk * CHUNK_SAMPLES - PAD_START_SAMPLES]
                         if self.embeddings else [])
                        + ([self._next_window * self.hop] if self.keywords else []))
        if keep_from > self._offset:  # drop samples no chunk or window needs any more
            self._buffer = self._buffer[keep_from - self._offset:]
            self._offset = keep_from
        return StreamOutput(embedding, timestamps, probabilities, window_start_ms, no_keyword,
                            detections)

    def _frames(self, n: int, final: bool):
        dim = self.model.timestamp_embedding_size
        if not self.embeddings:
            return _zeros(0, dim), _zeros(0)
        # Chunk c covers padded samples [16000 c, 16000 (c + 1)), i.e. audio from
        # 16000 c - 80; complete once that much audio is in, or at the end.
        if final:
            last = n_chunks(PAD_START_SAMPLES + n + PAD_END_SAMPLES) if n else 0
        else:
            last = (n + PAD_START_SAMPLES) // CHUNK_SAMPLES
        first, self._next_chunk = self._next_chunk, max(self._next_chunk, last)
        if last <= first:
            return _zeros(0, dim), _zeros(0)
        chunks = torch.stack([self._span(c * CHUNK_SAMPLES - PAD_START_SAMPLES)
                              for c in range(first, last)])
        blocks = extend_chunk_frames(self._run(self.model.embed_chunks, chunks))
        frames = blocks.reshape(-1, dim)
        index = torch.arange(first * BLOCK_FRAMES, last * BLOCK_FRAMES) - 1  # stitched index
        # Stitching drops the very first frame; the offline API stamps the
        # first n_timestamps frames, all of a complete chunk's and fewer at the end.
        stamped = n_timestamps(PAD_START_SAMPLES + n + PAD_END_SAMPLES) if final else index[-1] + 1
        keep = (index >= 0) & (index < stamped)
        return frames[keep], HOP_MS * (index[keep] + 1).float()

    def _windows(self, n: int, final: bool):
        n_words = len(self.words)
        if not self.keywords:
            return _zeros(0, n_words), _zeros(0), _zeros(0), []
        if final:
            last = n_windows(n, self.hop) if n else 0
        else:
            last = 0 if n < CHUNK_SAMPLES else (n - CHUNK_SAMPLES) // self.hop + 1
        first, self._next_window = self._next_window, max(self._next_window, last)
        detections: List[Detection] = []
        if last <= first:
            probabilities, no_keyword = _zeros(0, n_words), _zeros(0)
            starts = _zeros(0)
        else:
            windows = torch.stack([self._span(k * self.hop) for k in range(first, last)])
            probabilities, no_keyword = keyword_probabilities(
                self._run(self.model.classify_chunks, windows), self.labels)
            starts = torch.arange(first, last, dtype=torch.float32) * self.hop * 1000 / SAMPLE_RATE
            detections = [d for row, start in zip(probabilities, starts.tolist())
                          if (d := self.spotter.update(row, start))]
        if final:
            end_ms = 1000 * n / SAMPLE_RATE
            detections += [d for d in [self.spotter.finish()] if d]
            detections = [clip_detection(d, end_ms) for d in detections]
        return probabilities, no_keyword, starts, detections

    def _run(self, stage, chunks: torch.Tensor) -> torch.Tensor:
        """``stage`` over ``chunks`` (``KWMLPEmbedder.map_chunks``), on the CPU."""
        return torch.cat([out.cpu() for _, out in self.model.map_chunks(stage, chunks)])


def spot_pcm(reader: BinaryIO, model: KWMLPEmbedder, *, hop_ms: float = DEFAULT_HOP_MS,
             threshold: Optional[float] = None,
             refractory_ms: float = DEFAULT_REFRACTORY_MS) -> Iterator[Detection]:
    """The keywords in raw 16 kHz mono s16le PCM read from ``reader`` (e.g.
    ``sys.stdin.buffer`` behind ``arecord -f S16_LE -r 16000 -c 1``), each
    yielded as soon as it ends, the last when the input ends: what ``kwmlp spot
    -`` prints. Reads ``hop_ms`` of audio at a time, so a live microphone is
    answered within about a window (1 s) of each word. Raises ``KwmlpError`` if
    the input ends before its first sample."""
    stream = Stream(model, hop_ms=hop_ms, threshold=threshold, refractory_ms=refractory_ms,
                    embeddings=False)
    heard = False
    for block in read_pcm16(reader, stream.hop):
        heard = True
        yield from stream.push(block).detections
    if not heard:
        raise KwmlpError("no audio on the input (raw 16 kHz mono s16le PCM expected)")
    yield from stream.flush().detections
