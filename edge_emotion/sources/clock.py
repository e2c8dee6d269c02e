"""The capture clock of live sources: ``time.monotonic`` in integer ms from an origin."""

from __future__ import annotations

import time


class CaptureClock:
    """Milliseconds since ``origin_s`` (a ``time.monotonic()`` value; default: now).

    Give a camera and a microphone the same ``origin_s`` and their timestamps share one clock.
    """

    def __init__(self, origin_s: float | None = None):
        self.origin_s = time.monotonic() if origin_s is None else float(origin_s)

    def seconds(self, at_s: float | None = None) -> float:
        """Seconds since the origin (of ``at_s``, a monotonic time, or of now)."""
        return (time.monotonic() if at_s is None else at_s) - self.origin_s

    def now_ms(self) -> int:
        return int(round(1000 * self.seconds()))
