"""``kwmlp.Stream``: pushed in pieces of any size, it gives what the offline
API gives for the same audio (``get_timestamp_embeddings``, ``recognize``,
``spot``), each output as soon as the documented rule says it is final."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kwmlp
from kwmlp.errors import KwmlpError

DATA = Path(__file__).resolve().parent / "data"
BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def model():
    return kwmlp.load_model(device="cpu")


@pytest.fixture(scope="module")
def audio():
    """2.37 s: three held-out words with noise between them."""
    rng = np.random.default_rng(0)
    words = [kwmlp.load_audio(DATA / "heldout" / w / "flite-rms_nohash_0.wav")[0]
             for w in ("yes", "seven", "house")]
    gap = 0.01 * rng.standard_normal(1_920).astype(np.float32)
    return torch.from_numpy(np.concatenate([words[0], gap, words[1], gap, words[2][:2_080]]))


def _push_in_pieces(stream, audio, rng):
    outputs, at = [], 0
    while at < len(audio):
        size = int(rng.choice([0, 1, 159, 1_600, 7_919, 20_000]))
        outputs.append(stream.push(audio[at:at + size]))
        at += size
    return outputs + [stream.flush()]


def _cat(outputs, name):
    return torch.cat([getattr(o, name) for o in outputs])


@pytest.mark.parametrize("seed, hop_ms", [(0, 100), (1, 250)])
def test_random_pieces_give_the_offline_outputs(model, audio, seed, hop_ms):
    assert len(audio) == 37_920
    outputs = _push_in_pieces(kwmlp.Stream(model, hop_ms=hop_ms), audio,
                              np.random.default_rng(seed))
    embedding, timestamps = kwmlp.get_timestamp_embeddings(audio[None], model)
    assert torch.equal(_cat(outputs, "timestamps"), timestamps[0])
    torch.testing.assert_close(_cat(outputs, "embedding"), embedding[0], atol=1e-5, rtol=0)
    recognition = kwmlp.recognize(audio[None], model, hop_ms=hop_ms)
    assert torch.equal(_cat(outputs, "window_start_ms"), recognition.start_ms)
    torch.testing.assert_close(_cat(outputs, "probabilities"), recognition.probabilities[0],
                               atol=1e-5, rtol=0)
    streamed = [d for o in outputs for d in o.detections]
    offline = kwmlp.spot(recognition, duration_ms=1000 * len(audio) / 16000)[0]
    assert [(d.word, d.start_ms, d.end_ms) for d in streamed] == \
        [(d.word, d.start_ms, d.end_ms) for d in offline]
    assert [d.score for d in streamed] == pytest.approx([d.score for d in offline], abs=1e-5)


def test_outputs_come_out_when_their_chunk_or_window_is_complete(model, audio):
    stream = kwmlp.Stream(model, hop_ms=100)
    # chunk 0 is padded samples 0..16000 = audio samples -80..15920
    early = stream.push(audio[:15_919])
    assert len(early.embedding) == 0 and len(early.probabilities) == 0
    first = stream.push(audio[15_919:15_920])
    assert first.timestamps.tolist() == [10.0 * k for k in range(1, 100)]
    assert len(first.probabilities) == 0
    window = stream.push(audio[15_920:16_000])  # window 0 is samples 0..16000
    assert window.window_start_ms.tolist() == [0.0] and len(window.embedding) == 0
    hop = stream.push(audio[16_000:17_600])
    assert hop.window_start_ms.tolist() == [100.0]
    second = stream.push(audio[17_600:31_920])  # chunk 1: audio 15920..31920
    assert second.timestamps.tolist() == [10.0 * k for k in range(100, 200)]
    assert second.window_start_ms.tolist() == [100.0 * k for k in range(2, 10)]


def test_short_and_empty_streams_end_as_the_offline_api(model):
    assert all(len(getattr(kwmlp.Stream(model).flush(), name)) == 0
               for name in ("embedding", "probabilities"))
    sound = torch.rand(500) - 0.5  # padded to 820 samples (51.25 ms): three stamped frames
    stream = kwmlp.Stream(model)
    assert len(stream.push(sound).embedding) == 0
    end = stream.flush()
    embedding, timestamps = kwmlp.get_timestamp_embeddings(sound[None], model)
    assert end.timestamps.tolist() == timestamps[0].tolist() == [10.0, 20.0, 30.0]
    torch.testing.assert_close(end.embedding, embedding[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(end.probabilities,
                               kwmlp.recognize(sound[None], model).probabilities[0],
                               atol=1e-5, rtol=0)


def test_reset_starts_over_and_a_flushed_stream_takes_no_more(model, audio):
    stream = kwmlp.Stream(model, keywords=False)
    stream.push(audio[:20_000])
    stream.reset()
    again = stream.push(audio[:16_000])
    fresh = kwmlp.Stream(model, keywords=False).push(audio[:16_000])
    assert torch.equal(again.embedding, fresh.embedding)
    assert torch.equal(again.timestamps, fresh.timestamps)
    stream.flush()
    with pytest.raises(KwmlpError, match="reset"):
        stream.push(audio[:10])


def test_memory_stays_bounded(model):
    stream = kwmlp.Stream(model, hop_ms=500, embeddings=False)
    for _ in range(20):
        stream.push(torch.zeros(8_000))
    assert len(stream._buffer) <= 16_000 + 8_000  # one window and one hop, not 10 s


def test_a_long_push_is_computed_a_batch_at_a_time(audio, monkeypatch):
    """One push of 2.37 s at 10 ms hops is 138 windows and 3 chunks: no more than
    chunk_batch_size of them are ever stacked at once (memory bounded by the batch,
    not by the push), and the outputs are still the offline ones."""
    small = kwmlp.load_model(device="cpu", chunk_batch_size=8)
    stacked = []
    real_run = kwmlp.Stream._run

    def spy(self, stage, chunks):
        stacked.append(len(chunks))
        return real_run(self, stage, chunks)

    monkeypatch.setattr(kwmlp.Stream, "_run", spy)
    stream = kwmlp.Stream(small, hop_ms=10)
    outputs = [stream.push(audio), stream.flush()]
    assert stacked and max(stacked) <= 8
    recognition = kwmlp.recognize(audio[None], small, hop_ms=10)
    probabilities = _cat(outputs, "probabilities")
    assert probabilities.shape == recognition.probabilities[0].shape
    torch.testing.assert_close(probabilities, recognition.probabilities[0], atol=1e-5, rtol=0)
    embedding, _ = kwmlp.get_timestamp_embeddings(audio[None], small)
    torch.testing.assert_close(_cat(outputs, "embedding"), embedding[0], atol=1e-5, rtol=0)


def test_layer_option_and_bad_input(model, audio):
    layered = kwmlp.load_model(device="cpu", layer=4)
    out = kwmlp.Stream(layered, keywords=False).push(audio[:15_920])
    embedding, _ = kwmlp.get_timestamp_embeddings(audio[None, :15_920], layered)
    torch.testing.assert_close(out.embedding, embedding[0, :99], atol=1e-5, rtol=0)
    stream = kwmlp.Stream(model)
    with pytest.raises(ValueError, match=r"1-D samples \(n,\), got shape \(1, 100\)"):
        stream.push(audio[None, :100])
    with pytest.raises(TypeError, match="torch tensor or numpy array of samples, got list"):
        stream.push([0.0] * 100)
    with pytest.raises(TypeError, match="32768"):
        stream.push(np.zeros(100, np.int16))
    with pytest.raises(ValueError, match="no output"):
        kwmlp.Stream(model, embeddings=False, keywords=False)


def test_stream_benchmark_runs(tmp_path):
    out_json = tmp_path / "stream.json"
    result = subprocess.run([sys.executable, str(BENCH_DIR / "stream.py"), "--seconds", "3",
                             "--hop-ms", "100", "--json", str(out_json)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(BENCH_DIR.parent)})
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out_json.read_text())
    assert figures["hops"] == 30 and len(figures["push_ms_all"]) == 30
    assert 0 < figures["push_ms_p50"] <= figures["push_ms_p99"]
    assert "p50" in result.stdout and "latency" in result.stdout
    result = subprocess.run([sys.executable, str(BENCH_DIR / "stream.py"), "--memory",
                             "--seconds", "3", "--hop-ms", "100", "--json", str(out_json)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(BENCH_DIR.parent)})
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out_json.read_text())
    assert set(figures["peak_rss_growth_mb"]) == {"push", "recognize"}
    assert "peak RSS growth" in result.stdout


def test_push_takes_numpy_arrays_of_any_layout_and_refuses_meta(model, audio):
    samples = audio[:20_000].numpy()
    expected = kwmlp.Stream(model).push(samples)
    reversed_view = np.ascontiguousarray(samples[::-1])[::-1]  # negative stride, same values
    big_endian = samples.astype(">f4")
    for layout in (reversed_view, big_endian):
        out = kwmlp.Stream(model).push(layout)
        assert torch.equal(out.embedding, expected.embedding)
        assert torch.equal(out.probabilities, expected.probabilities)
    with pytest.raises(ValueError, match="meta device"):
        kwmlp.Stream(model).push(torch.zeros(100, device="meta"))
    with pytest.raises(TypeError, match="float"):
        kwmlp.Stream(model).push(np.array(["a", "b"], dtype=object))


def test_loud_push_warns_as_the_offline_api_and_is_not_clipped(model, audio):
    loud = audio[:16_000] / audio[:16_000].abs().max() * 2  # peak 2
    with pytest.warns(UserWarning, match="audio peak 2 exceeds 1.0") as caught:
        out = kwmlp.Stream(model, keywords=False).push(loud)
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller
    quiet = kwmlp.Stream(model, keywords=False).push(loud.clamp(-1, 1))
    assert not torch.allclose(out.embedding, quiet.embedding)


def test_spotting_raw_pcm_finds_what_spotting_the_file_finds(model, audio, tmp_path):
    import io

    import soundfile as sf

    from kwmlp.keywords import spot_file
    from kwmlp.streaming import spot_pcm

    pcm = np.round(audio.numpy() * 32767).astype("<i2")  # what arecord would hand over
    sf.write(tmp_path / "take.wav", pcm, 16000, subtype="PCM_16")
    from_file = spot_file(tmp_path / "take.wav", model, hop_ms=50)
    from_pcm = list(spot_pcm(io.BytesIO(pcm.tobytes()), model, hop_ms=50))
    assert [d.word for d in from_file] == ["yes", "seven"]  # "house" is cut to 0.13 s
    assert [(d.word, d.start_ms, d.end_ms) for d in from_pcm] == [
        (d.word, d.start_ms, d.end_ms) for d in from_file]
    assert [d.score for d in from_pcm] == pytest.approx([d.score for d in from_file], abs=1e-5)


def test_raw_pcm_skips_a_16k_mono_wav_header_and_refuses_other_files(model, audio, tmp_path):
    """arecord writes a WAV header unless -t raw; a file piped in must not be read as samples."""
    import io

    import soundfile as sf

    from kwmlp.audio import read_pcm16
    from kwmlp.errors import KwmlpError

    pcm = np.round(audio.numpy() * 32767).astype("<i2")
    wav = io.BytesIO()
    sf.write(wav, pcm, 16000, subtype="PCM_16", format="WAV")
    for block in (1, 7, 16000):  # blocks shorter than a header too
        from_wav = np.concatenate(list(read_pcm16(io.BytesIO(wav.getvalue()), block)))
        np.testing.assert_array_equal(from_wav, pcm / np.float32(32768))
    # A chunk after the data (LIST metadata) is no audio; a live recorder's dummy size
    # (0 or 0xFFFFFFFF, its header written before it knows) means "to the end".
    data_at = wav.getvalue().index(b"data")
    size_field = slice(data_at + 4, data_at + 8)
    listed = wav.getvalue() + b"LIST" + (400).to_bytes(4, "little") + bytes(range(200)) * 2
    got = np.concatenate(list(read_pcm16(io.BytesIO(listed), 160)))
    np.testing.assert_array_equal(got, pcm / np.float32(32768))
    for dummy in (0, 0xFFFFFFFF):
        live = bytearray(wav.getvalue())
        live[size_field] = dummy.to_bytes(4, "little")
        got = np.concatenate(list(read_pcm16(io.BytesIO(bytes(live) + b"\x01\x00" * 50), 160)))
        np.testing.assert_array_equal(got[:len(pcm)], pcm / np.float32(32768))
        assert len(got) == len(pcm) + 50
    for rate, channels, fmt in ((8000, 1, "WAV"), (16000, 2, "WAV"), (16000, 1, "FLAC"),
                                (16000, 1, "AU"), (16000, 1, "CAF"), (16000, 1, "W64")):
        other = io.BytesIO()
        sf.write(other, np.zeros((1600, channels), "<i2"), rate, format=fmt)
        with pytest.raises(KwmlpError, match="give the file's name instead of -"):
            list(read_pcm16(io.BytesIO(other.getvalue()), 160))


def test_raw_input_refuses_an_mp3_without_tag_but_not_pcm_that_starts_like_one():
    import io

    from kwmlp.audio import mpeg_frame_bytes, read_pcm16
    from kwmlp.errors import KwmlpError

    # the well-known sizes: MPEG-1 layer III 128 kbit/s 44.1 kHz, 417 bytes (418 padded);
    # MPEG-2 layer III 48 kbit/s 24 kHz, 144; MPEG-1 layer I 32 kbit/s 32 kHz, 48
    assert [mpeg_frame_bytes(bytes.fromhex(h)) for h in
            ("fffb9064", "fffb9264", "fff36464", "ffff1800")] == [417, 418, 144, 48]
    assert mpeg_frame_bytes(bytes.fromhex("fffbf064")) == 0  # bitrate index 15: reserved
    frame = bytes.fromhex("fff36464") + bytes(140)
    with pytest.raises(KwmlpError, match=r"an audio file \(MP3\)"):
        list(read_pcm16(io.BytesIO(frame * 20), 160))
    # PCM whose first sample happens to read as a frame header: no second frame follows
    pcm = bytes.fromhex("fff36464") + np.arange(-500, 500, dtype="<i2").tobytes()
    got = np.concatenate(list(read_pcm16(io.BytesIO(pcm), 160)))
    np.testing.assert_array_equal(got, np.frombuffer(pcm, "<i2") / np.float32(32768))
    m4a = b"\0\0\0\x20ftypM4A " + bytes(100)  # an MP4 box header first
    with pytest.raises(KwmlpError, match=r"an audio file \(MP4/M4A\)"):
        list(read_pcm16(io.BytesIO(m4a), 160))
    sf = pytest.importorskip("soundfile")
    if "MP3" in sf.available_formats():  # libsndfile >= 1.1 writes MP3 without an ID3 tag
        mp3 = io.BytesIO()
        sf.write(mp3, np.zeros(16000, np.float32), 16000, format="MP3")
        with pytest.raises(KwmlpError, match=r"an audio file \(MP3\)"):
            list(read_pcm16(io.BytesIO(mp3.getvalue()), 160))


def test_stream_switches_and_spotting_numbers_are_type_checked(model):
    with pytest.raises(TypeError, match=r"keywords must be True or False, got \['yes'\]"):
        kwmlp.Stream(model, keywords=["yes"])  # not a word filter
    with pytest.raises(TypeError, match="threshold must be a number, got True"):
        kwmlp.Stream(model, threshold=True)
    with pytest.raises(TypeError, match="threshold must be a number"):
        kwmlp.Stream(model, threshold="0.5")
    with pytest.raises(TypeError, match="refractory_ms must be a number"):
        kwmlp.Stream(model, refractory_ms="100")
    assert kwmlp.Stream(model, threshold=np.float32(0.5)).spotter.threshold == 0.5
