"""ONNX export of the per-chunk part of the pipeline: 1 s chunks -> MFCC ->
encoder (-> keyword head).

The graph takes ``chunks`` ``(batch, 16000)`` float32 (dynamic batch) and
returns ``embeddings`` ``(batch, 98, dim)``, what ``KWMLPEmbedder.embed_chunks``
returns, and with ``head=True`` also ``logits`` ``(batch, n_classes)``, what
``KWMLPEmbedder.classify_chunks`` returns (all blocks, whatever ``layer``). The
MFCC is nnAudio's convolution STFT and mel filterbank (the reference frontend)
followed by dB, floor and DCT as a matrix (``kwmlp.frontend.mfcc_from_mel``, in
float64), so the graph needs no FFT operator, whichever ``frontend`` the model
uses in PyTorch. Opset ``OPSET`` (17, the first with a ``LayerNormalization``
operator). Exported with the TorchScript-based exporter (``dynamo=False``),
chosen over torch 2.9+'s default torch.export-based one: it needs only
``onnx``, not ``onnxscript``, and exports this small static graph in ~2 s
against ~65 s, with the same parity (~1e-5 on the embeddings for both, torch
2.13); torch deprecates it, so moving to ``dynamo=True`` (with
``dynamic_shapes``) is the path when it goes.

What stays outside the graph, to reproduce the HEAR outputs (``kwmlp.embedder``):
pad each sound with 80 zeros before and 240 after, right-pad to whole seconds and
cut 1 s chunks; run the graph; extend each chunk's 98 frames to 100 by repeating
its first and last; concatenate a sound's chunks and drop the first and last
frame; keep the first ``int((1000 * N / 16000 - 30) / 10 + 1)`` frames (``N`` =
padded length before whole seconds) at 10, 20, ... ms; scene embedding:
``kwmlp.pooling.scene_embedding`` over all stitched frames. Keyword
probabilities: softmax of ``logits`` over 1 s windows (``kwmlp.keywords``); the
graph's ``metadata_props`` name the model (``kwmlp_model_id``), the ``logits``
columns (``kwmlp_labels``, JSON) and the checkpoint's threshold (``kwmlp_threshold``).
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Tuple

import torch
from torch import nn

from ._types import PathLike
from .atomic import write_atomic
from .embedder import KWMLPEmbedder
from .errors import KwmlpError
from .frontend import CHUNK_SAMPLES, nnaudio_mfcc, mel_dct_t, mfcc_from_mel

OPSET = 17
EXAMPLE_BATCH = 2
INPUT_NAME = "chunks"


def require_onnx() -> None:
    """Raise ``KwmlpError`` naming the extra when onnx/onnxruntime are missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise KwmlpError(f"ONNX export needs the optional packages onnx and onnxruntime "
                         f"({err.name} is missing): pip install 'kwmlp[onnx]'") from None


def check_output_path(path: PathLike) -> None:
    """Raise ``KwmlpError`` if ``path`` cannot be written as a file: it is a
    folder, or its folder is missing, not a folder or not writable, or it exists
    and is not an ONNX model (a checkpoint or a recording is never replaced).
    Cheap, so the CLI calls it before loading the model."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise KwmlpError(f"{path}: is a folder; name the .onnx file to write, e.g. "
                         f"{path / 'kwmlp.onnx'}")
    if not folder.exists():
        raise KwmlpError(f"{path}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise KwmlpError(f"{path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise KwmlpError(f"{path}: cannot write in {folder} (permission denied)")
    if path.exists() and not _is_onnx_model(path):
        raise KwmlpError(f"{path}: exists and is not an ONNX model, so export will not "
                         f"replace it; name another file")


def _is_onnx_model(path: Path) -> bool:
    """Whether ``path`` parses as an ONNX model with a graph (protobuf parses
    many byte strings, so a graph with nodes and an opset is asked for too)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # any parse failure means "not ONNX"; nothing else is raised here
        return False
    return len(model.graph.node) > 0 and len(model.opset_import) > 0


class ChunkGraph(nn.Module):
    """What the exported graph computes: ``(batch, CHUNK_SAMPLES)`` -> embeddings
    ``(batch, 98, dim)`` [and logits ``(batch, n_classes)`` with ``head``]."""

    def __init__(self, model: KWMLPEmbedder, *, head: bool = False) -> None:
        super().__init__()
        self.mel = nnaudio_mfcc().melspec_layer
        self.register_buffer("dct_t", mel_dct_t())
        self.encoder, self.layer, self.head = model.encoder, model.layer, head

    def forward(self, chunks: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        mfcc = mfcc_from_mel(self.mel(chunks).transpose(1, 2), self.dct_t)
        if self.head:
            return self.encoder.embed_and_classify(mfcc, self.layer)
        return (self.encoder.embed(mfcc, self.layer),)


# keys of metadata_props
MODEL_ID_KEY, LABELS_KEY, THRESHOLD_KEY = "kwmlp_model_id", "kwmlp_labels", "kwmlp_threshold"


def output_names(head: bool) -> Tuple[str, ...]:
    return ("embeddings", "logits") if head else ("embeddings",)


def export_onnx(model: KWMLPEmbedder, path: PathLike, *, head: bool = False) -> None:
    """Write ``model``'s chunk graph (see the module docstring) to ``path``.
    Needs the ``onnx`` extra. Raises ``KwmlpError`` for a path it cannot
    write (``check_output_path``)."""
    require_onnx()
    check_output_path(path)
    if head:
        from .keywords import head_words

        head_words(model)  # a published-layout head has no known words: refuse it
    graph = ChunkGraph(model, head=head).cpu().eval()
    example = torch.zeros(EXAMPLE_BATCH, CHUNK_SAMPLES)
    names = output_names(head)
    axes = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in names}}
    exported = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the deliberate choice above, not a user's concern
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(graph, (example,), exported, input_names=[INPUT_NAME],
                          output_names=list(names), dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
    complete = _with_metadata(exported.getvalue(), model, head).SerializeToString()
    write_atomic(Path(path), lambda file: file.write(complete))  # never half a file


def _with_metadata(serialized: bytes, model: KWMLPEmbedder, head: bool):
    """The exported graph (``onnx.ModelProto``) naming the model and, with the
    head, the ``logits`` columns (``LABELS_KEY``: a JSON list, the no-keyword
    classes included) and the threshold ``spot`` uses (``THRESHOLD_KEY``: the
    checkpoint's, e.g. from ``kwmlp fit``) in its metadata_props, so a user of the
    file alone knows which column is which and where a word fires."""
    import onnx

    graph = onnx.load_model_from_string(serialized)
    entries = {MODEL_ID_KEY: model.model_id()}
    if head:
        from .keywords import head_labels, model_threshold

        entries[LABELS_KEY] = json.dumps(list(head_labels(model)))
        entries[THRESHOLD_KEY] = repr(model_threshold(model))
    for key, value in entries.items():
        graph.metadata_props.add(key=key, value=value)
    return graph
