"""A synthetic Speech Commands V2-style corpus rendered with Debian's TTS engines.

The real Speech Commands corpus cannot be fetched here, so the same 35 words are
spoken by espeak-ng (English accents x voice variants), flite and festival, and
written in the Speech Commands layout::

    OUT/<word>/<voiceid>_nohash_<k>.wav     16 kHz mono 16-bit PCM, 1.0 s (16000 samples)
    OUT/validation_list.txt                 paths relative to OUT, e.g. dog/<voiceid>_nohash_0.wav
    OUT/testing_list.txt                    (everything in neither list is training)
    OUT/_background_noise_/*.wav            ~60 s 16 kHz noises for augmentation
    OUT/voices.json                         voice id -> engine, speaker, params, split, clips

A *voice* is an engine plus a speaker identity (an espeak-ng accent+variant, a flite
voice, a festival voice); rate, pitch, intonation, speed, level and offset vary per
clip within a voice. Splits hold out whole voices (see ``split_for_voice``).

Every clip is a pure function of ``(seed, word, voice, k)``: its random numbers come
from a generator seeded from a hash of those, so the corpus is bit-for-bit the same
for any worker count or scheduling order (given the same engine versions, which
``voices.json`` records). Install the engines with ``kwmlp/train/install_tts.sh``.

Run ``python -m kwmlp.train.synth --out DIR --seed 0 --clips-per-word 1150``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.util
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import resampy
import soundfile as sf

from kwmlp.errors import KwmlpError
from kwmlp.frontend import SAMPLE_RATE as SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)

# Speech Commands V2's 35 words; label order is this (alphabetical) order.
WORDS: Tuple[str, ...] = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on",
    "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up",
    "visual", "wow", "yes", "zero",
)

CLIP_SAMPLES = 16000  # 1.0 s, as in Speech Commands
SPLITS: Tuple[str, ...] = ("train", "validation", "test")
# Speech Commands' own proportions (it hashes speakers into 80/10/10).
SPLIT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
ENGINES: Tuple[str, ...] = ("espeak-ng", "flite", "festival")
# Share of a split's clips per engine (renormalised over the engines that have a voice
# in that split). espeak-ng gives hundreds of speakers but robotic formant speech;
# flite/festival sound more natural but have only five real speakers between them.
ENGINE_WEIGHTS: Mapping[str, float] = {"espeak-ng": 0.6, "flite": 0.25, "festival": 0.15}
BACKGROUND_DIR = "_background_noise_"
NOISE_DURATION_S = 60.0

# --- espeak-ng: accent x variant ------------------------------------------------------
# English accents of espeak-ng 1.51 (`espeak-ng --voices=en`, gmw/ files only: the mb/
# ones need the non-free mbrola package, which Debian main does not have).
ESPEAK_ACCENTS: Tuple[str, ...] = (
    "en-gb", "en-us", "en-us-nyc", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-gb-scotland", "en-029",
)
# Voice variants (`espeak-ng --voices=variant`, file names under voices/!v). "fast" is
# left out: it is a speed preset, not a speaker.
ESPEAK_VARIANTS: Tuple[str, ...] = (
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Demonic", "Denis", "Diogo",
    "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike",
    "Mr serious", "Nguyen", "RicishayMax", "RicishayMax2", "RicishayMax3", "Storm", "Tweaky",
    "UniRobot", "adam", "anika", "anikaRobot", "announcer", "antonio", "aunty", "belinda",
    "benjamin", "boris", "caleb", "croak", "david", "ed", "edward", "edward2", "f1", "f2",
    "f3", "f4", "f5", "grandma", "grandpa", "gustave", "iven", "iven2", "iven3", "iven4",
    "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "linda",
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max", "michel", "miguel",
    "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "robosoft", "robosoft2",
    "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "sandro",
    "shelby", "steph", "steph2", "steph3", "travis", "victor", "whisper", "whisperf", "zac",
)
# Held out: one whole accent per split, plus a dozen variants (under every accent), so
# test speakers differ from training ones in accent, voice quality, or both.
TEST_ACCENTS: Tuple[str, ...] = ("en-gb-scotland",)
VALIDATION_ACCENTS: Tuple[str, ...] = ("en-gb-x-gbcwmd",)
TEST_VARIANTS: Tuple[str, ...] = (
    "Andy", "Annie", "belinda", "david", "f2", "f5", "iven2", "klatt3", "m3", "m6",
    "robosoft3", "steph2",
)
VALIDATION_VARIANTS: Tuple[str, ...] = (
    "Alicia", "Lee", "Mario", "edward", "f4", "grandma", "klatt5", "m5", "quincy",
    "robosoft5", "steph3", "zac",
)

# --- flite and festival ----------------------------------------------------------------
# name -> (speaker, mean F0 Hz, F0 std Hz). The speaker names the recorded person: flite's
# kal/kal16 and festival's kal_diphone are all Kal, flite's slt and festival's HTS voice
# are both SLT, so those share a split. flite's awb_time is a limited-domain clock voice.
FLITE_VOICES: Mapping[str, Tuple[str, float, float]] = {
    "kal": ("kal", 100.0, 14.0),  # 8 kHz diphones: telephone bandwidth
    "kal16": ("kal", 100.0, 14.0),
    "awb": ("awb", 125.0, 20.0),
    "rms": ("rms", 100.0, 16.0),
    "slt": ("slt", 170.0, 30.0),
}
# name -> (speaker, mean F0 Hz, F0 std Hz); F0 is not settable for the HTS voice (festival's
# HTS binding ignores hts_engine's -fm), there the speed perturbation varies pitch.
FESTIVAL_VOICES: Mapping[str, Tuple[str, float, float]] = {
    "kal_diphone": ("kal", 105.0, 14.0),
    "ked_diphone": ("ked", 105.0, 15.0),
    "cmu_us_slt_arctic_hts": ("slt", 165.0, 34.0),
}
TEST_SPEAKERS: Tuple[str, ...] = ("rms", "ked")  # flite's rms and festival's ked
VALIDATION_SPEAKERS: Tuple[str, ...] = ("awb",)  # festival has no third unseen speaker

# --- per-clip variation ranges -----------------------------------------------------------
ESPEAK_RATE_WPM = (100, 200)  # espeak-ng -s; default 175 is brisk for an isolated word
ESPEAK_PITCH = (20, 80)  # espeak-ng -p, 0..99; default 50
DURATION_STRETCH = (0.8, 1.35)  # flite duration_stretch / festival Duration_Stretch
F0_MEAN_FACTOR = (0.8, 1.25)  # times the voice's mean F0
F0_STD_FACTOR = (0.6, 1.6)  # times the voice's F0 std
HTS_SPEED = (0.8, 1.25)  # hts_engine -r (>1 is faster)
# Resampling speed perturbation as in Kaldi: tempo and pitch (and formants) move together,
# which widens every voice's apparent vocal-tract length a little.
SPEED_FACTOR = (0.92, 1.08)
PEAK_DBFS = (-20.0, -1.0)
# Trailing punctuation changes the intonation contour (statement, exclamation, question).
PUNCTUATION: Tuple[str, ...] = ("", ".", "!", "?")
PUNCTUATION_P: Tuple[float, ...] = (0.4, 0.3, 0.15, 0.15)

TRIM_FRAME_SAMPLES = 160  # 10 ms at 16 kHz
TRIM_THRESHOLD_DB = -40.0  # relative to the loudest frame; keeps weak final /s/ and /t/
TRIM_MARGIN_SAMPLES = 480  # 30 ms kept either side of the word
FADE_SAMPLES = 80  # 5 ms raised-cosine fade so trimmed edges do not click

# Words for the babble noise: none of the 35 keywords, so background talk never says one.
BABBLE_WORDS: Tuple[str, ...] = (
    "the", "people", "water", "because", "little", "morning", "coffee", "really", "window",
    "about", "maybe", "children", "garden", "tomorrow", "money", "between", "paper", "yellow",
    "think", "other", "market", "another", "number", "evening", "summer", "music", "table",
    "thank", "question", "probably", "kitchen", "weather", "minute", "answer", "almost",
    "station", "letter", "family", "picture", "together", "library", "basket", "lemon",
    "ticket", "problem", "important", "walking", "dinner", "blanket", "country",
)
BABBLE_TALKERS = 8


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Voice:
    """An engine plus a speaker identity; ``params`` are the engine's fixed settings."""

    voice_id: str  # filename-safe: lowercase letters, digits, hyphens
    engine: str
    speaker: str  # the person (or espeak accent+variant) behind the voice
    split: str
    params: Mapping[str, object] = field(default_factory=dict, hash=False, compare=False)


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


@dataclass(frozen=True)
class ClipResult:
    """What a worker reports back about a written clip (sample counts at 16 kHz)."""

    relpath: str
    split: str
    engine: str
    voice_id: str
    word_samples: int  # trimmed word incl. margins, before fitting: > 16000 was sped up
    offset_samples: int
    peak_dbfs: float


@dataclass
class CorpusSummary:
    """Counts and timing of a generated corpus."""

    clips_per_split: Dict[str, int]
    voices_per_split: Dict[str, int]  # voices that got at least one clip
    clips_per_engine: Dict[str, int]
    clips_sped_up: int  # words longer than 1 s, sped up to fit (see fit_to_window)
    wall_time_s: float


def _safe_id(text: str) -> str:
    """Lowercase, hyphen-separated id; never contains '_' so '_nohash_' splits cleanly."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in out.split("-") if part)


def clip_rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator seeded from a stable hash of ``(seed, *keys)``.

    Python's ``hash`` is salted per process, so sha256 is used to make the stream
    independent of process and scheduling order.
    """
    text = "|".join(str(k) for k in (seed, *keys))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def split_for_voice(engine: str, speaker: str, accent: str = "", variant: str = "") -> str:
    """The split of a voice: test and validation hold out whole speakers.

    espeak-ng: the test accent and test variants go to test, then the validation accent
    and variants to validation. flite/festival: by recorded speaker.
    """
    if engine == "espeak-ng":
        if accent in TEST_ACCENTS or variant in TEST_VARIANTS:
            return "test"
        if accent in VALIDATION_ACCENTS or variant in VALIDATION_VARIANTS:
            return "validation"
        return "train"
    if speaker in TEST_SPEAKERS:
        return "test"
    if speaker in VALIDATION_SPEAKERS:
        return "validation"
    return "train"


def build_voice_inventory(engines: Sequence[str] = ENGINES) -> List[Voice]:
    """Every voice of the given engines, in a fixed order, with its split."""
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise ValueError(f"unknown engines {sorted(unknown)}; choose from {ENGINES}")
    voices: List[Voice] = []
    if "espeak-ng" in engines:
        for accent in ESPEAK_ACCENTS:
            for variant in ESPEAK_VARIANTS:
                speaker = f"{accent}+{variant}"
                voices.append(Voice(
                    voice_id=_safe_id(f"espeak-{accent}-{variant}"), engine="espeak-ng",
                    speaker=speaker, split=split_for_voice("espeak-ng", speaker, accent, variant),
                    params={"accent": accent, "variant": variant}))
    for engine, table in (("flite", FLITE_VOICES), ("festival", FESTIVAL_VOICES)):
        if engine not in engines:
            continue
        for name, (speaker, f0_mean, f0_std) in table.items():
            voices.append(Voice(
                voice_id=_safe_id(f"{engine}-{name}"), engine=engine, speaker=speaker,
                split=split_for_voice(engine, speaker),
                params={"voice": name, "f0_mean_hz": f0_mean, "f0_std_hz": f0_std}))
    ids = [v.voice_id for v in voices]
    if len(set(ids)) != len(ids):  # two variants that differ only in case or punctuation
        raise KwmlpError("voice ids collide after sanitising; rename a variant in synth.py")
    return voices


def check_engines(engines: Iterable[str]) -> Dict[str, str]:
    """Each engine's version line; raises ``KwmlpError`` naming any missing binary."""
    commands = {"espeak-ng": ["espeak-ng", "--version"], "flite": ["flite", "--version"],
                "festival": ["festival", "--version"]}
    versions: Dict[str, str] = {}
    for engine in engines:
        cmd = commands[engine]
        if shutil.which(cmd[0]) is None:
            raise KwmlpError(f"{cmd[0]} is not on PATH; install the TTS engines with "
                             "`sudo bash kwmlp/train/install_tts.sh`")
        out = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()
        versions[engine] = next((line.strip() for line in out if "version" in line.lower()
                                 or engine.split("-")[0] in line.lower()), "")
    return versions


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


# --- engines -------------------------------------------------------------------------

def _read_wav(path: Path) -> Tuple[np.ndarray, int]:
    """A mono float64 waveform in [-1, 1] of shape ``(samples,)`` and its rate in Hz."""
    audio, rate_hz = sf.read(str(path), dtype="float64", always_2d=True)
    return audio.mean(axis=1), int(rate_hz)


def _run(cmd: List[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KwmlpError(f"{cmd[0]} failed ({proc.returncode}) on {cmd!r}: {proc.stderr[-500:]}")


def render_espeak(text: str, *, accent: str, variant: str, rate_wpm: int, pitch: int,
                  tmp_path: Path) -> Tuple[np.ndarray, int]:
    """espeak-ng's waveform ``(samples,)`` at its native 22050 Hz."""
    _run(["espeak-ng", "-v", f"{accent}+{variant}", "-s", str(rate_wpm), "-p", str(pitch),
          "-w", str(tmp_path), "--", text])
    return _read_wav(tmp_path)


def render_flite(text: str, *, voice: str, duration_stretch: float, f0_mean_hz: float,
                 f0_std_hz: float, tmp_path: Path) -> Tuple[np.ndarray, int]:
    """flite's waveform ``(samples,)`` at the voice's rate (8 kHz for kal, else 16 kHz)."""
    _run(["flite", "-voice", voice, "-t", text, "-o", str(tmp_path),
          "--setf", f"duration_stretch={duration_stretch:.4f}",
          "--setf", f"int_f0_target_mean={f0_mean_hz:.2f}",
          "--setf", f"int_f0_target_stddev={f0_std_hz:.2f}"])
    return _read_wav(tmp_path)


class FestivalSession:
    """One long-lived ``festival --pipe`` process.

    ``text2wave`` reloads festival per call (0.3-2 s); one process per worker renders
    a clip in a few ms. Every call re-selects the voice and sets every parameter it
    varies, so no setting leaks from one clip to the next (output depends only on the
    arguments, which keeps the corpus independent of scheduling order).
    """

    def __init__(self) -> None:
        # stdbuf: festival block-buffers stdout on a pipe, so the done-marker would
        # never arrive.
        self._proc = subprocess.Popen(
            ["stdbuf", "-oL", "festival", "--pipe"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._calls = 0

    def _eval(self, scheme: str) -> None:
        self._calls += 1
        marker = f"@@kwmlp-done-{self._calls}"
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f'{scheme}\n(format t "{marker}\\n")\n')
        self._proc.stdin.flush()
        while True:
            line = self._proc.stdout.readline()
            if not line:
                raise KwmlpError("festival exited unexpectedly; check that the voices from "
                                 "kwmlp/train/install_tts.sh are installed")
            if line.strip() == marker:
                return

    def render(self, text: str, *, voice: str, tmp_path: Path, duration_stretch: float = 1.0,
               f0_mean_hz: float = 0.0, f0_std_hz: float = 0.0,
               hts_speed: float = 1.0) -> Tuple[np.ndarray, int]:
        """festival's waveform ``(samples,)`` at the voice's rate (16 or 48 kHz)."""
        quoted = text.replace("\\", "").replace('"', "")
        lines = [f"(voice_{voice})"]
        if voice.endswith("_hts"):
            # The voice's own engine parameters plus the speed (-r).
            lines.append(
                "(set! hts_engine_params (append hts_engine_params "
                f"(list (list \"-r\" {hts_speed:.4f}))))")
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch {duration_stretch:.4f})")
            # model_* are the diphone voices' own values (festvox/*_diphone.scm).
            lines.append(f"(set! int_lr_params '((target_f0_mean {f0_mean_hz:.2f}) "
                         f"(target_f0_std {f0_std_hz:.2f}) (model_f0_mean 170) "
                         "(model_f0_std 34)))")
        lines += [f'(set! kwmlp_utt (utt.synth (Utterance Text "{quoted}")))',
                  f'(utt.save.wave kwmlp_utt "{tmp_path}" \'riff)']
        tmp_path.unlink(missing_ok=True)
        self._eval("\n".join(lines))
        if not tmp_path.exists():
            raise KwmlpError(f"festival wrote no audio for {text!r} with voice {voice}")
        return _read_wav(tmp_path)

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # festival exits at end of input
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# --- signal processing -----------------------------------------------------------------

def resample_to_16k(audio: np.ndarray, rate_hz: int, speed: float = 1.0) -> np.ndarray:
    """``(samples,)`` at ``rate_hz`` -> ``(samples',)`` at 16 kHz, played ``speed`` x faster.

    kaiser_fast, not kaiser_best: 6x cheaper, and its ~60 dB stopband is far below the
    level of anything these engines produce near Nyquist.
    """
    return resampy.resample(audio, rate_hz * speed, SAMPLE_RATE_HZ, filter="kaiser_fast")


def trim_silence(audio: np.ndarray) -> np.ndarray:
    """Drop leading/trailing 10 ms frames more than 40 dB below the loudest one.

    Keeps a 30 ms margin and fades the new edges over 5 ms. ``(samples,)`` in and out;
    an all-zero input comes back unchanged.
    """
    # Zero-pad first: espeak-ng starts vowel-initial words at sample 0, and without
    # room for the margin such a word would sit flush against the window's edge.
    audio = np.pad(audio, TRIM_MARGIN_SAMPLES)
    n_frames = len(audio) // TRIM_FRAME_SAMPLES
    if n_frames == 0:
        return audio
    frames = audio[: n_frames * TRIM_FRAME_SAMPLES].reshape(n_frames, TRIM_FRAME_SAMPLES)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    if rms.max() <= 0:
        return audio
    loud = np.nonzero(rms >= rms.max() * 10 ** (TRIM_THRESHOLD_DB / 20))[0]
    start = max(loud[0] * TRIM_FRAME_SAMPLES - TRIM_MARGIN_SAMPLES, 0)
    stop = min((loud[-1] + 1) * TRIM_FRAME_SAMPLES + TRIM_MARGIN_SAMPLES, len(audio))
    out = audio[start:stop].copy()
    n_fade = min(FADE_SAMPLES, len(out) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_fade) / n_fade)
    out[:n_fade] *= ramp
    out[len(out) - n_fade:] *= ramp[::-1]
    return out


def fit_to_window(audio: np.ndarray, window_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """A word longer than the window is sped up (resampled) to fit it exactly.

    Speeding up rather than truncating: a cut "backward" would become "back", a wrong
    label; the price is a pitch rise by the same (rarely more than ~10 %) factor.
    """
    if len(audio) <= window_samples:
        return audio
    out = resampy.resample(audio, len(audio), window_samples, filter="kaiser_fast")
    return out[:window_samples]


def place_in_window(audio: np.ndarray, *, peak_dbfs: float, position: float,
                    window_samples: int = CLIP_SAMPLES) -> Tuple[np.ndarray, int]:
    """Scale to ``peak_dbfs`` and put at ``position`` (0..1 of the slack) in a silent
    window. Returns int16 samples ``(window_samples,)`` and the offset in samples."""
    peak = np.abs(audio).max()
    scaled = audio * (10 ** (peak_dbfs / 20) / peak) if peak > 0 else audio
    slack = window_samples - len(scaled)
    offset = min(int(position * (slack + 1)), slack)
    window = np.zeros(window_samples)
    window[offset: offset + len(scaled)] = scaled
    return _to_int16(window), offset


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """16-bit mono PCM WAV. The ``wave`` module writes a fixed 44-byte header and no
    timestamps, so equal samples give equal bytes whatever libsndfile is installed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(samples.astype("<i2").tobytes())


# --- rendering ---------------------------------------------------------------------------

class Renderer:
    """Renders clips; owns a scratch directory and (lazily) a festival process."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kwmlp-synth-")
        self.tmp_path = Path(self._tmp.name) / "tts.wav"
        self._festival: Optional[FestivalSession] = None

    def speak(self, text: str, voice: Voice, rng: np.random.Generator) -> Tuple[np.ndarray, int]:
        """``voice`` saying ``text`` with per-clip prosody drawn from ``rng``."""
        p = voice.params
        if voice.engine == "espeak-ng":
            return render_espeak(
                text, accent=str(p["accent"]), variant=str(p["variant"]),
                rate_wpm=int(rng.integers(ESPEAK_RATE_WPM[0], ESPEAK_RATE_WPM[1] + 1)),
                pitch=int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1)),
                tmp_path=self.tmp_path)
        stretch = float(rng.uniform(*DURATION_STRETCH))
        f0_mean = float(p["f0_mean_hz"]) * float(rng.uniform(*F0_MEAN_FACTOR))
        f0_std = float(p["f0_std_hz"]) * float(rng.uniform(*F0_STD_FACTOR))
        if voice.engine == "flite":
            return render_flite(text, voice=str(p["voice"]), duration_stretch=stretch,
                                f0_mean_hz=f0_mean, f0_std_hz=f0_std, tmp_path=self.tmp_path)
        if self._festival is None:
            self._festival = FestivalSession()
        return self._festival.render(
            text, voice=str(p["voice"]), tmp_path=self.tmp_path, duration_stretch=stretch,
            f0_mean_hz=f0_mean, f0_std_hz=f0_std, hts_speed=float(rng.uniform(*HTS_SPEED)))

    def render_clip(self, spec: ClipSpec) -> Tuple[np.ndarray, int, int, float]:
        """The clip as int16 ``(16000,)``, the trimmed word's length before fitting and its
        offset (samples), and its peak in dBFS.

        All random draws come from ``clip_rng(seed, word, voice_id, k)`` in a fixed order.
        """
        rng = clip_rng(spec.seed, spec.word, spec.voice.voice_id, spec.k)
        punctuation = PUNCTUATION[int(rng.choice(len(PUNCTUATION), p=PUNCTUATION_P))]
        speed = float(rng.uniform(*SPEED_FACTOR))
        peak_dbfs = float(rng.uniform(*PEAK_DBFS))
        position = float(rng.random())
        audio, rate_hz = self.speak(spec.word + punctuation, spec.voice, rng)
        word = trim_silence(resample_to_16k(audio, rate_hz, speed))
        if not np.any(word):
            raise KwmlpError(f"{spec.voice.engine} produced silence for {spec.relpath}")
        samples, offset = place_in_window(fit_to_window(word), peak_dbfs=peak_dbfs,
                                          position=position)
        return samples, len(word), offset, peak_dbfs

    def close(self) -> None:
        if self._festival is not None:
            self._festival.close()
            self._festival = None
        self._tmp.cleanup()


# Worker-process state: one Renderer per process (its festival process lives as long).
_WORKER: Dict[str, object] = {}


def _worker_init(out_dir: str) -> None:
    renderer = Renderer()
    # Pool workers leave through os._exit, which skips atexit and __del__; a Finalize
    # with a priority still runs, so festival is stopped and the scratch dir removed.
    multiprocessing.util.Finalize(renderer, renderer.close, exitpriority=10)
    _WORKER["renderer"] = renderer
    _WORKER["out_dir"] = Path(out_dir)


def _worker_render(spec: ClipSpec) -> ClipResult:
    renderer = _WORKER["renderer"]
    out_dir = _WORKER["out_dir"]
    assert isinstance(renderer, Renderer) and isinstance(out_dir, Path)
    samples, n_word, offset, peak_dbfs = renderer.render_clip(spec)
    write_wav(out_dir / spec.relpath, samples)
    return ClipResult(relpath=spec.relpath, split=spec.voice.split, engine=spec.voice.engine,
                      voice_id=spec.voice.voice_id, word_samples=n_word, offset_samples=offset,
                      peak_dbfs=peak_dbfs)


# --- background noise --------------------------------------------------------------------

def _normalise_rms(audio: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale ``(samples,)`` to an RMS of ``rms_dbfs``, then keep peaks below full scale."""
    scaled = audio * (10 ** (rms_dbfs / 20) / np.sqrt(np.mean(audio ** 2)))
    peak = np.abs(scaled).max()
    return scaled * (0.99 / peak) if peak > 0.99 else scaled


def coloured_noise(rng: np.random.Generator, n_samples: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent: 0 white, 1 pink, 2 brown.

    Shaped in the frequency domain; the DC bin is zeroed so there is no offset.
    """
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples)
    gain = np.zeros_like(freqs)
    gain[1:] = freqs[1:] ** (-exponent / 2)
    return np.fft.irfft(spectrum * gain, n=n_samples)


def mains_hum(rng: np.random.Generator, n_samples: int, mains_hz: float) -> np.ndarray:
    """Mains hum: ``mains_hz`` and its first harmonics with random levels and phases, a
    slow amplitude wobble, over a faint pink-noise floor."""
    t = np.arange(n_samples) / SAMPLE_RATE_HZ
    hum = np.zeros(n_samples)
    for harmonic in range(1, 9):
        level = rng.uniform(0.2, 1.0) / harmonic ** (0.5 if harmonic % 2 else 1.0)
        hum += level * np.sin(2 * np.pi * mains_hz * harmonic * t + rng.uniform(0, 2 * np.pi))
    hum *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)
    floor = coloured_noise(rng, n_samples, 1.0)
    return hum / np.sqrt(np.mean(hum ** 2)) + 0.05 * floor / np.sqrt(np.mean(floor ** 2))


def babble(rng: np.random.Generator, n_samples: int, voices: Sequence[Voice],
           renderer: Renderer) -> np.ndarray:
    """Several espeak-ng talkers saying random non-keyword phrases over each other."""
    out = np.zeros(n_samples)
    for _ in range(BABBLE_TALKERS):
        voice = voices[int(rng.integers(len(voices)))]
        track = np.zeros(n_samples)
        pos = int(rng.integers(0, SAMPLE_RATE_HZ))
        while pos < n_samples:
            phrase = " ".join(rng.choice(BABBLE_WORDS, size=int(rng.integers(3, 9))))
            audio, rate_hz = renderer.speak(phrase, voice, rng)
            speech = trim_silence(resample_to_16k(audio, rate_hz))
            speech = speech[: n_samples - pos]
            track[pos: pos + len(speech)] = speech / max(np.abs(speech).max(), 1e-9)
            pos += len(speech) + int(rng.integers(SAMPLE_RATE_HZ // 10, SAMPLE_RATE_HZ // 2))
        out += track * 10 ** (rng.uniform(-10, 0) / 20)
    return out


def write_background_noise(out_dir: Path, *, seed: int, voices: Sequence[Voice],
                           duration_s: float = NOISE_DURATION_S) -> List[str]:
    """Write the noise WAVs into ``out_dir/_background_noise_``; returns their names.

    White, pink and brown noise, 50 and 60 Hz mains hum, and babble from training-split
    espeak-ng voices (so it never carries a held-out speaker).
    """
    n_samples = int(round(duration_s * SAMPLE_RATE_HZ))
    noise_dir = out_dir / BACKGROUND_DIR
    noises = {
        "white_noise.wav": lambda rng: coloured_noise(rng, n_samples, 0.0),
        "pink_noise.wav": lambda rng: coloured_noise(rng, n_samples, 1.0),
        "brown_noise.wav": lambda rng: coloured_noise(rng, n_samples, 2.0),
        "mains_hum_50hz.wav": lambda rng: mains_hum(rng, n_samples, 50.0),
        "mains_hum_60hz.wav": lambda rng: mains_hum(rng, n_samples, 60.0),
    }
    talkers = [v for v in voices if v.engine == "espeak-ng" and v.split == "train"]
    if talkers:
        renderer = Renderer()
        try:
            noises["babble.wav"] = lambda rng: babble(rng, n_samples, talkers, renderer)
            for name, make in noises.items():
                audio = _normalise_rms(make(clip_rng(seed, "noise", name)), -20.0)
                write_wav(noise_dir / name, _to_int16(audio))
        finally:
            renderer.close()
    else:
        for name, make in noises.items():
            audio = _normalise_rms(make(clip_rng(seed, "noise", name)), -20.0)
            write_wav(noise_dir / name, _to_int16(audio))
    return sorted(noises)


# ---------------------------------------------------------------------------------------
# main entry point
# ---------------------------------------------------------------------------------------

def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise KwmlpError(f"{out_dir} is not empty; pass overwrite=True (--overwrite) "
                             "or choose a new directory")
        # Only what this generator writes, so a stale clip from a larger run cannot stay.
        for name in [*WORDS, BACKGROUND_DIR]:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in ("validation_list.txt", "testing_list.txt", "voices.json"):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _render_all(specs: Sequence[ClipSpec], out_dir: Path, workers: int,
                progress_every: int) -> Iterator[ClipResult]:
    if workers == 1:
        _worker_init(str(out_dir))
        try:
            for done, spec in enumerate(specs, 1):
                yield _worker_render(spec)
                if progress_every and done % progress_every == 0:
                    logger.info("%d/%d clips", done, len(specs))
        finally:
            renderer = _WORKER.pop("renderer")
            assert isinstance(renderer, Renderer)
            renderer.close()
        return
    # spawn, not fork: a forked worker would inherit the parent's threads and locks.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_worker_init, initargs=(str(out_dir),)) as pool:
        results = pool.imap_unordered(_worker_render, specs, chunksize=16)
        for done, result in enumerate(results, 1):
            yield result
            if progress_every and done % progress_every == 0:
                logger.info("%d/%d clips", done, len(specs))
        pool.close()
        pool.join()


def generate_corpus(out_dir: Path, *, seed: int, clips_per_word: int,
                    words: Sequence[str] = WORDS, voices: Optional[Sequence[Voice]] = None,
                    workers: int = 1, noise_duration_s: float = NOISE_DURATION_S,
                    overwrite: bool = False, progress_every: int = 1000) -> CorpusSummary:
    """Render the corpus into ``out_dir`` (see the module docstring for the layout).

    ``voices`` defaults to every voice of every engine (``build_voice_inventory()``);
    the total is ``len(words) * clips_per_word`` clips. ``workers`` processes render in
    parallel; the output is identical for any value.
    """
    start = time.perf_counter()
    unknown = [w for w in words if w not in WORDS]
    if unknown:
        raise ValueError(f"unknown words {unknown}; choose from WORDS")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    voices = list(build_voice_inventory() if voices is None else voices)
    engines = sorted({v.engine for v in voices}, key=ENGINES.index)
    versions = check_engines(engines)
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, overwrite)

    specs = plan_clips(voices, seed=seed, clips_per_word=clips_per_word, words=words)
    results = list(_render_all(specs, out_dir, workers, progress_every))
    write_background_noise(out_dir, seed=seed, voices=voices, duration_s=noise_duration_s)

    lists = {"validation": "validation_list.txt", "test": "testing_list.txt"}
    for split, name in lists.items():
        paths = sorted(r.relpath for r in results if r.split == split)
        (out_dir / name).write_text("".join(p + "\n" for p in paths))
    clips_per_voice: Dict[str, int] = {}
    for r in results:
        clips_per_voice[r.voice_id] = clips_per_voice.get(r.voice_id, 0) + 1
    record = {
        "seed": seed, "clips_per_word": clips_per_word, "words": list(words),
        "sample_rate_hz": SAMPLE_RATE_HZ, "engine_versions": versions,
        "voices": {v.voice_id: {"engine": v.engine, "speaker": v.speaker, "split": v.split,
                                "params": dict(v.params),
                                "clips": clips_per_voice.get(v.voice_id, 0)}
                   for v in voices},
    }
    (out_dir / "voices.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")

    return CorpusSummary(
        clips_per_split={s: sum(r.split == s for r in results) for s in SPLITS},
        voices_per_split={s: len({r.voice_id for r in results if r.split == s}) for s in SPLITS},
        clips_per_engine={e: sum(r.engine == e for r in results) for e in engines},
        clips_sped_up=sum(r.word_samples > CLIP_SAMPLES for r in results),
        wall_time_s=time.perf_counter() - start)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The CLI's arguments (pure: no side effects)."""
    parser = argparse.ArgumentParser(
        prog="python -m kwmlp.train.synth",
        description="Render a synthetic Speech Commands V2-style corpus with espeak-ng, "
                    "flite and festival.")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips-per-word", type=int, default=1150,
                        help="clips per word; the corpus has 35x this many (default 1150)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--words", nargs="+", default=list(WORDS), choices=WORDS,
                        metavar="WORD", help="a subset of the 35 words (default: all)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--noise-seconds", type=float, default=NOISE_DURATION_S,
                        help="length of each background noise file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a corpus already in --out")
    parser.add_argument("--progress-every", type=int, default=1000, metavar="N",
                        help="log a progress line every N clips (0: never)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point: generate, then print a summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        summary = generate_corpus(
            args.out, seed=args.seed, clips_per_word=args.clips_per_word, words=args.words,
            voices=build_voice_inventory(args.engines), workers=args.workers,
            noise_duration_s=args.noise_seconds, overwrite=args.overwrite,
            progress_every=args.progress_every)
    except KwmlpError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    total = sum(summary.clips_per_split.values())
    print(f"wrote {total} clips to {args.out} in {summary.wall_time_s:.0f} s")
    for split in SPLITS:
        print(f"  {split:<10} {summary.clips_per_split[split]:>6} clips "
              f"{summary.voices_per_split[split]:>4} voices")
    print("  per engine: " + ", ".join(f"{e} {n}" for e, n in summary.clips_per_engine.items()))
    print(f"  {summary.clips_sped_up} words longer than 1 s were sped up to fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
