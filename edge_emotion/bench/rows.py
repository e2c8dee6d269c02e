"""What ``edge-emotion bench`` reports: one :class:`BenchRow` per (format, runtime), its
per-stage :class:`StageTiming`, and the validation of a format against the parity its export
recorded in the manifest (:func:`check_parity`).

A row's ``status``:

- ``ok``: the row ran, and the format's recorded parity is within :data:`VALIDATION_BOUNDS` (or
  the export recorded none: then ``validation`` says so);
- ``exported but failed validation``: the row ran, but the parity the export recorded is out of
  bounds (the row is still measured, so its cost is visible);
- ``failed``: loading or running the format failed; ``error`` says why;
- ``skipped``: the format's runtime is not installed here (``--backend auto`` benches every
  runtime a format lists); ``error`` names what to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model.validation import VALIDATION_BOUNDS, Validation, ValidationBounds, check_parity

#: The measured stages, in the order data flows through them. ``face``: face detection (the
#: default detector: BlazeFace on OpenVINO when installed, else ONNX Runtime) plus the crop of one
#: video frame; ``log_mel``: one window's normalised log-mel (numpy); the other
#: three: one call of each graph at batch 1, as the SDK makes them.
STAGES: tuple[str, ...] = ("face", "log_mel", "visual_encoder", "audio_encoder", "fusion")
#: The stages that do not depend on the bundle's runtime (the SDK's front end: measured once per run).
FRONT_END_STAGES: tuple[str, ...] = ("face", "log_mel")

OK = "ok"
FAILED_VALIDATION = "exported but failed validation"
FAILED = "failed"
SKIPPED = "skipped"
STATUSES: tuple[str, ...] = (OK, FAILED_VALIDATION, FAILED, SKIPPED)


@dataclass(frozen=True)
class StageTiming:
    """Latency of one stage over ``repeats`` timed calls (after the warm-up), in milliseconds."""

    p50_ms: float
    p95_ms: float
    repeats: int

    def __post_init__(self) -> None:
        if self.repeats < 1 or not (0 <= self.p50_ms <= self.p95_ms):
            raise ValueError(f"invalid timing: p50 {self.p50_ms} ms, p95 {self.p95_ms} ms over {self.repeats}")

    @classmethod
    def from_seconds(cls, samples_s: Sequence[float]) -> StageTiming:
        """From per-call durations in seconds."""
        if not samples_s:
            raise ValueError("no timed calls")
        ms = np.asarray(samples_s, np.float64) * 1000.0
        p50, p95 = np.percentile(ms, [50, 95])
        return cls(round(float(p50), 4), round(float(max(p95, p50)), 4), len(ms))

    def to_dict(self) -> dict[str, float]:
        return {"p50_ms": self.p50_ms, "p95_ms": self.p95_ms}


@dataclass(frozen=True)
class BenchRow:
    """One (format, runtime) of a bundle on this machine. Sizes in MB (10^6 bytes) of the format's
    files; ``rtf``: processing time / clip duration through ``Recognizer.analyze`` (median);
    ``peak_rss_mb``: peak resident memory of the fresh worker process that ran the row; ``metric``:
    weighted accuracy on ``--data`` (None without it), detailed in ``metric_info``; ``isa``: the
    CPU's instruction-set features (:func:`~.machine.cpu_features`); ``inference_precision``: the
    arithmetic precision the runtime reported for the loaded graphs (``"f32"``, ``"bf16"``, ...;
    ``"as stored"`` for runtimes that compute what the files store; None when the row did not load);
    ``parity``: how this row's face-only labels on the clip's faces compare, on this machine, with
    the reference row's (the FP32 ONNX graphs on ONNX Runtime; :func:`parity_with`; the reference
    row's own has ``is_reference``), None without a reference or without faces."""

    runtime: str
    format: str
    precision: str
    status: str
    size_mb: float
    threads: int
    stages: dict[str, StageTiming | None] = field(default_factory=dict)
    rtf: float | None = None
    peak_rss_mb: float | None = None
    metric: float | None = None
    metric_info: dict[str, Any] | None = None
    device: str | None = None
    error: str | None = None
    validation: str | None = None
    machine: str | None = None
    isa: tuple[str, ...] = ()
    inference_precision: str | None = None
    parity: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status in (FAILED, SKIPPED) and not self.error:
            raise ValueError(f"a {self.status} row needs an error saying why")
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; the stages are {', '.join(STAGES)}")

    def to_dict(self) -> dict[str, Any]:
        """The row as ``--json`` writes it: every stage present, ``null`` when not measured."""
        return {
            "runtime": self.runtime,
            "format": self.format,
            "precision": self.precision,
            "status": self.status,
            "size_mb": self.size_mb,
            "stages": {s: (t.to_dict() if (t := self.stages.get(s)) is not None else None) for s in STAGES},
            "rtf": self.rtf,
            "peak_rss_mb": self.peak_rss_mb,
            "metric": self.metric,
            "metric_info": self.metric_info,
            "threads": self.threads,
            "device": self.device,
            "error": self.error,
            "validation": self.validation,
            "machine": self.machine,
            "cpu_isa": list(self.isa),
            "inference_precision": self.inference_precision,
            "parity": self.parity,
        }


#: The row every other row is compared with: the FP32 graphs as stored, on ONNX Runtime.
PARITY_REFERENCE = ("onnx", "onnxruntime")


def parity_with(reference: Sequence[Sequence[float]], logits: Sequence[Sequence[float]]) -> dict[str, Any] | None:
    """How a row's face-only logits compare with the reference row's on the same faces:
    ``{"reference", "faces", "label_agreement", "max_abs_diff_logits"}``; None without faces or
    when the two did not see the same number of them."""
    ref, got = np.asarray(reference, np.float64), np.asarray(logits, np.float64)
    if ref.ndim != 2 or ref.shape != got.shape or not len(ref):
        return None
    diff = float(np.abs(ref - got).max())
    return {
        "reference": " on ".join(PARITY_REFERENCE),
        "faces": int(len(ref)),
        "label_agreement": round(float(np.mean(ref.argmax(1) == got.argmax(1))), 4),
        "max_abs_diff_logits": round(diff, 4) if np.isfinite(diff) else None,  # None: NaN or inf logits
    }


__all__ = [
    "STAGES",
    "FRONT_END_STAGES",
    "OK",
    "FAILED_VALIDATION",
    "FAILED",
    "SKIPPED",
    "STATUSES",
    "StageTiming",
    "ValidationBounds",
    "VALIDATION_BOUNDS",
    "Validation",
    "check_parity",
    "BenchRow",
    "PARITY_REFERENCE",
    "parity_with",
]
