"""A steady mood for apps: :class:`SteadyLabel` turns the stream of :class:`EmotionResult` s (one per
hop, each over the last window) into a state that changes only when the change is clear and lasting,
and falls back to "nobody" when no face nor voice has been seen for a while.

Time is the results' own (``t_end_ms``), never the wall clock, so a file and a camera behave alike
and a test is deterministic.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .errors import InputError
from .results import UNKNOWN_LABEL, EmotionResult

#: The mood when nobody has been seen or heard for ``SteadyOptions.nobody_after_ms``.
NOBODY = "nobody"


@dataclass(frozen=True)
class SteadyOptions:
    """How reluctant :class:`SteadyLabel` is to change.

    - ``min_dwell_ms``: a mood stays at least this long (on the results' clock) before another may replace it.
    - ``switch_margin``: the new label's score must beat the current mood's score, in the same
      result, by at least this much.
    - ``min_confidence``: a label below this score never becomes the mood.
    - ``confirm``: that many results in a row must propose the same new label.
    - ``nobody_after_ms``: after this long with results that rest on nothing (no face, no speech),
      the mood becomes :data:`NOBODY`.
    """

    min_dwell_ms: int = 3000
    switch_margin: float = 0.15
    min_confidence: float = 0.4
    confirm: int = 2
    nobody_after_ms: int = 5000

    def __post_init__(self) -> None:
        if self.min_dwell_ms < 0 or self.nobody_after_ms < 0:
            raise InputError("min_dwell_ms and nobody_after_ms must not be negative")
        if not 0.0 <= self.switch_margin <= 1.0 or not 0.0 <= self.min_confidence <= 1.0:
            raise InputError("switch_margin and min_confidence must be in [0, 1]")
        if self.confirm < 1:
            raise InputError(f"confirm must be at least 1, got {self.confirm}")


@dataclass(frozen=True)
class SteadyState:
    """The steady mood after a result.

    ``mood``: a label of the model, :data:`NOBODY` (nobody seen or heard lately; also the state
    before the first result) or ``"unknown"`` (somebody is there, but no label was confident
    enough yet). ``confidence``: the mood's score in the result that set it. ``since_ms``: the
    ``t_end_ms`` of that result. ``changed``: this update changed the mood. ``present``: the last
    result rested on a face or a voice.
    """

    mood: str
    confidence: float
    since_ms: int
    changed: bool
    present: bool


class SteadyLabel:
    """Feed it every result (:meth:`update`, e.g. from ``on_result``); read the mood it returns or
    :attr:`state`. Thread-safe.

    A change needs all of: the current mood held for ``min_dwell_ms``, ``confirm`` results in a
    row with the same new label, that label at least ``min_confidence`` and ``switch_margin``
    above the current mood's score. Results that rest on nothing (``modalities`` empty) never
    change the mood, except to :data:`NOBODY` once they have lasted ``nobody_after_ms`` since the
    last result that saw or heard someone.
    """

    def __init__(self, options: SteadyOptions | None = None):
        self.options = options or SteadyOptions()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to :data:`NOBODY`, as before the first result."""
        with self._lock:
            self._state = SteadyState(NOBODY, 0.0, 0, False, False)
            self._last_present_ms: int | None = None
            self._candidate: str | None = None
            self._streak = 0

    @property
    def state(self) -> SteadyState:
        return self._state

    def _set(self, mood: str, confidence: float, t_ms: int, present: bool) -> SteadyState:
        self._state = SteadyState(mood, float(confidence), int(t_ms), True, present)
        self._candidate, self._streak = None, 0
        return self._state

    def _keep(self, present: bool) -> SteadyState:
        s = self._state
        self._state = SteadyState(s.mood, s.confidence, s.since_ms, False, present)
        return self._state

    def update(self, result: EmotionResult) -> SteadyState:
        """Take one result (in time order) and return the state after it."""
        opts = self.options
        t = int(result.t_end_ms)
        with self._lock:
            current = self._state
            if not result.modalities:  # nobody seen or heard in this window
                self._candidate, self._streak = None, 0
                gone_since = self._last_present_ms
                if current.mood != NOBODY and (gone_since is None or t - gone_since >= opts.nobody_after_ms):
                    return self._set(NOBODY, 0.0, t, False)
                return self._keep(False)
            self._last_present_ms = t
            label, score = result.label, result.confidence
            if current.mood == NOBODY:  # somebody arrived
                confident = label != UNKNOWN_LABEL and score >= opts.min_confidence
                return self._set(label if confident else UNKNOWN_LABEL, score if confident else 0.0, t, True)
            if label == current.mood or label == UNKNOWN_LABEL or score < opts.min_confidence:
                self._candidate, self._streak = None, 0
                return self._keep(True)
            if current.mood != UNKNOWN_LABEL and score - result.scores.get(current.mood, 0.0) < opts.switch_margin:
                self._candidate, self._streak = None, 0
                return self._keep(True)
            self._streak = self._streak + 1 if label == self._candidate else 1
            self._candidate = label
            dwelt = current.mood == UNKNOWN_LABEL or t - current.since_ms >= opts.min_dwell_ms
            if self._streak >= opts.confirm and dwelt:
                return self._set(label, score, t, True)
            return self._keep(True)
