"""Runtime backends (installed as ``edge_emotion.runtimes``): one file per runtime, each importing
its runtime only when a graph is loaded (docs/DESIGN.md, principle 6).

>>> backend = load_backend("onnxruntime", "bundle/onnx/visual_encoder.onnx", threads=2)
>>> backend.run({"face": faces})["embedding"]

Backends: ``onnxruntime`` (``.onnx``; CPU, CUDA and TensorRT execution providers), ``openvino``
(``.onnx`` and IR ``.xml``; devices CPU, GPU, NPU, AUTO), ``tensorrt`` (serialized ``.engine``
files), ``torch`` (``.pt2`` programs written by torch.export; the reference, needs the ``train``
extra).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_emotion._offline import keep_runtimes_offline
from edge_emotion.errors import BackendError

from .base import Backend, TensorSpec, prepare_inputs


@dataclass(frozen=True)
class BackendInfo:
    """A registry row: the module and class implementing the backend, the runtime's import name,
    the pip extra that installs it (``""``: the base install) and the devices it accepts."""

    module: str
    cls: str
    import_name: str
    extra: str
    devices: str


BACKENDS: dict[str, BackendInfo] = {
    "onnxruntime": BackendInfo(
        "onnxruntime_backend", "OnnxRuntimeBackend", "onnxruntime", "", "cpu, cuda[:N], tensorrt[:N]"
    ),
    "openvino": BackendInfo("openvino_backend", "OpenVinoBackend", "openvino", "openvino", "CPU, GPU[.N], NPU, AUTO"),
    "tensorrt": BackendInfo("tensorrt_backend", "TensorRtBackend", "tensorrt", "tensorrt", "cuda[:N]"),
    "torch": BackendInfo("torch_backend", "TorchBackend", "torch", "train", "cpu, cuda[:N]"),
}


def _info(name: str) -> BackendInfo:
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}") from None


def backend_class(name: str) -> type:
    """The class implementing backend ``name`` (imports the backend's module, not its runtime)."""
    info = _info(name)
    module = importlib.import_module(f"{__name__}.{info.module}")
    return getattr(module, info.cls)


def load_backend(name: str, graph_path: str | Path, device: str | None = None, **options: Any) -> Backend:
    """Load one graph file on runtime ``name``.

    ``device`` as the runtime names it (see :data:`BACKENDS`; None: the runtime's default).
    ``options`` go to the backend (e.g. ``threads=2`` for onnxruntime and openvino).
    Raises :class:`BackendError` for an unknown name, a file that does not load or a bad device,
    and :class:`~edge_emotion.errors.MissingDependencyError` (naming the extra) when the runtime is
    not installed.
    """
    cls = backend_class(name)
    path = Path(graph_path)
    if not path.is_file():
        raise BackendError(f"{name}: graph file {path} does not exist")
    return cls(path, device=device, **options)


def format_options(runtime: str, precision: str) -> dict[str, Any]:
    """The backend options that make ``runtime`` compute a bundle format of ``precision``
    (``"fp32"``, ``"fp16"``, ``"int8"``) as that precision: OpenVINO gets it explicitly (its CPU
    plugin would otherwise pick bf16 on CPUs with AVX-512 BF16 or AMX); the other runtimes compute
    what the graph files store and need nothing."""
    return {"precision": precision} if runtime == "openvino" else {}


def is_available(name: str) -> bool:
    """True when backend ``name``'s runtime imports (a broken install counts as unavailable)."""
    info = _info(name)
    if importlib.util.find_spec(info.import_name) is None:
        return False
    keep_runtimes_offline()  # before the runtime's first import (edge_emotion/_offline.py)
    try:
        importlib.import_module(info.import_name)
    except Exception:  # installed but broken, e.g. a missing shared library
        return False
    return True


def available_backends() -> tuple[str, ...]:
    """The backends whose runtime imports here, in :data:`BACKENDS` order."""
    return tuple(name for name in BACKENDS if is_available(name))


__all__ = [
    "Backend",
    "TensorSpec",
    "BackendInfo",
    "BACKENDS",
    "backend_class",
    "load_backend",
    "format_options",
    "is_available",
    "available_backends",
    "prepare_inputs",
]
