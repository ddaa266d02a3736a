"""The TTS engines: espeak-ng, flite, a long-lived festival process and the neural
voices (``neural``), and the per-clip prosody each is given."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import soundfile as sf

from ...errors import KwmlpError
from .neural import (KOKORO_SPEED, PIPER_LENGTH_SCALE, PIPER_NOISE_SCALE, PIPER_NOISE_W,
                     KokoroSession, PiperSession)
from .voices import Voice

# --- per-clip variation ranges -----------------------------------------------------------
ESPEAK_RATE_WPM = (100, 200)  # espeak-ng -s; default 175 is brisk for an isolated word
ESPEAK_PITCH = (20, 80)  # espeak-ng -p, 0..99; default 50
DURATION_STRETCH = (0.8, 1.35)  # flite duration_stretch / festival Duration_Stretch
F0_MEAN_FACTOR = (0.8, 1.25)  # times the voice's mean F0
F0_STD_FACTOR = (0.6, 1.6)  # times the voice's F0 std
HTS_SPEED = (0.8, 1.25)  # hts_engine -r (>1 is faster)


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

    ``text2wave`` reloads festival on every call, which costs far more than rendering
    a word (``benchmarks/README.md``); one process per worker is reused. Every call
    re-selects the voice and sets every parameter it varies, so no setting leaks from
    one clip to the next (output depends only on the arguments, which keeps the corpus
    independent of scheduling order).
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


class Renderer:
    """Speaks text in a voice; owns a scratch directory and (lazily) a festival process
    and the neural engines' ONNX sessions."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kwmlp-synth-")
        self.tmp_path = Path(self._tmp.name) / "tts.wav"
        self._festival: Optional[FestivalSession] = None
        self._kokoro: Optional[KokoroSession] = None
        self._piper: Optional[PiperSession] = None

    def speak(self, text: str, voice: Voice, rng: np.random.Generator) -> Tuple[np.ndarray, int]:
        """``voice`` saying ``text`` with per-clip prosody drawn from ``rng``."""
        p = voice.params
        if voice.engine == "espeak-ng":
            return render_espeak(
                text, accent=str(p["accent"]), variant=str(p["variant"]),
                rate_wpm=int(rng.integers(ESPEAK_RATE_WPM[0], ESPEAK_RATE_WPM[1] + 1)),
                pitch=int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1)),
                tmp_path=self.tmp_path)
        if voice.engine == "kokoro":
            self._kokoro = self._kokoro or KokoroSession()
            return self._kokoro.render(text, mix=dict(p["mix"]), accent=str(p["accent"]),
                                       speed=float(rng.uniform(*KOKORO_SPEED)))
        if voice.engine == "piper":
            self._piper = self._piper or PiperSession()
            return self._piper.render(text, length_scale=float(rng.uniform(*PIPER_LENGTH_SCALE)),
                                      noise_scale=float(rng.uniform(*PIPER_NOISE_SCALE)),
                                      noise_w=float(rng.uniform(*PIPER_NOISE_W)))
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

    def close(self) -> None:
        if self._festival is not None:
            self._festival.close()
            self._festival = None
        self._tmp.cleanup()
