"""File and camera sources on real media: decoding, timestamps on the file's clock, errors."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from edge_emotion.errors import DeviceError, MediaError
from edge_emotion.sources import (
    AudioChunk,
    AudioFileSource,
    CameraSource,
    VideoFileSource,
    VideoFrame,
    open_media,
    read_audio,
)


def write_wav(path, pcm_int16: np.ndarray, rate: int) -> None:
    """``(S,)`` or ``(S, C)`` int16 -> a WAV file (stdlib ``wave``)."""
    frames = pcm_int16 if pcm_int16.ndim == 2 else pcm_int16[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(frames, dtype="<i2").tobytes())


def strictly_increasing(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


# --- real clips ----------------------------------------------------------------------------------


def test_flv_with_a_data_stream_decodes_on_one_clock(crema_flv):
    media = open_media(crema_flv, sample_rate=16000)
    assert media.video is not None and media.audio is not None
    assert media.duration_ms == pytest.approx(2000, abs=300)
    frames = list(media.video)
    assert all(isinstance(f, VideoFrame) and f.image.shape == (360, 480, 3) for f in frames)
    stamps = [f.timestamp_ms for f in frames]
    assert strictly_increasing(stamps)
    assert len(frames) == pytest.approx(media.duration_ms / 1000 * 29.97, abs=3)
    assert np.median(np.diff(stamps)) == pytest.approx(1000 / 29.97, abs=1)
    chunks = list(media.audio)
    assert all(isinstance(c, AudioChunk) and c.sample_rate == 16000 for c in chunks)
    assert all(c.pcm.size == 1600 for c in chunks[:-1]) and 0 < chunks[-1].pcm.size <= 1600
    assert strictly_increasing([c.timestamp_ms for c in chunks])
    assert chunks[0].timestamp_ms == 0
    # The chunks tile the track: each starts where the previous one ended.
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.timestamp_ms == pytest.approx(a.end_ms, abs=1)
    # Both tracks end near the container's duration.
    assert chunks[-1].end_ms == pytest.approx(media.duration_ms, abs=80)
    assert stamps[-1] == pytest.approx(media.duration_ms, abs=80)


def test_audio_offset_and_variable_frame_rate_line_up(vfr_offset_mp4):
    """The mp4 is cut from a CREMA-D clip at test time (tests/media.py): audio starts 0.5 s late, and every third frame
    after frame 24 is missing. Timestamps come from the streams' own time bases."""
    media = open_media(vfr_offset_mp4, sample_rate=16000)
    stamps = [f.timestamp_ms for f in media.video]
    assert len(stamps) == 40 and stamps[0] == 0
    gaps = np.diff(stamps)
    assert np.all(np.abs(gaps[:23] - 33.4) < 1.5)  # 29.97 fps at first
    assert np.all((np.abs(gaps[23:] - 33.4) < 1.5) | (np.abs(gaps[23:] - 66.7) < 1.5))  # then frames missing
    assert (np.abs(gaps[23:] - 66.7) < 1.5).sum() == 8
    chunks = list(media.audio)
    # Audio was cut at 500 ms of the original clip, whose video started 27 ms in; the mp4's clock
    # starts at its first frame, and AAC priming puts the first decoded sample 23 ms earlier.
    assert chunks[0].timestamp_ms == pytest.approx(500 - 27 - 23, abs=3)
    assert chunks[-1].end_ms == pytest.approx(media.duration_ms, abs=60)


def test_the_late_audio_track_is_in_sync_with_the_original(shared_data, vfr_offset_mp4):
    """The same speech, read from the original flv and from the re-timed mp4, lines up to 2 ms."""
    original, start0 = read_audio(shared_data / "crema-d" / "video" / "1001_DFA_NEU_XX.flv", 16000)
    moved, start = read_audio(vfr_offset_mp4, 16000)
    assert start0 == 0
    at = (start + 27) * 16  # the mp4's clock starts 27 ms into the original
    segment = moved[1600:9600]
    lags = range(-800, 801)
    scores = [np.dot(segment, original[at + 1600 + k : at + 9600 + k]) for k in lags]
    assert abs(lags[int(np.argmax(scores))]) <= 32  # samples at 16 kHz: 2 ms


def test_ravdess_mp4_decodes_with_stereo_48k_audio(shared_data):
    media = open_media(shared_data / "ravdess" / "av" / "01-01-01-01-01-01-01.mp4", max_fps=10, sample_rate=16000)
    assert media.audio.source_rate == 48000 and media.audio.channels == 2
    frames = list(media.video)
    assert frames[0].image.shape == (720, 1280, 3)
    stamps = [f.timestamp_ms for f in frames]
    assert strictly_increasing(stamps)
    assert np.all(np.diff(stamps) >= 100)  # at most 10 fps reach the consumer
    assert len(frames) == pytest.approx(media.duration_ms / 100, abs=2)
    pcm, start_ms = read_audio(media.path, 16000)
    assert start_ms == 0
    assert pcm.size / 16 == pytest.approx(media.duration_ms, abs=40)
    assert 0.001 < np.sqrt(np.mean(pcm**2)) < 0.5


def test_max_fps_keeps_the_first_frame_of_each_interval(crema_flv):
    every = [f.timestamp_ms for f in VideoFileSource(crema_flv)]
    kept = [f.timestamp_ms for f in VideoFileSource(crema_flv, max_fps=10)]
    slots = [int((t - every[0]) // 100) for t in every]
    expected = [t for i, t in enumerate(every) if i == 0 or slots[i] != slots[i - 1]]
    assert kept == expected
    with pytest.raises(ValueError):
        VideoFileSource(crema_flv, max_fps=0)


def test_audio_file_source_resamples_mixes_down_and_chunks(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    stereo = (np.stack([left, np.zeros_like(left)], axis=1) * 32767).astype(np.int16)
    path = tmp_path / "tone.wav"
    write_wav(path, stereo, rate)
    source = AudioFileSource(path, sample_rate=16000, chunk_ms=250)
    assert source.source_rate == rate and source.channels == 2
    chunks = list(source)
    assert [c.timestamp_ms for c in chunks] == [0, 250, 500, 750]
    pcm = np.concatenate([c.pcm for c in chunks])
    assert pcm.size == pytest.approx(16000, abs=2)
    spectrum = np.abs(np.fft.rfft(pcm[800:-800] * np.hanning(pcm.size - 1600)))
    assert np.argmax(spectrum) * 16000 / (pcm.size - 1600) == pytest.approx(1000, abs=2)
    assert np.abs(pcm[800:-800]).max() == pytest.approx(0.25, abs=0.01)  # mean of the two channels
    native = list(AudioFileSource(path, chunk_ms=100))
    assert native[0].sample_rate == rate and native[0].pcm.size == 4410


def test_read_audio_matches_the_wav_it_read(tmp_path):
    rng = np.random.default_rng(0)
    pcm = (0.2 * rng.standard_normal(8000) * 32767).astype(np.int16)
    write_wav(tmp_path / "noise.wav", pcm, 16000)
    out, start_ms = read_audio(tmp_path / "noise.wav", 16000)
    assert start_ms == 0 and out.dtype == np.float32
    np.testing.assert_allclose(out, pcm / 32768.0, atol=1e-6)


# --- errors --------------------------------------------------------------------------------------


def test_missing_empty_and_corrupt_files_raise_media_error(tmp_path, crema_flv):
    with pytest.raises(MediaError, match="no such file"):
        open_media(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        open_media(tmp_path / "empty.mp4")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="cannot be opened"):
        open_media(tmp_path / "noise.mp4")
    with pytest.raises(MediaError):
        open_media(tmp_path)  # a directory
    # A clip cut short in the middle of its data: opens, and decodes what is there or fails clearly.
    data = crema_flv.read_bytes()
    (tmp_path / "cut.flv").write_bytes(data[: len(data) // 3])
    try:
        media = open_media(tmp_path / "cut.flv")
        frames = list(media.video)
    except MediaError:
        pass
    else:
        assert 0 < len(frames) < 60


def test_a_file_with_neither_audio_nor_video_raises_media_error(tmp_path):
    subtitles = tmp_path / "only_text.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    with pytest.raises(MediaError, match="neither audio nor video"):
        open_media(subtitles)


def test_a_source_of_the_missing_kind_raises_media_error(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(1600, np.int16), 16000)
    media = open_media(tmp_path / "a.wav")
    assert media.video is None and media.audio is not None
    with pytest.raises(MediaError, match="no video"):
        VideoFileSource(tmp_path / "a.wav")


# --- camera --------------------------------------------------------------------------------------


def test_camera_that_does_not_exist_raises_device_error_naming_it():
    with pytest.raises(DeviceError, match="camera 7"):
        CameraSource(7)


def test_camera_source_runs_its_loop_on_a_video_file(crema_flv):
    expected = len(list(VideoFileSource(crema_flv)))
    with CameraSource(str(crema_flv)) as camera:
        frames = list(camera)
    assert len(frames) == expected
    assert frames[0].image.shape == (360, 480, 3) and frames[0].image.dtype == np.uint8
    assert strictly_increasing([f.timestamp_ms for f in frames])
    assert camera.closed
    # RGB, not OpenCV's BGR: the same pixels as PyAV's decode of the first frame (codecs may
    # differ by a few levels).
    first = next(iter(VideoFileSource(crema_flv))).image.astype(int)
    assert np.abs(frames[0].image.astype(int) - first).mean() < 3
    assert (
        np.abs(frames[0].image[..., ::-1].astype(int) - first).mean()
        > np.abs(frames[0].image.astype(int) - first).mean()
    )


def test_decoder_threads_give_the_same_pictures(shared_data):
    """Threaded and single-threaded decoding give the same frames, bit for bit (the default is half
    the CPUs; 1 decodes on the iterating thread)."""
    path = shared_data / "ravdess" / "av" / "01-01-01-01-01-01-01.mp4"
    if not path.is_file():
        pytest.skip(f"real clip not found: {path}")
    one = [(f.timestamp_ms, f.image) for f in VideoFileSource(path, decoder_threads=1)]
    four = [(f.timestamp_ms, f.image) for f in VideoFileSource(path, decoder_threads=4)]
    assert [t for t, _ in one] == [t for t, _ in four] and len(one) > 50
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(one, four, strict=True))
    assert VideoFileSource(path).decoder_threads >= 1
    with pytest.raises(ValueError, match="decoder_threads"):
        VideoFileSource(path, decoder_threads=0)
