"""OpenVINO backend: runs ONNX (``.onnx``) and OpenVINO IR (``.xml`` + ``.bin``) graphs on Intel
CPUs, GPUs and NPUs (devices ``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO``, ...).

Precision is never left to the plugin: OpenVINO's CPU plugin otherwise computes FP32 graphs in
bf16 on CPUs with AVX-512 BF16 or AMX (and falls back from f16 to bf16 on CPUs without FP16
arithmetic), so the numbers would depend on the CPU. Every graph is compiled with an explicit
``INFERENCE_PRECISION_HINT`` chosen from the format's precision (:func:`inference_precision_for`),
and the precision the compiled model reports is checked and kept in
:attr:`OpenVinoBackend.inference_precision`.

CPU pinning is off unless asked for (``cpu_pinning``). The CPU plugin's default pins the thread
that runs an inference to a core: with one inference thread, the caller's own thread, to CPU 0.
Every process that uses the SDK then computes on that one core while the others may idle, and an
app's thread is moved there whenever it runs a graph. Two ``edge-emotion run`` processes side by
side on a 2-core CPU took 14.9-15.4 s each pinned and 12.3-13.8 s unpinned (BENCHMARKS.md, §4).

Thread safety: one compiled model serves every thread; each thread gets its own ``InferRequest``
(an infer request holds its input and output tensors, so two threads must never share one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_emotion.errors import BackendError

from .base import TensorSpec, import_runtime, prepare_inputs

logger = logging.getLogger(__name__)

#: Inference precisions this backend asks for, as OpenVINO names them.
INFERENCE_PRECISIONS: tuple[str, ...] = ("f32", "f16", "bf16")
#: The device capability (``OPTIMIZATION_CAPABILITIES``) each precision needs.
_CAPABILITY = {"f32": "FP32", "f16": "FP16", "bf16": "BF16"}
#: Devices that forward properties to the hardware device they pick and cannot report them back.
_VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")


def inference_precision_for(format_precision: str, capabilities: tuple[str, ...] | list[str]) -> str:
    """The inference precision for a format of ``format_precision`` (``"fp32"``, ``"fp16"`` or
    ``"int8"``) on a device with ``capabilities`` (its ``OPTIMIZATION_CAPABILITIES``).

    FP32 formats and INT8 formats (whose unquantized layers are FP32) compute in ``f32``; FP16
    formats in ``f16`` where the device has FP16 arithmetic (GPUs, NPUs, CPUs with AVX-512 FP16 or
    AMX-FP16), else in ``f32`` (the FP16 weights are widened at load time).
    """
    if format_precision in ("fp32", "int8"):
        return "f32"
    if format_precision == "fp16":
        return "f16" if "FP16" in capabilities else "f32"
    raise BackendError(f"openvino: unknown format precision {format_precision!r}; use fp32, fp16 or int8")


def _supported(core, device: str) -> tuple[str, ...]:
    """The property names ``device``'s plugin accepts (empty if it does not list them)."""
    try:
        return tuple(str(name) for name in core.get_property(device, "SUPPORTED_PROPERTIES"))
    except Exception:
        return ()


class OpenVinoBackend:
    """One graph compiled by ``openvino.Core``.

    ``device``: an OpenVINO device name (None: ``CPU``). ``threads``: inference threads (CPU).
    ``batch``: fix the batch axis to this size before compiling (NPUs need static shapes; with
    None the batch stays dynamic, which CPU and GPU accept). ``precision``: the precision of the
    bundle format the graph belongs to (``"fp32"``, ``"fp16"``, ``"int8"``), which chooses the
    inference precision (:func:`inference_precision_for`); ``inference_precision`` (``"f32"``,
    ``"f16"``, ``"bf16"``) overrides that choice explicitly, and is refused on a device that lacks
    it. :attr:`inference_precision` is what the compiled model reports (None on virtual devices
    such as ``AUTO``, which forward the hint to the device they pick but do not report it).
    ``weights_path``: an IR's ``.bin`` (None: the one beside the ``.xml``). ``cpu_pinning``: let the
    CPU plugin pin its inference threads to cores (``ENABLE_CPU_PINNING``; off by default, see the
    module docstring; virtual devices pass it to the CPU plugin); :attr:`cpu_pinning` is what the
    compiled model reports (None where the device has no such property or does not report it).
    """

    name = "openvino"

    def __init__(
        self,
        graph_path: str | Path,
        device: str | None = None,
        threads: int | None = None,
        batch: int | None = None,
        precision: str = "fp32",
        inference_precision: str | None = None,
        weights_path: str | Path | None = None,
        cpu_pinning: bool = False,
    ):
        ov = import_runtime("openvino", "openvino", "openvino", "the openvino backend")
        self.graph_path = Path(graph_path)
        self.device = (device or "CPU").upper()
        core = ov.Core()
        known = core.available_devices
        base = self.device.split(".")[0].split(":")[0]
        virtual = base in _VIRTUAL_DEVICES
        if not virtual and not any(d.split(".")[0] == base for d in known):
            raise BackendError(f"openvino: device {self.device!r} is not available here; available: {', '.join(known)}")
        if threads is not None and threads < 1:
            raise BackendError(f"openvino: threads must be >= 1, got {threads}")
        wanted = self._wanted_precision(core, precision, inference_precision, virtual)
        try:
            # weights_path: an IR's .bin when it is not beside the .xml (a bundle's shared weights)
            model = core.read_model(str(self.graph_path), None if weights_path is None else str(weights_path))
            if batch is not None:
                model.reshape({port.get_any_name(): self._static(port, batch) for port in model.inputs})
            config: dict = {"INFERENCE_PRECISION_HINT": wanted}
            if threads is not None:
                config["INFERENCE_NUM_THREADS"] = threads
            if "CPU" in known and "ENABLE_CPU_PINNING" in _supported(core, "CPU"):
                if base == "CPU":
                    config["ENABLE_CPU_PINNING"] = bool(cpu_pinning)
                elif virtual:  # AUTO, MULTI, HETERO may run the graph on the CPU plugin: tell it
                    config["DEVICE_PROPERTIES"] = {"CPU": {"ENABLE_CPU_PINNING": bool(cpu_pinning)}}
            self.compiled = core.compile_model(model, self.device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with its own messages
            raise BackendError(f"openvino could not load {self.graph_path} on {self.device}: {exc}") from exc
        self.inference_precision = None if virtual else self._compiled_precision()
        if self.inference_precision is not None and self.inference_precision != wanted:
            raise BackendError(
                f"openvino: asked {self.device} for {wanted} inference of {self.graph_path.name}, "
                f"but the plugin chose {self.inference_precision}"
            )
        self.threads = threads
        self.cpu_pinning = self._compiled_pinning() if base == "CPU" else None
        self.input_specs = tuple(self._spec(port) for port in self.compiled.inputs)
        self.output_specs = tuple(self._spec(port) for port in self.compiled.outputs)
        self._local = threading.local()  # .request: this thread's InferRequest
        logger.debug("openvino compiled %s on %s (%s)", self.graph_path, self.device, self.inference_precision)

    def _wanted_precision(self, core, precision: str, explicit: str | None, virtual: bool) -> str:
        """The ``INFERENCE_PRECISION_HINT`` to compile with (see the class docstring)."""
        devices = [d for d in core.available_devices] if virtual else [self.device]
        capabilities: set[str] = set()
        for device in devices:  # a virtual device may pick any of them: only what all of them offer
            try:
                caps = set(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
            except Exception:  # a device that does not report capabilities
                caps = set()
            capabilities = caps if not capabilities else capabilities & caps
        if explicit is None:
            return inference_precision_for(precision, tuple(capabilities))
        if explicit not in INFERENCE_PRECISIONS:
            raise BackendError(
                f"openvino: unknown inference precision {explicit!r}; use {', '.join(INFERENCE_PRECISIONS)}"
            )
        if _CAPABILITY[explicit] not in capabilities:
            raise BackendError(
                f"openvino: {self.device} cannot compute in {explicit} (it offers: {', '.join(sorted(capabilities))})"
            )
        return explicit

    def _compiled_pinning(self) -> bool | None:
        """Whether the compiled model pins its inference threads (None: it does not say)."""
        try:
            return bool(self.compiled.get_property("ENABLE_CPU_PINNING"))
        except Exception:  # an OpenVINO without the property
            return None

    def _compiled_precision(self) -> str | None:
        """The inference precision the compiled model reports (``"f32"``, ``"f16"``, ``"bf16"``)."""
        try:
            value = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        except Exception:  # a plugin without the property (e.g. an NPU driver)
            return None
        return getattr(value, "to_string", lambda: str(value))()

    @staticmethod
    def _static(port, batch: int) -> list[int]:
        shape = port.get_partial_shape()
        return [batch] + [d.get_length() for d in list(shape)[1:]]

    @staticmethod
    def _spec(port) -> TensorSpec:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        dtype = np.dtype(port.get_element_type().to_dtype()).name
        return TensorSpec(port.get_any_name(), shape, dtype)

    def _request(self):
        """This thread's ``InferRequest``, created on its first call."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named inputs -> named outputs; shapes and dtypes as in :attr:`input_specs`. Safe to call
        from several threads at once."""
        feed = prepare_inputs(self.input_specs, inputs, self.graph_path.stem)
        results = self._request().infer(feed)
        return {
            spec.name: np.array(results[port])
            for spec, port in zip(self.output_specs, self.compiled.outputs, strict=True)
        }
