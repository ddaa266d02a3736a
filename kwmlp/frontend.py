"""Audio -> 1 s chunks -> MFCC, as the encoder expects (paper §3.1, appendix A).

The MFCC is defined by nnAudio (conv1d STFT, Slaney mel filterbank, dB with a
per-chunk ``top_db`` floor, orthonormal DCT-II). ``backend="fft"`` computes the
same thing with an FFT (``torch.fft.rfft``) and nnAudio's own filterbank, faster on
CPU; ``backend="nnaudio"`` runs nnAudio itself, for exact reference.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import torch
from torch import nn

SAMPLE_RATE = 16_000  # Hz
CHUNK_SAMPLES = SAMPLE_RATE  # the encoder sees 1 s at a time
N_MFCC = 40
N_MELS = 40
N_FFT = 480  # 30 ms window
HOP_SAMPLES = 160  # 10 ms hop
TOP_DB = 80.0
AMIN = 1e-10  # power floor before log10, as nnAudio
FRAMES_PER_CHUNK = 1 + (CHUNK_SAMPLES - N_FFT) // HOP_SAMPLES  # 98, center=False

BACKENDS = ("nnaudio", "fft")


def n_chunks(n_samples: int) -> int:
    """1 s chunks that cover ``n_samples`` samples (at least one)."""
    return max(1, math.ceil(n_samples / CHUNK_SAMPLES))


def chunk_batches(audio: torch.Tensor, *, batch_size: int, pad_start: int = 0,
                  pad_end: int = 0, device: Optional[torch.device] = None
                  ) -> Iterator[torch.Tensor]:
    """The 1 s chunks of every sound, ``batch_size`` at a time, in (sound,
    chunk) order, as float32 ``(<= batch_size, CHUNK_SAMPLES)`` on ``device``.

    Each sound of ``audio`` ``(n_sounds, n_samples)`` is taken as if padded
    with ``pad_start`` zeros before, ``pad_end`` after, and then zeros to whole
    seconds; only one batch is ever materialised, so memory stays bounded
    however long the audio.
    """
    n_sounds, n_samples = audio.shape
    per_sound = n_chunks(pad_start + n_samples + pad_end)
    ids = range(n_sounds * per_sound)
    for first in range(0, len(ids), batch_size):
        block = ids[first:first + batch_size]
        batch = torch.zeros(len(block), CHUNK_SAMPLES, dtype=torch.float32, device=device)
        for row, flat in enumerate(block):
            sound, chunk = divmod(flat, per_sound)
            start = chunk * CHUNK_SAMPLES - pad_start  # chunk start, in unpadded samples
            lo, hi = max(start, 0), min(start + CHUNK_SAMPLES, n_samples)
            if hi > lo:
                batch[row, lo - start:hi - start] = audio[sound, lo:hi]
        yield batch


def nnaudio_mfcc() -> nn.Module:
    """nnAudio's MFCC layer with the paper's settings (40 coefficients, 40 mel
    bands, 30 ms windows every 10 ms): the reference the ``fft`` backend and the
    ONNX export reproduce. float32 whatever torch's default dtype."""
    from nnAudio.features import MFCC as NNAudioMFCC

    return NNAudioMFCC(
        sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_mels=N_MELS, n_fft=N_FFT, win_length=N_FFT,
        hop_length=HOP_SAMPLES, center=False, verbose=False,
    ).float()


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II as a float64 ``(n, n)`` matrix: ``coeffs = dct_matrix(n) @ x``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (2 * i + 1) / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis


class MFCC(nn.Module):
    """``(batch, CHUNK_SAMPLES)`` 16 kHz audio -> ``(batch, N_MFCC, FRAMES_PER_CHUNK)``."""

    def __init__(self, *, backend: str = "nnaudio") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        reference = nnaudio_mfcc()
        if backend == "nnaudio":
            self.nnaudio = reference
        else:
            self.register_buffer("window", torch.hann_window(N_FFT, periodic=True,
                                                             dtype=torch.float32))
            # Frames first, so the mel and DCT products are one GEMM each.
            self.register_buffer("mel_basis_t", reference.melspec_layer.mel_basis.t().contiguous())
            self.register_buffer("dct_t", mel_dct_t())

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        if len(chunks) == 0:  # both backends' FFTs (nnAudio's DCT too) refuse an empty batch
            return chunks.new_zeros(0, N_MFCC, FRAMES_PER_CHUNK)
        if self.backend == "nnaudio":
            if len(chunks) == 1:
                # PyTorch runs a batch of one through a different conv1d kernel
                # than oneDNN's, which rounds differently (~1e-5 on the MFCC,
                # ~2e-5 on the embeddings): a sound's embedding would depend on
                # what it was batched with. A batch of two takes oneDNN's path.
                return self.nnaudio(chunks.expand(2, -1))[:1]
            return self.nnaudio(chunks)
        return self.mfcc_from_power(self.power(chunks))

    def power(self, chunks: torch.Tensor) -> torch.Tensor:
        """``fft`` backend, first half: ``(batch, CHUNK_SAMPLES)`` -> power spectrogram
        ``(batch, FRAMES_PER_CHUNK, N_FFT // 2 + 1)``. Split from ``mfcc_from_power`` so
        training can reshape the spectrum (warp, EQ) between the two."""
        frames = chunks.unfold(1, N_FFT, HOP_SAMPLES) * self.window  # (batch, frames, N_FFT)
        return torch.fft.rfft(frames).abs().square()

    def mfcc_from_power(self, power: torch.Tensor) -> torch.Tensor:
        """``fft`` backend, second half: power ``(batch, frames, N_FFT // 2 + 1)`` ->
        MFCC ``(batch, N_MFCC, frames)``: mel filterbank, dB, per-chunk floor, DCT."""
        return mfcc_from_mel(power @ self.mel_basis_t, self.dct_t)


def mel_dct_t() -> torch.Tensor:
    """The DCT as ``mfcc_from_mel`` applies it: float64 ``(N_MELS, N_MFCC)``."""
    return dct_matrix(N_MELS)[:N_MFCC].t().contiguous()


def mfcc_from_mel(mel: torch.Tensor, dct_t: torch.Tensor) -> torch.Tensor:
    """Mel power ``(batch, frames, N_MELS)`` -> MFCC ``(batch, N_MFCC, frames)``: dB,
    per-chunk floor, DCT (``dct_t`` from ``mel_dct_t``), as nnAudio computes them.
    dB and DCT run in float64: in float32 the DCT alone is off by up to ~1.5e-4 on
    coefficients of magnitude ~600."""
    db = 10.0 * torch.log10(torch.clamp(mel.double(), min=AMIN))
    # nnAudio floors each chunk at its own max - top_db (ref = 1, so no offset).
    floor = db.amax(dim=(1, 2), keepdim=True) - TOP_DB
    return (torch.maximum(db, floor) @ dct_t).to(mel.dtype).transpose(1, 2)
