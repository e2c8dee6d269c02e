"""The backend protocol every runtime implements (docs/DESIGN.md, principle 6), and the input checks
they share. Imports no runtime."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol, runtime_checkable

import numpy as np

from edge_emotion._offline import keep_runtimes_offline
from edge_emotion.errors import InputError, MissingDependencyError


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output as the runtime reports it: ``shape`` holds ints for fixed axes and
    ``None`` for dynamic ones (the batch); ``dtype`` a numpy dtype name such as ``"float32"``."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def matches(self, array: np.ndarray) -> bool:
        """True when ``array``'s rank and fixed axes fit this spec (dtype is checked separately)."""
        if array.ndim != len(self.shape):
            return False
        return all(want is None or want == got for want, got in zip(self.shape, array.shape, strict=True))


@runtime_checkable
class Backend(Protocol):
    """One loaded graph on one runtime."""

    name: str  # the runtime: "onnxruntime", "openvino", "tensorrt", "torch"
    device: str  # where it runs, as the runtime names it ("CPUExecutionProvider", "CPU", "cuda:0", ...)
    input_specs: tuple[TensorSpec, ...]
    output_specs: tuple[TensorSpec, ...]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named input arrays -> named output arrays (numpy, on the host)."""
        ...


def import_runtime(module: str, package: str, extra: str, what: str) -> ModuleType:
    """Import a runtime lazily; a missing one raises ``MissingDependencyError`` naming ``extra``
    (``""``: a base-install package, for which the message says so). Telemetry the runtime would
    record is turned off first (``edge_emotion/_offline.py``)."""
    keep_runtimes_offline()
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = MissingDependencyError(package, extra, what)
        if not extra:  # part of the base install (onnxruntime): there is no extra to name
            message = (
                f"{package} is not installed (needed for {what}); it is part of the base install: "
                f"pip install edge-emotion (or {package}-gpu on a CUDA machine)"
            )
            error.args, error.msg = (message,), message  # ImportError's str() shows .msg
        raise error from exc


def prepare_inputs(
    specs: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray], graph: str
) -> dict[str, np.ndarray]:
    """Check ``inputs`` against ``specs`` (names, ranks, fixed axes, one batch size) and return them
    as C-contiguous arrays of the spec's dtype. Raises :class:`InputError` naming the tensor."""
    names = [spec.name for spec in specs]
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    if missing or extra:
        raise InputError(f"{graph}: expected inputs {names}, got {sorted(inputs)}")
    prepared, batch = {}, None
    for spec in specs:
        array = np.asarray(inputs[spec.name])
        if not spec.matches(array):
            shape = tuple("N" if s is None else s for s in spec.shape)
            raise InputError(f"{graph}: input {spec.name!r} must have shape {shape}, got {array.shape}")
        if batch is not None and array.ndim and array.shape[0] != batch:
            raise InputError(f"{graph}: inputs disagree on the batch size ({batch} vs {array.shape[0]})")
        batch = array.shape[0] if array.ndim else batch
        prepared[spec.name] = np.ascontiguousarray(array, dtype=np.dtype(spec.dtype))
    return prepared


__all__ = ["TensorSpec", "Backend", "import_runtime", "prepare_inputs"]
