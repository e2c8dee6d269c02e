"""ONNX Runtime INT8: static QDQ quantization of the FP32 graphs, calibrated on real windows.

Per graph (:data:`ORT_INT8_PLAN`):

- ``visual_encoder`` is quantized whole (convolutions, residual adds, pooling): unsigned 8-bit
  activations, signed per-channel weights (7-bit, see ``reduce_range`` below), QDQ format. The
  ``audio_encoder`` is kept FP32: quantized, its labels agreed with FP32 on 88 % of real windows of
  the trained edge model, and it runs once per window, so INT8 saves almost nothing there. This is the
  combination measured fastest on the development CPU (ResNet-18 at 224²: 22–26 ms FP32 ->
  13–16 ms); dynamic quantization was 4–5× slower on these conv nets and signed activations were
  slower than FP32, so neither is offered. Quantizing only some convolutions (leaving the 1- and
  8-channel first block in FP32) measured no faster: the extra Q/DQ pairs cost what was saved.
- ``fusion_head`` stays FP32. Measured (edge preset, batch 1, 2 threads): FP32 0.23 ms, with its
  MatMul/Gemm quantized 0.28 ms: the head is a few 64-wide matmuls, an attention softmax and a
  GRU, too small for INT8 kernels to pay for the (de)quantization, and its logits are what the
  labels are taken from. The INT8 format therefore carries the FP32 fusion graph unchanged.

``quant_pre_process`` (ORT's shape inference + graph optimisation) runs first, with
``skip_symbolic_shape=True`` because the symbolic shape pass fails on the TorchScript exporter's
dynamic batch.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_emotion.errors import InputError
from edge_emotion.model.formats import AUDIO_ENCODER, FUSION_HEAD, GRAPHS, VISUAL_ENCODER

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantPlan:
    """What to do with one graph. ``op_types`` None: every op type ORT can quantize."""

    quantize: bool
    reason: str
    op_types: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantized": self.quantize,
            "op_types": list(self.op_types) if self.op_types else "all",
            "reason": self.reason,
        }


ORT_INT8_PLAN: dict[str, QuantPlan] = {
    VISUAL_ENCODER: QuantPlan(True, "conv net: static QDQ u8/s8 per-channel is the fast CPU path"),
    AUDIO_ENCODER: QuantPlan(
        False,
        "kept FP32: on the trained edge model its INT8 labels agreed with FP32 on only 88% of real windows (7-bit "
        "weights); it runs once per window (~2 ms per second of audio), so INT8 would save ~0.3 ms per second",
    ),
    FUSION_HEAD: QuantPlan(
        False,
        "kept FP32: quantized MatMul/Gemm measured slower (0.28 vs 0.23 ms, edge preset) and the logits come from it",
    ),
}


def _reader(batches: Iterable[dict[str, np.ndarray]]):
    from onnxruntime.quantization import CalibrationDataReader

    class _Batches(CalibrationDataReader):
        """Feeds calibration batches ``{input name: float32 array}`` to the ORT calibrator."""

        def __init__(self, items: Iterable[dict[str, np.ndarray]]):
            self._items = iter(items)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    return _Batches(batches)


def quantize_graph(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Sequence[dict[str, np.ndarray]],
    op_types: Sequence[str] | None = None,
    symmetric_activations: bool = False,
    reduce_range: bool | None = None,
) -> Path:
    """Static QDQ INT8 of one ONNX graph.

    ``calibration``: batches of the graph's inputs, ``{name: float32 array}`` (real data; at least
    one). ``symmetric_activations`` False: u8 activations / s8 per-channel weights (ORT on CPUs);
    True: s8 symmetric activations and weights, zero points 0 (what TensorRT's explicit
    quantization accepts). ``reduce_range`` (None: on with u8 activations, off with symmetric
    ones): 7-bit weights, see the comment below. Returns ``out_path``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise InputError("INT8 quantization needs calibration data: pass --calib DIR with real audio and faces")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-emotion-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        activation = QuantType.QInt8 if symmetric_activations else QuantType.QUInt8
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric_activations else {}
        quantize_static(
            str(prepared),
            str(out),
            _reader(list(calibration)),
            quant_format=QuantFormat.QDQ,
            activation_type=activation,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: on x86 CPUs without VNNI (AVX2 only, like our dev machine), ORT's u8 x s8
            # kernels add pairs of products in int16 (VPMADDUBSW) and saturate with 8-bit weights.
            # Measured on the trained edge audio encoder: labels agreeing with FP32 on 59% of real
            # windows with 8-bit weights (MinMax, Percentile and Entropy calibration alike), 95% with
            # reduce_range. TensorRT's symmetric mode has no such kernel and keeps 8 bits.
            reduce_range=(not symmetric_activations) if reduce_range is None else reduce_range,
            op_types_to_quantize=list(op_types) if op_types else None,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=extra,
        )
    logger.info("quantized %s -> %s (%d bytes)", Path(fp32_path).name, out, out.stat().st_size)
    return out


def calibration_batches(
    model, calibration, batch_size: int = 8, seed: int = 0
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Each graph's calibration batches from a :class:`~.calibration.CalibrationSet`: faces and
    log-mel windows as they are, fusion inputs from the FP32 encoders (:func:`~.calibration.fusion_inputs`)
    of ``model`` (the PyTorch model or a :class:`~.reference.GraphReference`)."""
    from .calibration import batches, fusion_inputs
    from .reference import reference_outputs

    encoded = reference_outputs(
        model, {VISUAL_ENCODER: {"face": calibration.faces}, AUDIO_ENCODER: {"log_mel": calibration.log_mel}}
    )
    fused = fusion_inputs(
        model.preset,
        encoded[AUDIO_ENCODER]["audio_steps"],
        calibration.speech,
        encoded[VISUAL_ENCODER]["embedding"],
        seed,
    )
    per_graph = {
        VISUAL_ENCODER: {"face": calibration.faces},
        AUDIO_ENCODER: {"log_mel": calibration.log_mel},
        FUSION_HEAD: fused.inputs,
    }
    return {
        g: list(batches(named, batch_size)) if len(next(iter(named.values()))) else [] for g, named in per_graph.items()
    }


def export(
    model,
    format_key: str,
    onnx_files: dict[str, Path],
    work_dir: Path,
    calibration=None,
    plan: dict[str, QuantPlan] | None = None,
    **options: Any,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The ``onnx-int8`` row's exporter: ``work_dir/<graph>.onnx`` for each graph (quantized per
    ``plan``, default :data:`ORT_INT8_PLAN`; the others copied FP32). ``calibration`` is a
    :class:`~.calibration.CalibrationSet`; returns the files and the quantization metadata."""
    if format_key != "onnx-int8":
        raise ValueError(f"quantize_onnx.export writes 'onnx-int8', not {format_key!r}")
    if calibration is None:
        raise InputError("onnx-int8 needs calibration data: pass --calib DIR with real audio and faces")
    plan = plan or ORT_INT8_PLAN
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    per_graph = calibration_batches(model, calibration)
    files = {}
    for graph in GRAPHS:
        target = work / f"{graph}.onnx"
        if plan[graph].quantize:
            if not per_graph[graph]:
                raise InputError(
                    f"onnx-int8: the calibration data has no inputs for {graph} (it needs both audio and faces)"
                )
            quantize_graph(onnx_files[graph], target, per_graph[graph], plan[graph].op_types)
        else:
            shutil.copyfile(onnx_files[graph], target)
        files[graph] = target
    metadata = {
        "quantization": {
            "method": "static QDQ (onnxruntime.quantization), MinMax calibration",
            "activations": "uint8 asymmetric",
            "weights": "int8 symmetric per-channel",
            "graphs": {g: plan[g].to_dict() for g in GRAPHS},
        },
        "calibration": calibration.summary(),
    }
    return files, metadata


__all__ = ["QuantPlan", "ORT_INT8_PLAN", "quantize_graph", "calibration_batches", "export"]
