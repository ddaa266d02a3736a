"""Independent numpy re-implementation of KW-MLP inference, written from the
paper's equations (§3.1-3.3) and the published behaviour, sharing no code
with the package. Parameters use the published checkpoint's key names."""
from __future__ import annotations

import math

import numpy as np
from scipy.fft import dct
from scipy.special import erf

SR = 16000


# ---------------------------------------------------------------- parameters
def random_published_params(rng: np.random.Generator, *, n_mfcc=40, n_frames=98, dim=64,
                            dim_ff=256, depth=12, n_classes=35) -> dict:
    """Random tensors under the published ``kwmlp.pth`` key names. Scales are
    chosen so every term (LayerNorm affines, gate bias, temporal mix) matters."""
    def normal(*shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    p = {"to_patch_embed.1.weight": normal(dim, n_mfcc, scale=0.02),
         "to_patch_embed.1.bias": normal(dim, scale=0.1)}
    for i in range(depth):
        pre = f"layers.{i}.fn"
        p[f"{pre}.norm.weight"] = 1 + normal(dim, scale=0.2)
        p[f"{pre}.norm.bias"] = normal(dim, scale=0.1)
        p[f"{pre}.fn.proj_in.0.weight"] = normal(dim_ff, dim, scale=1 / math.sqrt(dim))
        p[f"{pre}.fn.proj_in.0.bias"] = normal(dim_ff, scale=0.1)
        p[f"{pre}.fn.sgu.norm.weight"] = 1 + normal(dim_ff // 2, scale=0.2)
        p[f"{pre}.fn.sgu.norm.bias"] = normal(dim_ff // 2, scale=0.1)
        p[f"{pre}.fn.sgu.proj.weight"] = normal(n_frames, n_frames, 1,
                                                scale=1 / math.sqrt(n_frames))
        p[f"{pre}.fn.sgu.proj.bias"] = 1 + normal(n_frames, scale=0.1)
        p[f"{pre}.fn.proj_out.weight"] = normal(dim, dim_ff // 2, scale=1 / math.sqrt(dim_ff // 2))
        p[f"{pre}.fn.proj_out.bias"] = normal(dim, scale=0.1)
    p["to_logits.0.weight"] = 1 + normal(dim, scale=0.2)
    p["to_logits.0.bias"] = normal(dim, scale=0.1)
    p["to_logits.2.weight"] = normal(n_classes, dim, scale=0.1)
    p["to_logits.2.bias"] = normal(n_classes, scale=0.1)
    return p


# ------------------------------------------------------------------ encoder
def layer_norm(x, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return y if weight is None else y * weight + bias


def gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def encoder_features(mfcc: np.ndarray, p: dict, layer: int | None = None) -> np.ndarray:
    """``(B, F, T)`` MFCC -> hidden states ``(B, T, d)`` after ``layer`` blocks,
    by eq. 1 (X_E = X_0 P_0) and eq. 2 with post-norm residuals."""
    depth = len({k.split(".")[1] for k in p if k.startswith("layers.")})
    layer = depth if layer is None else layer
    x = np.transpose(mfcc, (0, 2, 1)).astype(np.float64)
    x = x @ p["to_patch_embed.1.weight"].T + p["to_patch_embed.1.bias"]
    for i in range(layer):
        pre = f"layers.{i}.fn"
        z = gelu(x @ p[f"{pre}.fn.proj_in.0.weight"].T + p[f"{pre}.fn.proj_in.0.bias"])
        half = z.shape[-1] // 2
        z_r, z_g = z[..., :half], z[..., half:]
        z_g = layer_norm(z_g, p[f"{pre}.fn.sgu.norm.weight"], p[f"{pre}.fn.sgu.norm.bias"])
        G = p[f"{pre}.fn.sgu.proj.weight"][:, :, 0]
        # (Z_g^T G)^T with G acting on the time axis: out[t] = sum_s G[t, s] z_g[s] + b[t]
        z_g = np.einsum("ts,bsc->btc", G, z_g) + p[f"{pre}.fn.sgu.proj.bias"][None, :, None]
        y = (z_r * z_g) @ p[f"{pre}.fn.proj_out.weight"].T + p[f"{pre}.fn.proj_out.bias"]
        x = x + layer_norm(y, p[f"{pre}.norm.weight"], p[f"{pre}.norm.bias"])
    return x


def encoder_embed(mfcc, p, layer=None):
    """Published embedding output: LayerNorm without affine over d."""
    return layer_norm(encoder_features(mfcc, p, layer))


def encoder_logits(mfcc, p):
    h = layer_norm(encoder_features(mfcc, p), p["to_logits.0.weight"], p["to_logits.0.bias"])
    return h.mean(axis=1) @ p["to_logits.2.weight"].T + p["to_logits.2.bias"]


# ------------------------------------------------------------------ pooling
def interp_align_corners(x: np.ndarray, size: int) -> np.ndarray:
    """Linear interpolation of ``(T, d)`` along T to ``size`` rows, the first
    and last rows of input and output aligned."""
    n = x.shape[0]
    # Source positions in float32, as PyTorch computes them for float32 input
    # (scale = (n-1)/(size-1), pos = scale * j): the published embeddings carry
    # that rounding, up to ~2e-5 on unit-variance features at T ~ 200.
    scale = np.float32(n - 1) / np.float32(max(size - 1, 1))
    pos = (scale * np.arange(size, dtype=np.float32)).astype(np.float64)
    return np.stack([np.interp(pos, np.arange(n), x[:, f]) for f in range(x.shape[1])], axis=1)


def pad16(x):
    return np.concatenate([x, np.zeros((max(0, 16 - len(x)), x.shape[1]))]) if len(x) < 16 else x


def pool_iterative(x: np.ndarray) -> np.ndarray:
    """``(T, d)`` -> ``(16 * d,)`` by eq. 3, flattened feature-major."""
    x = pad16(x)
    steps = math.log2(len(x) / 16)
    for _ in range(int(math.floor(steps))):
        x = interp_align_corners(x, len(x) // 2)
    if steps != int(steps):
        x = interp_align_corners(x, 16)
    return x.T.reshape(-1)


def pool_single(x):
    return interp_align_corners(pad16(x), 16).T.reshape(-1)


def pool_mean(x):
    x = pad16(x)
    # group j holds frames [floor(j T / 16), floor((j + 1) T / 16))
    bounds = [j * len(x) // 16 for j in range(17)]
    groups = [range(bounds[j], bounds[j + 1]) for j in range(16)]
    return np.stack([x[list(g)].mean(axis=0) for g in groups], axis=1).reshape(-1)


# ------------------------------------------------------- published pipeline
def n_timestamps(n_padded):
    return int((1000 * n_padded / SR - 30) / 10 + 1)


def stitch(chunk_frames: list) -> np.ndarray:
    """List of per-chunk ``(98, d)`` arrays -> ``(100 * n - 2, d)``."""
    blocks = [np.concatenate([c[:1], c, c[-1:]]) for c in chunk_frames]
    return np.concatenate(blocks)[1:-1]


def published_embeddings(sound: np.ndarray, mfcc_fn, p: dict, layer=None):
    """One 1-D sound -> (timestamp embeddings, timestamps ms, scene embedding),
    following the published rules step by step. ``mfcc_fn`` maps a
    ``(n, 16000)`` float32 array to ``(n, 40, 98)`` MFCCs."""
    padded = np.concatenate([np.zeros(80), sound, np.zeros(240)]).astype(np.float32)
    n_chunks = max(1, math.ceil(len(padded) / SR))
    padded = np.concatenate([padded, np.zeros(n_chunks * SR - len(padded), np.float32)])
    mfcc = mfcc_fn(padded.reshape(n_chunks, SR))
    frames = encoder_embed(mfcc, p, layer)
    stitched = stitch(list(frames))
    n = n_timestamps(len(sound) + 320)
    return stitched[:n], 10.0 * np.arange(1, n + 1), pool_iterative(stitched)


# ------------------------------------------------------------------- MFCC
def hz_to_mel(f):
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, mel)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)),
                    m * (200.0 / 3))


def mel_filterbank(sr=SR, n_fft=480, n_mels=40):
    """Triangular Slaney-scale filters, area-normalised (norm=1 / 'slaney')."""
    fft_hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fb = np.zeros((n_mels, len(fft_hz)))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (fft_hz - lo) / (mid - lo)
        falling = (hi - fft_hz) / (hi - mid)
        fb[m] = np.maximum(0, np.minimum(rising, falling)) * 2.0 / (hi - lo)
    return fb


def mfcc(chunks: np.ndarray) -> np.ndarray:
    """``(n, 16000)`` -> ``(n, 40, 98)``: periodic Hann, 480-sample frames every
    160 samples (no centring), power spectrum, mel, 10 log10 with a 1e-10
    floor, each chunk floored at its max - 80 dB, orthonormal DCT-II."""
    chunks = np.asarray(chunks, dtype=np.float64)
    n_frames = 1 + (chunks.shape[1] - 480) // 160
    idx = np.arange(480)[None, :] + 160 * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(480) / 480)
    power = np.abs(np.fft.rfft(chunks[:, idx] * window, axis=-1)) ** 2  # (n, T, 241)
    mel = power @ mel_filterbank().T  # (n, T, 40)
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0)
    return np.transpose(dct(db, type=2, norm="ortho", axis=-1)[..., :40], (0, 2, 1))
