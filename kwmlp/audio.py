"""Audio files -> 16 kHz mono float32, the input the HEAR API expects.

Reading is libsndfile's (through soundfile: WAV, FLAC, OGG/Vorbis, Opus, MP3,
AIFF, ...); resampling to 16 kHz is libsoxr's (python-soxr, quality "HQ") by
default, or resampy's ``kaiser_best`` (what openl3 uses) with
``resampler="resampy"``. Every bad file raises ``KwmlpError`` with a message that
starts with the path and says what is wrong with the file.
"""
from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Tuple

import numpy as np
import soundfile as sf
import soxr

from ._types import PathLike
from .errors import KwmlpError
from .frontend import SAMPLE_RATE

# What a folder scan picks up; a file named explicitly is read whatever its name.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
    ".snd", ".caf", ".w64", ".rf64",
})
RESAMPLERS = ("soxr", "resampy")
DEFAULT_RESAMPLER = "soxr"
# libsoxr's "HQ" (20-bit) recipe: flat to 7 kHz, aliases of 9-20 kHz tones at least
# 140 dB down, many times faster than resampy; "VHQ" is slower and its deeper stop
# band lies under float32 precision (figures: benchmarks/README.md, resample.py).
SOXR_QUALITY = "HQ"
# resampy's highest-quality filter, as openl3 uses: selectable for preprocessing
# identical to openl3's; it costs more than the embedding itself at 44.1 kHz.
RESAMPY_FILTER = "kaiser_best"
# libsndfile's log line for a WAV/AIFF whose header claims more audio bytes than
# the file holds (it then reads what is there): "data : 32000 (should be 15978)".
_SHORT_DATA_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)


def _unreadable(path: Path, err: Exception) -> KwmlpError:
    """Turn a soundfile/OS error into one naming the path and libsndfile's reason."""
    reason = (getattr(err, "error_string", None) or str(err)).rstrip(".")
    return KwmlpError(f"{path}: cannot read audio ({reason})")


def _check_exists(path: Path) -> None:
    # libsndfile says only "System error" for these, so say it ourselves.
    if not path.exists():
        raise KwmlpError(f"{path}: no such file")
    if path.is_fifo() or path.is_char_device():  # <(cat x.flac), /dev/stdin
        raise KwmlpError(f"{path}: a pipe or device, not a file (audio is decoded from a "
                         f"file; raw 16 kHz mono s16le PCM can be piped to - instead)")
    if not path.is_file():
        raise KwmlpError(f"{path}: not a file")


@contextmanager
def _open(path: Path) -> Iterator[sf.SoundFile]:
    """libsndfile on a Python file object: soundfile would encode the name as
    UTF-8, which fails for names that are not valid UTF-8."""
    _check_exists(path)
    try:
        with open(path, "rb") as file:
            try:
                sound = sf.SoundFile(file)
            except TypeError:  # soundfile takes a .raw name for headerless PCM of unsaid rate
                raise KwmlpError(
                    f"{path}: cannot read audio (a .raw file has no header to give its rate, "
                    f"channels and sample format: convert it, e.g. sox -t raw -r RATE -e "
                    f"signed -b 16 -c 1 FILE out.wav, or pipe 16 kHz mono s16le PCM to -)"
                ) from None
            with sound:
                yield sound
    except (sf.SoundFileError, OSError) as err:
        raise _unreadable(path, err) from None


def audio_duration_s(path: PathLike) -> float:
    """Duration in seconds from the file header, without decoding the audio.

    Raises ``KwmlpError`` if the file is missing or libsndfile cannot open it."""
    with _open(Path(path)) as sound:
        return sound.frames / sound.samplerate


def downmix(audio: np.ndarray) -> np.ndarray:
    """``(n_frames, n_channels)`` -> ``(n_frames,)``: the mean of the channels."""
    return audio.mean(axis=1, dtype=np.float32)


CANCELLED_DB = 20.0  # a mix this far under uncorrelated channels' level lost its content
AUDIBLE_RMS = 1e-3  # blocks quieter than -60 dBFS are not judged


def _block_variances(x: np.ndarray, block: int) -> np.ndarray:
    """``(n, ...)`` -> ``(ceil(n / block), ...)``: each block's variance along axis 0
    (its energy with the DC removed), the last block as long as it is."""
    starts = np.arange(0, len(x), block)
    n = np.diff(np.append(starts, len(x))).reshape(-1, *[1] * (x.ndim - 1))
    mean = np.add.reduceat(x, starts, axis=0, dtype=np.float64) / n
    return np.add.reduceat(np.square(x), starts, axis=0, dtype=np.float64) / n - mean ** 2


def cancelled_blocks(audio: np.ndarray, mono: np.ndarray, block: int) -> Tuple[int, int, float]:
    """Which blocks of ``block`` frames of ``audio`` ``(n_frames, n_channels)`` lose
    their content in ``mono`` ``(n_frames,)``, the mean of its channels:
    ``(cancelled, blocks, worst dB)``. A block is cancelled when it is audible
    (channel RMS, DC removed, at least ``AUDIBLE_RMS``) and its mix lies
    ``CANCELLED_DB`` under the level uncorrelated channels would mix to (their mean
    energy over ``n_channels``): identical channels lie 10·log10(n_channels) dB
    above it, exactly opposite ones infinitely under."""
    n_frames, n_channels = audio.shape
    blocks = -(-n_frames // block)
    if n_channels == 1:
        return 0, blocks, 0.0
    step = 64 * block  # a few blocks at a time: temporaries stay small
    channels = np.concatenate([_block_variances(audio[i:i + step], block).mean(axis=1)
                               for i in range(0, n_frames, step)])
    mixed = np.concatenate([_block_variances(mono[i:i + step], block)
                            for i in range(0, n_frames, step)])
    audible = channels >= AUDIBLE_RMS ** 2
    with np.errstate(divide="ignore"):
        loss = 10.0 * np.log10(channels[audible] / n_channels / np.maximum(mixed[audible], 0.0))
    return int((loss > CANCELLED_DB).sum()), blocks, float(loss.max(initial=0.0))


def check_resampler(resampler: str) -> None:
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {RESAMPLERS}, got {resampler!r}")


def resample(audio: np.ndarray, sample_rate: int, resampler: str = DEFAULT_RESAMPLER
             ) -> np.ndarray:
    """``(n_samples,)`` float32 at ``sample_rate`` Hz -> float32 at 16 kHz: with
    ``"soxr"`` ``round(n_samples * 16000 / sample_rate)`` samples, with
    ``"resampy"`` ``floor(...)``. Audio already at 16 kHz is returned as it is.
    Raises ``ValueError`` when the result would hold no sample."""
    check_resampler(resampler)
    if sample_rate == SAMPLE_RATE:
        return audio
    if resampler == "resampy":
        # Here, not at the top: resampy pulls in numba, which would make every
        # `import kwmlp` slower and larger (benchmarks/README.md).
        import resampy

        out = resampy.resample(audio, sample_rate, SAMPLE_RATE, filter=RESAMPY_FILTER)
    else:
        out = soxr.resample(audio, sample_rate, SAMPLE_RATE, quality=SOXR_QUALITY)
    if len(out) == 0:
        raise ValueError(f"{len(audio)} samples at {sample_rate} Hz make no sample at 16 kHz")
    return out.astype(np.float32, copy=False)


def load_audio(path: PathLike, resampler: str = DEFAULT_RESAMPLER) -> Tuple[np.ndarray, int]:
    """Read any file libsndfile reads as ``(audio, 16000)``: ``audio`` is float32
    of shape ``(n_samples,)`` at 16 kHz, integer PCM scaled to [-1, 1), several
    channels averaged to one, other rates resampled by ``resampler`` (see
    ``resample``).

    Raises ``KwmlpError``, naming the path and the reason, for a file that is
    missing, unreadable, corrupt, has zero channels (libsndfile refuses those),
    holds no samples (or too few to resample) or holds NaN/inf. Warns if a
    float file peaks above 1.0, if its header promises more audio than it
    holds (a truncated WAV or AIFF, of which only what is there is read), and
    if its channels cancel when averaged (``cancelled_blocks``).
    """
    check_resampler(resampler)
    path = Path(path)
    with _open(path) as sound:
        audio = sound.read(dtype="float32", always_2d=True)
        sample_rate, log = sound.samplerate, sound.extra_info
    short = _SHORT_DATA_CHUNK.search(log)
    if short:
        promised, held = map(int, short.groups())
        warnings.warn(f"{path}: the header promises {promised} bytes of audio but the file "
                      f"holds {held} (truncated?); only the {audio.shape[0] / sample_rate:.3f} "
                      f"s it holds are used", stacklevel=2)
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
    cancelled, blocks, worst = cancelled_blocks(audio, mono, sample_rate)
    if cancelled:  # e.g. one microphone wired in reverse: those seconds would be silence
        how = ("to silence" if worst == np.inf
               else f"up to {worst:.0f} dB under uncorrelated channels")
        warnings.warn(f"{path}: its {audio.shape[1]} channels cancel when averaged to mono in "
                      f"{cancelled} of its {blocks} seconds ({how}: a channel wired in "
                      f"reverse?); kwmlp embeds the mix, so keep one channel or invert one "
                      f"to be heard", stacklevel=2)
    try:
        mono = resample(mono, sample_rate, resampler)
    except ValueError:  # fewer samples than make one at 16 kHz
        raise KwmlpError(f"{path}: too short to resample ({audio.shape[0]} samples at "
                         f"{sample_rate} Hz)") from None
    return mono, SAMPLE_RATE


INT16_SCALE = 32768.0  # int16 full scale -> float in [-1, 1)


def read_pcm16(reader: BinaryIO, block_samples: int) -> Iterator[np.ndarray]:
    """Raw 16 kHz mono s16le PCM from ``reader`` (e.g. ``sys.stdin.buffer`` behind
    ``arecord -f S16_LE -r 16000 -c 1``) as float32 blocks ``(block_samples,)``
    in [-1, 1) as soon as each is complete; the last may be shorter. A trailing
    odd byte (half a sample) is dropped. A WAV header of that format (arecord
    writes one unless ``-t raw``) is skipped, and what follows its data chunk is
    not read; any other audio file is refused (``KwmlpError``) rather than read as
    samples."""
    block_bytes = 2 * block_samples
    pending, left = _pcm_start(reader)
    while True:
        while len(pending) >= block_bytes:
            yield _int16_to_float(pending[:block_bytes])
            pending = pending[block_bytes:]
        data = reader.read(min(block_bytes - len(pending), left))
        if not data:
            break
        pending += data
        left -= len(data)
    whole = len(pending) // 2 * 2
    if whole:
        yield _int16_to_float(pending[:whole])


def _int16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / INT16_SCALE


# A data chunk this large (over 18 h at 16 kHz) is the dummy size of a recording of
# unknown length (arecord writes 0x7FFFFFFF-ish, ffmpeg and sox 0xFFFFFFFF, RF64 -1).
_UNKNOWN_DATA_SIZE = 0x7FFF0000
FILE_MAGIC = {b"fLaC": "FLAC", b"OggS": "Ogg", b"FORM": "AIFF", b"ID3": "MP3",
              b"RIFF": "RIFF", b"RF64": "RF64", b"riff": "Wave64", b".snd": "AU",
              b"caff": "CAF"}  # how audio files (not raw PCM) start
MP4_MAGIC = b"ftyp"  # an MP4/M4A file's bytes 4 to 8


# MPEG audio frame headers (ISO 11172-3, 13818-3): kbit/s by (MPEG-1?, layer) and index
_MPEG_KBPS = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_KBPS[False, 3] = _MPEG_KBPS[False, 2]
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mpeg_frame_bytes(header: bytes) -> int:
    """The length in bytes of the MPEG audio frame (an MP3 without ID3 tag) whose
    4-byte header starts ``header``, or 0 if it is no valid frame header."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return 0
    version, layer = (header[1] >> 3) & 3, 4 - ((header[1] >> 1) & 3)
    bitrate, rate, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate in (0, 15) or rate == 3:
        return 0  # reserved values (and "free format", which has no length)
    kbps, hz = _MPEG_KBPS[version == 3, layer][bitrate], _MPEG_RATES[version][rate]
    if layer == 1:
        return (12000 * kbps // hz + padding) * 4
    per_frame = 144000 if layer == 2 or version == 3 else 72000
    return per_frame * kbps // hz + padding


def _read_up_to(reader: BinaryIO, n_bytes: int) -> bytes:
    """``n_bytes`` from ``reader``, fewer only at its end (a pipe gives what it has)."""
    data = b""
    while len(data) < n_bytes:
        more = reader.read(n_bytes - len(data))
        if not more:
            break
        data += more
    return data


def _pcm_start(reader: BinaryIO) -> Tuple[bytes, float]:
    """``(the first bytes of the PCM, how many more to read)``: the stream's first
    12 and no limit, or, after a WAV header of 16 kHz mono 16-bit PCM (read up to
    its data chunk), none and the size the data chunk declares."""
    head = _read_up_to(reader, 12)
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        while True:
            chunk = _read_up_to(reader, 8)
            if len(chunk) < 8:
                raise KwmlpError("a WAV header that ends before its data chunk")
            tag, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if tag == b"data":  # a live recorder cannot know the size: it writes a dummy
                return b"", (math.inf if size == 0 or size >= _UNKNOWN_DATA_SIZE else size)
            body = _read_up_to(reader, size + size % 2)
            if tag == b"fmt " and len(body) >= 16:
                code, channels, rate = (int.from_bytes(body[i:j], "little")
                                        for i, j in ((0, 2), (2, 4), (4, 8)))
                bits = int.from_bytes(body[14:16], "little")
                if code not in (1, 0xFFFE) or (channels, rate, bits) != (1, SAMPLE_RATE, 16):
                    raise KwmlpError(
                        f"a WAV of {channels} channel(s) at {rate} Hz, {bits}-bit (format "
                        f"{code}); raw input must be {SAMPLE_RATE} Hz mono 16-bit PCM: give "
                        f"the file's name instead of -, or convert it (e.g. sox FILE -r "
                        f"{SAMPLE_RATE} -c 1 -b 16 -t wav -)")
    name = next((name for magic, name in FILE_MAGIC.items() if head.startswith(magic)),
                "MP4/M4A" if head[4:8] == MP4_MAGIC else "")
    length = mpeg_frame_bytes(head)
    if length and not name:  # an MP3 without tag, if another frame follows the first
        head += _read_up_to(reader, length + 4 - len(head))
        name = "MP3" if mpeg_frame_bytes(head[length:]) else ""
    if name:
        raise KwmlpError(f"this is an audio file ({name}), not raw 16 kHz mono s16le PCM: "
                         f"give the file's name instead of -")
    return head, math.inf
