"""The file source converts only the frames the model uses: a decoded frame becomes RGB when its
``image`` is first read, the stream reads only the frames it keeps, and the results of
``Recognizer.analyze`` are exactly those of converting every frame. Decoding on FFmpeg's threads
gives the frames and timestamps of single-threaded decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edge_emotion.sources.files as files
from edge_emotion.errors import BundleError
from edge_emotion.frontend import face as face_module
from edge_emotion.recognizer import Recognizer
from edge_emotion.sources import VideoFileSource, VideoFrame

av = pytest.importorskip("av")

SAMPLE = Path(__file__).parent / "data" / "crema-d_1001_DFA_HAP_XX.flv"  # 2.0 s, face + speech
RAVDESS = "ravdess/av/01-01-01-01-01-01-01.mp4"  # 3.3 s, 1280x720, 29.97 fps, face + speech


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    try:
        return Recognizer.from_bundle(backend="onnxruntime")
    except BundleError as exc:
        pytest.skip(f"the shipped model is not in this install ({exc})")


@pytest.fixture(params=["carried", "ravdess"])
def clip(request, samples_dir) -> Path:
    if request.param == "carried":
        return samples_dir / SAMPLE.name
    return request.getfixturevalue("shared_data") / RAVDESS


class _Counting:
    """Counts calls of a function it stands in for."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _eager(monkeypatch) -> None:
    """Make the file source convert every frame as it is decoded (plain VideoFrames)."""
    lazy_iter = VideoFileSource.__iter__

    def eager_iter(self):
        for frame in lazy_iter(self):
            yield VideoFrame(frame.image, frame.timestamp_ms)

    monkeypatch.setattr(VideoFileSource, "__iter__", eager_iter)


def test_analyze_converts_only_the_kept_frames_and_gives_the_results_of_converting_all(
    recognizer, clip, monkeypatch
):
    n_frames = sum(1 for _ in VideoFileSource(clip))
    convert = _Counting(files.video_frame_to_rgb)
    detect = _Counting(face_module.FaceTracker.detect)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    monkeypatch.setattr(face_module.FaceTracker, "detect", lambda *a, **k: detect(*a, **k))
    lazy = list(recognizer.analyze(clip))
    # the edge preset keeps 10 of the clip's ~30 frames a second: only those are converted
    assert convert.calls == detect.calls
    assert 0 < convert.calls < 0.5 * n_frames

    _eager(monkeypatch)
    convert.calls = detect.calls = 0
    eager = list(recognizer.analyze(clip))
    assert convert.calls == n_frames and detect.calls < 0.5 * n_frames

    assert len(lazy) == len(eager) > 0
    for a, b in zip(lazy, eager, strict=True):
        assert (a.t_start_ms, a.t_end_ms, a.label, a.modalities) == (b.t_start_ms, b.t_end_ms, b.label, b.modalities)
        assert a.face == b.face  # the face box and its score
        assert list(a.scores) == list(b.scores)
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), rtol=0, atol=1e-6)
        np.testing.assert_allclose(list(a.raw_scores.values()), list(b.raw_scores.values()), rtol=0, atol=1e-6)
    assert any(r.face is not None for r in lazy) and any("video" in r.modalities for r in lazy)


def test_a_decoded_frame_converts_on_first_read_and_once(samples_dir, monkeypatch):
    convert = _Counting(files.video_frame_to_rgb)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    frames = list(VideoFileSource(samples_dir / SAMPLE.name))
    assert convert.calls == 0
    first = frames[0]
    assert isinstance(first, VideoFrame) and not first.converted
    assert (first.width, first.height) == (480, 360) and convert.calls == 0  # the size needs no conversion
    image = first.image
    assert convert.calls == 1 and first.converted
    assert first.image is image and convert.calls == 1
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8
    assert "converted" in repr(first)

    # the same pixels as converting PyAV's first decoded frame directly
    with av.open(str(samples_dir / SAMPLE.name)) as container:
        reference = next(container.decode(container.streams.video[0])).to_ndarray(format="rgb24")
    np.testing.assert_array_equal(image, reference)


def test_the_stream_does_not_read_the_frames_it_drops(recognizer, samples_dir, monkeypatch):
    convert = _Counting(files.video_frame_to_rgb)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    frames = list(VideoFileSource(samples_dir / SAMPLE.name))
    with recognizer.create_stream(audio=False) as stream:
        for frame in frames:
            stream.push_video(frame, frame.timestamp_ms)
        results = stream.flush()
    assert results
    converted = [f.timestamp_ms for f in frames if f.converted]
    assert convert.calls == len(converted) < 0.5 * len(frames)
    # the kept frames are 1/fps apart, less the stream's quarter-period allowance for jitter
    period = 1000.0 / recognizer.preset.visual.fps
    assert converted[0] == frames[0].timestamp_ms
    assert np.all(np.diff(converted) >= 0.75 * period)


def test_threaded_decoding_gives_the_frames_of_single_threaded_decoding(clip):
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.thread_count = 1
        origin = 0.0 if container.start_time is None else container.start_time / 1_000_000
        reference = [
            (int(round(1000 * (f.time - origin))), f.to_ndarray(format="rgb24")) for f in container.decode(stream)
        ]
    frames = list(VideoFileSource(clip))
    assert [f.timestamp_ms for f in frames] == [ts for ts, _ in reference]
    for i in (0, len(frames) // 2, len(frames) - 1):
        np.testing.assert_array_equal(frames[i].image, reference[i][1])
