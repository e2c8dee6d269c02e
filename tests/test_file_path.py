"""The file path of ``Recognizer.analyze``, made cheaper without changing what it computes: a
decoded frame becomes RGB only when its ``image`` is first read and the stream reads only the
frames it keeps (the results are exactly those of converting every frame), and a frame watched only
for mouth motion is read from its luma plane, never converted; decoding on FFmpeg's
threads gives the frames of single-threaded decoding; audio is mixed down from the decoded planes
and resampled in blocks with the samples of frame-by-frame resampling; the file is read on a
reader thread whose errors reach the caller and which stops when the caller stops."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from media import encode_all, make_long_clip

import edge_emotion.sources.files as files
from edge_emotion.errors import BundleError, MediaError
from edge_emotion.frontend import face as face_module
from edge_emotion.frontend.features import to_mono
from edge_emotion.recognizer import Recognizer
from edge_emotion.sources import AudioFileSource, VideoFileSource, VideoFrame
from edge_emotion.sources._av import MonoResampler, audio_frame_to_mono

av = pytest.importorskip("av")

CREMA = "crema-d/video/1001_DFA_HAP_XX.flv"  # 2.0 s, VP6 + MP3, face + speech
RAVDESS = "ravdess/av/01-01-01-01-01-01-01.mp4"  # 3.3 s, 1280x720, 29.97 fps, face + speech


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    """Files read in this process (the reader thread these tests watch; ``tests/test_decoder.py``
    tests the decoder process)."""
    try:
        return Recognizer.from_bundle(backend="onnxruntime", file_decoder="thread")
    except BundleError as exc:
        pytest.skip(f"the shipped model is not in this install ({exc})")


@pytest.fixture(params=["crema-d", "ravdess"])
def clip(request, shared_data) -> Path:
    """Real clips where they lie (skipped without ../shared/data)."""
    path = shared_data / (CREMA if request.param == "crema-d" else RAVDESS)
    if not path.is_file():
        pytest.skip(f"real clip not found: {path}")
    return path


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


def test_analyze_converts_only_the_kept_frames_and_gives_the_results_of_converting_all(recognizer, clip, monkeypatch):
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


def _same_results(a_results, b_results) -> None:
    assert len(a_results) == len(b_results) > 0
    for a, b in zip(a_results, b_results, strict=True):
        assert (a.t_start_ms, a.t_end_ms, a.label, a.modalities, a.face, a.person, a.speaking) == (
            b.t_start_ms,
            b.t_end_ms,
            b.label,
            b.modalities,
            b.face,
            b.person,
            b.speaking,
        )
        assert list(a.scores) == list(b.scores)
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), rtol=0, atol=1e-5)
        np.testing.assert_allclose(list(a.raw_scores.values()), list(b.raw_scores.values()), rtol=0, atol=1e-5)


def test_analyze_encodes_faces_in_batches_with_the_results_of_one_face_a_call(recognizer, clip, monkeypatch):
    """``analyze`` holds the kept frames' face crops and encodes ``FILE_FACE_BATCH`` of them a
    call (the last of a window fewer), with the results of encoding each frame's face as it comes."""
    import edge_emotion.recognizer as recognizer_module

    model = type(recognizer.model)
    sizes: list[int] = []
    encode = model.encode_faces

    def counting(self, faces):
        sizes.append(len(faces))
        return encode(self, faces)

    monkeypatch.setattr(model, "encode_faces", counting)
    batch = recognizer_module.FILE_FACE_BATCH
    assert recognizer._file_face_batch() == batch > 1
    batched = list(recognizer.analyze(clip))
    batched_sizes, sizes[:] = list(sizes), []
    monkeypatch.setattr(recognizer_module, "FILE_FACE_BATCH", 1)
    one_by_one = list(recognizer.analyze(clip))
    assert set(sizes) == {1}  # one face in view: a call per kept frame
    assert sum(batched_sizes) == len(sizes)  # every face encoded once either way
    assert max(batched_sizes) == batch
    assert len(batched_sizes) < len(sizes) / 2
    _same_results(batched, one_by_one)


def test_a_stream_s_face_batch_bounds_every_call_and_waits_for_no_window(recognizer, crema_flv):
    """Pushed frame by frame with ``face_batch`` 3, a stream never encodes more than 3 faces at
    once, encodes what waits when a window needs it (1-s windows: they complete while the clip is
    pushed, not only at ``flush``), and gives the results of ``face_batch`` 1."""
    frames = list(VideoFileSource(crema_flv))
    results = {}
    for batch in (1, 3):
        sizes: list[int] = []
        with recognizer.create_stream(audio=False, face_batch=batch, window_ms=1000, hop_ms=500) as stream:
            stream._model = _Recording(stream._model, sizes)
            got = []
            for frame in frames:
                stream.push_video(frame, frame.timestamp_ms)
                got += stream.poll()
            while_pushed = list(sizes)
            results[batch] = got + stream.flush()
        assert sizes and max(sizes) <= batch
        if batch == 3:
            assert got  # windows were computed while frames came in ...
            assert any(size < batch for size in while_pushed)  # ... one with fewer than 3 faces waiting
    _same_results(results[3], results[1])


def test_a_failed_batch_is_encoded_again_not_lost(recognizer, crema_flv):
    """An encoder error while crops wait (a runtime hiccup the app catches) loses nothing: the
    crops are encoded at the next call and the results are those of a stream without the error."""
    frames = list(VideoFileSource(crema_flv))
    with recognizer.create_stream(audio=False, face_batch=3) as stream:
        stream._model = _Recording(stream._model, [], fail_on_call=2)
        got, failures = [], 0
        for frame in frames:
            try:
                stream.push_video(frame, frame.timestamp_ms)
                got += stream.poll()
            except RuntimeError:
                failures += 1
        got += stream.flush()
    with recognizer.create_stream(audio=False) as stream:
        for frame in frames:
            stream.push_video(frame, frame.timestamp_ms)
        want = stream.flush()
    assert failures == 1
    assert all(np.isfinite(list(r.raw_scores.values())).all() for r in got)
    _same_results(got, want)


class _Recording:
    """A model that records how many faces each ``encode_faces`` call gets (and fails the
    ``fail_on_call``-th call, counting from 1, when told)."""

    def __init__(self, model, sizes: list[int], fail_on_call: int | None = None):
        self._model, self._sizes, self._fail_on_call = model, sizes, fail_on_call

    def encode_faces(self, faces):
        self._sizes.append(len(faces))
        if len(self._sizes) == self._fail_on_call:
            raise RuntimeError("the runtime failed this call")
        return self._model.encode_faces(faces)

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_a_decoded_frame_converts_on_first_read_and_once(crema_flv, monkeypatch):
    convert = _Counting(files.video_frame_to_rgb)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    frames = list(VideoFileSource(crema_flv))
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
    with av.open(str(crema_flv)) as container:
        reference = next(container.decode(container.streams.video[0])).to_ndarray(format="rgb24")
    np.testing.assert_array_equal(image, reference)


def test_the_stream_does_not_read_the_frames_it_drops(recognizer, crema_flv, monkeypatch):
    convert = _Counting(files.video_frame_to_rgb)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    frames = list(VideoFileSource(crema_flv))
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


def _decoded_audio(path: Path):
    with av.open(str(path)) as container:
        yield from container.decode(container.streams.audio[0])


def _mono_by_the_general_path(frame) -> np.ndarray:
    data = frame.to_ndarray()  # planar: (C, S)
    samples = data.T if frame.format.is_planar else data.reshape(-1, len(frame.layout.channels))
    return to_mono(samples if samples.shape[1] > 1 else samples[:, 0])


def test_mixdown_from_the_planes_equals_the_general_path(clip):
    frames = list(_decoded_audio(clip))
    assert frames and frames[0].format.name == "fltp"
    for frame in frames:
        mono = audio_frame_to_mono(frame)
        assert mono.dtype == np.float32 and mono.shape == (frame.samples,)
        np.testing.assert_array_equal(mono, _mono_by_the_general_path(frame))


def test_resampling_in_blocks_gives_the_samples_of_resampling_frame_by_frame(clip):
    resampler = MonoResampler(16000)
    parts = [resampler.push(_mono_by_the_general_path(f), f.sample_rate) for f in _decoded_audio(clip)]
    reference = np.concatenate([*parts, resampler.flush()])
    chunks = list(AudioFileSource(clip, sample_rate=16000, chunk_ms=100))
    np.testing.assert_array_equal(np.concatenate([c.pcm for c in chunks]), reference)
    assert all(c.pcm.size == 1600 for c in chunks[:-1])
    assert np.all(np.diff([c.timestamp_ms for c in chunks]) == 100)


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "edge-emotion-file-reader" and t.is_alive()]


def test_a_decoding_error_on_the_reader_thread_reaches_the_caller(recognizer, sample_clip, monkeypatch):
    lazy_iter = VideoFileSource.__iter__

    def failing_iter(self):
        for i, frame in enumerate(lazy_iter(self)):
            if i == 20:
                raise MediaError(f"{self.path}: decoding failed (simulated)")
            yield frame

    monkeypatch.setattr(VideoFileSource, "__iter__", failing_iter)
    with pytest.raises(MediaError, match="simulated"):
        list(recognizer.analyze(sample_clip))
    assert not _readers()


def test_the_reader_stops_when_the_caller_stops(recognizer, tmp_path):
    results = recognizer.analyze(make_long_clip(tmp_path / "long.mp4"), hop_ms=500)
    first = next(results)
    assert first.t_start_ms == 0 and _readers()  # 20 s of input: the reader is still at work
    results.close()  # the caller stops early: the reader thread ends and the file is closed
    assert not _readers()


def test_threads_reading_one_frame_convert_it_once(crema_flv, monkeypatch):
    """A display and the stream's worker may read the same frame at once: one converts, the other
    waits and gets the same array (PyAV's conversion of one frame by two threads at once can hang)."""
    convert = _Counting(files.video_frame_to_rgb)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    frames = list(VideoFileSource(crema_flv))[:20]
    barrier = threading.Barrier(4)
    seen: list[list[int]] = [[] for _ in range(4)]

    def read(k: int) -> None:
        barrier.wait()
        seen[k] = [id(frame.image) for frame in frames]

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert convert.calls == len(frames)
    assert all(ids == seen[0] for ids in seen)  # every thread got the one converted array


# -- luma from the Y plane --------------------------------------------------------------------------


def _rgb_clip(path: Path, frames: int = 6) -> Path:
    """A clip coded in RGB (PNG frames in QuickTime): no luma plane to read."""
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("png", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "rgb24"
        rng = np.random.default_rng(0)
        pictures = []
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            pictures.append(frame)
        encode_all(container, video, pictures)
    return path


def test_luma_is_read_from_the_y_plane_without_conversion_and_is_the_pictures_luma(clip, monkeypatch):
    import cv2

    convert = _Counting(files.video_frame_to_rgb)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    frames = list(VideoFileSource(clip))[:30]
    lumas = [f.luma() for f in frames]
    assert convert.calls == 0 and not any(f.converted for f in frames)
    assert all(y.shape == (f.height, f.width) and y.dtype == np.uint8 for f, y in zip(frames, lumas, strict=True))
    assert frames[0].luma() is lumas[0]  # read once
    for frame, y in zip(frames[::10], lumas[::10], strict=True):
        rgb_luma = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        # limited-range video codes luma on 16..235; swscale's RGB is rounded down (about a grey
        # level) and clips saturated colours, the Y plane is neither
        diff = np.abs(y - (16 + rgb_luma * 219 / 255))
        assert np.corrcoef(y.ravel(), rgb_luma.ravel())[0, 1] > 0.999
        assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 6, (diff.mean(), np.percentile(diff, 99))
        assert frame.luma() is y  # unchanged once the RGB picture exists


def test_luma_of_a_video_without_a_luma_plane_comes_from_its_rgb(tmp_path):
    import cv2

    frames = list(VideoFileSource(_rgb_clip(tmp_path / "rgb.mov")))
    assert frames
    for frame in frames:
        np.testing.assert_array_equal(frame.luma(), cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY))
    plain = VideoFrame(frames[0].image.copy(), 0)  # an app's own frame
    np.testing.assert_array_equal(plain.luma(), frames[0].luma())


def test_several_people_read_the_dropped_frames_luma_not_rgb(crema_flv, monkeypatch):
    """With max_faces > 1 mouths are watched on every frame: the frames the model drops are read
    from their luma plane, never converted to RGB."""
    try:
        two = Recognizer.from_bundle(backend="onnxruntime", max_faces=2, file_decoder="thread")
    except BundleError as exc:
        pytest.skip(f"the shipped model is not in this install ({exc})")
    convert = _Counting(files.video_frame_to_rgb)
    luma = _Counting(files.video_frame_luma)
    monkeypatch.setattr(files, "video_frame_to_rgb", convert)
    monkeypatch.setattr(files, "video_frame_luma", luma)
    n_frames = len(list(VideoFileSource(crema_flv)))
    with two:
        results = list(two.analyze(crema_flv))
    assert results and any(r.speaking for r in results)
    assert luma.calls == n_frames  # every frame watched
    assert 0 < convert.calls < 0.5 * n_frames  # only the model's frames became RGB
