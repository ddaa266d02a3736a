"""Keyword recognition and spotting with the checkpoint's 35-word head.

``recognize`` slides the head's 1 s window over the audio: window ``k`` covers
samples ``[k * hop, k * hop + 16000)`` (zeros past the end), and the last window
is the first that reaches the end of the audio, so ``1 + ceil(max(0, n_samples
- 16000) / hop)`` windows. ``spot`` turns those per-window probabilities into
detections, one word at a time, with a ``Spotter`` (used by ``kwmlp.Stream``
too, so streaming and offline spotting agree):

- *posterior smoothing*: each word's probability is averaged over the last
  ``SMOOTH_MS`` of windows (causal, so it works on a live stream; Chen et al.,
  "Small-footprint keyword spotting using deep neural networks", ICASSP 2014);
- a word *fires* in a window when its smoothed probability is the highest,
  at least ``threshold`` and above the smoothed no-keyword probability;
  consecutive firing windows of one word are one detection. A head may also
  score the two "no keyword" classes (``vocabulary.NO_KEYWORD``: silence/noise,
  and other speech or sounds); the softmax runs over every class, so a word's
  probability is what the head leaves it beside them, and a window such a head
  gives more to "nothing" than to the word never fires, whatever the threshold
  (below 0.5 that is a condition of its own);
- *refractory period*: after a detection, no new one may start in a window
  beginning less than ``refractory_ms`` after the start of the detection's last
  window, and the detection's word firing again within that time is held back
  to the end of that run of windows; this stops a word from being reported twice
  when its probability dips and recovers, and suppresses confusable tails
  ("seven" -> "sheila").

A detection's start/end is where the word must lie: the intersection of the
1 s windows of the detection (and of the smoothing span before its first one)
in which its raw probability reached the threshold (the window of highest
probability when they do not all overlap).

``classify`` answers for a whole clip: a clip up to 1 s long is centred in one
window (as ``kwmlp fit`` trains), a longer one is scored by its best window;
the answer is the best word if it reaches the threshold and beats the
no-keyword probability of its window (``answer``), else ``NO_LABEL``. A
checkpoint may carry its own threshold (``metadata["threshold"]``, written by
``kwmlp fit``); ``model_threshold`` reads it, and every function here whose
``threshold`` is None uses it.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ._types import PathLike
from .audio import DEFAULT_RESAMPLER, load_audio
from .checkpoints import PUBLISHED_SOURCE
from .embedder import (HOP_MS, MAX_CHANNELS, KWMLPEmbedder, check_model,
                       peak_warned_already)
from .errors import KwmlpError
from .frontend import CHUNK_SAMPLES, SAMPLE_RATE
from .vocabulary import WORDS, is_keyword, keywords_of

WINDOW_MS = 1000 * CHUNK_SAMPLES / SAMPLE_RATE  # the head sees 1 s
DEFAULT_HOP_MS = 100
DEFAULT_THRESHOLD = 0.6
SMOOTH_MS = 300  # posterior smoothing span
DEFAULT_REFRACTORY_MS = 500  # a word takes ~0.5 s; longer suppresses the next word
NO_LABEL = "none"  # classify's answer when no word reaches the threshold


def head_labels(model: KWMLPEmbedder) -> Tuple[str, ...]:
    """Every class the model's head scores, in logit order: its keywords and
    any no-keyword classes (``kwmlp.vocabulary``). Raises ``KwmlpError`` for a
    checkpoint whose head is not a kwmlp-trained keyword head."""
    if model.encoder.head is None:
        raise KwmlpError(f"{model.weights_path}: the checkpoint has no keyword head (no "
                         f"classifier tensors), so it gives embeddings only")
    if model.metadata.get("source") == PUBLISHED_SOURCE:
        raise KwmlpError(
            f"{model.weights_path}: a checkpoint in the published HEAR 2021 layout has no "
            f"keyword head kwmlp can name (the labels of its classifier were not published); "
            f"keyword recognition needs a kwmlp-format checkpoint such as the shipped weights")
    return checkpoint_labels(model.metadata, model.encoder.head.out_features,
                             model.weights_path)


def checkpoint_labels(metadata: Mapping, n_classes: int, where: str) -> Tuple[str, ...]:
    """The ``n_classes`` labels a kwmlp checkpoint's ``metadata`` names for its
    head (the 35 words when it names none, as the first shipped weights did).
    Raises ``KwmlpError`` when their count is not ``n_classes`` or one is named twice."""
    labels = tuple(metadata.get("labels", metadata.get("keywords", WORDS)))
    if len(labels) != n_classes:
        raise KwmlpError(f"{where}: the head scores {n_classes} classes but the "
                         f"checkpoint names {len(labels)} labels")
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise KwmlpError(f"{where}: the checkpoint names {twice} for more than one class "
                         f"of its head, so an answer could not say which")
    return labels


def _check_number(name: str, value: object) -> None:
    """``TypeError`` unless ``value`` is a real number (a bool or a str is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")


def check_threshold(threshold: float) -> None:
    """``TypeError`` unless a number, ``ValueError`` unless ``0 < threshold <= 1``
    (NaN fails too)."""
    _check_number("threshold", threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")


def model_threshold(model: KWMLPEmbedder, threshold: Optional[float] = None) -> float:
    """``threshold``, or if None the checkpoint's own (``kwmlp fit`` writes one),
    else ``DEFAULT_THRESHOLD``; ``TypeError``/``ValueError`` for a given one that is not
    a number in (0, 1], ``KwmlpError`` if the checkpoint's is not."""
    if threshold is not None:
        check_threshold(threshold)
        return float(threshold)
    stored = model.metadata.get("threshold", DEFAULT_THRESHOLD)
    try:
        check_threshold(stored)
    except (TypeError, ValueError) as err:
        raise KwmlpError(f"{model.weights_path}: the checkpoint's threshold is unusable "
                         f"({err}); give one (--threshold, threshold=)") from None
    return float(stored)


def head_words(model: KWMLPEmbedder) -> Tuple[str, ...]:
    """The keywords the model's head scores (its classes less the no-keyword
    ones), in logit order; see ``head_labels``."""
    return keywords_of(head_labels(model))


def keyword_probabilities(logits: torch.Tensor,
                          labels: Tuple[str, ...]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Head logits ``(n, n_classes)`` -> the keywords' probabilities ``(n,
    n_words)`` and the no-keyword probability ``(n,)``, from one softmax over
    every class (so a row of the first plus the second sums to 1; the second
    is 0 for a head without no-keyword classes)."""
    probabilities = logits.softmax(dim=-1)
    words = torch.tensor([is_keyword(label) for label in labels], device=logits.device)
    return probabilities[:, words], probabilities[:, ~words].sum(dim=-1)


def hop_samples(hop_ms: float) -> int:
    """``hop_ms`` as samples; it must be a real number, a multiple of 10 ms (the
    frame hop) in 10..1000 ms, so windows start on frame boundaries and leave no
    gaps. Anything else (inf, NaN, 1e400, a string) is a ``ValueError``: the one
    check for the API, ``Stream`` and the CLI's ``--hop-ms``."""
    # The range is compared first, before any rounding or int conversion, so
    # NaN (false in every comparison), +-inf and huge ints never reach round().
    in_range = (isinstance(hop_ms, numbers.Real) and not isinstance(hop_ms, bool)
                and HOP_MS <= hop_ms <= WINDOW_MS)
    if not (in_range and float(hop_ms / HOP_MS).is_integer()):
        raise ValueError(f"hop_ms must be a multiple of {HOP_MS:g} ms between {HOP_MS:g} "
                         f"and {WINDOW_MS:g}, got {hop_ms!r}")
    return int(round(hop_ms * SAMPLE_RATE / 1000))


def n_windows(n_samples: int, hop: int) -> int:
    """Windows of ``recognize`` over ``n_samples`` samples at a hop of ``hop`` samples."""
    return 1 + math.ceil(max(0, n_samples - CHUNK_SAMPLES) / hop)


@dataclass(frozen=True)
class Recognition:
    """``probabilities`` ``(n_sounds, n_windows, n_words)`` of the keywords and
    ``no_keyword`` ``(n_sounds, n_windows)``, the probability that a window
    holds none (``keyword_probabilities``), for the 1 s windows ``[start_ms,
    start_ms + 1000)`` (``start_ms``: ``(n_windows,)``, float32 ms);
    ``words[i]`` names column ``i``; ``threshold`` is the model's own
    (``model_threshold``), which ``spot`` uses when given none."""

    probabilities: torch.Tensor
    start_ms: torch.Tensor
    words: Tuple[str, ...]
    no_keyword: torch.Tensor
    threshold: float = DEFAULT_THRESHOLD

    @property
    def end_ms(self) -> torch.Tensor:
        return self.start_ms + WINDOW_MS


def _windows(sound: torch.Tensor, hop: int) -> torch.Tensor:
    """``(n_samples,)`` -> a view ``(n_windows, CHUNK_SAMPLES)``, zero-padded at the end."""
    count = n_windows(len(sound), hop)
    padded = torch.nn.functional.pad(sound, (0, (count - 1) * hop + CHUNK_SAMPLES - len(sound)))
    return padded.unfold(0, CHUNK_SAMPLES, hop)


def recognize(audio: torch.Tensor, model: KWMLPEmbedder,
              hop_ms: float = DEFAULT_HOP_MS, *, threshold: Optional[float] = None
              ) -> Recognition:
    """Score every 1 s window of ``(n_sounds, n_samples)`` 16 kHz float audio,
    one every ``hop_ms`` ms, with the model's keyword head (all blocks, whatever
    the model's ``layer``). Returns a ``Recognition``, float32, on the audio's
    device, carrying ``threshold`` (None: the checkpoint's, ``model_threshold``)
    for ``spot``. Raises ``KwmlpError`` for a model without a usable head."""
    check_model(model, audio, "recognize")
    labels = head_labels(model)
    words = keywords_of(labels)
    hop = hop_samples(hop_ms)
    model.check_input(audio)
    count = n_windows(audio.shape[1], hop)
    probabilities = torch.empty(audio.shape[0], count, len(words), dtype=torch.float32)
    no_keyword = torch.empty(audio.shape[0], count, dtype=torch.float32)
    for sound, samples in enumerate(audio):
        for first, logits in model.map_chunks(model.classify_chunks, _windows(samples, hop)):
            word_p, none_p = keyword_probabilities(logits, labels)
            probabilities[sound, first:first + len(logits)] = word_p.cpu()
            no_keyword[sound, first:first + len(logits)] = none_p.cpu()
    start_ms = torch.arange(count, dtype=torch.float32) * hop * 1000 / SAMPLE_RATE
    return Recognition(probabilities.to(audio.device), start_ms.to(audio.device), words,
                       no_keyword.to(audio.device), model_threshold(model, threshold))


@dataclass(frozen=True)
class Detection:
    """A spotted keyword: where it lies (ms from the start of the audio), and
    its highest smoothed probability."""

    word: str
    start_ms: float
    end_ms: float
    score: float


class Spotter:
    """Per-window probabilities in, detections out, one window at a time (see
    the module docstring). ``update`` takes one window's probabilities
    ``(n_words,)`` (from the softmax over every class: what they leave of 1 is
    the no-keyword probability) and its start in ms, and returns the detection that this
    window ended, if any; ``finish`` returns the one still open at the end."""

    def __init__(self, words: Tuple[str, ...], *, hop_ms: float = DEFAULT_HOP_MS,
                 threshold: float = DEFAULT_THRESHOLD,
                 refractory_ms: float = DEFAULT_REFRACTORY_MS) -> None:
        check_threshold(threshold)
        _check_number("refractory_ms", refractory_ms)
        if not refractory_ms >= 0:
            raise ValueError(f"refractory_ms must be >= 0, got {refractory_ms!r}")
        hop_samples(hop_ms)
        self.words, self.threshold, self.refractory_ms = words, threshold, refractory_ms
        self.smooth_windows = max(1, round(SMOOTH_MS / hop_ms))
        self.reset()

    def reset(self) -> None:
        # the last smooth_windows (probabilities, window start) pairs
        self._recent: List[Tuple[torch.Tensor, float]] = []
        self._word: Optional[int] = None  # the word of the open detection
        self._score = 0.0
        self._spans: List[Tuple[float, float]] = []  # (probability, window start) in the run
        self._quiet_until_ms = -math.inf  # refractory: no detection starts before this
        self._last_ms = -math.inf  # start of the previous detection's last window
        self._last_word: Optional[int] = None  # the previous detection's word
        self._held: Optional[int] = None  # its word firing again since inside the refractory

    def update(self, probabilities: torch.Tensor, start_ms: float) -> Optional[Detection]:
        probabilities = probabilities.float().cpu()
        self._recent = (self._recent + [(probabilities, start_ms)])[-self.smooth_windows:]
        smoothed = torch.stack([row for row, _ in self._recent]).mean(dim=0)
        score, word = (value.item() for value in smoothed.max(dim=0))
        nothing = 1.0 - smoothed.sum().item()  # the classes beside the words
        firing = score >= self.threshold and score > nothing
        if self._word is not None and firing and word == self._word:
            self._score = max(self._score, score)
            self._spans.append((probabilities[word].item(), start_ms))
            return None
        ended = self.finish()
        # The previous word firing again inside the refractory period is that word's tail:
        # held back to the end of the run, not reported once the period is over.
        if not firing or word != self._held:
            self._held = None
        if firing and word == self._last_word and start_ms < self._quiet_until_ms:
            self._held = word
        if firing and start_ms >= self._quiet_until_ms and word != self._held:
            # Smoothing delays the first firing window; the word's windows
            # just before it (but after the refractory period) count for its span.
            self._word, self._score = word, score
            self._spans = [(row[word].item(), start) for row, start in self._recent
                           if start >= self._quiet_until_ms and start > self._last_ms]
        return ended

    def finish(self) -> Optional[Detection]:
        if self._word is None:
            return None
        word, self._word = self._word, None
        self._last_word = word
        spans, self._spans = self._spans, []
        self._last_ms = spans[-1][1]
        self._quiet_until_ms = self._last_ms + self.refractory_ms
        above = [start for probability, start in spans if probability >= self.threshold]
        start_ms, end_ms = max(above, default=0.0), min(above, default=0.0) + WINDOW_MS
        if not above or start_ms >= end_ms:  # the windows do not all overlap
            start_ms = max(spans)[1]
            end_ms = start_ms + WINDOW_MS
        return Detection(self.words[word], start_ms, end_ms, self._score)


def spot(recognition: Recognition, *, threshold: Optional[float] = None,
         refractory_ms: float = DEFAULT_REFRACTORY_MS,
         duration_ms: Optional[float] = None) -> List[List[Detection]]:
    """Detections in each sound of a ``Recognition``, in time order, at ``threshold``
    (None: the model's, ``recognition.threshold``). With ``duration_ms`` (the audio's
    length), ends are clipped to it."""
    if not isinstance(recognition, Recognition):
        raise TypeError(f"spot takes the Recognition kwmlp.recognize returns, got "
                        f"{type(recognition).__name__}")
    if duration_ms is not None:
        _check_number("duration_ms", duration_ms)
        if not duration_ms >= 0:
            raise ValueError(f"duration_ms must be >= 0, got {duration_ms!r}")
    threshold = recognition.threshold if threshold is None else threshold
    starts = recognition.start_ms.tolist()
    hop_ms = starts[1] - starts[0] if len(starts) > 1 else DEFAULT_HOP_MS
    results = []
    for sound in recognition.probabilities:
        spotter = Spotter(recognition.words, hop_ms=hop_ms, threshold=threshold,
                          refractory_ms=refractory_ms)
        found = [d for row, start in zip(sound, starts) if (d := spotter.update(row, start))]
        found += [d for d in [spotter.finish()] if d]
        results.append([d if duration_ms is None else clip_detection(d, duration_ms)
                        for d in found])
    return results


def clip_detection(detection: Detection, duration_ms: float) -> Detection:
    """``detection`` with its end clipped to the end of the audio, ``duration_ms``."""
    if detection.end_ms <= duration_ms:
        return detection
    return Detection(detection.word, detection.start_ms, max(detection.start_ms, duration_ms),
                     detection.score)


def spot_audio(audio: np.ndarray, model: KWMLPEmbedder, *, hop_ms: float = DEFAULT_HOP_MS,
               threshold: Optional[float] = None,
               refractory_ms: float = DEFAULT_REFRACTORY_MS
               ) -> Tuple[Recognition, List[Detection]]:
    """One sound's ``Recognition`` and its detections, in time order, ends
    clipped to its length (``threshold`` None: the checkpoint's,
    ``model_threshold``). ``audio``: ``(n_samples,)`` float32 at 16 kHz."""
    with peak_warned_already():  # load_audio has warned about a loud file, naming it
        recognition = recognize(torch.from_numpy(audio)[None], model, hop_ms=hop_ms,
                                threshold=threshold)
    detections = spot(recognition,
                      refractory_ms=refractory_ms,
                      duration_ms=1000 * len(audio) / SAMPLE_RATE)[0]
    return recognition, detections


def spot_file(path: PathLike, model: KWMLPEmbedder, *, resampler: str = DEFAULT_RESAMPLER,
              **options: float) -> List[Detection]:
    """The keywords in an audio file (any format ``load_audio`` reads):
    ``spot_audio``'s detections, what ``kwmlp spot FILE`` prints. Raises
    ``KwmlpError`` for a file that cannot be read."""
    return spot_audio(load_audio(path, resampler)[0], model, **options)[1]


def centred_window(audio: np.ndarray) -> np.ndarray:
    """A clip of at most ``CHUNK_SAMPLES`` ``(n,)`` centred in one zero-padded 1 s
    window ``(CHUNK_SAMPLES,)`` of the clip's dtype (integer PCM stays integer, for
    ``recognize`` to refuse)."""
    if len(audio) > CHUNK_SAMPLES:
        raise ValueError(f"a clip of {len(audio)} samples does not fit one window")
    window = np.zeros(CHUNK_SAMPLES, dtype=audio.dtype)
    start = (CHUNK_SAMPLES - len(audio)) // 2
    window[start:start + len(audio)] = audio
    return window


def _clip_samples(clip: Union[np.ndarray, torch.Tensor], index: int) -> np.ndarray:
    """Clip ``index`` of ``classify`` as a contiguous ``(n_samples,)`` array of its
    own dtype, so ``recognize`` checks its samples (float, finite, peak) once."""
    if isinstance(clip, (str, bytes, os.PathLike)):
        raise TypeError(f"clip {index} is a path ({clip!r}); classify takes samples: "
                        f"kwmlp.classify(kwmlp.load_audio(path)[0], model)")
    samples = clip.detach().cpu().numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
    if samples.ndim != 1:
        hint = ("; a list of numbers is one clip: np.array(samples)" if samples.ndim == 0
                else "; mix several channels down first")
        raise ValueError(f"clip {index} must be 1-D (n_samples,), got shape "
                         f"{tuple(samples.shape)}{hint}")
    if len(samples) == 0:
        raise ValueError(f"clip {index} is empty")
    if not samples.dtype.isnative:  # big-endian samples from a file reader
        samples = samples.astype(samples.dtype.newbyteorder("="))
    return np.ascontiguousarray(samples)


@dataclass(frozen=True)
class Classification:
    """A clip's answer: the best word (or ``NO_LABEL``) and its probability in
    the clip's best window."""

    label: str
    score: float


def classify(clips: Union[np.ndarray, torch.Tensor, Sequence[np.ndarray]],
             model: KWMLPEmbedder, *, threshold: Optional[float] = None,
             hop_ms: float = DEFAULT_HOP_MS) -> List[Classification]:
    """One answer per 16 kHz float clip in [-1, 1]: a 1-D array or tensor
    ``(n_samples,)``, a 2-D one ``(n_clips, n_samples)``, or a sequence of 1-D
    ones of any lengths; from the model's head, see the module docstring.
    Raises ``TypeError`` for integer PCM or a model not from ``load_model``,
    ``ValueError`` for an empty clip, a clip that is not 1-D or a threshold
    outside (0, 1]."""
    check_model(model, clips, "classify")
    if isinstance(clips, (np.ndarray, torch.Tensor)):
        if clips.ndim == 1:
            clips = [clips]
        elif clips.ndim != 2:
            raise ValueError(f"clips must be 1-D (n_samples,) or 2-D (n_clips, n_samples), "
                             f"got shape {tuple(clips.shape)}")
        elif clips.shape[1] <= MAX_CHANNELS < clips.shape[0]:
            raise ValueError(f"clips of shape {tuple(clips.shape)} look like (n_samples, "
                             f"n_channels); classify takes (n_clips, n_samples) or one "
                             f"(n_samples,) clip: mix down, e.g. clips.mean(axis=1)")
    elif isinstance(clips, (str, bytes, os.PathLike, numbers.Number)):
        raise TypeError(f"clips must be audio samples (an array, a tensor or a sequence of "
                        f"1-D ones), got {type(clips).__name__}")
    threshold = model_threshold(model, threshold)
    words = head_words(model)
    results = []
    for i, clip in enumerate(clips):
        score, index, nothing = best_word(clip_recognition(_clip_samples(clip, i), model,
                                                           hop_ms, threshold))
        label = words[index] if answer(score, nothing, threshold) else NO_LABEL
        results.append(Classification(label, score))
    return results


def clip_recognition(clip: np.ndarray, model: KWMLPEmbedder,
                     hop_ms: float = DEFAULT_HOP_MS, threshold: Optional[float] = None
                     ) -> Recognition:
    """``recognize`` on one clip ``(n_samples,)`` as ``classify`` scores it: centred
    in one window up to 1 s, else every window of it."""
    window = centred_window(clip) if len(clip) <= CHUNK_SAMPLES else clip
    return recognize(torch.from_numpy(window)[None], model, hop_ms=hop_ms,
                     threshold=threshold)


def best_word(recognition: Recognition) -> Tuple[float, int, float]:
    """The first sound's best word over its windows: ``(probability, word index,
    no-keyword probability of that window)``."""
    probabilities = recognition.probabilities[0]  # (n_windows, n_words)
    per_window, word = probabilities.max(dim=1)
    k = int(per_window.argmax())
    return per_window[k].item(), int(word[k]), recognition.no_keyword[0, k].item()


def answer(score: float, nothing: float, threshold: float) -> bool:
    """Whether a word of probability ``score`` is the answer: it reaches
    ``threshold`` and the head gives it more than "no keyword" (``nothing``)."""
    return score >= threshold and score > nothing
