"""What a checkpoint was trained on: written once at export (``describe_*``), read
back by ``kwmlp info`` and the model card (``kwmlp.info.summarize_training_data``,
a runtime module, so ``import kwmlp`` never loads ``kwmlp.train``), so the two
cannot disagree.

``metadata["training_data"]`` as ``kwmlp.train.export`` writes it::

    {"path", "layout", "clips": {split: n}, "synthetic": bool,
     "generator"?, "seed"?, "clips_per_word"?, "engine_versions"?,
     "voices"?: {split: {engine: [voice ids]}},       # from the corpus' voices.json
     "real"?: {"path", "split_rule", "licences": {source: text},
               "training": {source: {"clips", "speakers", "repeat"}},
               "validation": {source: {"clips", "speakers"}},
               "background_noise": bool},
     "negatives"?: {"path", "repeat", "seed", "sources": {name: {"label", "clips", "licence"}}},
                                            # a list of them for a soup of runs (export)
     "extra"?: [{<describe_corpus of one --extra-data corpus>, "repeat"}, ...]}
                                            # training splits only; a dict before 2026-12-06
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional

from .negatives import SOURCES_NAME
from .real_speech import ALL_FOLDS, VALIDATION_PERCENT, run_splits
from .._types import PathLike
from .speech_commands import SPLITS, list_clips
from ..vocabulary import split_name

REAL_SPEECH_LICENCES = {
    "speech_commands": "CC-BY-4.0: P. Warden, Speech Commands: A Dataset for "
                       "Limited-Vocabulary Speech Recognition, arXiv:1804.03209 (2018)",
    "fsdd": "CC-BY-SA-4.0: Z. Jackson et al., Free Spoken Digit Dataset, "
            "github.com/Jakobovski/free-spoken-digit-dataset",
}


def describe_corpus(data_dir: PathLike, generator: Optional[str] = None) -> dict:
    """Clip counts per split and, when the corpus has the ``voices.json`` that
    ``kwmlp.train.synth`` writes (then ``synthetic`` is True), its seed, engine
    versions and the voice ids per split and engine (split names as the generator
    spells them)."""
    data_dir = Path(data_dir)
    clips = list_clips(data_dir)
    description = {"path": str(data_dir.resolve()), "layout": "Speech Commands V2 (35 words)",
                   "clips": {split: len(clips[split]) for split in SPLITS}}
    if generator:
        description["generator"] = generator
    manifest_path = data_dir / "voices.json"
    description["synthetic"] = manifest_path.is_file()
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        for key in ("seed", "clips_per_word", "engine_versions"):
            if key in manifest:
                description[key] = manifest[key]
        voices: dict = {}
        for voice, info in sorted(manifest.get("voices", {}).items()):
            by_engine = voices.setdefault(split_name(info["split"]), {})
            by_engine.setdefault(info["engine"], []).append(voice)
        description["voices"] = voices  # split -> engine -> voice ids
    return description


def describe_real_data(real_dir: PathLike, repeats: Mapping[str, int],
                       background_noise: bool, cv_folds: int = 0, cv_fold: int = 0) -> dict:
    """The real recordings a run used: clips and speakers per source in each split,
    how often each training source was repeated per epoch (0 = validation only),
    whether the real background recordings were mixed in, the split rule, licences."""
    real = run_splits(real_dir, cv_folds, cv_fold)
    rule = ", ".join(f"{source}: sha1(speaker) % 100 < {percent}"
                     for source, percent in VALIDATION_PERCENT.items())
    if cv_folds:
        rule = (f"speech_commands: fold {cv_fold} of {cv_folds} by sha1('fold:' + speaker) "
                f"(fold {ALL_FOLDS}: none), the speakers of tests/data/real in neither; "
                f"fsdd: sha1(speaker) % 100 < {VALIDATION_PERCENT['fsdd']}")
    return {
        "path": str(Path(real_dir).resolve()),
        "split_rule": f"validation speakers are those with {rule}; the rest are training",
        "training": {source: {"clips": len(splits["training"][0]),
                              "speakers": len(set(splits["training"][1])),
                              "repeat": repeats.get(source, 0)}
                     for source, splits in real.items()},
        "validation": {source: {"clips": len(splits["validation"][0]),
                                "speakers": len(set(splits["validation"][1]))}
                       for source, splits in real.items()},
        "background_noise": background_noise,
        "licences": dict(REAL_SPEECH_LICENCES),
    }


def describe_negatives(negatives_dir: PathLike, repeat: int) -> dict:
    """The non-keyword audio a run used (``negatives.build_negatives``' summary):
    clips per source and split, each source's label and licence, the repeat."""
    summary = json.loads((Path(negatives_dir) / SOURCES_NAME).read_text())
    return {"path": str(Path(negatives_dir).resolve()), "repeat": repeat, **summary}
