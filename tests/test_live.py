"""The live session's plumbing with a fake bundle and file-backed or fake sources: one modality
ending early, a device that fails to open after another opened, the camera and microphone on one
clock, readers that never block for ever, and calls before start()."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_emotion import live
from edge_emotion.errors import DeviceError, InputError
from edge_emotion.recognizer import Recognizer
from edge_emotion.sources import AudioChunk, AudioFileSource, VideoFrame, open_media

pytest.importorskip("onnx", reason="the fake bundles are written with onnx (export extra)")

from fakes import make_onnx_bundle  # noqa: E402
from media import SAMPLE_CLIP  # noqa: E402

SAMPLE = SAMPLE_CLIP  # 3.0 s, face + speech
HOP_MS = 500


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> Recognizer:
    bundle = make_onnx_bundle(tmp_path_factory.mktemp("live"), preset="edge", seed=0)
    return Recognizer.from_bundle(bundle, backend="onnxruntime", hop_ms=HOP_MS)


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("edge-emotion-video", "edge-emotion-audio")]


def _wait_for(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class FakeSource:
    """An iterable with open() / close() counters; ``fail_open`` makes open() raise DeviceError."""

    def __init__(self, items=(), fail_open: bool = False):
        self.items = list(items)
        self.fail_open = fail_open
        self.opened = self.closed = 0

    def open(self) -> None:
        if self.fail_open:
            raise DeviceError("fake device could not be opened")
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def __iter__(self):
        return iter(self.items)


# -- one modality ends early ------------------------------------------------------------------
def _long_speech(repeats: int, chunk_ms: int = 100) -> list[AudioChunk]:
    """The sample's speech (AudioFileSource at 16 kHz) ``repeats`` times over, in ``chunk_ms`` chunks."""
    pcm = np.concatenate([c.pcm for c in AudioFileSource(SAMPLE, sample_rate=16000)])
    pcm = np.tile(pcm, repeats)
    n = 16 * chunk_ms
    return [AudioChunk(pcm[i : i + n], 16000, i // 16) for i in range(0, pcm.size, n)]


def test_audio_goes_on_after_the_video_ends(recognizer):
    """A camera that stops after a few frames must not stall the microphone: windows past the
    video's end reach on_result while audio still flows, and the results cover the whole audio."""
    frames = list(open_media(SAMPLE).video)[:5]  # 0.2 s of video
    video_end_ms = frames[-1].timestamp_ms + 40  # one frame period at 25 fps
    chunks = _long_speech(repeats=4)  # 12 s of audio: several 3 s windows at a 500 ms hop
    audio_end_ms = chunks[-1].end_ms
    assert audio_end_ms > 2 * recognizer.preset.window_ms
    mic_open = threading.Event()  # the microphone is still open, delivering nothing more

    def video():
        yield from (VideoFrame(f.image, f.timestamp_ms) for f in frames)

    def audio():
        yield from chunks
        mic_open.wait(60)

    seen: list = []
    session = recognizer.live(on_result=seen.append, video_source=video(), audio_source=audio())
    with session:
        try:
            # Before the microphone ends (no flush yet), the windows that audio alone completes arrive.
            assert _wait_for(lambda: any(r.t_start_ms >= video_end_ms for r in seen))
            assert session.running
        finally:
            mic_open.set()
        assert session.wait(60)
    assert not session.running

    # The same results as a stream told that video ended, flushed at the end of the audio.
    with recognizer.create_stream(hop_ms=HOP_MS) as stream:
        for f in frames:
            stream.push_video(f.image, f.timestamp_ms)
        stream.end_input("video")
        expected = stream.poll()
        for c in chunks:
            stream.push_audio(c.pcm, c.sample_rate, c.timestamp_ms)
            expected += stream.poll()
        expected += stream.flush()
    assert [r.to_dict() for r in seen] == [r.to_dict() for r in expected]
    starts = [r.t_start_ms for r in seen]
    assert starts == [starts[0] + k * HOP_MS for k in range(len(seen))]
    assert seen[-1].t_end_ms >= audio_end_ms - HOP_MS  # the tail of the audio is covered
    assert all("video" not in r.modalities for r in seen if r.t_start_ms >= video_end_ms)


def test_a_failing_source_ends_its_modality_and_is_reported(recognizer):
    """A camera that raises mid-capture: on_error hears of it, and the audio still gets results."""
    frames = list(open_media(SAMPLE).video)[:3]

    def broken_camera():
        yield from (VideoFrame(f.image, f.timestamp_ms) for f in frames)
        raise DeviceError("camera unplugged")

    errors: list[BaseException] = []
    seen: list = []
    session = recognizer.live(
        on_result=seen.append,
        on_error=errors.append,
        video_source=broken_camera(),
        audio_source=AudioFileSource(SAMPLE, sample_rate=16000),
    )
    with session:
        assert session.wait(60)
    assert [type(e) for e in errors] == [DeviceError]
    assert seen and seen[-1].t_end_ms >= 1500  # the audio's end (1.9 s) is covered


# -- opening ------------------------------------------------------------------------------
def test_a_source_that_fails_to_open_releases_the_one_already_open(recognizer):
    video, audio = FakeSource(), FakeSource(fail_open=True)
    session = recognizer.live(video_source=video, audio_source=audio)
    with pytest.raises(DeviceError):
        session.start()
    assert (video.opened, video.closed) == (1, 1)
    assert (audio.opened, audio.closed) == (0, 0)  # never opened, so not closed
    assert not session.running and not _reader_threads()


def test_camera_and_microphone_share_one_clock_and_a_failing_mic_closes_the_camera(recognizer, monkeypatch):
    import edge_emotion.sources as sources

    made: dict[str, object] = {}

    class Camera(FakeSource):
        def __init__(self, index, max_fps=None, origin_s=None):
            super().__init__()
            self.origin_s = origin_s
            made["camera"] = self

    class Microphone(FakeSource):
        fail = False

        def __init__(self, device, sample_rate=16000, origin_s=None):
            super().__init__()
            self.origin_s = origin_s
            made["mic"] = self
            if Microphone.fail:
                raise DeviceError(f"microphone {device!r} not found")

    monkeypatch.setattr(sources, "CameraSource", Camera)
    monkeypatch.setattr(sources, "MicrophoneSource", Microphone)

    session = recognizer.live(camera=0, mic="default")
    with session:
        assert session.wait(10)  # both fakes are empty
    camera, mic = made["camera"], made["mic"]
    assert camera.origin_s is not None and camera.origin_s == mic.origin_s
    assert camera.closed and mic.closed

    Microphone.fail = True
    made.clear()
    session = recognizer.live(camera=0, mic="default")
    with pytest.raises(DeviceError, match="microphone"):
        session.start()
    assert made["camera"].closed == 1
    assert not session.running


def test_start_after_stop_opens_the_devices_afresh(recognizer, monkeypatch):
    """A closed camera / microphone cannot deliver again: a restarted session creates new ones
    (and a session whose sources ended by themselves can be started again without stop())."""
    import edge_emotion.sources as sources

    made: list[FakeSource] = []

    class Device(FakeSource):
        def __init__(self, *args, **kwargs):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(sources, "CameraSource", Device)
    monkeypatch.setattr(sources, "MicrophoneSource", Device)
    session = recognizer.live(camera=0, mic="default")
    session.start()
    assert session.wait(10)
    session.stop()
    first = list(made)
    assert len(first) == 2 and all(d.closed == 1 for d in first)
    session.start()  # after stop(): two new devices, the closed ones are not touched again
    assert session.wait(10)
    assert len(made) == 4 and all(d.opened == 1 for d in made[2:])
    assert all((d.opened, d.closed) == (1, 1) for d in first)
    session.start()  # the sources ended by themselves: start() releases them and opens new ones
    assert len(made) == 6 and all(d.closed == 1 for d in made[2:4])
    session.stop()
    assert all(d.closed == 1 for d in made)


# -- readers never block for ever -----------------------------------------------------------
def _endless_audio(counter: list[int]):
    pcm = np.zeros(1600, np.float32)
    k = 0
    while True:
        counter[0] += 1
        yield AudioChunk(pcm, 16000, 100 * k)
        k += 1


def test_a_reader_ends_when_the_worker_dies(recognizer):
    """An item the worker cannot handle kills it; the reader of an endless source must not then
    block for ever on the full queue."""

    def bad_camera():
        while True:
            yield object()  # no .image: the worker fails on the first one

    errors: list[BaseException] = []
    session = recognizer.live(mic=None, on_error=errors.append, video_source=bad_camera())
    session.start()
    assert session.wait(30)
    assert _wait_for(lambda: not _reader_threads(), 10)
    assert len(errors) == 1 and isinstance(errors[0], AttributeError)
    session.stop()


def test_stop_releases_a_reader_blocked_on_a_full_queue(recognizer):
    entered, release = threading.Event(), threading.Event()
    produced = [0]

    def on_result(result):
        entered.set()
        release.wait(60)  # a slow consumer: the worker stalls, the queue fills

    session = recognizer.live(camera=None, on_result=on_result, audio_source=_endless_audio(produced))
    session.start()
    try:
        assert entered.wait(60)
        assert _wait_for(lambda: session.stats().audio_waiting == live.QUEUE_CAPACITY)
        before = produced[0]
        time.sleep(0.3)
        assert produced[0] == before  # the reader waits on the full queue
        session.stop(timeout_s=1.0)  # the worker is still stuck in on_result
        assert _wait_for(lambda: not _reader_threads(), 5)
    finally:
        release.set()
        session.stop()
    assert session.wait(60)  # the worker drains what was queued, flushes and ends


# -- wrong order ------------------------------------------------------------------------------
def test_running_and_wait_before_start(recognizer):
    session = recognizer.live(camera=None, audio_source=AudioFileSource(SAMPLE, sample_rate=16000))
    assert session.running is False
    with pytest.raises(InputError, match="start"):
        session.wait(0)
    session.stop()  # a stop before start is a no-op
    assert session.running is False


# -- bounded latency ----------------------------------------------------------------------------
class LiveCamera:
    """A live video source (``live = True``, as a camera) that delivers frames faster than any
    worker takes them: ``n`` frames 10 ms apart, no waiting, then it ends."""

    live = True

    def __init__(self, image: np.ndarray, n: int):
        self.image, self.n = image, n
        self.newest_ms = -1

    def __iter__(self):
        for k in range(self.n):
            self.newest_ms = 10 * k
            yield VideoFrame(self.image, 10 * k)


def test_a_slow_consumer_drops_the_oldest_video_and_the_backlog_stays_bounded(recognizer):
    """on_result that takes long stalls the worker; a live camera must then lose its oldest frames
    (counted in stats()) instead of queueing them: at most VIDEO_BACKLOG frames ever wait."""
    image = list(open_media(SAMPLE).video)[0].image
    camera = LiveCamera(image, n=600)
    waiting: list[int] = []

    def slow(result):
        waiting.append(session.stats().video_waiting)
        time.sleep(0.3)

    session = recognizer.live(camera=None, mic=None, on_result=slow, video_source=camera)
    with session:
        assert session.wait(120)
    stats = session.stats()
    assert stats.video_items == 600
    assert stats.video_dropped > 0
    assert stats.max_video_backlog <= live.VIDEO_BACKLOG
    assert waiting and max(waiting) <= live.VIDEO_BACKLOG  # what waits while the consumer is slow
    assert stats.video_items - stats.video_dropped < 600


def test_a_file_source_is_never_dropped_from(recognizer):
    """A source that is not live (a file read as fast as it decodes) waits for the worker instead."""
    frames = list(open_media(SAMPLE).video)
    seen: list = []
    session = recognizer.live(
        camera=None, mic=None, on_result=lambda r: (time.sleep(0.2), seen.append(r)), video_source=iter(frames)
    )
    with session:
        assert session.wait(120)
    stats = session.stats()
    assert (stats.video_items, stats.video_dropped) == (len(frames), 0)
    assert seen


# -- a video source that blocks for ever -------------------------------------------------------------
class BlockingCamera:
    """Blocks inside its iteration until released (a camera whose driver hangs); never closed under it."""

    live = True

    def __init__(self):
        self.release = threading.Event()
        self.inside = threading.Event()
        self.closed = 0

    def __iter__(self):
        self.inside.set()
        self.release.wait(120)
        return
        yield

    def close(self):
        self.closed += 1


def test_a_blocked_camera_does_not_stop_audio_and_stop_is_bounded(recognizer, caplog):
    camera = BlockingCamera()
    mic_open, mic_idle = threading.Event(), threading.Event()

    def microphone():  # ~3.8 s of speech over ~1 s, then open and silent until the end of the test
        for chunk in _long_speech(repeats=2):
            yield chunk
            time.sleep(0.025)
        mic_idle.set()
        mic_open.wait(120)

    seen: list = []
    session = live.LiveSession(
        recognizer,
        camera=None,
        mic=None,
        on_result=seen.append,
        hop_ms=HOP_MS,
        video_source=camera,
        audio_source=microphone(),
        video_stall_ms=500,
    )
    session.start()
    try:
        assert camera.inside.wait(30)
        assert _wait_for(lambda: len(seen) >= 2, 60)  # audio alone completes windows
        assert all("video" not in r.modalities for r in seen)
        assert session.stats().video_stalls == 1
        assert mic_idle.wait(60)  # both readers are now blocked inside their sources
        with caplog.at_level("WARNING", logger="edge_emotion.live"):
            session.stop(timeout_s=1.0)
        assert not session.running
        stuck = [r.getMessage().split()[1] for r in caplog.records if "did not return" in r.getMessage()]
        assert stuck == ["video", "audio"], [r.getMessage() for r in caplog.records]
        assert camera.closed == 0  # never released under its (still blocked) reader
        worker = [t for t in threading.enumerate() if t.name == "edge-emotion-worker"]
        assert not worker
    finally:
        camera.release.set()
        mic_open.set()
    assert _wait_for(lambda: camera.closed == 1, 10)  # the abandoned reader closes it when it returns
    assert _wait_for(lambda: not _reader_threads(), 10)


def test_a_camera_that_comes_back_after_a_stall_is_used_again(recognizer):
    frames = list(open_media(SAMPLE).video)
    chunks = _long_speech(repeats=4)
    gate = threading.Event()

    class LateCamera:
        live = True

        def __iter__(self):
            gate.wait(60)
            # frames stamped after the audio already pushed, as a camera that resumed would be
            base = chunks[len(chunks) // 2].timestamp_ms
            for f in frames:
                yield VideoFrame(f.image, base + f.timestamp_ms)

    def audio():
        for k, c in enumerate(chunks):
            if k == len(chunks) // 2:
                gate.set()
                time.sleep(1.0)
            yield c
            time.sleep(0.01)

    seen: list = []
    session = live.LiveSession(
        recognizer,
        camera=None,
        mic=None,
        on_result=seen.append,
        hop_ms=HOP_MS,
        video_source=LateCamera(),
        audio_source=audio(),
        video_stall_ms=300,
    )
    with session:
        assert session.wait(120)
    assert session.stats().video_stalls == 1
    assert any("video" in r.modalities for r in seen)


# -- start / stop on a file-backed camera, many times -----------------------------------------
_START_STOP = """
import sys, time
from edge_emotion.recognizer import Recognizer
rec = Recognizer.from_bundle(sys.argv[1], backend="onnxruntime")
for k in range(20):
    session = rec.live(camera=sys.argv[2], mic=None)
    session.start()
    time.sleep(0.05 * (k % 4))
    session.stop()
    assert not session.running
print("ok", flush=True)
"""


def test_start_stop_a_file_backed_camera_twenty_times(tmp_path_factory):
    """stop() while the reader is inside VideoCapture.read(): the capture must be released only
    after the read returns (a release during it aborts the process or corrupts its heap)."""
    import subprocess
    import sys

    bundle = make_onnx_bundle(tmp_path_factory.mktemp("startstop"), preset="edge", seed=0)
    proc = subprocess.run(
        [sys.executable, "-c", _START_STOP, str(bundle), str(SAMPLE)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip().endswith("ok")


def test_latest_results_keeps_each_person_s_last_result_and_forgets_those_long_gone(recognizer):
    from edge_emotion.results import EmotionResult

    def result(start: int, person: int | None) -> EmotionResult:
        return EmotionResult(start, start + 3000, "calm", {"calm": 1.0}, ("video",), person=person)

    session = live.LiveSession(recognizer, camera=None, mic=None, on_result=None)
    session._deliver([result(0, 1), result(0, 2), result(0, None)])
    first = session.latest_results
    session._deliver([result(500, 2)])
    assert {p: r.t_start_ms for p, r in session.latest_results.items()} == {1: 0, 2: 500, None: 0}
    assert session.latest_result.person == 2 and session.results_count == 4
    assert {p: r.t_start_ms for p, r in first.items()} == {1: 0, 2: 0, None: 0}  # replaced, not changed
    session._deliver([result(500 + live.PERSON_KEEP_MS + 1, 2)])  # the others ended too long before
    assert set(session.latest_results) == {2}
