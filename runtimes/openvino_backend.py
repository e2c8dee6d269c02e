"""OpenVINO backend: runs ONNX (``.onnx``) and OpenVINO IR (``.xml`` + ``.bin``) graphs on Intel
CPUs, GPUs and NPUs (devices ``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO``, ...)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_emotion.errors import BackendError

from .base import TensorSpec, import_runtime, prepare_inputs

logger = logging.getLogger(__name__)


class OpenVinoBackend:
    """One graph compiled by ``openvino.Core``.

    ``device``: an OpenVINO device name (None: ``CPU``). ``threads``: inference threads (CPU).
    ``batch``: fix the batch axis to this size before compiling (NPUs need static shapes; with
    None the batch stays dynamic, which CPU and GPU accept). ``weights_path``: an IR's ``.bin``
    (None: the one beside the ``.xml``).
    """

    name = "openvino"

    def __init__(
        self,
        graph_path: str | Path,
        device: str | None = None,
        threads: int | None = None,
        batch: int | None = None,
        weights_path: str | Path | None = None,
    ):
        ov = import_runtime("openvino", "openvino", "openvino", "the openvino backend")
        self.graph_path = Path(graph_path)
        self.device = (device or "CPU").upper()
        core = ov.Core()
        known = core.available_devices
        base = self.device.split(".")[0].split(":")[0]
        if base not in ("AUTO", "MULTI", "HETERO") and not any(d.split(".")[0] == base for d in known):
            raise BackendError(f"openvino: device {self.device!r} is not available here; available: {', '.join(known)}")
        try:
            # weights_path: an IR's .bin when it is not beside the .xml (a bundle's shared weights)
            model = core.read_model(str(self.graph_path), None if weights_path is None else str(weights_path))
            if batch is not None:
                model.reshape({port.get_any_name(): self._static(port, batch) for port in model.inputs})
            config = {}
            if threads is not None:
                if threads < 1:
                    raise BackendError(f"openvino: threads must be >= 1, got {threads}")
                config["INFERENCE_NUM_THREADS"] = threads
            self.compiled = core.compile_model(model, self.device, config)
        except BackendError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with its own messages
            raise BackendError(f"openvino could not load {self.graph_path} on {self.device}: {exc}") from exc
        self.threads = threads
        self.input_specs = tuple(self._spec(port) for port in self.compiled.inputs)
        self.output_specs = tuple(self._spec(port) for port in self.compiled.outputs)
        self._request = self.compiled.create_infer_request()
        logger.debug("openvino compiled %s on %s", self.graph_path, self.device)

    @staticmethod
    def _static(port, batch: int) -> list[int]:
        shape = port.get_partial_shape()
        return [batch] + [d.get_length() for d in list(shape)[1:]]

    @staticmethod
    def _spec(port) -> TensorSpec:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        dtype = np.dtype(port.get_element_type().to_dtype()).name
        return TensorSpec(port.get_any_name(), shape, dtype)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named inputs -> named outputs; shapes and dtypes as in :attr:`input_specs`."""
        feed = prepare_inputs(self.input_specs, inputs, self.graph_path.stem)
        results = self._request.infer(feed)
        return {
            spec.name: np.array(results[port])
            for spec, port in zip(self.output_specs, self.compiled.outputs, strict=True)
        }
