"""TensorRT backend: runs a serialized engine (``.engine``) on an NVIDIA GPU, through TensorRT's
name-based tensor API (TensorRT 8.6 and 10: ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``), with device memory from cuda-python's runtime bindings.

Engines are built for one GPU and one TensorRT version (``edge-emotion export --format tensorrt``
on the target device); an engine built elsewhere fails to deserialize, which is reported here.
Not run on real hardware by this project's CI: TensorRT cannot be installed on its machines.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_emotion.errors import BackendError, MissingDependencyError

from .base import TensorSpec, import_runtime, prepare_inputs

logger = logging.getLogger(__name__)


def _import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+) or ``cuda.cudart`` (older)."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependencyError("cuda-python", "tensorrt", "the tensorrt backend's device memory")


class _Cuda:
    """The few CUDA runtime calls the backend needs, each checked."""

    def __init__(self, device_index: int):
        self.rt = _import_cudart()
        self.check(self.rt.cudaSetDevice(device_index), f"cudaSetDevice({device_index})")
        self.stream = self.check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def check(self, result, what: str):
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            name = self.rt.cudaGetErrorName(err)[1]
            raise BackendError(f"tensorrt: {what} failed: {name.decode() if isinstance(name, bytes) else name}")
        return values[0] if len(values) == 1 else (values or None)

    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def free(self, pointer: int) -> None:
        self.rt.cudaFree(pointer)

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(self.rt.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self.stream), "H2D copy")

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes, kind, self.stream), "D2H copy")

    def synchronize(self) -> None:
        self.check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")


def _device_index(device: str | None) -> int:
    if device is None:
        return 0
    kind, _, index = device.lower().partition(":")
    if kind not in ("cuda", "gpu") or (index and not index.isdigit()):
        raise BackendError(f"tensorrt: bad device {device!r}; use cuda or cuda:N")
    return int(index or 0)


class TensorRtBackend:
    """One TensorRT engine with its execution context, a CUDA stream and device buffers that are
    reallocated only when a larger batch arrives.

    Thread safety: the execution context, the stream and the buffers are one set per engine, so
    :meth:`run` holds a lock from the first copy to the device until the outputs are on the host;
    threads sharing one recognizer take turns on the GPU (which runs this one stream's work in
    order anyway).
    """

    name = "tensorrt"

    def __init__(self, graph_path: str | Path, device: str | None = None):
        trt = import_runtime("tensorrt", "tensorrt", "tensorrt", "the tensorrt backend")
        self.trt = trt
        self.graph_path = Path(graph_path)
        index = _device_index(device)
        self.device = f"cuda:{index}"
        self.cuda = _Cuda(index)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self._logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.graph_path.read_bytes())
        if self.engine is None:
            raise BackendError(
                f"tensorrt could not deserialize {self.graph_path}: engines only load on the GPU model and "
                f"TensorRT version ({trt.__version__} here) they were built with; rebuild it on this device"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_specs = tuple(self._spec(n) for n in names if is_input[n])
        self.output_specs = tuple(self._spec(n) for n in names if not is_input[n])
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._lock = threading.Lock()  # one context, stream and buffer set: one run at a time
        logger.debug("tensorrt loaded %s on %s", self.graph_path, self.device)

    def _spec(self, name: str) -> TensorSpec:
        shape = tuple(d if d >= 0 else None for d in self.engine.get_tensor_shape(name))
        return TensorSpec(name, shape, np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name))).name)

    def _buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                self.cuda.free(pointer)
            pointer, size = self.cuda.malloc(nbytes), nbytes
            self._buffers[name] = (pointer, size)
        return pointer

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named inputs -> named outputs; shapes and dtypes as in :attr:`input_specs`. The batch
        must lie within the engine's optimisation profile. Safe to call from several threads (they
        take turns)."""
        feed = prepare_inputs(self.input_specs, inputs, self.graph_path.stem)
        with self._lock:
            return self._run(feed)

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in feed.items():
            if not self.context.set_input_shape(name, array.shape):
                raise BackendError(f"tensorrt: shape {array.shape} of {name!r} is outside the engine's profile")
            pointer = self._buffer(name, array.nbytes)
            self.cuda.to_device(pointer, array)
            self.context.set_tensor_address(name, pointer)
        outputs = {}
        for spec in self.output_specs:
            shape = tuple(self.context.get_tensor_shape(spec.name))
            outputs[spec.name] = np.empty(shape, dtype=spec.dtype)
            self.context.set_tensor_address(spec.name, self._buffer(spec.name, outputs[spec.name].nbytes))
        if not self.context.execute_async_v3(int(self.cuda.stream)):
            raise BackendError(f"tensorrt: execution of {self.graph_path.name} failed")
        for name, array in outputs.items():
            self.cuda.to_host(array, self._buffers[name][0])
        self.cuda.synchronize()
        return outputs

    def __del__(self) -> None:
        cuda = getattr(self, "cuda", None)
        for pointer, _ in getattr(self, "_buffers", {}).values():
            cuda.free(pointer)
