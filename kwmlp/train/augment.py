"""Training-time augmentation, batched on tensors (paper appendix A, Table 5).

Waveform side (before the MFCC): a lossy-codec copy of the clip (made once per run
by ``codec_copies``), speed perturbation, reverberation by a simulated room, random
time shift, background-noise mixing at a random SNR, random gain.
Spectrum side (on the power spectrogram): vocal-tract-length warping, microphone
colouration (smooth random EQ, band limits down to telephone). MFCC side:
SpecAugment-style time and frequency masks. The speed, warp, EQ and reverberation
stages make synthetic voices sound like more speakers in more places; their
probabilities default to 0 (off), the recipe of the first shipped weights.
Every function draws from an explicit ``torch.Generator`` so a run is replicable
and its augmentation stream can be checkpointed. (Just over 300 lines: each
stage is a few lines, and ``augment_waveform`` reads them in their order.)
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import soundfile as sf
import torch

from ..frontend import CHUNK_SAMPLES, SAMPLE_RATE, MFCC

_POWER_FLOOR = 1e-10  # keeps silent clips / silent noise segments from dividing by 0
VTLP_BOUNDARY_HZ = 4800.0  # warp is linear below this (scaled), then meets Nyquist
BAND_EDGE_ORDER = 4  # Butterworth-like roll-off of the band limits
EQ_COSINES = 3  # the random EQ curve is a sum of this many cosines over log-frequency
# (soundfile format, subtype) of the lossy codecs a clip may be round-tripped through.
CODECS = (("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III"))


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; ranges are inclusive ``(low, high)``."""

    time_masks: int = 2
    time_mask_frames: Tuple[int, int] = (0, 25)
    freq_masks: int = 2
    freq_mask_coeffs: Tuple[int, int] = (0, 7)
    noise_prob: float = 0.8
    snr_db: Tuple[float, float] = (5.0, 25.0)
    gain_db: Tuple[float, float] = (-6.0, 6.0)
    max_shift_ms: float = 100.0
    speed_prob: float = 0.0
    speed_factor: Tuple[float, float] = (0.85, 1.15)  # > 1 is faster and higher
    vtlp_prob: float = 0.0
    vtlp_alpha: Tuple[float, float] = (0.9, 1.1)  # formant frequencies scale by alpha
    eq_prob: float = 0.0
    eq_max_db: float = 6.0  # peak of the smooth random gain curve
    bandlimit_prob: float = 0.0
    highpass_hz: Tuple[float, float] = (50.0, 400.0)
    lowpass_hz: Tuple[float, float] = (3400.0, 7500.0)  # 300-3400 Hz is telephone band
    reverb_prob: float = 0.0
    codec_prob: float = 0.0
    # soundfile's 0 (best) .. 1 (smallest); libsndfile's MP3 encoder refuses 1.0
    codec_compression: Tuple[float, float] = (0.3, 0.9)


# helpers

def _uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _randint_inclusive(low: int, high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high + 1, (n,), generator=generator)


def _band_masks(n_rows: int, n_masks: int, width_range: Tuple[int, int], batch: int,
                generator: torch.Generator) -> torch.Tensor:
    """``(batch, n_rows)`` bool, True inside any of ``n_masks`` random bands per item.

    A band of width ``w`` starts uniformly in ``[0, n_rows - w]``, so it always fits."""
    low, high = width_range
    if not 0 <= low <= high <= n_rows:
        raise ValueError(f"mask width range must satisfy 0 <= low <= high <= {n_rows}, "
                         f"got {width_range}")
    rows = torch.arange(n_rows)
    masked = torch.zeros(batch, n_rows, dtype=torch.bool)
    for _ in range(n_masks):
        width = _randint_inclusive(low, high, batch, generator)
        start = (torch.rand(batch, generator=generator) * (n_rows - width + 1)).long()
        masked |= (rows >= start[:, None]) & (rows < (start + width)[:, None])
    return masked


# waveform augmentation

def time_shift(audio: torch.Tensor, max_shift_samples: int,
               generator: torch.Generator) -> torch.Tensor:
    """Shift each clip by a uniform integer in ``[-max_shift_samples, max_shift_samples]``
    samples, filling with zeros (not wrapping: a word cut at one end must not reappear
    at the other). ``(batch, samples) -> (batch, samples)``."""
    batch, n_samples = audio.shape
    shift = _randint_inclusive(-max_shift_samples, max_shift_samples, batch, generator)
    source = torch.arange(n_samples) - shift[:, None]
    inside = (source >= 0) & (source < n_samples)
    return audio.gather(1, source.clamp(0, n_samples - 1)) * inside


def noise_segments(noise: List[torch.Tensor], batch: int, n_samples: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Draw ``batch`` segments of ``n_samples`` from the recordings, uniformly over all
    whole segments (a long recording is drawn from proportionally more often).
    Returns ``(batch, n_samples)``."""
    if not noise:
        raise ValueError("no background-noise recordings to draw segments from")
    joined = torch.cat(noise)
    lengths = torch.tensor([len(n) for n in noise])
    file_starts = torch.cumsum(lengths, 0) - lengths
    n_starts = (lengths - n_samples + 1).clamp(min=0)  # valid start offsets per recording
    if int(n_starts.sum()) == 0:
        raise ValueError(f"no background-noise recording has {n_samples} samples")
    # Pick a global start index, then find which recording it falls in, so no
    # segment spans the boundary between two recordings.
    pick = torch.randint(int(n_starts.sum()), (batch,), generator=generator)
    cumulative = torch.cumsum(n_starts, 0)
    recording = torch.searchsorted(cumulative, pick, right=True)
    offset = pick - (cumulative[recording] - n_starts[recording])
    start = file_starts[recording] + offset
    return joined[start[:, None] + torch.arange(n_samples)]


def mix_at_snr(clean: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """``clean + k * noise`` with ``k`` per row such that
    ``10 log10(mean(clean^2) / mean((k noise)^2)) == snr_db``.
    ``clean``, ``noise``: ``(batch, samples)``; ``snr_db``: ``(batch,)`` in dB."""
    clean_power = clean.square().mean(dim=1).clamp(min=_POWER_FLOOR)
    noise_power = noise.square().mean(dim=1).clamp(min=_POWER_FLOOR)
    scale = torch.sqrt(clean_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return clean + scale[:, None] * noise


def _chosen(prob: float, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch,)`` bool, each True with probability ``prob``."""
    return torch.rand(batch, generator=generator) < prob


def speed_perturb(audio: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Play each clip ``factor`` times faster (tempo and pitch together, as Kaldi's speed
    perturbation) about its centre, by linear interpolation; samples read from outside
    the clip are zero. ``(batch, samples)``, ``(batch,)`` -> ``(batch, samples)``."""
    batch, n_samples = audio.shape
    centre = (n_samples - 1) / 2
    source = centre + (torch.arange(n_samples) - centre)[None, :] * factor[:, None]
    inside = (source >= 0) & (source <= n_samples - 1)
    left = source.floor().long().clamp(0, n_samples - 2)
    frac = source - left
    a, b = audio.gather(1, left), audio.gather(1, left + 1)
    return (a + frac * (b - a)) * inside


def reverberate(audio: torch.Tensor, rirs: torch.Tensor) -> torch.Tensor:
    """Convolve each clip with its impulse response and keep the first ``samples``
    (the response starts at its direct path, so the word stays in place), at the dry
    clip's RMS. ``(batch, samples)``, ``(batch, rir_samples)`` -> ``(batch, samples)``."""
    n_samples = audio.shape[1]
    # A power of two at least the full convolution's length: no wrap-around, and
    # the FFT of the raw length (often a large prime factor) is several times slower.
    n_fft = 1 << (n_samples + rirs.shape[1] - 2).bit_length()
    wet = torch.fft.irfft(torch.fft.rfft(audio, n_fft) * torch.fft.rfft(rirs, n_fft),
                          n_fft)[:, :n_samples]
    scale = torch.sqrt(audio.square().mean(1).clamp(min=_POWER_FLOOR)
                       / wet.square().mean(1).clamp(min=_POWER_FLOOR))
    return wet * scale[:, None]


def codec_round_trip(clip: np.ndarray, codec: Tuple[str, str], compression: float) -> np.ndarray:
    """Encode a 16 kHz int16 clip ``(samples,)`` with a lossy codec in memory and decode
    it again: same length and dtype (the decoder's padding is cut, a short decode padded)."""
    buffer = io.BytesIO()
    sf.write(buffer, clip, SAMPLE_RATE, format=codec[0], subtype=codec[1],
             compression_level=compression)
    buffer.seek(0)
    decoded = sf.read(buffer, dtype="int16")[0][:len(clip)]
    return np.pad(decoded, (0, len(clip) - len(decoded)))


def codec_copies(audio: torch.Tensor, config: AugmentConfig, seed: int) -> torch.Tensor:
    """Every clip of int16 ``(n, samples)`` through one of ``CODECS`` at a compression
    drawn from ``codec_compression``, fixed by ``seed``. A codec costs milliseconds per
    clip, too slow per batch, so a run makes these copies once and ``augment_waveform``
    picks from them."""
    rng = np.random.default_rng(seed)
    codec = rng.integers(len(CODECS), size=len(audio))
    compression = rng.uniform(*config.codec_compression, size=len(audio))
    clips = audio.numpy()
    return torch.from_numpy(np.stack([codec_round_trip(clip, CODECS[c], q)
                                      for clip, c, q in zip(clips, codec, compression)]))


def augment_waveform(audio: torch.Tensor, noise: List[torch.Tensor], config: AugmentConfig,
                     generator: torch.Generator, rirs: Optional[torch.Tensor] = None,
                     coded: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Take a ``codec_prob`` share of clips from ``coded`` (the same clips after a codec
    round trip, needed when ``codec_prob > 0``), speed-perturb a ``speed_prob`` share,
    reverberate a ``reverb_prob`` share with impulse responses drawn from ``rirs``
    ``(n_rooms, rir_samples)`` (needed when ``reverb_prob > 0``), shift, add noise to a
    ``noise_prob`` share, apply gain. ``(batch, CHUNK_SAMPLES)`` float audio -> same
    shape. ``noise`` may be empty (no ``_background_noise_`` folder), then no noise is
    mixed."""
    batch = audio.shape[0]
    if config.codec_prob > 0:
        if coded is None:
            raise ValueError("codec_prob > 0 needs the codec copies of the clips (coded)")
        audio = torch.where(_chosen(config.codec_prob, batch, generator)[:, None], coded, audio)
    if config.speed_prob > 0:
        factor = torch.where(_chosen(config.speed_prob, batch, generator),
                             _uniform(*config.speed_factor, batch, generator), 1.0)
        audio = speed_perturb(audio, factor)
    if config.reverb_prob > 0:
        if rirs is None:
            raise ValueError("reverb_prob > 0 needs a bank of impulse responses (rirs)")
        room = torch.randint(len(rirs), (batch,), generator=generator)
        chosen = _chosen(config.reverb_prob, batch, generator)
        if chosen.any():  # the convolution is the costly step: only chosen clips get it
            audio = audio.clone()
            audio[chosen] = reverberate(audio[chosen], rirs[room[chosen]])
    audio = time_shift(audio, round(config.max_shift_ms * SAMPLE_RATE / 1000), generator)
    if noise and config.noise_prob > 0:
        segments = noise_segments(noise, batch, CHUNK_SAMPLES, generator)
        snr_db = _uniform(*config.snr_db, batch, generator)
        noisy = _chosen(config.noise_prob, batch, generator)
        audio = torch.where(noisy[:, None], mix_at_snr(audio, segments, snr_db), audio)
    gain_db = _uniform(*config.gain_db, batch, generator)
    return audio * (10.0 ** (gain_db / 20.0))[:, None]


# spectrum augmentation

def _bin_frequencies(n_bins: int) -> torch.Tensor:
    """Centre frequencies in Hz of the ``n_bins`` bins of a one-sided spectrum."""
    return torch.linspace(0.0, SAMPLE_RATE / 2, n_bins)


def warp_frequencies(power: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Vocal-tract-length perturbation (Jaitly & Hinton, 2013): move the energy at
    frequency ``f`` to ``alpha * f`` below a knee near ``VTLP_BOUNDARY_HZ``, then
    linearly so that Nyquist stays Nyquist. Each output bin reads the input spectrum
    at the inverse-warped frequency, interpolated linearly between bins.
    ``(batch, frames, bins)``, ``(batch,)`` -> ``(batch, frames, bins)``."""
    batch, n_frames, n_bins = power.shape
    nyquist = SAMPLE_RATE / 2
    out_hz = _bin_frequencies(n_bins)[None, :]
    alpha = alpha[:, None]
    knee_out = VTLP_BOUNDARY_HZ * alpha.clamp(max=1.0)  # warped frequency of the knee
    knee_in = knee_out / alpha
    in_hz = torch.where(out_hz <= knee_out, out_hz / alpha,
                        nyquist - (nyquist - knee_in) / (nyquist - knee_out) * (nyquist - out_hz))
    position = in_hz / nyquist * (n_bins - 1)
    left = position.floor().long().clamp(0, n_bins - 2)
    frac = (position - left).clamp(0.0, 1.0)[:, None, :]
    left = left[:, None, :].expand(batch, n_frames, n_bins)
    a, b = power.gather(2, left), power.gather(2, left + 1)
    return a + frac * (b - a)


def colouration_db(config: AugmentConfig, batch: int, n_bins: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``(batch, n_bins)`` gain in dB of a random microphone/channel: for an ``eq_prob``
    share of clips a smooth curve over log-frequency (a sum of ``EQ_COSINES`` random
    cosines, peak ``eq_max_db``), for a ``bandlimit_prob`` share high- and low-pass
    edges with cut-offs drawn from ``highpass_hz`` and ``lowpass_hz``."""
    hz = _bin_frequencies(n_bins)
    log_f = torch.log(hz + 50.0)
    u = ((log_f - log_f[0]) / (log_f[-1] - log_f[0]))[None, :]  # 0..1 across the band
    curve = torch.zeros(batch, n_bins)
    for k in range(1, EQ_COSINES + 1):
        amplitude = _uniform(-1.0, 1.0, batch, generator)[:, None]
        phase = _uniform(0.0, 2 * torch.pi, batch, generator)[:, None]
        curve += amplitude * torch.cos(2 * torch.pi * k * u / 2 + phase)
    peak = curve.abs().amax(dim=1, keepdim=True).clamp(min=1e-6)
    eq = curve / peak * config.eq_max_db * _chosen(config.eq_prob, batch, generator)[:, None]
    highpass = _uniform(*config.highpass_hz, batch, generator)[:, None]
    lowpass = _uniform(*config.lowpass_hz, batch, generator)[:, None]
    power_gain = 1.0 / ((1.0 + (highpass / hz.clamp(min=1.0)) ** (2 * BAND_EDGE_ORDER))
                        * (1.0 + (hz / lowpass) ** (2 * BAND_EDGE_ORDER)))
    edges = 10.0 * torch.log10(power_gain.clamp(min=_POWER_FLOOR))
    return eq + edges * _chosen(config.bandlimit_prob, batch, generator)[:, None]


def augment_spectrum(power: torch.Tensor, config: AugmentConfig,
                     generator: torch.Generator) -> torch.Tensor:
    """Warp a ``vtlp_prob`` share of clips, then colour (``colouration_db``).
    Power spectrogram ``(batch, frames, bins)`` -> same shape."""
    batch, _, n_bins = power.shape
    if config.vtlp_prob > 0:
        alpha = torch.where(_chosen(config.vtlp_prob, batch, generator),
                            _uniform(*config.vtlp_alpha, batch, generator), 1.0)
        power = warp_frequencies(power, alpha)
    if config.eq_prob > 0 or config.bandlimit_prob > 0:
        gain_db = colouration_db(config, batch, n_bins, generator)
        power = power * (10.0 ** (gain_db / 10.0))[:, None, :]
    return power


def augmented_mfcc(frontend: MFCC, audio: torch.Tensor, config: AugmentConfig,
                   generator: torch.Generator) -> torch.Tensor:
    """MFCC of augmented waveforms with the spectrum stages and the Table 5 masks:
    ``(batch, CHUNK_SAMPLES)`` -> ``(batch, N_MFCC, FRAMES_PER_CHUNK)``. ``frontend``
    must be the ``fft`` backend, whose power spectrogram is reachable."""
    power = augment_spectrum(frontend.power(audio), config, generator)
    return mask_mfcc(frontend.mfcc_from_power(power), config, generator)


# MFCC augmentation

def mask_mfcc(mfcc: torch.Tensor, config: AugmentConfig,
              generator: torch.Generator) -> torch.Tensor:
    """Zero ``config.time_masks`` random frame bands and ``config.freq_masks`` random
    coefficient bands per item (zero, as the original KW-MLP code does).
    ``(batch, n_mfcc, n_frames) -> (batch, n_mfcc, n_frames)``."""
    batch, n_mfcc, n_frames = mfcc.shape
    frames = _band_masks(n_frames, config.time_masks, config.time_mask_frames, batch, generator)
    coeffs = _band_masks(n_mfcc, config.freq_masks, config.freq_mask_coeffs, batch, generator)
    masked = frames[:, None, :] | coeffs[:, :, None]
    return mfcc.masked_fill(masked, 0.0)
