"""The keyword head's classes, in logit order: the 35 Speech Commands V2 words
(Warden, 2018), then the two "no keyword" classes of its 12-class task; and the
names of a corpus' splits, as Speech Commands' lists name them.

A checkpoint names its classes in ``metadata["labels"]`` (all of them, in
logit order); checkpoints written before the no-keyword classes existed name
only ``metadata["keywords"]``, which is then every class.
"""
from __future__ import annotations

from typing import Tuple

# Alphabetical, as in the V2-35 task; label index = position.
WORDS: Tuple[str, ...] = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on",
    "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual",
    "wow", "yes", "zero",
)
SILENCE = "_silence_"  # no sound, or stationary noise
UNKNOWN = "_unknown_"  # speech without a keyword, music, other sounds
NO_KEYWORD: Tuple[str, ...] = (SILENCE, UNKNOWN)
LABELS: Tuple[str, ...] = WORDS + NO_KEYWORD  # the shipped head's classes


SPLITS: Tuple[str, ...] = ("training", "validation", "testing")
_OLD_SPLIT_NAMES = {"train": "training", "test": "testing"}  # synthetic corpora before 0.2


def split_name(name: str) -> str:
    """A split's name in ``SPLITS``' words, also for records written before them."""
    return _OLD_SPLIT_NAMES.get(name, name)


def is_keyword(label: str) -> bool:
    """Whether a head class is a word (not one of ``NO_KEYWORD``)."""
    return label not in NO_KEYWORD


def keywords_of(labels: Tuple[str, ...]) -> Tuple[str, ...]:
    """The keyword classes of ``labels``, in their order."""
    return tuple(label for label in labels if is_keyword(label))
