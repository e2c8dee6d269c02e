"""Keep the native libraries the SDK drives from phoning home or writing files the user did not name.

Measured with strace on ``edge-emotion run --video`` (tests/test_privacy.py holds the result):

- **ONNX Runtime** (1.2x and later on Linux) records a telemetry event per process in
  ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db`` (and a ``deviceid`` beside it),
  even after ``disable_telemetry_events()``. ``ORT_DISABLE_TELEMETRY=1``, read once when
  ``onnxruntime`` is imported, turns that off: :func:`keep_runtimes_offline` sets it (unless the
  user set it) before the SDK imports a runtime.
- **OpenVINO** (2024 and later) sends a Google Analytics event (``www.google-analytics.com``) when
  ``openvino`` is imported: its ``__init__`` imports the model converter, which starts
  ``openvino_telemetry`` and, with no consent file in the user's home, counts that as consent.
  NNCF does the same when it quantizes. Both fall back to a stub that sends nothing when
  ``openvino_telemetry`` does not import, so :func:`keep_runtimes_offline` makes that import fail
  (``sys.modules["openvino_telemetry"] = None``) unless the package was already imported. Only
  OpenVINO's usage statistics are lost; nothing the SDK needs lives there.
- **MediaPipe Tasks** uploads a usage record (task, running mode, platform, Python version) to
  ``https://play.googleapis.com/log`` when a detector is closed; no option turns it off. Its HTTP
  client reads the proxy environment variables at that moment, so :func:`mediapipe_upload_blocked`
  points them at a closed port on this machine for the duration of ``close()``: no DNS query, no
  packet leaves the machine, the record is dropped.
- **Importing** ``mediapipe.tasks.python`` imports ``sounddevice`` (which starts PortAudio, probes
  ALSA/JACK and writes JACK's database in ``/dev/shm``) and ``matplotlib.pyplot`` (which writes a
  font cache and a config folder under ``~/.cache`` and ``~/.config``), for parts of MediaPipe the
  SDK never uses. :func:`mediapipe_imported_quietly` lets those imports bind stand-ins that import
  the real module on first use, so nothing starts unless something uses them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import types
from collections.abc import Iterator

#: A proxy no client can reach: the "discard" port of this machine, where nothing listens.
_NOWHERE = "http://127.0.0.1:9"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_NO_PROXY_VARS = ("NO_PROXY", "no_proxy")
#: Modules ``mediapipe.tasks.python`` imports for features the SDK does not use.
_DEFERRED = ("sounddevice", "matplotlib", "matplotlib.pyplot")
_env_lock = threading.Lock()


def keep_runtimes_offline() -> None:
    """Turn the runtimes' telemetry off for this process: ONNX Runtime's (``ORT_DISABLE_TELEMETRY=1``
    unless the user set the variable) and OpenVINO's / NNCF's (``openvino_telemetry`` made to fail
    to import, unless something imported it already); call before ``onnxruntime`` or ``openvino`` is
    first imported."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type] # None: import fails


@contextlib.contextmanager
def mediapipe_upload_blocked() -> Iterator[None]:
    """Point every proxy variable at a closed local port (and clear ``NO_PROXY``) for the duration,
    then restore them exactly: wrap a MediaPipe task's ``close()``."""
    with _env_lock:
        saved = {name: os.environ.get(name) for name in (*_PROXY_VARS, *_NO_PROXY_VARS)}
        try:
            for name in _PROXY_VARS:
                os.environ[name] = _NOWHERE
            for name in _NO_PROXY_VARS:
                os.environ.pop(name, None)
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class _Deferred(types.ModuleType):
    """Stands in for a module while another module's import binds it; the first attribute used
    afterwards imports the real module."""

    def __getattr__(self, name: str):
        if sys.modules.get(self.__name__) is self:  # still standing in: the real module is not loaded
            raise AttributeError(name)
        return getattr(importlib.import_module(self.__name__), name)


@contextlib.contextmanager
def mediapipe_imported_quietly() -> Iterator[None]:
    """Import MediaPipe inside this block: the modules it imports only for features the SDK does
    not use (:data:`_DEFERRED`) are bound to stand-ins unless already imported, and the stand-ins
    leave ``sys.modules`` afterwards, so a later ``import`` gets the real module."""
    placed = {}
    for name in _DEFERRED:
        if name not in sys.modules:
            placed[name] = sys.modules[name] = _Deferred(name)
    try:
        yield
    finally:
        for name, stand_in in placed.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


__all__ = ["keep_runtimes_offline", "mediapipe_upload_blocked", "mediapipe_imported_quietly"]
