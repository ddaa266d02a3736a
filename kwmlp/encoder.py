"""KW-MLP: the gated-MLP encoder over one MFCC chunk (paper §3.2, eq. 1-2).

Shapes: an MFCC chunk is ``(batch, n_mfcc, n_frames)``; inside the encoder the
sequence is ``(batch, n_frames, dim)``, one row per 10 ms frame.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class SplitLinear(nn.Linear):
    """``nn.Linear(dim, dim_ff)`` (same parameters, init and state-dict keys)
    whose output ``(batch, frames, dim_ff)`` comes as its two halves, res and
    gate, stacked: ``(2, batch, frames, dim_ff // 2)``, each half contiguous,
    so the gate's LayerNorm and GEMM need no copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, dim = x.shape
        weight = self.weight.view(2, -1, dim).transpose(1, 2)  # (2, dim, dim_ff // 2)
        bias = self.bias.view(2, 1, -1)
        halves = torch.baddbmm(bias, x.reshape(1, batch * frames, dim).expand(2, -1, -1), weight)
        # The half width spelt out, not -1: a batch of 0 has no size to infer it
        # from (in torch and in the exported ONNX Reshape alike).
        return halves.view(2, batch, frames, self.out_features // 2)


class FrameProjection(nn.Conv1d):
    """The paper's T x T frame-mixing matrix G: ``nn.Conv1d(n_frames,
    n_frames, kernel_size=1)`` over ``(batch, frames, channels)``, computed as
    one batched GEMM, which on CPU is several times faster than the conv
    kernel (``benchmarks/README.md``)."""

    def __init__(self, n_frames: int) -> None:
        super().__init__(n_frames, n_frames, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.squeeze(-1).expand(x.shape[0], -1, -1)
        return torch.baddbmm(self.bias[:, None], weight, x)


class SpatialGatingUnit(nn.Module):
    """``res * G(LayerNorm(gate))`` for the two halves of the block's
    ``dim_ff`` features, where G mixes the frames."""

    def __init__(self, *, dim_ff: int, n_frames: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim_ff // 2)
        self.proj = FrameProjection(n_frames)
        # Start with G ~ 0 and bias 1 so every block begins as a plain MLP
        # (gate ~ 1); the temporal mixing is then learned (gMLP, §3.2).
        init_eps = 1e-3 / n_frames
        nn.init.uniform_(self.proj.weight, -init_eps, init_eps)
        nn.init.constant_(self.proj.bias, 1.0)

    def forward(self, res: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """``res``, ``gate``: ``(batch, frames, dim_ff // 2)`` each."""
        return res * self.proj(self.norm(gate))


class GatedMLPBlock(nn.Module):
    """One residual branch, post-norm: returns ``LayerNorm(V g(GELU(x U)))``;
    the caller adds it to ``x``. ``(batch, frames, dim) -> (batch, frames, dim)``."""

    def __init__(self, *, dim: int, dim_ff: int, n_frames: int) -> None:
        super().__init__()
        self.proj_in = SplitLinear(dim, dim_ff)
        self.sgu = SpatialGatingUnit(dim_ff=dim_ff, n_frames=n_frames)
        self.proj_out = nn.Linear(dim_ff // 2, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res, gate = F.gelu(self.proj_in(x)).unbind(0)
        return self.norm(self.proj_out(self.sgu(res, gate)))


class KWMLP(nn.Module):
    """Keyword-MLP: patch embedding, ``depth`` gated-MLP blocks, classifier head.

    ``forward_features`` gives per-frame hidden states, ``embed`` the
    timestamp embeddings the published model emits (hidden states through a
    LayerNorm without learned affine), ``forward`` the class logits used for
    training.
    """

    def __init__(
        self,
        *,
        n_mfcc: int = 40,
        n_frames: int = 98,
        dim: int = 64,
        dim_ff: int = 256,
        depth: int = 12,
        n_classes: int = 35,
        block_survival: float = 0.9,
    ) -> None:
        super().__init__()
        for name, value in [("n_mfcc", n_mfcc), ("n_frames", n_frames), ("dim", dim),
                            ("dim_ff", dim_ff), ("depth", depth)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(n_classes, int) or n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0 (0: no classifier), got "
                             f"{n_classes!r}")
        if dim_ff % 2:
            raise ValueError(f"dim_ff must be even (it is split into res and gate), got {dim_ff}")
        if not 0.0 < block_survival <= 1.0:
            raise ValueError(f"block_survival must be in (0, 1], got {block_survival}")
        self.n_mfcc, self.n_frames, self.dim, self.depth = n_mfcc, n_frames, dim, depth
        self.block_survival = block_survival
        self.patch_embed = nn.Linear(n_mfcc, dim)
        self.blocks = nn.ModuleList(
            GatedMLPBlock(dim=dim, dim_ff=dim_ff, n_frames=n_frames) for _ in range(depth)
        )
        # n_classes=0: an encoder for embeddings only, without the classifier (a
        # published checkpoint saved without its to_logits; the HEAR API needs none).
        self.head_norm = nn.LayerNorm(dim) if n_classes else None
        self.head = nn.Linear(dim, n_classes) if n_classes else None

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture."""
        return dict(n_mfcc=self.n_mfcc, n_frames=self.n_frames, dim=self.dim,
                    dim_ff=self.blocks[0].proj_in.out_features, depth=self.depth,
                    n_classes=self.head.out_features if self.head is not None else 0,
                    block_survival=self.block_survival)

    def _active_blocks(self, layer: int) -> list:
        blocks = list(self.blocks[:layer])
        if not self.training or self.block_survival == 1.0:
            return blocks
        # Stochastic depth: drop whole blocks, but never all of them.
        keep = torch.rand(len(blocks)) < self.block_survival
        if not keep.any():
            keep[torch.randint(len(blocks), ())] = True
        return [block for block, k in zip(blocks, keep) if k]

    def forward_features(self, mfcc: torch.Tensor, layer: Optional[int] = None, *,
                         stochastic_depth: bool = True) -> torch.Tensor:
        """``(batch, n_mfcc, n_frames)`` MFCC -> ``(batch, n_frames, dim)`` hidden
        states after the first ``layer`` blocks (all of them by default). In
        train mode, ``stochastic_depth`` drops blocks at random."""
        layer = self.depth if layer is None else layer
        if not 1 <= layer <= self.depth:
            raise ValueError(f"layer must be in 1..{self.depth}, got {layer}")
        x = self.patch_embed(mfcc.transpose(1, 2))
        for block in self._active_blocks(layer) if stochastic_depth else self.blocks[:layer]:
            x = x + block(x)
        return x

    def embed(self, mfcc: torch.Tensor, layer: Optional[int] = None) -> torch.Tensor:
        """Timestamp embeddings ``(batch, n_frames, dim)``, one per 10 ms frame;
        every block runs in train mode too, so embeddings never depend on the
        mode (stochastic depth regularises training through ``forward``)."""
        return F.layer_norm(self.forward_features(mfcc, layer, stochastic_depth=False),
                            (self.dim,))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Hidden states after all blocks ``(batch, n_frames, dim)`` -> class
        logits ``(batch, n_classes)``: norm, mean over frames, linear head."""
        if self.head is None:
            raise ValueError("this KWMLP has no classifier (n_classes=0): it gives "
                             "embeddings only")
        return self.head(self.head_norm(features).mean(dim=1))

    def embed_and_classify(self, mfcc: torch.Tensor,
                           layer: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``embed(mfcc, layer)`` and the logits of all blocks from one pass
        through the blocks (no stochastic depth): ``(batch, n_frames, dim)``,
        ``(batch, n_classes)``."""
        layer = self.depth if layer is None else layer
        features = self.forward_features(mfcc, layer, stochastic_depth=False)
        embeddings = F.layer_norm(features, (self.dim,))
        for block in self.blocks[layer:]:
            features = features + block(features)
        return embeddings, self.classify(features)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mfcc, n_frames)`` -> class logits ``(batch, n_classes)``."""
        return self.classify(self.forward_features(mfcc))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
