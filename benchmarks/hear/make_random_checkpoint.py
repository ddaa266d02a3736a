#!/usr/bin/env python3
"""Write a randomly initialised KW-MLP checkpoint, for checking that the HEAR
tools accept a checkpoint file (``hear-validator kwmlp -m FILE``) without the
trained weights.

``--layout published`` writes the published HEAR 2021 ``kwmlp.pth`` layout,
``{"model_state_dict": {...}}`` with the original Keyword-MLP key names. It is
built from plain torch modules, independently of ``kwmlp``, so loading it
tests kwmlp's key mapping rather than echoing it. ``--layout kwmlp`` writes the
project's own format through ``kwmlp.checkpoints.save_checkpoint``.

    python benchmarks/hear/make_random_checkpoint.py --layout published --out /tmp/kwmlp.pth
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import torch
from torch import nn

N_MFCC = 40
N_FRAMES = 98  # 1 s chunk: 1 + (16000 - 480) // 160
DIM = 64
DIM_FF = 256
DEPTH = 12
N_CLASSES = 35  # Google Speech Commands v2


def _prefixed(prefix: str, module: nn.Module) -> dict:
    return {f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()}


def published_state_dict(*, depth: int = DEPTH) -> dict:
    """Random-init tensors under the published key names. Linear layers use
    torch's default init, LayerNorms start at (1, 0), and each spatial gating
    projection starts near zero with bias 1, as gMLP initialises it."""
    state = {}
    state.update(_prefixed("to_patch_embed.1", nn.Linear(N_MFCC, DIM)))
    for i in range(depth):
        block = f"layers.{i}.fn"
        sgu_proj = nn.Conv1d(N_FRAMES, N_FRAMES, kernel_size=1)
        nn.init.uniform_(sgu_proj.weight, -1e-3 / N_FRAMES, 1e-3 / N_FRAMES)
        nn.init.constant_(sgu_proj.bias, 1.0)
        state.update(_prefixed(f"{block}.norm", nn.LayerNorm(DIM)))
        state.update(_prefixed(f"{block}.fn.proj_in.0", nn.Linear(DIM, DIM_FF)))
        state.update(_prefixed(f"{block}.fn.sgu.norm", nn.LayerNorm(DIM_FF // 2)))
        state.update(_prefixed(f"{block}.fn.sgu.proj", sgu_proj))
        state.update(_prefixed(f"{block}.fn.proj_out", nn.Linear(DIM_FF // 2, DIM)))
    state.update(_prefixed("to_logits.0", nn.LayerNorm(DIM)))
    state.update(_prefixed("to_logits.2", nn.Linear(DIM, N_CLASSES)))
    return state


def write_published(path: Path) -> None:
    torch.save({"model_state_dict": published_state_dict()}, path)


def write_kwmlp(path: Path) -> None:
    from kwmlp.checkpoints import save_checkpoint
    from kwmlp.encoder import KWMLP

    save_checkpoint(path, KWMLP(), metadata={"source": "random init (benchmarks/hear)"})


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=("published", "kwmlp"), default="published")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (write_published if args.layout == "published" else write_kwmlp)(args.out)
    print(f"wrote {args.layout}-layout random checkpoint: {args.out}")


if __name__ == "__main__":
    main()
