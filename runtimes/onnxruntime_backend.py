"""ONNX Runtime backend: runs ``.onnx`` graphs on the CPU, or on an NVIDIA GPU through the CUDA or
TensorRT execution providers when the installed onnxruntime has them (``onnxruntime-gpu``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_emotion.errors import BackendError

from .base import TensorSpec, import_runtime, prepare_inputs

logger = logging.getLogger(__name__)

# ONNX element types as onnxruntime reports them -> numpy dtype names
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _device_index(device: str) -> int:
    _, _, index = device.partition(":")
    try:
        return int(index) if index else 0
    except ValueError:
        raise BackendError(f"onnxruntime: bad device {device!r}; use cpu, cuda[:N] or tensorrt[:N]") from None


def choose_providers(device: str | None, available: list[str]) -> list[str | tuple[str, dict]]:
    """Execution providers for ``device``: ``None`` -> CUDA when present, else CPU; ``"cpu"``;
    ``"cuda[:N]"``; ``"tensorrt[:N]"`` (TensorRT EP, falling back to CUDA, then CPU)."""
    cpu = "CPUExecutionProvider"
    if device is None:
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + [cpu]
    kind = device.lower().split(":")[0]
    if kind == "cpu":
        return [cpu]
    wanted = {"cuda": ["CUDAExecutionProvider"], "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]}
    if kind not in wanted:
        raise BackendError(f"onnxruntime: unknown device {device!r}; use cpu, cuda[:N] or tensorrt[:N]")
    if wanted[kind][0] not in available:
        raise BackendError(
            f"onnxruntime: device {device!r} needs {wanted[kind][0]}, which this onnxruntime lacks "
            f"(it has {', '.join(available)}); install onnxruntime-gpu"
        )
    index = _device_index(device)
    return [(name, {"device_id": index}) for name in wanted[kind] if name in available] + [cpu]


class OnnxRuntimeBackend:
    """One ``.onnx`` graph in an ``onnxruntime.InferenceSession``.

    ``threads``: intra-op threads (None: onnxruntime's default, one per core).
    ``providers``: an explicit provider list, overriding ``device``.
    """

    name = "onnxruntime"

    def __init__(
        self,
        graph_path: str | Path,
        device: str | None = None,
        threads: int | None = None,
        providers: list | None = None,
    ):
        ort = import_runtime("onnxruntime", "onnxruntime", "", "the onnxruntime backend")
        self.graph_path = Path(graph_path)
        options = ort.SessionOptions()
        # Idle intra-op threads sleep instead of spinning: between the small per-frame calls of a
        # stream, spinning threads burn a core that decoding and face detection need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            if threads < 1:
                raise BackendError(f"onnxruntime: threads must be >= 1, got {threads}")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        chosen = providers if providers is not None else choose_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(self.graph_path), sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise BackendError(f"onnxruntime could not load {self.graph_path}: {exc}") from exc
        self.device = self.session.get_providers()[0]
        self.threads = threads
        self.input_specs = tuple(self._spec(arg) for arg in self.session.get_inputs())
        self.output_specs = tuple(self._spec(arg) for arg in self.session.get_outputs())
        self._output_names = [spec.name for spec in self.output_specs]
        logger.debug("onnxruntime loaded %s on %s", self.graph_path, self.device)

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
        return TensorSpec(arg.name, shape, _DTYPES.get(arg.type, "float32"))

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named inputs -> named outputs; shapes and dtypes as in :attr:`input_specs`."""
        feed = prepare_inputs(self.input_specs, inputs, self.graph_path.stem)
        outputs = self.session.run(self._output_names, feed)
        return dict(zip(self._output_names, outputs, strict=True))
