"""Non-keyword audio for the head's no-keyword classes (``vocabulary.NO_KEYWORD``).

``_silence_``: digital silence, coloured noise and mains hum at many levels, and
slices of the real Speech Commands background recordings. ``_unknown_``: speech
that holds none of the 35 words (real French voice prompts, English sentences and
words spoken by the synthetic corpus' *training* voices), music (random General
MIDI notes rendered by fluidsynth) and game sound effects. Every clip is one
1 s window, int16 ``(CHUNK_SAMPLES,)``. (About 480 lines: one short renderer
per source, each with its licence record, kept beside the others so the
no-keyword set reads as one inventory.)

Only sources fair to train on (``../shared/data/EVALUATION_ONLY.md``), and none
of those ``benchmarks/false_accepts.py`` judges rejection with (it takes the
Russian prompts, music on hold, the MuseScore General soundfont, the freedesktop
sounds and the synthetic *test* voices)::

    fr_prompts   asterisk-core-sounds-fr-wav, fr_CA June (CC-BY-SA 3.0), minus digits/letters
    tts_sentence TEXT_SENTENCES by espeak-ng / flite / festival training voices
    tts_word     NON_KEYWORDS, one word centred anywhere in the window, the same voices
    music_midi   timgm6mb-soundfont (GPL-2) through fluidsynth
    effects      colobot-common-sounds (GPL-3+): sound effects and music
    noise        zeros, coloured noise, mains hum; real background recordings (CC-BY-4.0)

and, named with ``--sources`` (not in the default set, so the recipes written before
them still build the same clips)::

    foreign_prompts asterisk-core-sounds-es-wav / -it-wav, asterisk-prompt-it-menardi-wav:
                 three more real speakers in Spanish and Italian, minus digits/letters
    chimes       desktop sound themes yaru-theme-sound, deepin-sound-theme, oxygen-sounds,
                 each sound at CHIME_PLACEMENTS random places and levels in the window
    tts_phrase   composed_phrases() (strings of NON_KEYWORDS) by the neural (Kokoro,
                 Piper) training voices: the Debian ones already say the sentences
    en_prompts   asterisk-core-sounds-en-wav, en_US Allison: real English speech, the
                 prompts whose transcript (asterisk-core-sounds-en) holds no keyword

A source item (a file, an utterance, a minute of music) goes wholly to training
or to validation (``VALIDATION_PERCENT`` by a hash of its name), so validation
windows are never cut from audio a training window came from.

    sudo bash kwmlp/train/install_negatives.sh   # the Debian packages named above
    python -m kwmlp.train.negatives --out data/negatives --real-data ../shared/data/real_speech
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import struct
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterator, List, Sequence, Tuple

import numpy as np
import torch

from .._types import PathLike
from ..atomic import write_atomic
from ..audio import INT16_SCALE, load_audio
from ..errors import KwmlpError
from ..frontend import CHUNK_SAMPLES, SAMPLE_RATE
from ..vocabulary import LABELS, SILENCE, UNKNOWN, WORDS
from .real_speech import load_real_noise
from .synth.dsp import place_in_window, resample_to_16k, trim_silence
from .synth.engines import Renderer
from .synth.noise import coloured_noise, mains_hum
from .synth.plan import clip_rng
from .synth.voices import DEBIAN_ENGINES, NEURAL_ENGINES, Voice, build_voice_inventory

NEGATIVES_NAME = "negatives.npz"
SOURCES_NAME = "sources.json"
VALIDATION_PERCENT = 10
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
FR_PROMPTS = ASTERISK_SOUNDS / "fr_CA_f_June"
FOREIGN_PROMPTS = tuple(ASTERISK_SOUNDS / name for name in
                        ("es_MX_f_Allison", "it_IT_f_Menardi", "it_IT_m_Carlo"))
PROMPTS_SKIPPED = ("digits", "letters")  # numbers and letters sound like English keywords
EN_PROMPTS = ASTERISK_SOUNDS / "en_US_f_Allison"
EN_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
SOUND_THEMES = (Path("/usr/share/sounds/Yaru"), Path("/usr/share/sounds/deepin"))
OXYGEN_SOUNDS = Path("/usr/share/sounds")  # Oxygen-*.ogg; freedesktop's are judged on
CHIME_PLACEMENTS = 4
PHRASES, PHRASE_WORDS = 100, (3, 7)
TRAINING_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
EFFECTS = Path("/usr/share/games/colobot")
QUIET_DBFS = -55.0  # a window of a sound source this quiet is silence, not "_unknown_"
MAX_WINDOWS_PER_FILE = 12  # long music tracks would otherwise outweigh everything else
FOREIGN_WINDOWS_PER_FILE = 3  # 1,681 prompts: more speakers, not more of each
MUSIC_MINUTES = 10
SILENCE_CLIPS = 2400
VOICE_TAKES = 6  # training voices per sentence and per word
PHRASE_TAKES = 3
DEFAULT_SOURCES = ("fr_prompts", "tts_sentence", "tts_word", "music_midi", "effects", "noise")
LICENCES = {
    "fr_prompts": "asterisk-core-sounds-fr-wav: CC-BY-SA-3.0, June Wallack",
    "tts_sentence": "rendered by espeak-ng (GPL-3), flite (BSD-like), festival (X11-like)",
    "tts_word": "rendered by espeak-ng (GPL-3), flite (BSD-like), festival (X11-like)",
    "music_midi": "timgm6mb-soundfont: GPL-2, Tim Brechbill; rendered by fluidsynth",
    "effects": "colobot-common-sounds: GPL-3+, EPSITEC SA & TerranovaTeam",
    "noise": "generated; Speech Commands background recordings: CC-BY-4.0, Warden (2018)",
    "foreign_prompts": "asterisk-core-sounds-es-wav (Allison Smith) and -it-wav (Carlo "
                       "Flora): CC-BY-SA-3.0 / CC-BY-3.0; asterisk-prompt-it-menardi-wav "
                       "(Marco Menardi, Paola Dal Zot): CC-BY-SA-3.0",
    "chimes": "yaru-theme-sound: CC-BY-SA-4.0, Mads Rosendahl; deepin-sound-theme: GPL-3+, "
              "Deepin Technology; oxygen-sounds: LGPL-3+, Nuno Povoa",
    "en_prompts": "asterisk-core-sounds-en-wav (transcripts: asterisk-core-sounds-en): "
                  "CC-BY-SA-3.0, Allison Smith",
    "tts_phrase": "rendered by Kokoro-82M (Apache-2.0 weights, hexgrad) and Piper "
                  "en_US-joe-medium (trained on CC0 data)",
}

# Words that sound like a keyword, refused in any non-keyword text (with WORDS).
HOMOPHONES = frozenset({
    "to", "too", "for", "fore", "won", "know", "write", "rite", "wright", "sex", "ate", "free",
    "tu", "dough", "doe", "bedd", "knot", "upon", "onto", "into", "nein", "sicks",
})
TEXT_SENTENCES = (  # the training side; false_accepts.py speaks its own
    "A quiet morning began with grey skies.",
    "The baker sells warm rolls at dawn.",
    "Her cousin lives near the old harbour.",
    "We planted beans and carrots last spring.",
    "The orchestra tuned their instruments slowly.",
    "Several students waited at the station.",
    "The lamp beside the sofa is broken.",
    "A gentle breeze moved the curtains.",
    "My uncle collects antique maps.",
    "The cafe serves soup and salad daily.",
    "Thunder rumbled over the valley.",
    "The painter mixed blue and white paint.",
    "Please close the gate behind you.",
    "A squirrel ran along the maple branch.",
    "The recipe needs sugar and butter.",
    "Their flight landed just after midnight.",
    "The kids built a castle in the sand.",
    "We heard a violin in the square.",
    "The nurse checked the patient's chart.",
    "Tall candles lit the dining hall.",
    "His jacket was soaked by the rain.",
    "The farmer fed the hungry chickens.",
    "A parcel arrived this afternoon.",
    "The story ended with a surprise.",
    "Fresh strawberries are sweet in June.",
    "The pilot greeted the passengers warmly.",
    "She hummed a tune while knitting.",
    "The bridge was painted dark red.",
    "Our class visited the science centre.",
    "The mechanic fixed the engine quickly.",
    "Waves crashed against the rocks.",
    "A spider spun a web in the corner.",
    "The market was busy and loud.",
    "I like tea with sugar and lemon.",
    "The actor practised his lines daily.",
    "A black horse galloped across the field.",
    "The students cheered at the end.",
    "Grandma baked a cherry pie.",
    "The hotel lobby smelled like pine.",
    "Leaves turned golden in autumn.",
    "The storm knocked the fence flat.",
    "Wash the dishes after supper.",
    "The river flows past the mill.",
    "His sister studies chemistry.",
    "The old man smiled and waved.",
    "A jar with pickles sat in the pantry.",
    "Clouds gathered above the hills.",
    "The band played jazz all night.",
    "We rented a cabin by the lake.",
    "The puppy chewed my slipper.",
)
NON_KEYWORDS = (  # ordinary words, none a keyword or a homophone of one, none of the
    # words false_accepts.py speaks
    "about", "after", "again", "almost", "always", "animal", "answer", "april", "arm",
    "autumn", "baby", "bag", "ball", "basket", "beach", "bell", "belt", "bicycle", "blanket",
    "blue", "boat", "body", "bottle", "box", "brick", "bridge", "brother", "brush", "bucket",
    "butter", "button", "cake", "camera", "candle", "card", "carpet", "castle", "chair",
    "cheese", "cherry", "chicken", "circle", "city", "clock", "cloud", "coat", "corner",
    "cotton", "country", "cousin", "cow", "dance", "desk", "dinner", "doctor", "dollar",
    "dream", "dress", "drink", "duck", "early", "earth", "egg", "engine", "evening", "face",
    "family", "farm", "father", "feather", "field", "finger", "fish", "flag", "flower",
    "gentle", "glass", "gold", "grass", "green", "guitar", "hammer", "hand", "heart", "hill",
    "horse", "island", "jacket", "jelly", "jungle", "kettle", "king", "ladder", "lemon",
    "letter", "lion", "little", "magic", "milk", "minute", "moon", "morning", "mother",
    "mountain", "number", "ocean", "people", "picture", "pillow", "planet", "pocket", "purple",
    "queen", "rabbit", "rain", "river", "rocket", "sandwich", "school", "shadow", "shoe",
    "sister", "sky", "snake", "soap", "spoon", "square", "star", "sugar", "tiger", "tomato",
    "towel", "travel", "turtle", "umbrella", "uncle", "valley", "village", "violin", "wagon",
    "weather", "whistle", "zebra",
)
LONG_WORDS = frozenset(w for w in WORDS if len(w) >= 3)  # short ones hide in many words


def composed_phrases(n: int = PHRASES, seed: int = 0) -> Tuple[str, ...]:
    """``n`` strings of ``PHRASE_WORDS`` random ``NON_KEYWORDS``, seeded: running speech
    without a keyword, beyond what ``TEXT_SENTENCES`` can say."""
    rng = np.random.default_rng([0x9E6, seed])
    return tuple(" ".join(rng.choice(NON_KEYWORDS, int(rng.integers(PHRASE_WORDS[0],
                                                                     PHRASE_WORDS[1] + 1)),
                                     replace=False)).capitalize() + "."
                 for _ in range(n))


def keywords_in(text: str, inside_words: bool = True) -> FrozenSet[str]:
    """The words of ``text`` that are a keyword, its plural, a homophone of one, or
    (``inside_words``) hold a keyword of three letters or more inside them
    ("downtown", "birds"; spelling, so also "phone")."""
    tokens = set(re.findall(r"[a-z]+", text.lower()))
    bad = tokens & (set(WORDS) | HOMOPHONES)
    bad |= {t for t in tokens if t[-1:] == "s" and t[:-1] in WORDS}  # plurals
    if inside_words:
        bad |= {t for t in tokens for w in LONG_WORDS if w in t}
    return frozenset(bad)


def check_keyword_free(texts: Sequence[str], inside_words: bool = True) -> None:
    """Raise ``ValueError`` when a text holds ``keywords_in`` it."""
    for text in texts:
        bad = keywords_in(text, inside_words)
        if bad:
            raise ValueError(f"{text!r} holds keywords or homophones {sorted(bad)}")


# renderers shared with benchmarks/false_accepts.py

def midi_file(rng: np.random.Generator, seconds: float) -> bytes:
    """A one-track Standard MIDI File of about ``seconds``: random programs, notes and
    chords (120 bpm, 960 ticks a second)."""
    ticks_per_beat, events, t = 480, bytearray(), 0.0

    def delta(value: int) -> bytes:
        out = [value & 0x7F]
        while value > 0x7F:
            value >>= 7
            out.insert(0, (value & 0x7F) | 0x80)
        return bytes(out)

    while t < seconds:
        channel = int(rng.integers(0, 16))
        if channel != 9:
            events += delta(0) + bytes([0xC0 | channel, int(rng.integers(0, 128))])
        notes = rng.integers(40, 90, size=int(rng.integers(1, 4)))
        for note in notes:
            events += delta(0) + bytes([0x90 | channel, int(note), int(rng.integers(50, 120))])
        length = float(rng.uniform(0.1, 1.2))
        for k, note in enumerate(notes):
            events += delta(int(length * 960) if k == 0 else 0) + bytes([0x80 | channel,
                                                                         int(note), 0])
        t += length
    events += delta(0) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_beat)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


def render_midi(soundfont: Path, seconds: float, seed: int) -> np.ndarray:
    """``(n_samples,)`` float32 16 kHz: ``midi_file`` played by fluidsynth on ``soundfont``."""
    with tempfile.TemporaryDirectory() as tmp:
        midi, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        midi.write_bytes(midi_file(np.random.default_rng(seed), seconds))
        subprocess.run(["fluidsynth", "-ni", "-g", "0.6", "-r", str(SAMPLE_RATE), "-F", str(wav),
                        str(soundfont), str(midi)], check=True, capture_output=True)
        audio, _ = load_audio(wav)
    return audio.astype(np.float32)


def speak(renderer: Renderer, text: str, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """``(n_samples,)`` float 16 kHz: ``voice`` saying ``text``, edges trimmed."""
    audio, rate = renderer.speak(text, voice, rng)
    return trim_silence(resample_to_16k(audio, rate))


# building the clips

def _is_validation(item: str) -> bool:
    digest = hashlib.sha1(("negatives:" + item).encode("utf-8")).hexdigest()
    return int(digest, 16) % 100 < VALIDATION_PERCENT


def _dbfs(audio: np.ndarray) -> float:
    return 20 * np.log10(max(float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))), 1e-10))


def windows(audio: np.ndarray, hop: int, limit: int = 0) -> List[np.ndarray]:
    """1 s windows of ``(n_samples,)`` every ``hop`` samples (the last zero-padded),
    leaving out those quieter than ``QUIET_DBFS``; at most ``limit`` (0: all), evenly
    spread over the sound."""
    padded = np.pad(audio, (0, max(0, CHUNK_SAMPLES - len(audio))))
    starts = range(0, max(1, len(padded) - CHUNK_SAMPLES + hop), hop)
    out = [np.pad(padded[s:s + CHUNK_SAMPLES], (0, max(0, s + CHUNK_SAMPLES - len(padded))))
           for s in starts]
    out = [w for w in out if _dbfs(w) > QUIET_DBFS]
    if limit and len(out) > limit:
        out = [out[i] for i in np.linspace(0, len(out) - 1, limit).round().astype(int)]
    return out


def _at_peak(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scaled to a random peak between -30 and -1 dBFS (quiet and loud talkers)."""
    peak = np.abs(audio).max()
    return audio * (10 ** (rng.uniform(-30, -1) / 20) / peak) if peak > 0 else audio


Item = Tuple[str, List[np.ndarray]]  # (item name, its float windows)


def _load_to_rescale(path: Path) -> np.ndarray:
    with warnings.catch_warnings():  # a peak above 1.0 is fine: windows are rescaled
        warnings.simplefilter("ignore", UserWarning)
        return load_audio(path)[0]


def _files(paths: Sequence[Path], seed: int,
           limit: int = MAX_WINDOWS_PER_FILE) -> Iterator[Item]:
    for path in paths:
        audio = _load_to_rescale(path)
        if len(audio) == 0:
            continue
        rng = clip_rng(seed, "file", path.name)
        yield str(path), [_at_peak(w, rng) for w in windows(trim_silence(audio), SAMPLE_RATE // 2,
                                                              limit)]


def _voices(engines: Sequence[str] = DEBIAN_ENGINES) -> List[Voice]:
    return [v for v in build_voice_inventory(engines) if v.split == "training"]


def _spoken(texts: Sequence[str], kind: str, seed: int,
            clips_of: Callable[[np.ndarray, np.random.Generator], List[np.ndarray]],
            engines: Sequence[str] = DEBIAN_ENGINES, takes: int = VOICE_TAKES
            ) -> Iterator[Item]:
    """Each text by ``takes`` training voices of ``engines``, cut into clips by
    ``clips_of``. A text is the one name of its clips: all its voices land on one side
    of the split."""
    check_keyword_free(texts)
    voices, renderer = _voices(engines), Renderer()
    try:
        for text in texts:
            rng = clip_rng(seed, kind, text)
            for voice in rng.choice(len(voices), takes, replace=False):
                yield text, clips_of(speak(renderer, text, voices[voice], rng), rng)
    finally:
        renderer.close()


def _sentence_windows(speech: np.ndarray, rng: np.random.Generator) -> List[np.ndarray]:
    return windows(_at_peak(speech, rng), SAMPLE_RATE // 2)


def _word_window(speech: np.ndarray, rng: np.random.Generator) -> List[np.ndarray]:
    window, _ = place_in_window(speech[:CHUNK_SAMPLES], peak_dbfs=float(rng.uniform(-30, -1)),
                                position=float(rng.uniform()))
    return [window.astype(np.float64) / INT16_SCALE]


def _chimes(paths: Sequence[Path], seed: int) -> Iterator[Item]:
    """A sound shorter than the window at ``CHIME_PLACEMENTS`` random places and peaks
    (a short chime must not only ever start a window); a longer one as ``_files``."""
    for path in paths:
        audio = trim_silence(_load_to_rescale(path))
        rng = clip_rng(seed, "chime", path.name)
        if len(audio) > CHUNK_SAMPLES:
            yield str(path), [_at_peak(w, rng) for w in windows(audio, SAMPLE_RATE // 2,
                                                                  MAX_WINDOWS_PER_FILE)]
        elif len(audio) and np.abs(audio).max() > 0:
            yield str(path), [place_in_window(audio, peak_dbfs=float(rng.uniform(-30, -1)),
                                              position=float(rng.uniform()))[0] / INT16_SCALE
                              for _ in range(CHIME_PLACEMENTS)]


def _music(seed: int) -> Iterator[Item]:
    for minute in range(MUSIC_MINUTES):
        audio = render_midi(TRAINING_SOUNDFONT, 60.0, seed=seed * 1000 + minute)
        rng = clip_rng(seed, "music", minute)
        yield f"music{minute}", [_at_peak(w, rng) for w in windows(audio, SAMPLE_RATE)]


def _silence(seed: int, real_dir: PathLike) -> Iterator[Item]:
    recordings = [r.numpy() for r in load_real_noise(real_dir)] if real_dir else []
    for k in range(SILENCE_CLIPS):
        rng = clip_rng(seed, "silence", k)
        kind = int(rng.integers(0, 4 if recordings else 3))
        if kind == 0:
            clip = np.zeros(CHUNK_SAMPLES)
        elif kind == 1:
            clip = coloured_noise(rng, CHUNK_SAMPLES, float(rng.uniform(0, 2)))
        elif kind == 2:
            clip = mains_hum(rng, CHUNK_SAMPLES, float(rng.choice([50.0, 60.0])))
        else:
            recording = recordings[int(rng.integers(len(recordings)))]
            start = int(rng.integers(0, len(recording) - CHUNK_SAMPLES))
            clip = recording[start:start + CHUNK_SAMPLES].astype(np.float64)
        if kind:
            clip = clip * 10 ** ((rng.uniform(-75, -15) - _dbfs(clip)) / 20)
        yield f"silence{k}", [clip]


def _prompts(folder: Path) -> List[Path]:
    """The voice prompts of an Asterisk sound folder, but for ``PROMPTS_SKIPPED``."""
    return sorted(p for p in folder.rglob("*.wav")
                  if not set(p.relative_to(folder).parts[:-1]) & set(PROMPTS_SKIPPED))


def transcripts(path: Path) -> Dict[str, str]:
    """``{prompt name: its words}`` of an Asterisk sound list (``name: Words said.``
    lines, ``;`` comments; the name is the file's path without ``.wav``), gzipped."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        lines = [line.partition(":") for line in f if line.strip() and not line.startswith(";")]
    return {name.strip(): said.strip() for name, colon, said in lines if colon}


def keyword_free_prompts(folder: Path, transcript_file: Path) -> List[Path]:
    """``_prompts(folder)`` whose transcript holds no keyword (``keywords_in``) and no
    digit ("folder 5", "H.323" say numbers); those without one, or with a description
    instead (``[beep]``, ``(6 seconds of silence)``), are left out."""
    if not transcript_file.is_file():
        return []
    said = transcripts(transcript_file)
    out = []
    for path in _prompts(folder):
        text = said.get(path.relative_to(folder).with_suffix("").as_posix(), "")
        if text and text[0] not in "[(" and not re.search(r"\d", text) and not keywords_in(text):
            out.append(path)
    return out


def _sources(seed: int, real_dir: PathLike) -> Dict[str, Tuple[str, Callable[[], Iterator[Item]]]]:
    """Source name -> (its label, a generator of its items)."""
    effects = sorted(p for p in EFFECTS.rglob("*") if p.suffix in (".wav", ".ogg"))
    foreign = [p for folder in FOREIGN_PROMPTS for p in _prompts(folder)]
    chimes = sorted([p for theme in SOUND_THEMES for p in theme.rglob("*")
                     if p.suffix in (".wav", ".oga", ".ogg")]
                    + list(OXYGEN_SOUNDS.glob("Oxygen-*.ogg")))
    return {
        "fr_prompts": (UNKNOWN, lambda: _files(_prompts(FR_PROMPTS), seed)),
        "tts_sentence": (UNKNOWN, lambda: _spoken(TEXT_SENTENCES, "sentence", seed,
                                                  _sentence_windows)),
        "tts_word": (UNKNOWN, lambda: _spoken(NON_KEYWORDS, "word", seed, _word_window)),
        "music_midi": (UNKNOWN, lambda: _music(seed)),
        "effects": (UNKNOWN, lambda: _files(effects, seed)),
        "noise": (SILENCE, lambda: _silence(seed, real_dir)),
        "foreign_prompts": (UNKNOWN, lambda: _files(foreign, seed, FOREIGN_WINDOWS_PER_FILE)),
        "chimes": (UNKNOWN, lambda: _chimes(chimes, seed)),
        "tts_phrase": (UNKNOWN, lambda: _spoken(composed_phrases(seed=seed), "phrase", seed,
                                                _sentence_windows, NEURAL_ENGINES, PHRASE_TAKES)),
        "en_prompts": (UNKNOWN, lambda: _files(keyword_free_prompts(EN_PROMPTS, EN_TRANSCRIPTS),
                                               seed)),
    }


def build_negatives(out_dir: PathLike, seed: int = 0, real_dir: PathLike = "",
                    sources: Sequence[str] = ()) -> dict:
    """Render ``DEFAULT_SOURCES`` (or ``sources``) into ``out_dir/negatives.npz``: ``audio``
    int16 ``(n, CHUNK_SAMPLES)``, ``label`` (index into ``LABELS``), ``source``,
    ``validation`` (bool). Writes and returns the per-source summary
    (``sources.json``: clips per split, label, licence)."""
    out_dir = Path(out_dir)
    available = _sources(seed, real_dir)
    chosen = list(sources) or list(DEFAULT_SOURCES)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise KwmlpError(f"unknown negative sources {unknown}; known: {sorted(available)}")
    audio: List[np.ndarray] = []
    label, source, validation, summary = [], [], [], {}
    for name in chosen:
        label_name, items = available[name]
        counts = {"training": 0, "validation": 0}
        for item, clips in items():
            held_out = _is_validation(item)
            counts["validation" if held_out else "training"] += len(clips)
            for clip in clips:
                audio.append(np.clip(np.round(clip * INT16_SCALE), -INT16_SCALE,
                                     INT16_SCALE - 1).astype(np.int16))
                label.append(LABELS.index(label_name))
                source.append(name)
                validation.append(held_out)
        if not sum(counts.values()):
            raise KwmlpError(f"negative source {name} gave no clips; is its audio installed? "
                             f"({LICENCES[name]}; kwmlp/train/install_negatives.sh)")
        summary[name] = {"label": label_name, "clips": counts, "licence": LICENCES[name]}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / NEGATIVES_NAME, lambda f: np.savez(
        f, audio=np.stack(audio), label=np.array(label), source=np.array(source),
        validation=np.array(validation)))
    summary = {"seed": seed, "sources": summary}
    (out_dir / SOURCES_NAME).write_text(json.dumps(summary, indent=1))
    return summary


def load_negatives(negatives_dir: PathLike) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """``{"training": (audio, labels), "validation": (audio, labels)}`` of a
    ``build_negatives`` folder: int16 ``(n, CHUNK_SAMPLES)`` and ``LABELS`` indices."""
    path = Path(negatives_dir) / NEGATIVES_NAME
    if not path.is_file():
        raise KwmlpError(f"{path} does not exist; build it with python -m kwmlp.train.negatives")
    with np.load(path) as data:
        audio, label, held_out = data["audio"], data["label"], data["validation"]
    return {split: (torch.from_numpy(audio[mask]), torch.from_numpy(label[mask]).long())
            for split, mask in (("training", ~held_out), ("validation", held_out))}


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kwmlp.train.negatives",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for negatives.npz, sources.json")
    parser.add_argument("--real-data", default="",
                        help="real-speech folder: its background recordings join the noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", default="",
                        help="comma-separated, of: " + ", ".join(LICENCES) + " (default: "
                             + ", ".join(DEFAULT_SOURCES) + ")")
    args = parser.parse_args(argv)
    summary = build_negatives(args.out, args.seed, args.real_data,
                              [s for s in args.sources.split(",") if s])
    for name, entry in summary["sources"].items():
        print(f"{name:<13} {entry['label']:<10} {entry['clips']}")


if __name__ == "__main__":
    main()
