"""A live camera (or anything ``cv2.VideoCapture`` opens) as a source of RGB :class:`VideoFrame` s."""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .._quiet import native_stderr_silenced
from ..errors import DeviceError
from ._av import RateLimiter
from .clock import CaptureClock
from .frames import VideoFrame

log = logging.getLogger(__name__)


class CameraSource:
    """Frames from ``cv2.VideoCapture(index_or_url)``: a camera index (``--camera N``), a stream
    URL, or a video file path (which runs the same loop, as fast as it decodes).

    Each frame is stamped when ``read()`` returns it, by the capture clock (``time.monotonic``,
    integer ms since ``origin_s``, default the moment the source opened); a frame that would get
    the same ms as the previous one gets one more, so timestamps strictly increase. ``max_fps``
    keeps the first frame of each ``1 / max_fps`` interval. Iteration ends when the capture stops
    delivering frames (end of file, camera unplugged). Raises :class:`DeviceError` naming the
    device when it does not open.

    :meth:`close` may be called from any thread: while another thread is inside ``read()``, the
    capture is released by that thread as soon as ``read()`` returns (OpenCV aborts or corrupts
    its heap when a capture is released during a read), and the iteration ends.
    """

    def __init__(self, index_or_url: int | str, max_fps: float | None = None, origin_s: float | None = None):
        import cv2

        self.device = index_or_url
        RateLimiter(max_fps)  # validates max_fps
        self.max_fps = max_fps
        target = int(index_or_url) if isinstance(index_or_url, str) and index_or_url.isdigit() else index_or_url
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
        self._lock = threading.Lock()
        self._reading = False
        self._close_requested = False
        log.info("camera %r opened: %dx%d", index_or_url, self.width, self.height)

    @property
    def closed(self) -> bool:
        return self._capture is None or self._close_requested

    def _read_frame(self):
        """One ``capture.read()`` with the capture guarded against a concurrent :meth:`close`;
        ``(False, None)`` once closed."""
        with self._lock:
            if self._capture is None or self._close_requested:
                self._release_locked()
                return False, None
            capture = self._capture
            self._reading = True
        try:
            ok, bgr = capture.read()
        finally:
            with self._lock:
                self._reading = False
                if self._close_requested:
                    self._release_locked()
                    ok, bgr = False, None
        return ok, bgr

    def __iter__(self) -> Iterator[VideoFrame]:
        import cv2

        limiter = RateLimiter(self.max_fps)
        while True:
            ok, bgr = self._read_frame()
            if not ok or bgr is None:
                if not self.closed:
                    log.info("camera %r delivered no more frames", self.device)
                return
            ts = self.clock.now_ms()
            if self._last_ms is not None and ts <= self._last_ms:
                ts = self._last_ms + 1
            if not limiter.keep(ts):
                continue
            self._last_ms = ts
            yield VideoFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ts)

    def _release_locked(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def close(self) -> None:
        """Release the capture now, or (while another thread is in ``read()``) as soon as that read returns."""
        with self._lock:
            self._close_requested = True
            if not self._reading:
                self._release_locked()

    def __enter__(self) -> CameraSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CameraSource({self.device!r}, max_fps={self.max_fps})"


@dataclass(frozen=True)
class CameraInfo:
    """A camera found by :func:`list_cameras`: ``index`` is what ``--camera`` / ``CameraSource``
    take (``/dev/video<index>`` on Linux), ``path`` the device node when there is one."""

    index: int
    name: str
    path: str | None = None


_VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_DEVICE_CAPS = 0x80000000


def _v4l2_capture(path: str) -> tuple[bool, str | None]:
    """Whether the V4L2 node at ``path`` captures video (a camera has several nodes, e.g. one for
    metadata) and its card name; (True, None) when it cannot be asked."""
    import fcntl
    import struct

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return True, None
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf)
    except OSError:
        return True, None
    finally:
        os.close(fd)
    card = bytes(buf[16:48]).split(b"\0", 1)[0].decode(errors="replace")
    caps, device_caps = struct.unpack_from("<II", buf, 84)
    if caps & _V4L2_CAP_DEVICE_CAPS:
        caps = device_caps
    return bool(caps & _V4L2_CAP_VIDEO_CAPTURE), card or None


def list_cameras(max_probe: int = 5) -> list[CameraInfo]:
    """The cameras of this machine. Linux: the V4L2 capture nodes ``/dev/video*`` (with the name the
    driver gives); elsewhere, the first ``max_probe`` indices that OpenCV opens. Never raises for a
    missing device: an empty list means none."""
    if sys.platform.startswith("linux"):
        found = []
        for path in sorted(glob.glob("/dev/video*"), key=lambda p: int(re.sub(r"\D", "", p) or 0)):
            digits = re.sub(r"\D", "", os.path.basename(path))
            if not digits:
                continue
            capture, card = _v4l2_capture(path)
            if not capture:
                continue
            name = card
            if name is None:
                try:
                    with open(f"/sys/class/video4linux/{os.path.basename(path)}/name") as f:
                        name = f.read().strip()
                except OSError:
                    name = os.path.basename(path)
            found.append(CameraInfo(int(digits), name, path))
        return found
    import cv2

    found = []
    for index in range(max_probe):
        with native_stderr_silenced():
            capture = cv2.VideoCapture(index)
            ok = capture.isOpened()
            capture.release()
        if ok:
            found.append(CameraInfo(index, f"camera {index}"))
    return found
