"""Typed results of the recognizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The label of a window in which neither a usable face nor speech was found.
UNKNOWN_LABEL = "unknown"


@dataclass(frozen=True)
class FaceInfo:
    """The primary face of a window: ``bbox`` ``(x, y, w, h)`` in the source frame's pixels."""

    bbox: tuple[int, int, int, int]
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": [int(v) for v in self.bbox], "score": round(float(self.score), 4)}


@dataclass(frozen=True)
class EmotionResult:
    """The emotion of one window ``[t_start_ms, t_end_ms)`` of the input.

    ``scores`` maps every label of the model to a probability (summing to 1); ``label`` is the
    highest-scoring one after smoothing, or ``"unknown"`` when the window held neither a usable face
    nor speech (``modalities`` is then empty and the scores are uniform). ``modalities`` lists what
    the answer rests on: ``"audio"`` (speech was heard) and/or ``"video"`` (a face was seen).

    ``person``: the track id of the face this result is about (an int that stays the same while
    that face stays in view), None for a result without a face. ``speaking``: whether this result's
    person is the voice heard in the window — for a face, its mouth moved with the voice; for a
    result without a face (``person`` None), a voice was heard that no visible face was found to
    make (an off-screen speaker).
    """

    t_start_ms: int
    t_end_ms: int
    label: str
    scores: dict[str, float]
    modalities: tuple[str, ...] = ()
    face: FaceInfo | None = None
    raw_scores: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    person: int | None = None
    speaking: bool = False

    def __post_init__(self) -> None:
        if self.t_end_ms < self.t_start_ms:
            raise ValueError("t_end_ms must not precede t_start_ms")
        bad = set(self.modalities) - {"audio", "video"}
        if bad:
            raise ValueError(f"unknown modalities: {sorted(bad)}")

    @property
    def confidence(self) -> float:
        return float(self.scores.get(self.label, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines schema of ``edge-emotion run --output jsonl`` (docs/DESIGN.md)."""
        return {
            "t_start_ms": int(self.t_start_ms),
            "t_end_ms": int(self.t_end_ms),
            "label": self.label,
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "modalities": list(self.modalities),
            "face": self.face.to_dict() if self.face else None,
            "person": None if self.person is None else int(self.person),
            "speaking": bool(self.speaking),
        }

    def __str__(self) -> str:
        used = "+".join(self.modalities) or "nothing"
        face = f" face={list(self.face.bbox)}" if self.face else ""
        who = f" person={self.person}" if self.person is not None else ""
        speaking = " speaking" if self.speaking else ""
        return (
            f"{self.t_start_ms / 1000:7.2f}-{self.t_end_ms / 1000:6.2f}s  {self.label:<10} "
            f"{self.confidence:5.2f}  ({used}){face}{who}{speaking}"
        )
