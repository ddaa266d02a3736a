"""Which voice says which word how many times, and each clip's random numbers."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ...vocabulary import SPLITS, WORDS
from .voices import ENGINES, Voice

# Speech Commands' own proportions (it hashes speakers into 80/10/10).
SPLIT_FRACTIONS: Mapping[str, float] = {"training": 0.8, "validation": 0.1, "testing": 0.1}
# Share of a split's clips per engine (renormalised over the engines that have a voice
# in that split). espeak-ng gives hundreds of speakers but robotic formant speech;
# flite/festival sound more natural but have only five real speakers between them.
# Kokoro has 24 speakers, Piper one.
ENGINE_WEIGHTS: Mapping[str, float] = {"espeak-ng": 0.6, "flite": 0.25, "festival": 0.15,
                                       "kokoro": 0.8, "piper": 0.2}


@dataclass(frozen=True)
class ClipSpec:
    """One clip to render: ``OUT/<word>/<voice_id>_nohash_<k>.wav``."""

    word: str
    voice: Voice
    k: int
    seed: int

    @property
    def relpath(self) -> str:
        return f"{self.word}/{self.voice.voice_id}_nohash_{self.k}.wav"


def clip_rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator seeded from a stable hash of ``(seed, *keys)``.

    Python's ``hash`` is salted per process, so sha256 is used to make the stream
    independent of process and scheduling order.
    """
    text = "|".join(str(k) for k in (seed, *keys))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _apportion(total: int, weights: Mapping[str, float]) -> Dict[str, int]:
    """Split an integer ``total`` in proportion to ``weights`` (largest remainder)."""
    norm = sum(weights.values())
    exact = {key: total * w / norm for key, w in weights.items()}
    counts = {key: int(np.floor(x)) for key, x in exact.items()}
    by_remainder = sorted(weights, key=lambda key: (-(exact[key] - counts[key]), key))
    for key in by_remainder[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def plan_clips(voices: Sequence[Voice], *, seed: int, clips_per_word: int,
               words: Sequence[str] = WORDS) -> List[ClipSpec]:
    """Which voice says which word how many times.

    Each word gets ``clips_per_word`` clips, split 80/10/10 and then by
    ``ENGINE_WEIGHTS`` over the engines present in that split; within an engine the
    split's voices take turns in an order shuffled per word, so every voice says every
    word about equally often. ``k`` counts a voice's clips of that word.
    """
    if clips_per_word < 1:
        raise ValueError(f"clips_per_word must be >= 1, got {clips_per_word}")
    by_split_engine: Dict[Tuple[str, str], List[Voice]] = {}
    for voice in voices:
        by_split_engine.setdefault((voice.split, voice.engine), []).append(voice)
    present_splits = {s: SPLIT_FRACTIONS[s] for s in SPLITS
                      if any(split == s for split, _ in by_split_engine)}
    specs: List[ClipSpec] = []
    for word in words:
        for split, n_split in _apportion(clips_per_word, present_splits).items():
            weights = {e: ENGINE_WEIGHTS[e] for e in ENGINES if (split, e) in by_split_engine}
            for engine, n_engine in _apportion(n_split, weights).items():
                pool = by_split_engine[(split, engine)]
                order = clip_rng(seed, "plan", word, split, engine).permutation(len(pool))
                for i in range(n_engine):
                    specs.append(ClipSpec(word=word, voice=pool[order[i % len(pool)]],
                                          k=i // len(pool), seed=seed))
    return specs
