"""TensorRT engines from the ONNX graphs, built on the target GPU (a Jetson, where JetPack provides
TensorRT): ``edge-emotion export --checkpoint CKPT --format tensorrt [--int8 --calib DIR] --out B``.

Engines are tied to the GPU and TensorRT version that built them, so this runs on the device; on
a machine without ``tensorrt`` it raises :class:`MissingDependencyError`. Written against
TensorRT's documented Python API (8.6 and 10.x): ``Builder`` -> ``create_network`` (the
``EXPLICIT_BATCH`` flag before 10, where it is the default and deprecated) -> ``OnnxParser`` ->
``BuilderConfig`` (workspace pool limit, ``FP16``/``INT8`` flags, one optimization profile for the
batch axis) -> ``build_serialized_network``. **Not yet run on real hardware** here (no GPU, and
TensorRT's Python wheels cannot be installed on the x86 CI machines).

- ``tensorrt-fp16``: the FP32 ONNX graphs with ``BuilderFlag.FP16``.
- ``tensorrt-int8``: explicit quantization, the path TensorRT recommends over calibrators: the
  encoders are re-quantized as QDQ graphs with *symmetric* int8 activations and weights (zero
  points 0, which TensorRT requires; :func:`~.quantize_onnx.quantize_graph` with
  ``symmetric_activations=True``) on the same real calibration windows; the fusion head has no
  QDQ and runs in FP16 (``FP16`` is set too), as on the CPU formats.

TensorRT-friendly graphs: with ``static_batch=B`` every graph's batch axis is fixed to ``B``
(:func:`make_static`) and simplified, so shape arithmetic (the fusion head's Shape/Gather/Reshape
chain) folds into constants and the profile is a single shape; without it the batch is dynamic
with a profile of 1 .. ``max_batch`` optimised for ``opt_batch``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_emotion.errors import BackendError, InputError, MissingDependencyError
from edge_emotion.model.formats import GRAPHS, get_format

from .quantize_onnx import ORT_INT8_PLAN, calibration_batches, quantize_graph

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    """Build settings. ``max_batch``/``opt_batch``: the dynamic batch profile (a window's faces
    arrive one at a time, so 1 is the common case); ``static_batch``: fix the batch instead;
    ``workspace_mb``: the builder's scratch memory limit."""

    max_batch: int = 8
    opt_batch: int = 1
    static_batch: int | None = None
    workspace_mb: int = 512

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError("need 1 <= opt_batch <= max_batch")
        if self.static_batch is not None and self.static_batch < 1:
            raise ValueError("static_batch must be >= 1")
        if self.workspace_mb < 1:
            raise ValueError("workspace_mb must be >= 1")

    def profile(self) -> tuple[int, int, int]:
        """``(min, opt, max)`` of the batch axis."""
        if self.static_batch is not None:
            return (self.static_batch,) * 3
        return 1, self.opt_batch, self.max_batch


def import_tensorrt():
    """``tensorrt``, or :class:`MissingDependencyError` naming the ``tensorrt`` extra."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError(
            "tensorrt", "tensorrt", "building TensorRT engines; on a Jetson it comes with JetPack"
        ) from exc
    if not hasattr(tensorrt, "Builder"):  # tensorrt-lean / -dispatch: a runtime without the builder
        raise MissingDependencyError("tensorrt", "tensorrt", "building TensorRT engines (this install has no Builder)")
    return tensorrt


def make_static(onnx_path: str | Path, out_path: str | Path, batch: int) -> Path:
    """Copy of an ONNX graph with the batch axis of every input and output fixed to ``batch``,
    shapes re-inferred and simplified (onnxsim, when installed) so shape ops fold away."""
    import onnx

    from .onnx_export import simplify

    model = onnx.load(str(onnx_path))
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    out = Path(out_path)
    onnx.save(model, str(out))
    simplify(out)
    onnx.checker.check_model(str(out))
    return out


def _network_flags(trt) -> int:
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:  # explicit batch is mandatory for ONNX networks before TensorRT 10
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def build_engine(
    onnx_path: str | Path, engine_path: str | Path, precision: str, options: EngineOptions = EngineOptions()
) -> Path:
    """Parse ``onnx_path`` and write a serialized engine to ``engine_path``.

    ``precision``: ``"fp16"`` (FP16 kernels allowed) or ``"int8"`` (INT8 where the graph has QDQ
    nodes, FP16 elsewhere). Raises :class:`BackendError` with TensorRT's parser messages when the
    graph does not parse or the build fails.
    """
    trt = import_tensorrt()
    if precision not in ("fp16", "int8"):
        raise ValueError(f"TensorRT engines are built in fp16 or int8, not {precision!r}")
    log = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(log)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, log)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            logger.warning("this GPU has no fast FP16; TensorRT will choose FP32 kernels where faster")
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # honours the graph's QDQ scales (explicit quantization)
    profile = builder.create_optimization_profile()
    low, opt, high = options.profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (low, *rest), (opt, *rest), (high, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    out = Path(engine_path)
    out.write_bytes(bytes(serialized))
    logger.info("built %s (%s, batch %s..%s)", out, precision, low, high)
    return out


def export(
    model,
    format_key: str,
    onnx_files: dict[str, Path],
    work_dir: Path,
    calibration=None,
    engine_options: EngineOptions | None = None,
    **options: Any,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The exporter of ``tensorrt-fp16`` and ``tensorrt-int8``: ``work_dir/<graph>.engine``.
    ``calibration`` (a :class:`~.calibration.CalibrationSet`) is required for INT8."""
    trt = import_tensorrt()
    spec = get_format(format_key)
    if spec.layout != "tensorrt-engine":
        raise ValueError(f"tensorrt_export writes TensorRT engines, not {format_key!r}")
    engine_options = engine_options or EngineOptions()
    if spec.precision == "int8" and calibration is None:
        raise InputError("tensorrt-int8 needs calibration data: pass --calib DIR with real audio and faces")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    per_graph = None
    if spec.precision == "int8":
        size = engine_options.static_batch or 8
        per_graph = {  # a static graph takes only full batches
            g: [b for b in items if engine_options.static_batch is None or len(next(iter(b.values()))) == size]
            for g, items in calibration_batches(model, calibration, batch_size=size).items()
        }
    files = {}
    with tempfile.TemporaryDirectory(prefix="edge-emotion-trt-") as tmp:
        for graph in GRAPHS:
            source = Path(onnx_files[graph])
            if engine_options.static_batch is not None:  # before QDQ: simplifying would fold weight DQs
                source = make_static(source, Path(tmp) / f"{graph}.static.onnx", engine_options.static_batch)
            if per_graph is not None and ORT_INT8_PLAN[graph].quantize:
                source = quantize_graph(
                    source, Path(tmp) / f"{graph}.qdq.onnx", per_graph[graph], symmetric_activations=True
                )
            files[graph] = build_engine(source, work / f"{graph}.engine", spec.precision, engine_options)
    low, opt, high = engine_options.profile()
    metadata: dict[str, Any] = {
        "tensorrt": str(trt.__version__),
        "batch_profile": {"min": low, "opt": opt, "max": high},
        "built_on": "the GPU that ran the export; engines do not move between GPUs or TensorRT versions",
    }
    if spec.precision == "int8":
        metadata["quantization"] = {
            "method": "explicit QDQ (symmetric int8, per-channel weights), FP16 elsewhere",
            "graphs": {g: ORT_INT8_PLAN[g].to_dict() for g in GRAPHS},
        }
        metadata["calibration"] = calibration.summary()
    return files, metadata


__all__ = ["EngineOptions", "import_tensorrt", "make_static", "build_engine", "export"]
