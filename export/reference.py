"""The FP32 reference the exporters quantize and check against: the PyTorch model, or, where its
checkpoint is not at hand (re-quantizing a shipped bundle), the bundle's own FP32 graphs.

:func:`reference_outputs` and :func:`reference_name` accept either, so that the calibration
(:func:`~.quantize_onnx.calibration_batches`) and the parity (:func:`~.parity.measure_parity`)
run the same code on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_emotion.config import PresetConfig
from edge_emotion.model.formats import GRAPH_OUTPUTS, GRAPHS


class GraphReference:
    """FP32 graph files ``{graph: path}`` on ``runtime`` standing in for the PyTorch model.
    ``description`` says what they are (it becomes the parity record's ``reference``), e.g. how
    far they were measured from PyTorch when they were exported; ``short_name`` names it in the
    record's per-graph notes (e.g. ``"onnx fp32"``)."""

    def __init__(
        self,
        preset: PresetConfig,
        files: Mapping[str, str | Path],
        description: str,
        runtime: str = "onnxruntime",
        threads: int | None = None,
        short_name: str = "fp32 graphs",
    ):
        from edge_emotion.runtimes import format_options, load_backend

        missing = [g for g in GRAPHS if g not in files]
        if missing:
            raise ValueError(f"a graph reference needs all three graphs; missing {', '.join(missing)}")
        options = {"threads": threads} if threads is not None else {}
        options.update(format_options(runtime, "fp32"))
        self.preset = preset
        self.description = description
        self.short_name = short_name
        self.backends = {g: load_backend(runtime, files[g], **options) for g in GRAPHS}

    def outputs(self, inputs: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
        """``{graph: {input name: array}}`` -> ``{graph: {output name: float32 array}}``."""
        result = {}
        for graph, named in inputs.items():
            name = GRAPH_OUTPUTS[graph][0]
            result[graph] = {name: self.backends[graph].run(named)[name].astype(np.float32)}
        return result


def reference_outputs(model, inputs: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """The reference's outputs for ``{graph: {input name: array}}``: a :class:`GraphReference`'s,
    or the PyTorch model's (:func:`~.onnx_export.torch_outputs`)."""
    if isinstance(model, GraphReference):
        return model.outputs(inputs)
    from .onnx_export import torch_outputs

    return torch_outputs(model, dict(inputs))


def reference_name(model, short: bool = False) -> str:
    """What the parity record names as its reference (``short``: in a few words)."""
    if isinstance(model, GraphReference):
        return model.short_name if short else model.description
    return "pytorch fp32"


__all__ = ["GraphReference", "reference_outputs", "reference_name"]
