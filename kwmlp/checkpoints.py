"""Checkpoint I/O: the project's own format, the published HEAR 2021 layout,
and where the shipped default lives. No model code here.

The project's format is a ``torch.save``d dict, loadable with
``weights_only=True``::

    {"format": "kwmlp", "format_version": 1,
     "config": {...KWMLP constructor arguments...},
     "state_dict": {...KWMLP state dict...},
     "metadata": {...free-form: training data, recipe, version...}}

The published ``kwmlp.pth`` is ``{"model_state_dict": {...}}`` with the key
names of the original Keyword-MLP code; ``published_to_kwmlp`` renames them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Optional, Tuple

import torch

from ._types import PathLike
from .atomic import write_atomic
from .encoder import KWMLP
from .errors import CheckpointNotFoundError, KwmlpError

FORMAT_NAME = "kwmlp"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS_NAME = "kwmlp.pt"
PUBLISHED_SOURCE = "published HEAR 2021 kwmlp checkpoint layout"  # metadata["source"]

_PUBLISHED_BLOCK_KEYS = {
    # old -> new, inside block i ("layers.{i}." -> "blocks.{i}.")
    "fn.norm": "norm",  # post-norm LayerNorm(dim)
    "fn.fn.proj_in.0": "proj_in",  # Linear(dim, dim_ff); .1 was the GELU
    "fn.fn.sgu.norm": "sgu.norm",  # LayerNorm(dim_ff / 2)
    "fn.fn.sgu.proj": "sgu.proj",  # Conv1d(n_frames, n_frames, 1)
    "fn.fn.proj_out": "proj_out",  # Linear(dim_ff / 2, dim)
}
_PUBLISHED_TOP_KEYS = {
    "to_patch_embed.1": "patch_embed",  # .0 was the Rearrange to (frames, n_mfcc)
    "to_logits.0": "head_norm",  # LayerNorm(dim)
    "to_logits.2": "head",  # Linear(dim, n_classes); .1 was the mean over time
}
_BLOCK_KEY = re.compile(r"layers\.(\d+)\.(.+)\.(weight|bias)")
_TOP_KEY = re.compile(r"(.+)\.(weight|bias)")


def published_to_kwmlp(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Rename a published-layout state dict to ``KWMLP``'s keys.

    Raises ``KwmlpError`` naming every key it does not know."""
    renamed, unknown = {}, []
    for key, value in state_dict.items():
        block = _BLOCK_KEY.fullmatch(key)
        top = _TOP_KEY.fullmatch(key)
        if block and block.group(2) in _PUBLISHED_BLOCK_KEYS:
            index, module, param = block.groups()
            renamed[f"blocks.{index}.{_PUBLISHED_BLOCK_KEYS[module]}.{param}"] = value
        elif top and top.group(1) in _PUBLISHED_TOP_KEYS:
            renamed[f"{_PUBLISHED_TOP_KEYS[top.group(1)]}.{top.group(2)}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise KwmlpError(f"unknown keys in published-layout checkpoint: {sorted(unknown)}")
    return renamed


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Infer ``KWMLP`` constructor arguments from the shapes in a (renamed)
    state dict, so published checkpoints of other depths load too. Without the
    classifier (no ``head.weight``) it is ``n_classes=0``: embeddings only."""
    try:
        dim, n_mfcc = state_dict["patch_embed.weight"].shape
        dim_ff = state_dict["blocks.0.proj_in.weight"].shape[0]
        n_frames = state_dict["blocks.0.sgu.proj.weight"].shape[0]
    except KeyError as err:
        raise KwmlpError(f"checkpoint lacks the tensor {err.args[0]!r}") from None
    head = state_dict.get("head.weight")
    n_classes = 0 if head is None else head.shape[0]
    depth = len({k.split(".")[1] for k in state_dict if k.startswith("blocks.")})
    return dict(n_mfcc=n_mfcc, n_frames=n_frames, dim=dim, dim_ff=dim_ff, depth=depth,
                n_classes=n_classes)


def build_encoder(config: Mapping, state_dict: Mapping[str, torch.Tensor],
                  source: str = "checkpoint") -> KWMLP:
    """Build ``KWMLP(**config)`` in float32 (whatever torch's default dtype) and
    load ``state_dict`` strictly."""
    try:
        with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave
            model = KWMLP(**config).float()       # the caller's RNG where it was
    except (TypeError, ValueError) as err:
        raise KwmlpError(f"{source}: bad encoder config {dict(config)}: {err}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or mismatched:
        raise KwmlpError(f"{source}: state dict does not fit KWMLP({dict(config)}): "
                         f"missing={missing} unexpected={unexpected} mismatched={mismatched}")
    model.load_state_dict(state_dict, strict=True)
    return model


def _read(path: Path) -> dict:
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise KwmlpError(f"{path}: is a folder; pass the checkpoint file inside it")
    if not path.is_file():  # a FIFO or device: torch.load could block on it
        raise KwmlpError(f"{path}: not a regular file, so not a checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, not a torch file...
        detail = str(err).split("\n")[0] if isinstance(err, (RuntimeError, OSError)) else ""
        raise KwmlpError(f"{path}: not a readable torch checkpoint: truncated, corrupt or not "
                         f"written by torch.save ({type(err).__name__}{': ' if detail else ''}"
                         f"{detail})") from None
    if not isinstance(payload, dict):
        raise KwmlpError(f"{path}: expected a dict checkpoint, got {type(payload).__name__}")
    return payload


def _entry(payload: dict, key: str, path: Path, default: Optional[dict] = None) -> dict:
    """``payload[key]``, which must be a dict (of tensors, for a state dict)."""
    value = payload.get(key, default)
    if not isinstance(value, dict):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise KwmlpError(f"{path}: the checkpoint's {key!r} must be a dict, but it is {found}; "
                         f"write checkpoints with kwmlp.checkpoints.save_checkpoint")
    if key.endswith("state_dict"):
        bad = sorted(str(k) for k, v in value.items() if not isinstance(v, torch.Tensor))
        if bad:
            raise KwmlpError(f"{path}: {key!r} holds entries that are not tensors: {bad[:10]}")
        # Checked here, under the file's own key names: NaN/inf weights load and
        # run silently, and every embedding and probability comes out NaN.
        nonfinite = sorted(str(k) for k, v in value.items()
                           if v.is_floating_point() and not torch.isfinite(v).all())
        if nonfinite:
            raise KwmlpError(f"{path}: NaN or inf values in {len(nonfinite)} tensor(s) of "
                             f"{key!r}: {nonfinite[:10]}; the checkpoint is damaged (or its "
                             f"training diverged), use another")
    return value


def load_checkpoint(path: PathLike) -> Tuple[KWMLP, dict]:
    """Load either format. Returns the encoder (eval mode, CPU) and metadata.

    Raises ``CheckpointNotFoundError`` (a ``KwmlpError`` and a
    ``FileNotFoundError``) for a missing path and ``KwmlpError``,
    naming the path and the problem, for anything else that is not a
    checkpoint of either format."""
    path = Path(path)
    payload = _read(path)
    if payload.get("format") == FORMAT_NAME:
        if payload.get("format_version") != FORMAT_VERSION:
            raise KwmlpError(f"{path}: format_version {payload.get('format_version')!r} "
                             f"is not supported (this kwmlp reads {FORMAT_VERSION})")
        config, state_dict = _entry(payload, "config", path), _entry(payload, "state_dict", path)
        metadata = dict(_entry(payload, "metadata", path, default={}))
        model = build_encoder(config, state_dict, str(path))
    elif "model_state_dict" in payload:
        published = _entry(payload, "model_state_dict", path)
        try:
            state_dict = published_to_kwmlp(published)
            config = config_from_state_dict(state_dict)
        except KwmlpError as err:
            raise KwmlpError(f"{path}: {err}") from None
        model = build_encoder(config, state_dict, str(path))
        metadata = {"source": PUBLISHED_SOURCE}
    else:
        raise KwmlpError(f"{path}: neither a kwmlp checkpoint (no 'format' key) nor a "
                         f"published one (no 'model_state_dict'); keys: {sorted(payload)[:10]}")
    return model.eval(), metadata


def save_checkpoint(path: PathLike, model: KWMLP, metadata: Optional[Mapping] = None) -> None:
    """Write ``model`` in the project's format (see module docstring), atomically."""
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    write_atomic(Path(path), lambda file: torch.save(payload, file))


def default_weights_path() -> Path:
    """The shipped checkpoint: inside the installed package (wheel), or in the
    source tree's ``weights/`` when running from a checkout."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "weights" / DEFAULT_WEIGHTS_NAME,
                      package_dir.parent / "weights" / DEFAULT_WEIGHTS_NAME):
        if candidate.is_file():
            return candidate
    raise KwmlpError(
        "no default weights are installed (looked for kwmlp/weights/kwmlp.pt and "
        "weights/kwmlp.pt); pass model_file_path= to load_model")
