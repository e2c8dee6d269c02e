"""Live sessions: a camera and a microphone feeding a stream from worker threads — the kiosk's
entry point (``Recognizer.live``)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .results import EmotionResult

if TYPE_CHECKING:
    from .recognizer import Recognizer
    from .sources import VideoFrame

log = logging.getLogger(__name__)

_STOP = object()


class LiveSession:
    """Owns the live sources and a worker thread that turns their output into results.

    ``on_result(result)`` is called from the worker thread for every window, in order;
    ``on_error(exc)`` for an error in a source or a callback (default: logged). The camera and
    microphone are opened by :meth:`start`, so a missing device raises
    :class:`~edge_emotion.errors.DeviceError` there, in the caller's thread. :meth:`stop` closes the
    devices, flushes the last partial window and joins the threads; it is idempotent.
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
        self._running = False
        self._lock = threading.Lock()
        self.latest_frame: VideoFrame | None = None
        self.latest_result: EmotionResult | None = None
        self.results_count = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def _open_sources(self) -> None:
        preset = self._recognizer.preset
        if self._video_source is None and self._camera is not None:
            from .sources import CameraSource

            self._video_source = CameraSource(self._camera, max_fps=preset.visual.fps)
        if self._audio_source is None and self._mic is not None:
            from .sources import MicrophoneSource

            self._audio_source = MicrophoneSource(self._mic, sample_rate=preset.audio.sample_rate)
        for source in (self._video_source, self._audio_source):
            opener = getattr(source, "open", None)
            if callable(opener):
                opener()

    def start(self) -> LiveSession:
        with self._lock:
            if self._running:
                return self
            self._open_sources()
            self._stream = self._recognizer.create_stream(
                hop_ms=self._hop_ms,
                smoothing=self._smoothing,
                audio=self._audio_source is not None,
                video=self._video_source is not None,
            )
            self._stopping.clear()
            self._threads = [threading.Thread(target=self._work, name="edge-emotion-worker", daemon=True)]
            for kind, source in (("video", self._video_source), ("audio", self._audio_source)):
                if source is not None:
                    self._threads.append(
                        threading.Thread(target=self._read, args=(kind, source), name=f"edge-emotion-{kind}",
                                         daemon=True)
                    )
            self._readers_left = len(self._threads) - 1
            for thread in self._threads:
                thread.start()
            self._running = True
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            if not self._running:
                return
            self._stopping.set()
            for source in (self._video_source, self._audio_source):
                close = getattr(source, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception as exc:  # closing a broken device must not hide the stop
                        log.warning("closing a source failed: %s", exc)
            for thread in self._threads[1:]:
                thread.join(timeout_s)
            self._threads[0].join(timeout_s)
            self._running = False

    @property
    def running(self) -> bool:
        return self._running and self._threads[0].is_alive()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the sources end (a file-backed source) or :meth:`stop`; True if ended."""
        self._threads[0].join(timeout_s)
        return not self._threads[0].is_alive()

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- threads ------------------------------------------------------------------------------
    def _read(self, kind: str, source: Iterable) -> None:
        try:
            for item in source:
                if self._stopping.is_set():
                    break
                self._queue.put((kind, item))
        except Exception as exc:
            if not self._stopping.is_set():
                self._report(exc)
        finally:
            self._queue.put((_STOP, None))

    def _work(self) -> None:
        stream = self._stream
        readers = self._readers_left
        try:
            while readers:
                kind, item = self._queue.get()
                if kind is _STOP:
                    readers -= 1
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
