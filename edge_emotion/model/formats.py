"""The one table of model formats, and the contract of the three graphs.

Data only (no runtime, torch or onnx import): the CLI's ``--format`` choices, the exporters
(:mod:`edge_emotion.export`), bundle loading (:mod:`edge_emotion.model.bundle`), ``auto`` backend
selection (:mod:`edge_emotion.model.engine`), ``bench`` and the round-trip tests all read :data:`FORMATS`.
Adding a format is one row here plus an exporter module named by the row's ``exporter``.

The three graphs (docs/DESIGN.md, principle 1) and their tensors, with ``N`` the dynamic batch:

- ``visual_encoder``: ``face`` ``(N, 3, S, S) float32`` -> ``embedding`` ``(N, D_v) float32``
- ``audio_encoder``: ``log_mel`` ``(N, 1, n_mels, n_frames) float32`` -> ``audio_steps``
  ``(N, T_a, D_a) float32``
- ``fusion_head``: ``audio`` ``(N, T, D_a)``, ``visual`` ``(N, T, D_v)``, ``audio_mask`` and
  ``visual_mask`` ``(N, T)`` (float32 1/0) -> ``logits`` ``(N, C) float32``
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PresetConfig

VISUAL_ENCODER = "visual_encoder"
AUDIO_ENCODER = "audio_encoder"
FUSION_HEAD = "fusion_head"
#: The graphs of every format, in the order data flows through them.
GRAPHS: tuple[str, ...] = (VISUAL_ENCODER, AUDIO_ENCODER, FUSION_HEAD)

#: Input and output tensor names of each graph, in positional order.
GRAPH_INPUTS: dict[str, tuple[str, ...]] = {
    VISUAL_ENCODER: ("face",),
    AUDIO_ENCODER: ("log_mel",),
    FUSION_HEAD: ("audio", "visual", "audio_mask", "visual_mask"),
}
GRAPH_OUTPUTS: dict[str, tuple[str, ...]] = {
    VISUAL_ENCODER: ("embedding",),
    AUDIO_ENCODER: ("audio_steps",),
    FUSION_HEAD: ("logits",),
}

#: The runtime names a format row may list (the backends of :mod:`edge_emotion.runtimes`).
RUNTIMES: tuple[str, ...] = ("onnxruntime", "openvino", "tensorrt", "torch")


@dataclass(frozen=True)
class FormatSpec:
    """One row of the format table.

    ``suffix`` is the main file of each graph (``<bundle>/<key>/<graph><suffix>``);
    ``companion_suffixes`` are files that travel beside it (OpenVINO IR's ``.bin``). ``runtimes``
    lists, best first, the backends that can run the format, and ``runtime_extra`` the pip extra
    that installs each (``""`` for the base install). ``exporter`` names the function that writes
    the format, ``"module:function"``, called as
    ``function(model, format_key, onnx_files, work_dir, **options) -> (files, metadata)``, with
    ``onnx_files`` the FP32 ONNX graphs ``{graph: path}`` and ``work_dir`` an empty folder of its own.
    ``exportable_here`` says whether an x86 CPU machine without a GPU can produce it.
    """

    key: str
    description: str
    precision: str  # "fp32" | "fp16" | "int8"
    layout: str  # "onnx" | "openvino-ir" | "tensorrt-engine" | "torch-export"
    suffix: str
    runtimes: tuple[str, ...]
    runtime_extra: dict[str, str]
    export_extra: str
    exporter: str
    exportable_here: bool
    companion_suffixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ValueError(f"{self.key}: precision must be fp32, fp16 or int8, got {self.precision!r}")
        unknown = set(self.runtimes) - set(RUNTIMES)
        if unknown or not self.runtimes:
            raise ValueError(f"{self.key}: runtimes must be some of {RUNTIMES}, got {self.runtimes}")
        if set(self.runtime_extra) != set(self.runtimes):
            raise ValueError(f"{self.key}: runtime_extra needs one entry per runtime")
        if not self.suffix.startswith("."):
            raise ValueError(f"{self.key}: suffix must start with '.'")

    def graph_file(self, graph: str) -> str:
        """The path of ``graph``'s main file inside a bundle, e.g. ``onnx/visual_encoder.onnx``."""
        if graph not in GRAPHS:
            raise ValueError(f"unknown graph {graph!r}; the graphs are {', '.join(GRAPHS)}")
        return f"{self.key}/{graph}{self.suffix}"


_ORT = {"onnxruntime": ""}
_OV = {"openvino": "openvino"}
_TRT = {"tensorrt": "tensorrt"}

_ROWS: tuple[FormatSpec, ...] = (
    FormatSpec(
        key="onnx",
        description="ONNX, FP32: the reference export; runs everywhere",
        precision="fp32",
        layout="onnx",
        suffix=".onnx",
        runtimes=("onnxruntime", "openvino"),
        runtime_extra={**_ORT, **_OV},
        export_extra="export",
        exporter="edge_emotion.export.onnx_export:export_onnx_format",
        exportable_here=True,
    ),
    FormatSpec(
        key="onnx-int8",
        description="ONNX with static INT8 QDQ quantization, for ONNX Runtime on CPUs",
        precision="int8",
        layout="onnx",
        suffix=".onnx",
        runtimes=("onnxruntime",),
        runtime_extra=_ORT,
        export_extra="export",
        exporter="edge_emotion.export.quantize_onnx:export",
        exportable_here=True,
    ),
    FormatSpec(
        key="openvino",
        description="OpenVINO IR, FP32",
        precision="fp32",
        layout="openvino-ir",
        suffix=".xml",
        companion_suffixes=(".bin",),
        runtimes=("openvino",),
        runtime_extra=_OV,
        export_extra="export",
        exporter="edge_emotion.export.openvino_export:export",
        exportable_here=True,
    ),
    FormatSpec(
        key="openvino-fp16",
        description="OpenVINO IR with FP16 weights (Intel GPU / NPU)",
        precision="fp16",
        layout="openvino-ir",
        suffix=".xml",
        companion_suffixes=(".bin",),
        runtimes=("openvino",),
        runtime_extra=_OV,
        export_extra="export",
        exporter="edge_emotion.export.openvino_export:export",
        exportable_here=True,
    ),
    FormatSpec(
        key="openvino-int8",
        description="OpenVINO IR quantized to INT8 with NNCF post-training quantization",
        precision="int8",
        layout="openvino-ir",
        suffix=".xml",
        companion_suffixes=(".bin",),
        runtimes=("openvino",),
        runtime_extra=_OV,
        export_extra="export",
        exporter="edge_emotion.export.openvino_export:export",
        exportable_here=True,
    ),
    FormatSpec(
        key="tensorrt-fp16",
        description="TensorRT engine, FP16; built on the target GPU (engines do not move between GPUs)",
        precision="fp16",
        layout="tensorrt-engine",
        suffix=".engine",
        runtimes=("tensorrt",),
        runtime_extra=_TRT,
        export_extra="tensorrt",
        exporter="edge_emotion.export.tensorrt_export:export",
        exportable_here=False,
    ),
    FormatSpec(
        key="tensorrt-int8",
        description="TensorRT engine, INT8; built on the target GPU (engines do not move between GPUs)",
        precision="int8",
        layout="tensorrt-engine",
        suffix=".engine",
        runtimes=("tensorrt",),
        runtime_extra=_TRT,
        export_extra="tensorrt",
        exporter="edge_emotion.export.tensorrt_export:export",
        exportable_here=False,
    ),
    FormatSpec(
        key="torch",
        description="torch.export programs (.pt2), FP32: the PyTorch reference without the training code",
        precision="fp32",
        layout="torch-export",
        suffix=".pt2",
        runtimes=("torch",),
        runtime_extra={"torch": "train"},
        export_extra="export",
        exporter="edge_emotion.export.torch_artifact:export_torch_format",
        exportable_here=True,
        companion_suffixes=(".json",),  # the tensor names of the program (runtimes/torch_backend.py)
    ),
)

#: The format table: key -> row.
FORMATS: dict[str, FormatSpec] = {row.key: row for row in _ROWS}

#: ``backend="auto"``: the (format, runtime) pairs tried in order; the first whose format is in the
#: bundle and whose runtime imports wins. Compiled engines for a GPU first, then INT8 (about 2x
#: faster than FP32 on CPUs, measured in BENCHMARKS.md), then OpenVINO before ONNX Runtime for
#: the same precision (OpenVINO also drives Intel GPUs and NPUs), FP32 before FP16 (FP16 only pays
#: on GPUs/NPUs), and the torch reference last.
AUTO_ORDER: tuple[tuple[str, str], ...] = (
    ("tensorrt-int8", "tensorrt"),
    ("tensorrt-fp16", "tensorrt"),
    ("openvino-int8", "openvino"),
    ("onnx-int8", "onnxruntime"),
    ("openvino", "openvino"),
    ("openvino-fp16", "openvino"),
    ("onnx", "onnxruntime"),
    ("onnx", "openvino"),
    ("torch", "torch"),
)


def get_format(key: str) -> FormatSpec:
    """The row for ``key``; ``ValueError`` listing the valid keys otherwise."""
    try:
        return FORMATS[key]
    except KeyError:
        raise ValueError(f"unknown format {key!r}; choose one of: {', '.join(FORMATS)}") from None


def formats_for_runtime(runtime: str) -> tuple[str, ...]:
    """Format keys ``runtime`` can run, in ``auto`` preference order."""
    return tuple(key for key, name in AUTO_ORDER if name == runtime)


@dataclass(frozen=True)
class TensorShape:
    """One graph tensor: ``shape`` holds ints, with ``"N"`` for the dynamic batch."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


def graph_tensors(preset: PresetConfig) -> dict[str, tuple[tuple[TensorShape, ...], tuple[TensorShape, ...]]]:
    """For a preset, each graph's ``(inputs, outputs)`` with their shapes."""
    m, a = preset.model, preset.audio
    s, t = preset.visual.crop_size, m.time_steps
    inputs = {
        VISUAL_ENCODER: (("N", 3, s, s),),
        AUDIO_ENCODER: (("N", 1, a.n_mels, a.n_frames),),
        FUSION_HEAD: (("N", t, m.audio_dim), ("N", t, m.visual_dim), ("N", t), ("N", t)),
    }
    outputs = {
        VISUAL_ENCODER: (("N", m.visual_dim),),
        AUDIO_ENCODER: (("N", preset.audio_steps, m.audio_dim),),
        FUSION_HEAD: (("N", len(preset.labels)),),
    }
    return {
        g: (
            tuple(TensorShape(n, sh) for n, sh in zip(GRAPH_INPUTS[g], inputs[g], strict=True)),
            tuple(TensorShape(n, sh) for n, sh in zip(GRAPH_OUTPUTS[g], outputs[g], strict=True)),
        )
        for g in GRAPHS
    }


__all__ = [
    "VISUAL_ENCODER",
    "AUDIO_ENCODER",
    "FUSION_HEAD",
    "GRAPHS",
    "GRAPH_INPUTS",
    "GRAPH_OUTPUTS",
    "RUNTIMES",
    "FormatSpec",
    "FORMATS",
    "AUTO_ORDER",
    "get_format",
    "formats_for_runtime",
    "TensorShape",
    "graph_tensors",
]
