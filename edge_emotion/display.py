"""A window that shows a live session through the overlay (:mod:`edge_emotion.overlay`), with OpenCV's
HighGUI (Qt on Linux wheels).

Two things make OpenCV windows fragile, and this module handles both before a window is created:

- Qt aborts the whole process (SIGABRT) when it cannot reach the X display. :func:`display_problem`
  connects to the display with libxcb first (the library Qt's xcb plugin uses) and says why not.
- Creating an OpenCV window after PyAV was imported hangs in Qt's event loop: PyAV's wheel carries its
  own libxcb, which then stands in for the one Qt was built against. Importing OpenCV first avoids it,
  so :func:`prepare` imports ``cv2`` and must run before anything imports ``av``
  (``edge-emotion run --display`` calls it first); when PyAV is already loaded, it refuses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from .errors import DeviceError

if TYPE_CHECKING:
    from .live import LiveSession

log = logging.getLogger(__name__)

#: How long a frame older than the face detector's last frame may still show that detector's box.
FACE_BOX_MAX_AGE_MS = 1000


def display_problem() -> str | None:
    """Why no window can be opened here (no display set, an X display that does not answer, PyAV
    loaded before OpenCV), or None when one can."""
    if sys.platform in ("win32", "darwin"):
        return None
    display = os.environ.get("DISPLAY")
    if not display:
        if os.environ.get("WAYLAND_DISPLAY"):
            return "only a Wayland display is set; OpenCV's windows need X (run under XWayland with DISPLAY set)"
        return "no display (DISPLAY is not set)"
    name = ctypes.util.find_library("xcb")
    if name is None:
        return "libxcb is not installed, so no X window can be opened"
    try:
        xcb = ctypes.CDLL(name)
        xcb.xcb_connect.restype = ctypes.c_void_p
        xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
        xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
        connection = xcb.xcb_connect(display.encode(), None)
        error = xcb.xcb_connection_has_error(connection)
        xcb.xcb_disconnect(connection)
    except (OSError, AttributeError) as exc:
        return f"libxcb could not be used ({exc})"
    if error:
        return f"cannot connect to the X display {display!r}"
    if "av" in sys.modules and "cv2" not in sys.modules:
        return "PyAV was imported before OpenCV, which makes OpenCV's window hang; import cv2 first"
    return None


def prepare() -> None:
    """Check the display and import OpenCV (before PyAV); raises :class:`DeviceError` saying why a
    window cannot be opened."""
    problem = display_problem()
    if problem is not None:
        raise DeviceError(problem)
    import cv2  # noqa: F401  (now, before anything imports PyAV)


class Window:
    """An OpenCV window (resizable, keeping the aspect ratio). :meth:`show` draws a BGR image and
    pumps the window's events; it returns False once the user pressed q or Esc or closed the
    window. Create it after :func:`prepare`."""

    def __init__(self, title: str = "edge-emotion"):
        prepare()
        import cv2

        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        self._open = True
        self._sized = False

    def show(self, image_bgr: Any, wait_ms: int = 1) -> bool:
        """Draw ``image_bgr`` ``(H, W, 3) uint8`` (None: only pump events) and wait up to
        ``wait_ms`` for a key; False when the user asked to close."""
        import cv2

        if not self._open:
            return False
        if image_bgr is not None:
            if not self._sized:  # Qt opens a "normal" window small: start it at the picture's size
                cv2.resizeWindow(self.title, int(image_bgr.shape[1]), int(image_bgr.shape[0]))
                self._sized = True
            cv2.imshow(self.title, image_bgr)
        key = cv2.waitKey(max(1, int(wait_ms))) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return False
        except cv2.error:  # the window is gone
            return False
        return True

    def close(self) -> None:
        import cv2

        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def show_session(session: LiveSession, window: Window, refresh_ms: int = 15) -> None:
    """Show ``session``'s latest frame through :func:`edge_emotion.overlay.render` until the
    session ends or the user closes the window: every followed face with its box and, with
    several people, each one's own label (``latest_faces``, ``latest_results``). Runs in the
    calling (main) thread; Ctrl-C (KeyboardInterrupt) passes through to the caller."""
    from .overlay import render

    shown: tuple[Any, ...] = (None,) * 5
    while session.running:
        now = (
            session.latest_frame,
            session.latest_result,
            session.latest_face,
            session.latest_faces,
            session.latest_results,
        )
        frame, result, face, faces, results = now
        image = None
        if frame is not None and any(a is not b for a, b in zip(now, shown, strict=True)):
            shown = now
            box, boxes, known = None, None, False
            if face is not None and frame.timestamp_ms - face[0] <= FACE_BOX_MAX_AGE_MS:
                box, known = face[1], True
            if faces is not None and frame.timestamp_ms - faces[0] <= FACE_BOX_MAX_AGE_MS:
                boxes, known = faces[1], True
            image = render(frame.image, result, box, face_known=known, faces=boxes, results=results)
        if not window.show(image, refresh_ms):
            return
