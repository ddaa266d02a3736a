"""load_audio on real files written here with soundfile: formats, rates,
channel counts, integer scaling, resampling, downmixing, and bad files."""
import os
import struct
import warnings

import numpy as np
import pytest
import soundfile as sf

import kwmlp
from kwmlp.audio import audio_duration_s
from kwmlp.errors import KwmlpError


def tone(freq_hz, seconds, sample_rate, amplitude=0.5):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


FORMATS = [  # name, sample rate, channels, soundfile subtype
    ("int16.wav", 8000, 1, "PCM_16"),
    ("stereo.flac", 44100, 2, "PCM_16"),
    ("float.wav", 48000, 1, "FLOAT"),
    ("vorbis.ogg", 22050, 1, "VORBIS"),
    ("int24.aiff", 16000, 3, "PCM_24"),
]


@pytest.mark.parametrize("name, sample_rate, channels, subtype", FORMATS)
def test_formats_rates_channels_and_a_tone_stays_put(tmp_path, name, sample_rate, channels,
                                                      subtype):
    signal = tone(1000, 1.0, sample_rate)
    path = tmp_path / name
    sf.write(path, np.repeat(signal[:, None], channels, axis=1), sample_rate, subtype=subtype)

    audio, sr = kwmlp.load_audio(path)
    assert sr == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 1  # 1 s, whatever the source rate
    assert audio_duration_s(path) == pytest.approx(1.0)
    # 1 s of audio -> 1 Hz bins: the peak must still be at 1 kHz after resampling
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    assert abs(freqs[spectrum.argmax()] - 1000) <= 1
    assert 0.4 < np.abs(audio[1000:-1000]).max() < 0.6  # amplitude kept


def test_integer_pcm_is_scaled_to_unit_range(tmp_path):
    pcm = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    sf.write(tmp_path / "pcm.wav", pcm, 16000, subtype="PCM_16")
    audio, _ = kwmlp.load_audio(tmp_path / "pcm.wav")
    np.testing.assert_array_equal(audio, pcm / np.float32(32768))


def test_downmix_averages_channels(tmp_path):
    x = tone(440, 0.5, 16000)
    sf.write(tmp_path / "opposite.wav", np.stack([x, -x], axis=1), 16000, subtype="FLOAT")
    sf.write(tmp_path / "same.wav", np.stack([x, x], axis=1), 16000, subtype="FLOAT")
    sf.write(tmp_path / "left.wav", np.stack([x, np.zeros_like(x)], axis=1), 16000,
             subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"opposite\.wav: its 2 channels cancel .* in 1 of "
                                         r"its 1 seconds \(to silence"):
        np.testing.assert_array_equal(kwmlp.load_audio(tmp_path / "opposite.wav")[0], 0)
    np.testing.assert_array_equal(kwmlp.load_audio(tmp_path / "same.wav")[0], x)
    np.testing.assert_array_equal(kwmlp.load_audio(tmp_path / "left.wav")[0], x / 2)


def test_opposite_channels_cancel_before_resampling(tmp_path):
    x = tone(440, 0.5, 44100)
    sf.write(tmp_path / "opposite.flac", np.stack([x, -x], axis=1), 44100)
    with pytest.warns(UserWarning, match="cancel when averaged"):
        np.testing.assert_array_equal(kwmlp.load_audio(tmp_path / "opposite.flac")[0], 0)


def test_channels_that_nearly_cancel_warn_with_the_loss_and_ordinary_ones_do_not(tmp_path):
    x = tone(440, 0.5, 16000)
    rng = np.random.default_rng(0)
    # x and -0.99x: mix 0.005x; uncorrelated channels would mix to half their mean
    # energy, (1 + 0.99^2) / 2 / 2 of x's, so 10 log10(0.495 / 0.005^2) = 43.0 dB under
    sf.write(tmp_path / "reversed.wav", np.stack([x, -0.99 * x], axis=1), 16000,
             subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"reversed\.wav: .*\(up to 43 dB under"):
        kwmlp.load_audio(tmp_path / "reversed.wav")
    quiet = {
        "uncorrelated.wav": np.stack([x, rng.uniform(-0.5, 0.5, len(x))], axis=1),
        "one-side.wav": np.stack([np.zeros_like(x), x], axis=1),
        "silence.wav": np.zeros((len(x), 2)),
        "half-opposite.wav": np.stack([x, -0.5 * x], axis=1),  # 10 log10(0.3125 / 0.0625) = 7 dB
        # 128 uncorrelated channels mix 21 dB under their mean energy: as expected of 128
        "array.wav": rng.uniform(-0.5, 0.5, (len(x), 128)),
        # quiet in-phase music on opposite DC offsets: the offsets cancel, the music stays
        "dc.wav": np.stack([0.001 * x + 0.01, 0.001 * x - 0.01], axis=1),
        # anti-phase, but under -60 dBFS: a noise floor, not content
        "hum.wav": np.stack([0.0005 * x, -0.0005 * x], axis=1),
    }
    for name, channels in quiet.items():
        sf.write(tmp_path / name, channels.astype(np.float32), 16000, subtype="FLOAT")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            kwmlp.load_audio(tmp_path / name)


def test_cancelling_seconds_are_found_inside_louder_in_phase_audio(tmp_path):
    # 3 s of loud in-phase music, then 2 s of quiet anti-phase speech: over the whole
    # file the mix keeps most of the energy, but those two seconds would be silence
    music, speech = tone(440, 3.0, 8000), tone(300, 2.0, 8000, amplitude=0.1)
    stereo = np.concatenate([np.stack([music, music], axis=1),
                             np.stack([speech, -speech], axis=1)])
    sf.write(tmp_path / "split.flac", stereo, 8000)
    with pytest.warns(UserWarning, match=r"split\.flac: its 2 channels cancel when averaged to "
                                         r"mono in 2 of its 5 seconds"):
        kwmlp.load_audio(tmp_path / "split.flac")


def test_loud_float_file_warns_naming_it(tmp_path):
    sf.write(tmp_path / "loud.wav", np.array([0.0, 1.5, -0.2], np.float32), 16000,
             subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"loud\.wav: peak 1\.5"):
        audio, _ = kwmlp.load_audio(tmp_path / "loud.wav")
    assert audio.max() == 1.5  # reported, not clipped


def _zero_channel_wav(path):
    data = bytes(100)
    fmt = struct.pack("<IHHIIHH", 16, 1, 0, 16000, 0, 0, 16)  # PCM, 0 channels
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)


def _truncated_flac(path):
    sf.write(path, tone(300, 1.0, 44100), 44100)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


BAD_FILES = [  # name, how to make it, what the message must say
    ("missing.wav", lambda p: None, "no such file"),
    ("folder.wav", lambda p: p.mkdir(), "not a file"),
    ("fifo.wav", lambda p: os.mkfifo(p), "a pipe or device, not a file"),
    ("text.wav", lambda p: p.write_text("not audio at all"), "Format not recognised"),
    ("zero-bytes.flac", lambda p: p.write_bytes(b""), "Format not recognised"),
    ("empty.wav", lambda p: sf.write(p, np.zeros((0, 1)), 16000), "no audio samples"),
    ("no-channels.wav", _zero_channel_wav, "Channel count is zero"),
    ("truncated.flac", _truncated_flac, "lost sync"),
    ("nan.wav", lambda p: sf.write(p, np.array([0.1, np.nan], np.float32), 16000,
                                   subtype="FLOAT"), "NaN or infinite"),
    ("one-sample.wav", lambda p: sf.write(p, np.array([0.1]), 44100), "too short to resample"),
    ("headerless.RAW", lambda p: p.write_bytes(bytes(3200)), "a .raw file has no header"),
]


@pytest.mark.parametrize("name, make, reason", BAD_FILES)
def test_bad_files_raise_naming_path_and_reason(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(KwmlpError, match=reason) as info:
        kwmlp.load_audio(path)
    assert str(info.value).startswith(f"{path}: ")


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    x = tone(440, 0.5, 16000)
    path = tmp_path / os.fsdecode(b"\xff\xfe.wav")  # surrogate-escaped, as os.listdir gives it
    sf.write(tmp_path / "ok.wav", x, 16000, subtype="FLOAT")
    path.write_bytes((tmp_path / "ok.wav").read_bytes())
    audio, _ = kwmlp.load_audio(path)
    np.testing.assert_array_equal(audio, x)
    assert audio_duration_s(path) == 0.5


def test_a_wav_shorter_than_its_header_says_warns(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(440, 1.0, 16000), 16000, subtype="PCM_16")  # 44-byte header
    path.write_bytes(path.read_bytes()[:44 + 2 * 4000])  # 4000 of the 16000 samples
    with pytest.warns(UserWarning, match=r"cut\.wav: the header promises 32000 bytes of audio "
                                         r"but the file holds 8000 .*0\.250 s"):
        audio, _ = kwmlp.load_audio(path)
    assert len(audio) == 4000


def test_a_complete_wav_does_not_warn(tmp_path):
    sf.write(tmp_path / "whole.wav", tone(440, 1.0, 16000), 16000, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kwmlp.load_audio(tmp_path / "whole.wav")
