"""OpenVINO IR from the ONNX graphs: FP32, FP16 (compressed weights) and INT8 (NNCF).

- ``openvino``: ``ov.convert_model(onnx)`` then ``ov.save_model(compress_to_fp16=False)``.
- ``openvino-fp16``: the same with ``compress_to_fp16=True``: FP16 weights, which Intel GPUs and
  NPUs run natively; a CPU decompresses them at load time and still computes in FP32.
- ``openvino-int8``: ``nncf.quantize`` (post-training, the ``performance`` preset: symmetric
  8-bit activations and weights, with NNCF's full bias correction rather than its fast one) on the
  same real calibration windows as ``onnx-int8``. Re-quantizing the previous edge bundle's visual
  encoder, full bias correction took its label agreement with FP32 from 95.3 to 97.6 % of the
  export's faces (end to end 96.9 -> 98.4 %), and from 94.1 to 96.1 % (end to end 96.1 -> 97.4 %)
  on 384 training windows; the ``mixed`` preset (asymmetric activations) agreed less, and 384
  calibration windows instead of 128 did not help (``tools/cpu_precision_report.py --only
  nncf-variants`` compares the presets). The plan
  per graph is :data:`OV_INT8_PLAN`: the visual encoder is quantized (it runs on every face frame);
  the audio encoder stays FP32 (see the plan: it cost accuracy and runs once per window); the fusion
  head stays FP32 because NNCF's INT8 head measured ~3× *slower* here (edge preset, batch 1, 2 threads: 0.45 ms FP32 vs
  1.28 ms INT8), the head being matmuls too small for INT8 kernels.

Each graph is ``<graph>.xml`` with its ``<graph>.bin`` beside it; the batch axis stays dynamic.
What the IR computes in is set when it is loaded, not here: the SDK's OpenVINO backend asks for
f32 for the FP32 and INT8 formats, and f16 for FP16 only on devices with FP16 arithmetic
(:func:`edge_emotion.runtimes.openvino_backend.inference_precision_for`); NNCF calibrates in f32.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge_emotion.errors import InputError, MissingDependencyError
from edge_emotion.model.formats import AUDIO_ENCODER, FUSION_HEAD, GRAPHS, VISUAL_ENCODER, get_format

from .quantize_onnx import QuantPlan, calibration_batches

logger = logging.getLogger(__name__)

OV_INT8_PLAN: dict[str, QuantPlan] = {
    VISUAL_ENCODER: QuantPlan(True, "conv net: NNCF INT8 is the fast CPU path"),
    AUDIO_ENCODER: QuantPlan(
        False,
        "kept FP32: on the trained edge model its INT8 labels agreed with FP32 on only 91% of real windows; it runs "
        "once per window (~3 ms per second of audio), so INT8 would save ~1 ms per second",
    ),
    FUSION_HEAD: QuantPlan(False, "kept FP32: NNCF INT8 measured slower (1.28 vs 0.45 ms, edge preset)"),
}


def _import(name: str, what: str):
    from edge_emotion._offline import keep_runtimes_offline

    keep_runtimes_offline()  # OpenVINO and NNCF send usage events on import otherwise
    try:
        return __import__(name)
    except ImportError as exc:
        raise MissingDependencyError(name, "export", what) from exc


def quantize_ir(ov_model, calibration: list[dict], subset_size: int | None = None):
    """``nncf.quantize`` an ``openvino.Model`` on calibration items ``{input name: array}``."""
    nncf = _import("nncf", "INT8 OpenVINO export")
    if not calibration:
        raise InputError("openvino-int8 needs calibration data: pass --calib DIR with real audio and faces")
    samples = sum(len(next(iter(item.values()))) for item in calibration)
    return nncf.quantize(
        ov_model,
        nncf.Dataset(calibration),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=subset_size or samples,
        fast_bias_correction=False,
    )


def export(
    model,
    format_key: str,
    onnx_files: dict[str, Path],
    work_dir: Path,
    calibration=None,
    plan: dict[str, QuantPlan] | None = None,
    **options: Any,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The exporter of ``openvino``, ``openvino-fp16`` and ``openvino-int8`` (by ``format_key``'s
    precision): ``work_dir/<graph>.xml`` (+ ``.bin``). ``calibration`` (a
    :class:`~.calibration.CalibrationSet`) is required for INT8."""
    ov = _import("openvino", "OpenVINO export")
    spec = get_format(format_key)
    if spec.layout != "openvino-ir":
        raise ValueError(f"openvino_export writes OpenVINO IR formats, not {format_key!r}")
    precision = spec.precision
    plan = plan or OV_INT8_PLAN
    per_graph = None
    if precision == "int8":
        if calibration is None:
            raise InputError("openvino-int8 needs calibration data: pass --calib DIR with real audio and faces")
        per_graph = calibration_batches(model, calibration, batch_size=1)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for graph in GRAPHS:
        ir = ov.convert_model(str(onnx_files[graph]))
        if per_graph is not None and plan[graph].quantize:
            if not per_graph[graph]:
                raise InputError(
                    f"openvino-int8: the calibration data has no inputs for {graph} (it needs both audio and faces)"
                )
            ir = quantize_ir(ir, per_graph[graph])
        target = work / f"{graph}.xml"
        ov.save_model(ir, str(target), compress_to_fp16=precision == "fp16")
        files[graph] = target
        logger.info("wrote %s (%s)", target, precision)
    metadata: dict[str, Any] = {"compress_to_fp16": precision == "fp16"}
    if precision == "int8":
        metadata["quantization"] = {
            "method": (
                "nncf.quantize, performance preset (symmetric int8 activations and weights), full bias correction"
            ),
            "graphs": {g: plan[g].to_dict() for g in GRAPHS},
        }
        metadata["calibration"] = calibration.summary()
    return files, metadata


__all__ = ["OV_INT8_PLAN", "quantize_ir", "export"]
