"""What ``kwmlp info`` shows about a model: identity, sizes, where its
weights came from, and its checkpoint's metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping

from .embedder import HOP_MS, KWMLPEmbedder
from .encoder import count_parameters
from .vocabulary import split_name

# How the training-data line names the real-speech sources of kwmlp.train.real_speech.
SOURCE_NAMES = {"speech_commands": "Speech Commands", "fsdd": "spoken-digit (FSDD)"}


def _entries(value: object) -> List[Mapping]:
    """A training-data entry recorded as one dict or as a list of them, as a list."""
    items = [value] if isinstance(value, Mapping) else value if isinstance(value, list) else []
    return [item for item in items if isinstance(item, Mapping)]


def _count_voices(by_engine: object) -> int:
    if isinstance(by_engine, Mapping):  # engine -> voice ids, as describe_corpus writes
        return sum(len(ids) for ids in by_engine.values())
    return len(by_engine)  # a flat list of ids


def summarize_training_data(data: object) -> str:
    """One line for people from ``metadata["training_data"]`` (module docstring)."""
    if not isinstance(data, Mapping):
        return str(data)
    # Checkpoints exported before the flag existed were all made from TTS voices.
    synthetic = data.get("synthetic", "voices" in data or "engine_versions" in data)
    kind = "synthetic TTS speech" if synthetic else "recorded speech"
    parts = [f"{kind}, {data.get('layout', 'unknown layout')}"]
    if isinstance(data.get("clips"), Mapping):
        parts.append(", ".join(f"{n:,} {split}" for split, n in data["clips"].items()) + " clips")
    if isinstance(data.get("voices"), Mapping):
        parts.append(", ".join(f"{_count_voices(v):,} {split_name(split)}"
                               for split, v in data["voices"].items()) + " voices")
    if data.get("generator"):
        parts.append(f"made by: {data['generator']}")
    real = data.get("real")
    if isinstance(real, Mapping):
        used = [f"{n['clips']:,} {SOURCE_NAMES.get(s, s)} clips of {n['speakers']} speakers "
                f"(x{n['repeat']} per epoch)"
                for s, n in real.get("training", {}).items() if n.get("repeat", 0) > 0]
        parts.append("real speech: " + (", ".join(used) if used else "none in training")
                     + ("; real background noise" if real.get("background_noise") else ""))
        held = [f"{n['clips']:,} {SOURCE_NAMES.get(s, s)} clips of {n['speakers']} other speakers"
                for s, n in real.get("validation", {}).items() if n.get("clips", 1)]
        parts.append("real-voice validation: " + ", ".join(held))
    for corpus in _entries(data.get("extra")):  # one dict before 2026-12-06, now a list
        engines = sorted({e for by_engine in corpus.get("voices", {}).values() for e in by_engine})
        parts.append(f"extra corpus: {corpus.get('clips', {}).get('training', 0):,} training "
                     f"clips" + (f" ({', '.join(engines)})" if engines else "")
                     + f" (x{corpus.get('repeat', 1)} per epoch)")
    for folder in _entries(data.get("negatives")):  # one folder, or a soup's several
        counts = {}
        for entry in folder.get("sources", {}).values():
            label = entry.get("label", "?")
            counts[label] = counts.get(label, 0) + entry.get("clips", {}).get("training", 0)
        parts.append("no-keyword audio: " + ", ".join(f"{n:,} {label} clips"
                                                      for label, n in counts.items())
                     + f" (x{folder.get('repeat', 1)} per epoch)")
    return "; ".join(parts)


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
    labels = model.metadata.get("labels")
    if encoder.head is not None and isinstance(labels, list):  # the answers its head gives
        info["labels"] = f"{', '.join(map(str, labels))} ({len(labels)})"
    for key, value in model.metadata.items():
        if key == "training_data":
            info["training data"] = summarize_training_data(value)
        elif key == "trained_on":  # export's copy of that summary, for readers without kwmlp
            continue
        elif isinstance(value, (str, int, float, bool)):
            info[key.replace("_", " ")] = str(value)
    return info
