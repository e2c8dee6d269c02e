"""Live sessions: a camera and a microphone feeding a stream from worker threads — the kiosk's
entry point (``Recognizer.live``)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .results import EmotionResult, FaceInfo

if TYPE_CHECKING:
    from .recognizer import Recognizer
    from .sources import VideoFrame

log = logging.getLogger(__name__)

_POLL_S = 0.1  # how often a waiting reader / worker checks for stop, a dead worker or a stalled camera
#: Video frames a live camera may have waiting for the worker; older ones are dropped when it falls behind.
VIDEO_BACKLOG = 4
#: Items a non-dropping queue (audio, a file-backed video source) holds before its reader waits.
QUEUE_CAPACITY = 256
#: Audio this far (ms, on the audio clock) past the last video frame, with no frame for as long in
#: real time, means the camera stalled: windows go on from audio alone until frames come back.
VIDEO_STALL_MS = 5000
#: ``LiveSession.latest_results`` forgets a person whose last result ended this long (ms, on the
#: results' clock) before the newest result.
PERSON_KEEP_MS = 5000


@dataclass(frozen=True)
class LiveStats:
    """Counters of a live session (:meth:`LiveSession.stats`), since its last :meth:`~LiveSession.start`.

    ``video_dropped``: frames of a live video source dropped (the oldest first) because inference
    was behind; ``video_waiting`` / ``audio_waiting``: items waiting for the worker now;
    ``max_video_backlog`` / ``max_audio_backlog``: the most that ever waited; ``video_stalls``:
    times the camera delivered nothing for the stall time while audio went on; ``ended``: the
    modalities whose source has finished."""

    video_items: int
    video_dropped: int
    audio_items: int
    video_waiting: int
    audio_waiting: int
    max_video_backlog: int
    max_audio_backlog: int
    video_stalls: int
    ended: tuple[str, ...] = ()


class _Inbox:
    """What the readers have produced and the worker has not yet taken, per modality.

    Video from a live source is a ring of ``video_backlog`` frames (the oldest is dropped and
    counted when a new one arrives on a full ring); audio, and video from a source that is read as
    fast as it decodes (a file), wait for room instead, at most ``capacity`` items each. The worker
    takes the earliest-stamped head first."""

    def __init__(self, video_backlog: int | None, capacity: int = QUEUE_CAPACITY):
        self.cond = threading.Condition()
        self.queues: dict[str, deque] = {"video": deque(), "audio": deque()}
        self.video_backlog = video_backlog
        self.capacity = capacity
        self.ended: set[str] = set()  # readers that finished
        self.reported: set[str] = set()  # ends the worker has been told of
        self.counts = {"video": 0, "audio": 0}
        self.max_backlog = {"video": 0, "audio": 0}
        self.video_dropped = 0

    def put(self, kind: str, item: Any, give_up: Callable[[], bool]) -> bool:
        """Queue ``item``; False (item dropped) when ``give_up()`` turns true while waiting for room."""
        with self.cond:
            queue = self.queues[kind]
            if kind == "video" and self.video_backlog is not None:
                while len(queue) >= self.video_backlog:
                    queue.popleft()
                    self.video_dropped += 1
            else:
                while len(queue) >= self.capacity:
                    if give_up():
                        return False
                    self.cond.wait(_POLL_S)
            queue.append(item)
            self.counts[kind] += 1
            self.max_backlog[kind] = max(self.max_backlog[kind], len(queue))
            self.cond.notify_all()
            return True

    def end(self, kind: str) -> None:
        with self.cond:
            self.ended.add(kind)
            self.cond.notify_all()

    def _next(self) -> tuple[str, Any] | None:
        heads = [(getattr(q[0], "timestamp_ms", 0), kind) for kind, q in self.queues.items() if q]
        if heads:
            kind = min(heads)[1]
            return kind, self.queues[kind].popleft()
        for kind in sorted(self.ended - self.reported):
            self.reported.add(kind)
            return "end", kind
        return None

    def take(self, timeout_s: float) -> tuple[str, Any] | None:
        """``(kind, item)``, ``("end", kind)`` once a reader has finished and its items are taken,
        or None after ``timeout_s`` with nothing to take."""
        with self.cond:
            got = self._next()
            if got is None:
                self.cond.wait(timeout_s)
                got = self._next()
            if got is not None:
                self.cond.notify_all()  # room for a waiting reader
            return got

    def empty(self) -> bool:
        with self.cond:
            return not any(self.queues.values())

    def backlog(self) -> dict[str, int]:
        with self.cond:
            return {kind: len(q) for kind, q in self.queues.items()}


class _PlaybackClock:
    """Wall time for media time: the first item waited for starts the clock."""

    def __init__(self, speed: float = 1.0):
        if not speed > 0:
            raise InputError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._lock = threading.Lock()
        self._start: tuple[float, int] | None = None  # (monotonic s, timestamp_ms) of the first item

    def reset(self) -> None:
        with self._lock:
            self._start = None

    def wait_until(self, timestamp_ms: int, cancel: threading.Event) -> None:
        with self._lock:
            if self._start is None:
                self._start = (time.monotonic(), int(timestamp_ms))
            t0, ms0 = self._start
        delay = t0 + (timestamp_ms - ms0) / 1000.0 / self.speed - time.monotonic()
        if delay > 0:
            cancel.wait(delay)


class Paced:
    """A file-backed source played at its own rate: each item is released when the playback clock
    reaches its ``timestamp_ms`` (items of every source built with one :func:`paced` call share
    the clock). A paced video source is *live*: a live session drops its oldest frames when
    inference falls behind, as it does a camera's. ``open`` / ``close`` go to the wrapped source;
    ``close`` also cuts a wait short."""

    live = True

    def __init__(self, source: Iterable, clock: _PlaybackClock):
        self.source = source
        self._clock = clock
        self._closed = threading.Event()

    def open(self) -> None:
        self._closed.clear()
        self._clock.reset()
        opener = getattr(self.source, "open", None)
        if callable(opener):
            opener()

    def wake(self) -> None:
        self._closed.set()

    def close(self) -> None:
        self._closed.set()
        closer = getattr(self.source, "close", None)
        if callable(closer):
            closer()

    def __iter__(self) -> Iterator[Any]:
        for item in self.source:
            self._clock.wait_until(item.timestamp_ms, self._closed)
            if self._closed.is_set():
                return
            yield item

    def __repr__(self) -> str:
        return f"Paced({self.source!r})"


def paced(*sources: Iterable | None, speed: float = 1.0) -> tuple[Paced | None, ...]:
    """Wrap file-backed sources (e.g. a :class:`~edge_emotion.sources.VideoFileSource` and an
    :class:`~edge_emotion.sources.AudioFileSource` of one file) so that a live session plays them
    at ``speed`` times their own rate, on one clock; None stays None."""
    clock = _PlaybackClock(speed)
    return tuple(None if s is None else Paced(s, clock) for s in sources)


def _is_live(source: Any) -> bool:
    from .sources import CameraSource

    return isinstance(source, CameraSource) or bool(getattr(source, "live", False))


class LiveSession:
    """Owns the live sources and a worker thread that turns their output into results.

    ``on_result(result)`` is called from the worker thread for every window, in order;
    ``on_error(exc)`` for an error in a source or a callback (default: logged). The camera and
    microphone are opened by :meth:`start`, so a missing device raises
    :class:`~edge_emotion.errors.DeviceError` there, in the caller's thread. :meth:`stop` stops the
    readers, closes the devices, flushes the last partial window and joins the threads, within its
    timeout; it is idempotent.

    The camera and the microphone are stamped on one capture clock (one ``origin_s``). When one
    source ends or fails (a file that ended, a camera unplugged), the stream stops waiting for that
    modality (:meth:`EmotionStream.end_input`) and results go on from the other.

    Latency stays bounded: a live video source (a camera, or a :class:`Paced` file) keeps at most
    ``video_backlog`` frames waiting for inference, dropping the oldest (:meth:`stats` counts
    them); a camera that delivers nothing for ``video_stall_ms`` while audio goes on is logged and
    the windows go on from audio alone until frames come back. Before :meth:`start`,
    :attr:`running` is False and :meth:`wait` raises :class:`~edge_emotion.errors.InputError`.

    For a display (read from any thread): ``latest_frame`` is the newest
    :class:`~edge_emotion.sources.VideoFrame` the video source delivered (inference keeping up or
    not), ``latest_face`` ``(timestamp_ms, FaceInfo | None)`` the face detector's answer on the
    last frame it ran on, ``latest_result`` the last result, ``results_count`` how many so far.
    With several people (``max_faces`` > 1): ``latest_faces`` ``(timestamp_ms, {track id:
    FaceInfo})`` every face followed on that frame, and ``latest_results`` the last result of
    each person (``{person: EmotionResult}``, the key None for a result without a face, e.g. an
    off-screen voice), forgetting a person whose last result ended :data:`PERSON_KEEP_MS` before
    the newest one. Both are replaced, never changed in place, so a reader may keep and iterate them.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        camera: int | str | None,
        mic: int | str | None,
        on_result: Callable[[EmotionResult], None] | None,
        hop_ms: int | None = None,
        smoothing: float | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        video_source: Iterable | None = None,
        audio_source: Iterable | None = None,
        video_backlog: int = VIDEO_BACKLOG,
        video_stall_ms: int = VIDEO_STALL_MS,
    ):
        if video_backlog < 1:
            raise InputError(f"video_backlog must be at least 1, got {video_backlog}")
        if video_stall_ms < 1:
            raise InputError(f"video_stall_ms must be positive, got {video_stall_ms}")
        self._recognizer = recognizer
        self._camera, self._mic = camera, mic
        self._video_source, self._audio_source = video_source, audio_source
        self._on_result = on_result
        self._on_error = on_error
        self._hop_ms, self._smoothing = hop_ms, smoothing
        self._video_backlog = int(video_backlog)
        self._video_stall_ms = int(video_stall_ms)
        self._inbox = _Inbox(None)
        self._worker: threading.Thread | None = None
        self._readers: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self._abandon = threading.Event()  # stop(): the worker no longer waits for stuck readers
        self._worker_done = threading.Event()  # set when the worker has returned (or died)
        self._running = False
        self._created: list[str] = []  # the devices ("video", "audio") this session opened itself
        self._lock = threading.Lock()
        self._stalls = 0
        self.latest_frame: VideoFrame | None = None
        self.latest_result: EmotionResult | None = None
        self.latest_face: tuple[int, FaceInfo | None] | None = None
        self.latest_faces: tuple[int, dict[int, FaceInfo]] | None = None
        self.latest_results: dict[int | None, EmotionResult] = {}
        self.results_count = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def _open_sources(self) -> None:
        """Create the camera / microphone (on one capture clock) and open every source; when one
        fails, close those already opened and re-raise."""
        preset = self._recognizer.preset
        origin = time.monotonic()  # one clock for camera and microphone
        opened: list[Any] = []
        created = self._created = []
        try:
            if self._video_source is None and self._camera is not None:
                from .sources import CameraSource

                self._video_source = CameraSource(self._camera, max_fps=preset.visual.fps, origin_s=origin)
                created.append("video")
                opened.append(self._video_source)
            if self._audio_source is None and self._mic is not None:
                from .sources import MicrophoneSource

                self._audio_source = MicrophoneSource(self._mic, sample_rate=preset.audio.sample_rate, origin_s=origin)
                created.append("audio")
                opened.append(self._audio_source)
            for source in (self._video_source, self._audio_source):
                opener = getattr(source, "open", None)
                if callable(opener):
                    opener()
                    if not any(source is o for o in opened):
                        opened.append(source)
        except BaseException:
            self._close_sources(reversed(opened))
            self._forget_created_devices()
            raise

    def _forget_created_devices(self) -> None:
        """A closed device cannot deliver again: drop the camera / microphone this session created,
        so the next start() creates them afresh (sources passed in are kept)."""
        if "video" in self._created:
            self._video_source = None
        if "audio" in self._created:
            self._audio_source = None
        self._created = []

    @staticmethod
    def _close_sources(sources: Iterable) -> None:
        for source in sources:
            close = getattr(source, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # closing a broken device must not hide what went on
                    log.warning("closing a source failed: %s", exc)

    def start(self) -> LiveSession:
        """Open the sources and start the threads; a no-op while running. After :meth:`stop` (or
        after the sources ended), the camera and microphone this session opened are opened afresh;
        sources passed in (``video_source`` / ``audio_source``) are iterated again as they are."""
        with self._lock:
            if self._running:
                if self.running:
                    return self
                self._stop_locked(5.0)  # the previous run ended by itself: release it first
            self._open_sources()
            try:
                self._stream = self._recognizer.create_stream(
                    hop_ms=self._hop_ms,
                    smoothing=self._smoothing,
                    audio=self._audio_source is not None,
                    video=self._video_source is not None,
                )
            except BaseException:
                self._close_sources((self._video_source, self._audio_source))
                self._forget_created_devices()
                raise
            live_video = self._video_source is not None and _is_live(self._video_source)
            self._inbox = _Inbox(self._video_backlog if live_video else None)
            self._stalls = 0
            self._stopping.clear()
            self._abandon.clear()
            self._worker_done.clear()
            self._readers = {
                kind: threading.Thread(target=self._read, args=(kind, source), name=f"edge-emotion-{kind}", daemon=True)
                for kind, source in (("video", self._video_source), ("audio", self._audio_source))
                if source is not None
            }
            self._worker = threading.Thread(target=self._work, name="edge-emotion-worker", daemon=True)
            self._worker.start()
            for thread in self._readers.values():
                thread.start()
            self._running = True
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, let each reader leave its source (the camera is released only once its
        reader has left it), close the sources, flush and join the worker, all within about
        ``timeout_s``. A reader still blocked inside its source after that is abandoned (a daemon
        thread) with a warning, and closes its source itself if it ever returns."""
        with self._lock:
            self._stop_locked(timeout_s)

    def _stop_locked(self, timeout_s: float) -> None:
        if not self._running:
            return
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        sources = {"video": self._video_source, "audio": self._audio_source}
        # A source may offer wake(): cut a wait inside its iteration short, safely from another thread
        # (a microphone's ring buffer, a paced file's clock). Nothing is closed under a reader: OpenCV
        # aborts when a capture is released during read(), so a source is closed once its reader left it.
        for kind, source in sources.items():
            wake = getattr(source, "wake", None)
            if kind in self._readers and callable(wake):
                try:
                    wake()
                except Exception as exc:
                    log.warning("waking the %s source failed: %s", kind, exc)
        for kind, thread in self._readers.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "the %s source did not return within %.1f s of stop(); its reader thread is "
                    "abandoned and will close it if it ever returns",
                    kind,
                    timeout_s,
                )
            else:
                self._close_sources([sources[kind]])
        self._abandon.set()
        if self._worker is not None:  # it drains what is queued and flushes: at least a second for that
            self._worker.join(max(min(1.0, timeout_s), deadline - time.monotonic()))
            if self._worker.is_alive():
                log.warning("the live worker is still busy (in on_result?) %.1f s after stop()", timeout_s)
        self._running = False
        self._forget_created_devices()

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the sources end, the worker fails, or :meth:`stop`
        (False before :meth:`start`)."""
        return self._running and self._worker is not None and self._worker.is_alive()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the sources end (a file-backed source) or :meth:`stop`; True if ended.
        Raises :class:`~edge_emotion.errors.InputError` before :meth:`start`."""
        if self._worker is None:
            raise InputError("wait() before start(): start the live session first")
        self._worker.join(timeout_s)
        return not self._worker.is_alive()

    def stats(self) -> LiveStats:
        """The session's counters so far (see :class:`LiveStats`)."""
        inbox = self._inbox
        with inbox.cond:
            return LiveStats(
                video_items=inbox.counts["video"],
                video_dropped=inbox.video_dropped,
                audio_items=inbox.counts["audio"],
                video_waiting=len(inbox.queues["video"]),
                audio_waiting=len(inbox.queues["audio"]),
                max_video_backlog=inbox.max_backlog["video"],
                max_audio_backlog=inbox.max_backlog["audio"],
                video_stalls=self._stalls,
                ended=tuple(sorted(inbox.ended)),
            )

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- threads ------------------------------------------------------------------------------
    def _read(self, kind: str, source: Iterable) -> None:
        inbox = self._inbox

        def give_up() -> bool:
            return self._stopping.is_set() or self._worker_done.is_set()

        try:
            for item in source:
                if give_up():
                    break
                if kind == "video":  # what a display shows: the newest frame, whether or not inference keeps up
                    self.latest_frame = item
                if not inbox.put(kind, item, give_up):
                    break
        except Exception as exc:
            if not self._stopping.is_set():
                self._report(exc)
        finally:
            inbox.end(kind)
            if self._abandon.is_set():  # stop() gave up on this reader: nobody else will close the source
                self._close_sources([source])

    def _work(self) -> None:
        stream = self._stream
        inbox = self._inbox
        readers = set(self._readers)
        stalled = False
        last_video_wall = time.monotonic()
        last_video_ms: int | None = None
        first_audio_ms: int | None = None
        audio_ms: int | None = None
        try:
            while readers:
                got = inbox.take(_POLL_S)
                if (
                    not stalled
                    and "video" in readers
                    and audio_ms is not None
                    and audio_ms - (first_audio_ms if last_video_ms is None else last_video_ms) > self._video_stall_ms
                    and time.monotonic() - last_video_wall > self._video_stall_ms / 1000.0
                ):
                    stalled = True
                    self._stalls += 1
                    log.warning(
                        "the video source delivered nothing for %.1f s: results go on from audio alone",
                        self._video_stall_ms / 1000.0,
                    )
                    stream.end_input("video")
                    self._deliver(stream.poll())
                if got is None:
                    if self._abandon.is_set() and inbox.empty():
                        break  # stop(): a reader is stuck inside its source; do not wait for it
                    continue
                kind, item = got
                if kind == "end":  # that modality ended: windows complete on the others
                    readers.discard(item)
                    if not (item == "video" and stalled):
                        stream.end_input(item)
                    self._deliver(stream.poll())
                    continue
                if kind == "video":
                    last_video_wall = time.monotonic()
                    last_video_ms = item.timestamp_ms
                    if stalled:  # the camera is back: a new stream, on which video is expected again
                        stalled = False
                        log.warning("the video source delivers frames again")
                        self._deliver(stream.flush())
                        stream = self._stream = self._new_stream()
                else:
                    audio_ms = item.timestamp_ms
                    first_audio_ms = audio_ms if first_audio_ms is None else first_audio_ms
                try:
                    if kind == "video":
                        stream.push_video(item.image, item.timestamp_ms)
                        self.latest_face = getattr(stream, "last_face", None)
                        self.latest_faces = getattr(stream, "last_faces", None)
                    else:
                        stream.push_audio(item.pcm, item.sample_rate, item.timestamp_ms)
                except ValueError as exc:  # e.g. a capture clock that stepped back: skip the item
                    log.warning("dropped a %s item: %s", kind, exc)
                    continue
                self._deliver(stream.poll())
            self._deliver(stream.flush())
        except Exception as exc:
            self._report(exc)
        finally:
            self._worker_done.set()
            with inbox.cond:
                inbox.cond.notify_all()  # a reader waiting for room gives up now
            stream.close()

    def _new_stream(self) -> Any:
        return self._recognizer.create_stream(
            hop_ms=self._hop_ms,
            smoothing=self._smoothing,
            audio=self._audio_source is not None,
            video=self._video_source is not None,
        )

    def _deliver(self, results: list[EmotionResult]) -> None:
        for result in results:
            kept = {
                person: r
                for person, r in self.latest_results.items()
                if person != result.person and r.t_end_ms >= result.t_end_ms - PERSON_KEEP_MS
            }
            kept[result.person] = result
            self.latest_results = kept  # a new dict: readers in other threads keep a consistent one
            self.latest_result = result
            self.results_count += 1
            if self._on_result is not None:
                try:
                    self._on_result(result)
                except Exception as exc:
                    self._report(exc)

    def _report(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(exc)
        else:
            log.error("live session: %s", exc, exc_info=exc)
