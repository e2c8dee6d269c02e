"""A live camera (or anything ``cv2.VideoCapture`` opens) as a source of RGB :class:`VideoFrame` s."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterator

from .._quiet import native_stderr_silenced
from ..errors import DeviceError, InputError
from ._av import RateLimiter
from .clock import CaptureClock
from .frames import VideoFrame

log = logging.getLogger(__name__)

#: Camera indices OpenCV can take: a negative one crashes the process inside OpenCV, one past
#: 2**31 - 1 overflows its C int.
MAX_CAMERA_INDEX = 2**31 - 1


class CameraSource:
    """Frames from ``cv2.VideoCapture(index_or_url)``: a camera index (``--camera N``), a stream
    URL, or a video file path (which runs the same loop, as fast as it decodes).

    Each frame is stamped when ``read()`` returns it, by the capture clock (``time.monotonic``,
    integer ms since ``origin_s``, default the moment the source opened); a frame that would get
    the same ms as the previous one gets one more, so timestamps strictly increase. ``max_fps``
    keeps the first frame of each ``1 / max_fps`` interval. Iteration ends when the capture stops
    delivering frames (end of file, camera unplugged). Raises :class:`DeviceError` naming the
    device when it does not open, :class:`InputError` for an index outside ``[0, MAX_CAMERA_INDEX]``.
    """

    def __init__(self, index_or_url: int | str, max_fps: float | None = None, origin_s: float | None = None):
        import cv2

        self.device = index_or_url
        RateLimiter(max_fps)  # validates max_fps
        self.max_fps = max_fps
        target = int(index_or_url) if isinstance(index_or_url, str) and index_or_url.isdigit() else index_or_url
        if isinstance(target, numbers.Integral) and not isinstance(target, bool):
            if not 0 <= target <= MAX_CAMERA_INDEX:
                raise InputError(f"camera index must be in [0, {MAX_CAMERA_INDEX}], got {target}")
            target = int(target)
        with native_stderr_silenced():  # OpenCV logs each backend it tried; the error below says it
            self._capture = cv2.VideoCapture(target)
            opened = self._capture.isOpened()
        if not opened:
            self._capture.release()
            raise DeviceError(f"camera {index_or_url!r} could not be opened (no such device, or it is busy)")
        self.clock = CaptureClock(origin_s)
        self.width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._last_ms: int | None = None
        log.info("camera %r opened: %dx%d", index_or_url, self.width, self.height)

    @property
    def closed(self) -> bool:
        return self._capture is None

    def __iter__(self) -> Iterator[VideoFrame]:
        import cv2

        limiter = RateLimiter(self.max_fps)
        while self._capture is not None:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                log.info("camera %r delivered no more frames", self.device)
                return
            ts = self.clock.now_ms()
            if self._last_ms is not None and ts <= self._last_ms:
                ts = self._last_ms + 1
            if not limiter.keep(ts):
                continue
            self._last_ms = ts
            yield VideoFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ts)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> CameraSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CameraSource({self.device!r}, max_fps={self.max_fps})"
