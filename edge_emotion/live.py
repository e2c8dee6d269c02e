"""Live sessions: a camera and a microphone feeding a stream from worker threads — the kiosk's
entry point (``Recognizer.live``)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .results import EmotionResult

if TYPE_CHECKING:
    from .recognizer import Recognizer
    from .sources import VideoFrame

log = logging.getLogger(__name__)

_STOP = object()  # a reader's last entry: ``(_STOP, kind)``, that modality has ended
_PUT_TIMEOUT_S = 0.1  # how often a reader waiting on a full queue checks for stop / a dead worker


class LiveSession:
    """Owns the live sources and a worker thread that turns their output into results.

    ``on_result(result)`` is called from the worker thread for every window, in order;
    ``on_error(exc)`` for an error in a source or a callback (default: logged). The camera and
    microphone are opened by :meth:`start`, so a missing device raises
    :class:`~edge_emotion.errors.DeviceError` there, in the caller's thread. :meth:`stop` closes the
    devices, flushes the last partial window and joins the threads; it is idempotent.

    The camera and the microphone are stamped on one capture clock (one ``origin_s``). When one
    source ends or fails (a file that ended, a camera unplugged), the stream stops waiting for that
    modality (:meth:`EmotionStream.end_input`) and results go on from the other. Before
    :meth:`start`, :attr:`running` is False and :meth:`wait` raises
    :class:`~edge_emotion.errors.InputError`.
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
    ):
        self._recognizer = recognizer
        self._camera, self._mic = camera, mic
        self._video_source, self._audio_source = video_source, audio_source
        self._on_result = on_result
        self._on_error = on_error
        self._hop_ms, self._smoothing = hop_ms, smoothing
        self._queue: queue.Queue = queue.Queue(maxsize=256)
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._worker_done = threading.Event()  # set when the worker has returned (or died)
        self._running = False
        self._created: list[str] = []  # the devices ("video", "audio") this session opened itself
        self._lock = threading.Lock()
        self.latest_frame: VideoFrame | None = None
        self.latest_result: EmotionResult | None = None
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
            self._queue = queue.Queue(maxsize=256)
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
            self._stopping.clear()
            self._worker_done.clear()
            self._threads = [threading.Thread(target=self._work, name="edge-emotion-worker", daemon=True)]
            for kind, source in (("video", self._video_source), ("audio", self._audio_source)):
                if source is not None:
                    self._threads.append(
                        threading.Thread(
                            target=self._read, args=(kind, source), name=f"edge-emotion-{kind}", daemon=True
                        )
                    )
            self._readers_left = len(self._threads) - 1
            for thread in self._threads:
                thread.start()
            self._running = True
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._stop_locked(timeout_s)

    def _stop_locked(self, timeout_s: float) -> None:
        if not self._running:
            return
        self._stopping.set()
        self._close_sources((self._video_source, self._audio_source))
        for thread in self._threads[1:]:
            thread.join(timeout_s)
        self._threads[0].join(timeout_s)
        self._running = False
        self._forget_created_devices()

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the sources end, the worker fails, or :meth:`stop`
        (False before :meth:`start`)."""
        return self._running and bool(self._threads) and self._threads[0].is_alive()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the sources end (a file-backed source) or :meth:`stop`; True if ended.
        Raises :class:`~edge_emotion.errors.InputError` before :meth:`start`."""
        if not self._threads:
            raise InputError("wait() before start(): start the live session first")
        self._threads[0].join(timeout_s)
        return not self._threads[0].is_alive()

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- threads ------------------------------------------------------------------------------
    def _put(self, entry: tuple) -> bool:
        """Queue ``entry`` for the worker; False (entry dropped) once :meth:`stop` was called
        or the worker is gone, so a reader never blocks for ever on a full queue."""
        while not (self._stopping.is_set() or self._worker_done.is_set()):
            try:
                self._queue.put(entry, timeout=_PUT_TIMEOUT_S)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, kind: str, source: Iterable) -> None:
        try:
            for item in source:
                if not self._put((kind, item)):
                    break
        except Exception as exc:
            if not self._stopping.is_set():
                self._report(exc)
        finally:
            self._put((_STOP, kind))

    def _work(self) -> None:
        stream = self._stream
        readers = self._readers_left
        reader_threads = self._threads[1:]
        try:
            while readers:
                try:
                    kind, item = self._queue.get(timeout=_PUT_TIMEOUT_S)
                except queue.Empty:
                    # after stop() a reader may have dropped its end mark on a full queue
                    idle = self._queue.empty() and not any(t.is_alive() for t in reader_threads)
                    if self._stopping.is_set() and idle:
                        break
                    continue
                if kind is _STOP:  # that modality ended: windows complete on the others
                    readers -= 1
                    stream.end_input(item)
                    self._deliver(stream.poll())
                    continue
                try:
                    if kind == "video":
                        self.latest_frame = item
                        stream.push_video(item.image, item.timestamp_ms)
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
            stream.close()

    def _deliver(self, results: list[EmotionResult]) -> None:
        for result in results:
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
