"""The figures a candidate checkpoint must show before it replaces the shipped
weights (the model card's shipping rules), printed, not asserted:

    .venv/bin/python weights/training_logs/shipcheck.py runs/NAME_all.pt

- ``tests/data/real`` (105 clips of speakers no run trains on) and
  ``tests/data/heldout`` (held-out synthetic voices): the head's top-1 over the 35
  words and on the command words, clips zero-padded to 1 s, as
  ``tests/test_shipped_model.py`` scores them (its floors: 0.79, 0.83);
- the scene embeddings on ``tests/data/real``: nearest class mean, leave one
  speaker out (floor 0.52);
- digital silence (3 s), white noise at -30 dBFS (3 s) and a 1-sample sound: the
  lowest no-keyword probability, the highest word probability and any detection
  (there must be none).

False accepts and spotting recall: ``benchmarks/false_accepts.py`` and
``benchmarks/spotting.py`` with ``--model``.
"""
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import kwmlp  # noqa: E402
from kwmlp.train.evaluate import COMMAND_WORDS  # noqa: E402
from kwmlp.train.speech_commands import WORDS  # noqa: E402
from test_shipped_model import leave_one_group_out, read_clips  # noqa: E402

SETS = {"real": (ROOT / "tests" / "data" / "real", "*/*.flac"),
        "heldout": (ROOT / "tests" / "data" / "heldout", "*/*.wav")}


def main(checkpoint: str) -> None:
    model = kwmlp.load_model(checkpoint, device="cpu")
    print(f"model {model.model_id()}  threshold {model.metadata.get('threshold', 'default')}")
    for name, (root, pattern) in SETS.items():
        audio, labels, speakers = read_clips(root, pattern)
        with torch.no_grad():
            right = model.encoder(model.mfcc(audio)).argmax(dim=1) == labels
        command = torch.tensor([WORDS[i] in COMMAND_WORDS for i in labels.tolist()])
        print(f"{name}: head top-1 {right.float().mean():.3f} ({right.sum()}/{len(labels)}), "
              f"command words {right[command].float().mean():.3f} "
              f"({right[command].sum()}/{command.sum()})")
        if name == "real":
            scene = kwmlp.get_scene_embeddings(audio, model)
            print(f"{name}: scene nearest class mean, leave one speaker out "
                  f"{leave_one_group_out(scene, labels, speakers):.3f}")
    noise = np.random.default_rng(1).standard_normal(48000).astype(np.float32)
    for name, sound in {"digital silence": torch.zeros(48000),
                        "white noise -30 dBFS": torch.from_numpy(0.0316 * noise),
                        "1 sample": torch.full((1,), 0.5)}.items():
        heard = kwmlp.recognize(sound[None], model)
        found = kwmlp.spot(heard, duration_ms=len(sound) / 16)[0]
        print(f"{name}: no keyword >= {heard.no_keyword.min():.3f}, best word "
              f"{heard.probabilities.max():.3f}, detections {found}")


if __name__ == "__main__":
    main(sys.argv[1])
