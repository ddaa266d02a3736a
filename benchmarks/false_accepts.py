"""False accepts per hour: ``kwmlp spot`` at its defaults on an hour of audio
that holds none of the 35 keywords, the way wake-word systems are judged.

    PYTHONPATH=. python benchmarks/false_accepts.py            # builds the audio, then spots
    PYTHONPATH=. python benchmarks/false_accepts.py --model runs/x.pt --cache runs/fa

The hour is built here from sources that no kwmlp training recipe may use
(``kwmlp.train.negatives`` draws the head's non-keyword audio from others; see
``SOURCES``), each rendered or decoded once into ``--cache`` (16 kHz mono
FLAC) and spotted as one long recording:

- ``speech_ru``: real recorded speech without English words, the Russian voice
  prompts of Debian's ``asterisk-core-sounds-ru-wav`` (CC-BY-SA 3.0), ~25 min;
- ``music_moh``: the five music-on-hold tracks of ``asterisk-moh-opsound-wav``
  (CC-BY-SA 3.0), ~18 min;
- ``music_midi``: random notes on random General MIDI programs, rendered by
  fluidsynth with ``musescore-general-soundfont`` (MIT; ``kwmlp.train.negatives``
  trains on another soundfont, TimGM6mb), 5 min;
- ``speech_tts``: ``SENTENCES`` (no keyword, no homophone of one) spoken by the
  synthetic corpus' held-out *test* voices (espeak-ng en-gb-scotland variants,
  flite rms, festival ked);
- ``sounds``: the event sounds of ``sound-theme-freedesktop`` (GPL-2 / CC-BY-SA);
- ``silence``, ``white_noise`` (-30 dBFS RMS), ``pink_noise`` (-30 dBFS RMS):
  2 min each.

Needs Debian's espeak-ng, flite, festival, fluidsynth and the packages named above:
``sudo bash benchmarks/install_audio.sh`` installs them.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import soundfile as sf
import torch

import kwmlp
from kwmlp.keywords import (DEFAULT_HOP_MS, DEFAULT_REFRACTORY_MS, DEFAULT_THRESHOLD,
                            model_threshold)
from kwmlp.train.negatives import check_keyword_free, render_midi
from kwmlp.train.recordings import noise_at_dbfs

SAMPLE_RATE = 16_000
GAP_S = 0.3  # between the files of one source
ASTERISK_RU = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
MOH = Path("/usr/share/asterisk/moh")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")
# Sentences without any of the 35 words or a homophone of one (check_keyword_free).
SENTENCES = (
    "The weather was cold and grey all morning.",
    "Please pass the salt and the pepper.",
    "We walked along the river after dinner.",
    "Her brother plays the piano every evening.",
    "The library closes early this week.",
    "A small boat drifted across the lake.",
    "They painted the kitchen a pale shade of blue.",
    "My neighbour grows tomatoes in the garden.",
    "The train was late again this morning.",
    "Coffee tastes better with a little milk.",
    "Children were laughing in the park.",
    "The museum has a famous painting of the sea.",
    "Turn the page and read the last paragraph.",
    "An old clock ticked quietly in the hall.",
    "Snow covered the mountains in the distance.",
    "She bought fresh bread at the market.",
    "The meeting will begin in a few minutes.",
    "Thank you very much, that was delicious.",
    "The computer needs a new battery.",
    "Lights in the city were glowing at night.",
    "Could you open the window, please?",
    "Music filled the whole building.",
    "The teacher asked a difficult question.",
    "Apples and pears are in the basket.",
    "The bus arrives at noon.",
    "A strong wind blew the leaves away.",
    "Our team practised hard all season.",
    "The doctor said he should rest.",
    "We watched a film about the ocean.",
    "Summer holidays are almost over.",
    "The phone rang while she was cooking.",
    "He carried the heavy boxes inside.",
    "The soup was warm and full of flavour.",
    "Sparrows sang in the early light.",  # was "Birds ...", which holds the keyword
    "The shop sells candles and soap.",
    "Every spring the flowers return.",
    "Pilots checked the weather report.",
    "The kettle whistled in the kitchen.",
    "Her garden is full of roses.",
    "Please sign the form at the bottom.",
)
SINGLE_WORDS = (
    "apple", "banana", "window", "table", "garden", "orange", "music", "computer",
    "lights", "water", "pencil", "yellow", "kitchen", "monday", "hello", "thanks",
    "please", "maybe", "later", "coffee", "paper", "silver", "winter", "summer",
)
def _resampled(paths: Sequence[Path]) -> np.ndarray:
    pieces = []
    for path in paths:
        if sf.info(str(path)).frames == 0:  # a few prompts of the packages are empty files
            continue
        audio, _ = kwmlp.load_audio(path)
        pieces += [audio.astype(np.float32), np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
    return np.concatenate(pieces)


def _noise(seconds: float, dbfs: float, pink: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return noise_at_dbfs(rng, int(seconds * SAMPLE_RATE), dbfs, pink)


def held_out_voices() -> list:
    """The synthetic corpus' held-out *test* voices (no training recipe uses them)."""
    from kwmlp.train.synth.voices import build_voice_inventory

    voices = [v for v in build_voice_inventory() if v.split == "testing"]
    if not voices:
        raise RuntimeError("the voice inventory has no testing voices")
    return voices


def _tts_speech(seed: int) -> np.ndarray:
    from kwmlp.train.synth.dsp import resample_to_16k
    from kwmlp.train.synth.engines import Renderer

    # Words merely spelt with a keyword inside ("phone", "coffee") are fair here.
    check_keyword_free(SENTENCES + SINGLE_WORDS, inside_words=False)
    voices = held_out_voices()
    rng = np.random.default_rng(seed)
    renderer, pieces = Renderer(), []
    try:
        for k, text in enumerate(SENTENCES * 3 + SINGLE_WORDS * 3):
            voice = voices[int(rng.integers(len(voices)))] if k % 3 else \
                [v for v in voices if v.engine != "espeak-ng"][k % 2]
            audio, rate = renderer.speak(text, voice, rng)
            audio = resample_to_16k(audio, rate)
            audio = audio / max(1e-6, np.abs(audio).max()) * float(rng.uniform(0.1, 0.8))
            pieces += [audio.astype(np.float32), np.zeros(int(rng.uniform(0.3, 1.5)
                                                               * SAMPLE_RATE), np.float32)]
    finally:
        renderer.close()
    return np.concatenate(pieces)


SOURCES: Dict[str, Callable[[], np.ndarray]] = {
    "speech_ru": lambda: _resampled(sorted(ASTERISK_RU.rglob("*.wav"))),
    "music_moh": lambda: _resampled(sorted(MOH.glob("*.wav"))),
    "music_midi": lambda: render_midi(SOUNDFONT, 300.0, seed=0),
    "speech_tts": lambda: _tts_speech(seed=0),
    "sounds": lambda: _resampled(sorted(FREEDESKTOP.rglob("*.oga"))),
    "silence": lambda: np.zeros(120 * SAMPLE_RATE, np.float32),
    "white_noise": lambda: _noise(120.0, -30.0, pink=False, seed=1),
    "pink_noise": lambda: _noise(120.0, -30.0, pink=True, seed=2),
}


def source_audio(name: str, cache: Path) -> np.ndarray:
    """``(n_samples,)`` float32 16 kHz audio of source ``name``, cached as FLAC."""
    path = cache / f"{name}.flac"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.clip(SOURCES[name](), -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    audio, _ = sf.read(path, dtype="float32")
    return audio


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="checkpoint (default: shipped weights)")
    parser.add_argument("--cache", default="runs/false_accepts", help="where the audio is kept")
    parser.add_argument("--sources", default=",".join(SOURCES), help="of: " + ", ".join(SOURCES))
    parser.add_argument("--threshold", type=float,
                        help="default: the checkpoint's own, else %g" % DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    model = kwmlp.load_model(args.model, device="cpu")
    args.threshold = model_threshold(model, args.threshold)
    print(f"model {model.model_id()}  hop {DEFAULT_HOP_MS} ms  threshold {args.threshold:g}  "
          f"refractory {DEFAULT_REFRACTORY_MS} ms")
    print(f"{'source':<12} {'minutes':>8} {'detections':>10} {'per hour':>9}  most fired")
    total_s, total_n = 0.0, 0
    for name in args.sources.split(","):
        audio = source_audio(name, Path(args.cache))
        recognition = kwmlp.recognize(torch.from_numpy(audio)[None], model)
        found = kwmlp.spot(recognition, threshold=args.threshold,
                           duration_ms=1000 * len(audio) / SAMPLE_RATE)[0]
        seconds = len(audio) / SAMPLE_RATE
        words: Dict[str, int] = {}
        for d in found:
            words[d.word] = words.get(d.word, 0) + 1
        top: List[str] = [f"{w} {n}" for w, n in sorted(words.items(), key=lambda i: -i[1])[:4]]
        rate = len(found) / seconds * 3600
        print(f"{name:<12} {seconds / 60:>8.1f} {len(found):>10} {rate:>9.1f}  {', '.join(top)}")
        total_s, total_n = total_s + seconds, total_n + len(found)
    print(f"{'all':<12} {total_s / 60:>8.1f} {total_n:>10} {total_n / total_s * 3600:>9.1f}")


if __name__ == "__main__":
    main()
