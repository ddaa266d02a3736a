"""Audio files -> 16 kHz mono float32, the input the HEAR API expects.

Reading is libsndfile's (through soundfile: WAV, FLAC, OGG/Vorbis, Opus, MP3,
AIFF, ...); resampling is resampy's. Every bad file raises ``KwmlpError`` with
a message that starts with the path and says what is wrong with the file.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Tuple, Union

import numpy as np
import soundfile as sf

from .errors import KwmlpError
from .frontend import SAMPLE_RATE

PathLike = Union[str, Path]

# What a folder scan picks up; a file named explicitly is read whatever its name.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
    ".snd", ".caf", ".w64", ".rf64",
})
# resampy's highest-quality filter, as openl3 uses; it costs more than the
# embedding itself for 44.1 kHz input, but a cheaper filter aliases more.
RESAMPLE_FILTER = "kaiser_best"


def _unreadable(path: Path, err: Exception) -> KwmlpError:
    """Turn a soundfile/OS error into one naming the path and libsndfile's reason."""
    reason = (getattr(err, "error_string", None) or str(err)).rstrip(".")
    return KwmlpError(f"{path}: cannot read audio ({reason})")


def _check_exists(path: Path) -> None:
    # libsndfile says only "System error" for these, so say it ourselves.
    if not path.exists():
        raise KwmlpError(f"{path}: no such file")
    if not path.is_file():
        raise KwmlpError(f"{path}: not a file")


def audio_duration_s(path: PathLike) -> float:
    """Duration in seconds from the file header, without decoding the audio.

    Raises ``KwmlpError`` if the file is missing or libsndfile cannot open it."""
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, OSError) as err:
        raise _unreadable(path, err) from None
    return info.frames / info.samplerate


def downmix(audio: np.ndarray) -> np.ndarray:
    """``(n_frames, n_channels)`` -> ``(n_frames,)``: the mean of the channels."""
    return audio.mean(axis=1, dtype=np.float32)


def resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(n_samples,)`` at ``sample_rate`` Hz -> ``(floor(n_samples * 16000 /
    sample_rate),)`` at 16 kHz, float32. Raises ``ValueError`` (resampy's) when
    that is less than one sample."""
    if sample_rate == SAMPLE_RATE:
        return audio
    import resampy  # here, not at the top: it pulls in numba (~65 MB, ~0.5 s) for every import kwmlp

    return resampy.resample(audio, sample_rate, SAMPLE_RATE, filter=RESAMPLE_FILTER).astype(
        np.float32, copy=False)


def load_audio(path: PathLike) -> Tuple[np.ndarray, int]:
    """Read any file libsndfile reads as ``(audio, 16000)``: ``audio`` is float32
    of shape ``(n_samples,)`` at 16 kHz, integer PCM scaled to [-1, 1), several
    channels averaged to one.

    Raises ``KwmlpError``, naming the path and the reason, for a file that is
    missing, unreadable, corrupt, has zero channels (libsndfile refuses those),
    holds no samples (or too few to resample) or holds NaN/inf. Warns if a
    float file peaks above 1.0.
    """
    path = Path(path)
    _check_exists(path)
    try:
        audio, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, OSError) as err:
        raise _unreadable(path, err) from None
    if audio.shape[0] == 0:
        raise KwmlpError(f"{path}: the file holds no audio samples")
    if not np.isfinite(audio).all():
        raise KwmlpError(f"{path}: the file holds NaN or infinite samples")
    # Checked before resampling, whose ringing can overshoot full-scale PCM a little.
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        warnings.warn(f"{path}: peak {peak:.3g} exceeds 1.0; kwmlp expects audio in [-1, 1] "
                      f"and does not clip or rescale it", stacklevel=2)
    mono = downmix(audio)
    try:
        mono = resample(mono, sample_rate)
    except ValueError:  # fewer samples than make one at 16 kHz
        raise KwmlpError(f"{path}: too short to resample ({audio.shape[0]} samples at "
                         f"{sample_rate} Hz)") from None
    return mono, SAMPLE_RATE
