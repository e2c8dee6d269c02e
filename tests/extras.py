"""Optional extras this environment may lack, and the mark that skips a test without them (shared
by the tests that compare the SDK's face detector with MediaPipe's own task)."""

from __future__ import annotations

import importlib.util

import pytest

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
NO_MEDIAPIPE = "mediapipe is not installed (the 'mediapipe' extra; only --face-detector mediapipe uses it)"
needs_mediapipe = pytest.mark.skipif(not HAS_MEDIAPIPE, reason=NO_MEDIAPIPE)
