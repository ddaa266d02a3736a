"""Regenerate the reference embeddings pinned by tests/test_reference.py.

    python tests/make_reference.py            # writes tests/data/reference/reference.npz

Run it only on purpose: after a deliberate change to the frontend, encoder,
pooling or shipped weights, and say so in the commit message.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import kwmlp

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "reference" / "reference.npz"
SR = 16000


def fixtures() -> dict:
    """Deterministic inputs, float32 mono 16 kHz: seeded noise (0.5 s), a
    100 Hz -> 4 kHz exponential sine sweep (1 s), and a spoken-keyword file
    zero-padded to 3.7 s."""
    noise = 0.2 * np.random.default_rng(2021).standard_normal(SR // 2)
    t = np.arange(SR) / SR
    f0, f1 = 100.0, 4000.0
    sweep = 0.5 * np.sin(2 * np.pi * f0 * (np.power(f1 / f0, t) - 1) / np.log(f1 / f0))
    speech, rate = sf.read(DATA / "example.wav", dtype="float32")
    assert rate == SR
    spoken = np.zeros(round(3.7 * SR))
    spoken[:len(speech)] = speech
    return {name: audio.astype(np.float32)
            for name, audio in [("noise", noise), ("sweep", sweep), ("spoken", spoken)]}


def embed(audio: np.ndarray, model) -> dict:
    batch = torch.from_numpy(audio)[None]
    emb, ts = kwmlp.get_timestamp_embeddings(batch, model)
    scene = kwmlp.get_scene_embeddings(batch, model)
    return {"embedding": emb[0].numpy(), "timestamps": ts[0].numpy(), "scene": scene[0].numpy()}


def main() -> None:
    model = kwmlp.load_model(device="cpu")
    arrays = {}
    for name, audio in fixtures().items():
        arrays[f"{name}/audio"] = audio
        arrays.update({f"{name}/{key}": value for key, value in embed(audio, model).items()})
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
