"""What ``kwmlp info`` shows about a model: identity, sizes, where its
weights came from, and its checkpoint's metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

from .embedder import HOP_MS, KWMLPEmbedder
from .encoder import count_parameters
from .train.datacard import summarize_training_data


def model_info(model: KWMLPEmbedder) -> Dict[str, str]:
    """Labelled lines: identity, sizes, where the weights came from, and the
    checkpoint's metadata (scalars, plus a training-data line)."""
    encoder = model.encoder
    head = sum(count_parameters(part) for part in (encoder.head, encoder.head_norm)
               if part is not None)
    total = count_parameters(encoder)
    head_line = f"{head:,} keyword head" if encoder.head is not None else "no keyword head"
    info = {
        "model id": model.model_id(),
        "weights": str(Path(model.weights_path).resolve()),
        "parameters": f"{total:,} ({total - head:,} embedding, {head_line})",
        "sample rate": f"{model.sample_rate} Hz",
        "timestamp embedding": f"{model.timestamp_embedding_size} per {HOP_MS:g} ms",
        "scene embedding": str(model.scene_embedding_size),
        "options": model.model_options(),
    }
    for key, value in model.metadata.items():
        if key == "training_data":
            info["training data"] = summarize_training_data(value)
        elif key == "trained_on":  # export's copy of that summary, for readers without kwmlp
            continue
        elif isinstance(value, (str, int, float, bool)):
            info[key.replace("_", " ")] = str(value)
    return info
