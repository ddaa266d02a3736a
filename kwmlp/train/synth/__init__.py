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
``--engines kokoro piper`` renders neural voices instead (``neural``, the ``train``
extra), training split only; Piper's clips are the one exception to bit-for-bit
reproducibility (its ONNX graph draws its own noise).

Run ``python -m kwmlp.train.synth --out DIR --seed 0 --clips-per-word 1150``.

Modules, by concern: ``voices`` (engines, speakers, held-out splits), ``plan`` (who
says what, per-clip random numbers), ``engines`` (running the TTS engines; ``neural``
for Kokoro and Piper), ``dsp`` (trimming and fitting a word into 1 s), ``noise``
(background noises), ``corpus`` (rendering it all in parallel, and the command line).
"""
from .corpus import ClipResult, CorpusSummary, generate_corpus, main, parse_args, render_clip
from .dsp import fit_to_window, place_in_window, resample_to_16k, trim_silence, write_wav
from .engines import FestivalSession, Renderer, render_espeak, render_flite
from .noise import NOISE_DURATION_S, babble, coloured_noise, mains_hum, write_background_noise
from .plan import ENGINE_WEIGHTS, SPLIT_FRACTIONS, SPLITS, ClipSpec, clip_rng, plan_clips
from .voices import (DEBIAN_ENGINES, ENGINES, ESPEAK_ACCENTS, ESPEAK_VARIANTS, FESTIVAL_VOICES,
                     FLITE_VOICES, NEURAL_ENGINES,
                     TEST_ACCENTS, TEST_SPEAKERS, TEST_VARIANTS, VALIDATION_ACCENTS,
                     VALIDATION_SPEAKERS, VALIDATION_VARIANTS, Voice, build_voice_inventory,
                     check_engines, split_for_voice)

__all__ = [
    "ClipResult", "CorpusSummary", "generate_corpus", "main", "parse_args", "render_clip",
    "fit_to_window", "place_in_window", "resample_to_16k", "trim_silence", "write_wav",
    "FestivalSession", "Renderer", "render_espeak", "render_flite",
    "NOISE_DURATION_S", "babble", "coloured_noise", "mains_hum", "write_background_noise",
    "ENGINE_WEIGHTS", "SPLIT_FRACTIONS", "SPLITS", "ClipSpec", "clip_rng", "plan_clips",
    "DEBIAN_ENGINES", "ENGINES", "NEURAL_ENGINES", "ESPEAK_ACCENTS", "ESPEAK_VARIANTS",
    "FESTIVAL_VOICES", "FLITE_VOICES",
    "TEST_ACCENTS", "TEST_SPEAKERS", "TEST_VARIANTS", "VALIDATION_ACCENTS",
    "VALIDATION_SPEAKERS", "VALIDATION_VARIANTS", "Voice", "build_voice_inventory",
    "check_engines", "split_for_voice",
]
