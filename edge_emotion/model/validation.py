"""Whether a bundle format's export parity is within its precision's bounds.

The exporters record, in each format's manifest entry, how far the format's outputs are from the
FP32 PyTorch model on real windows (``parity``). :func:`check_parity` holds that record against
:data:`VALIDATION_BOUNDS`: ``edge-emotion bench`` reports a format out of bounds as "exported but
failed validation", and ``backend="auto"`` tries formats that passed before those that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ValidationBounds:
    """Parity a format must have shown at export, against the FP32 PyTorch model:
    ``min_label_agreement`` (fraction of windows whose predicted label agrees) and
    ``max_abs_diff`` (largest absolute difference of the logits end to end on real windows, or of
    any graph's output on the random-input parity check)."""

    min_label_agreement: float
    max_abs_diff: float


#: Bounds per precision. Labels must agree on >= 97% of windows for every precision; the absolute
#: bound grows with the precision's rounding: FP32 differs from PyTorch only by kernel order, FP16
#: weights round at ~1e-3 relative, INT8 encoders at ~1e-2 relative of logits that span a few units.
VALIDATION_BOUNDS: dict[str, ValidationBounds] = {
    "fp32": ValidationBounds(min_label_agreement=0.97, max_abs_diff=1e-3),
    "fp16": ValidationBounds(min_label_agreement=0.97, max_abs_diff=5e-2),
    "int8": ValidationBounds(min_label_agreement=0.97, max_abs_diff=1.0),
}


@dataclass(frozen=True)
class Validation:
    """The outcome of :func:`check_parity`: ``passed`` None when the export recorded no parity."""

    passed: bool | None
    note: str


def _parity_numbers(parity: Mapping[str, Any]) -> tuple[float | None, float | None, str]:
    """(label agreement, max abs diff, what they were measured on) from a manifest parity entry."""
    end_to_end = parity.get("end_to_end")
    if isinstance(end_to_end, Mapping):
        return end_to_end.get("label_agreement"), end_to_end.get("max_abs_diff_logits"), "real windows, end to end"
    graphs = parity.get("graphs") or {}
    diffs = [g.get("max_abs_diff") for g in graphs.values() if isinstance(g, Mapping)]
    diffs = [d for d in diffs if d is not None]
    return parity.get("label_agreement"), (max(diffs) if diffs else None), "random inputs, graph by graph"


#: CPU features left out of a validation note: every CPU that has the notable ones has these too.
_BASELINE_FEATURES = frozenset({"avx", "fma", "f16c", "avx512bw", "avx512vl", "asimd", "asimdhp"})


def measured_on(parity: Mapping[str, Any]) -> str:
    """Where a parity record was measured, in words: the precision the runtime computed in and
    the CPU with its notable instruction-set features (``""`` when the record does not say; the
    exporters record both since they set OpenVINO's precision explicitly)."""
    parts = []
    computed = parity.get("inference_precision")
    if computed:
        parts.append(f"computed {computed}")
    machine = parity.get("machine")
    if isinstance(machine, Mapping) and machine.get("cpu"):
        isa = [f for f in machine.get("isa") or () if f not in _BASELINE_FEATURES]
        parts.append(f"on {machine['cpu']}" + (f" ({' '.join(isa)})" if isa else ""))
    return " ".join(parts)


def check_parity(format_info: Mapping[str, Any], precision: str) -> Validation:
    """Hold the parity recorded in a format's manifest entry against :data:`VALIDATION_BOUNDS`."""
    bounds = VALIDATION_BOUNDS[precision]
    parity = format_info.get("parity")
    if not isinstance(parity, Mapping) or "status" in parity:
        reason = parity.get("status") if isinstance(parity, Mapping) else "no parity in the manifest"
        return Validation(None, f"not validated: {reason}")
    agreement, diff, inputs = _parity_numbers(parity)
    if agreement is None and diff is None:
        return Validation(None, "not validated: the manifest's parity has no label agreement or difference")
    problems = []
    if agreement is not None and agreement < bounds.min_label_agreement:
        problems.append(f"labels agree on {agreement:.1%} < {bounds.min_label_agreement:.0%}")
    if diff is not None and diff > bounds.max_abs_diff:
        problems.append(f"max abs diff {diff:.3g} > {bounds.max_abs_diff:g}")
    measured = ", ".join(
        part
        for part in (
            f"labels agree on {agreement:.1%}" if agreement is not None else "",
            f"max abs diff {diff:.3g}" if diff is not None else "",
        )
        if part
    )
    where = measured_on(parity)
    inputs = f"{inputs}, {where}" if where else inputs
    if problems:
        return Validation(False, f"{'; '.join(problems)} ({precision} bounds, {inputs})")
    return Validation(
        True,
        f"{measured} ({inputs}; {precision} bounds: labels >= "
        f"{bounds.min_label_agreement:.0%}, max abs diff <= {bounds.max_abs_diff:g})",
    )


__all__ = ["ValidationBounds", "VALIDATION_BOUNDS", "Validation", "measured_on", "check_parity"]
