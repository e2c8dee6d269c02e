"""A bundle's three graphs loaded on one runtime: the SDK's only way to run the model.

>>> model = BundleModel.from_bundle("bundles/edge", backend="auto", threads=2)
>>> logits = model.fuse(audio, visual, audio_mask, visual_mask)

``backend="auto"`` walks :data:`edge_emotion.model.formats.AUTO_ORDER` and takes the first format the
bundle carries whose runtime is installed and loads: TensorRT INT8, TensorRT FP16, OpenVINO INT8,
ONNX Runtime INT8, OpenVINO FP32, OpenVINO FP16, ONNX Runtime FP32, OpenVINO on the FP32 ONNX,
torch. INT8 comes before FP32 when present (about 2x faster on CPUs; BENCHMARKS.md). Formats
whose export parity failed its bounds (:meth:`Bundle.failed_validation`, what ``bench`` reports as
"exported but failed validation") are tried only after every format that passed. A named backend
runs the best format it can read (:meth:`Bundle.best_format`, same preference), or ``format`` when
given.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import PresetConfig
from ..errors import BackendError, BundleError
from .bundle import Bundle
from .formats import AUDIO_ENCODER, AUTO_ORDER, FUSION_HEAD, GRAPHS, VISUAL_ENCODER, get_format, graph_tensors

logger = logging.getLogger(__name__)


def _candidates(bundle: Bundle, backend: str, format_key: str | None) -> list[tuple[str, str]]:
    """The (format, runtime) pairs to try, best first."""
    from ..runtimes import BACKENDS

    if format_key is not None and format_key not in bundle.formats:
        raise BackendError(f"bundle {bundle.root} has no format {format_key!r}; it has: {', '.join(bundle.formats)}")
    if backend == "auto":  # runtimes are checked lazily by the caller: importing one costs time
        pairs = [(key, runtime) for key, runtime in AUTO_ORDER if key in bundle.formats and format_key in (None, key)]
        # a format whose export parity failed its bounds is only a fallback (AUTO_ORDER kept within each group)
        return sorted(pairs, key=lambda pair: bundle.failed_validation(pair[0]))
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}")
    if format_key is not None:
        if backend not in get_format(format_key).runtimes:
            raise BackendError(f"backend {backend!r} cannot run format {format_key!r}")
        return [(format_key, backend)]
    best = bundle.best_format(backend)
    if best is None:
        raise BackendError(
            f"bundle {bundle.root} has no format that {backend} runs (it has: {', '.join(bundle.formats)})"
        )
    return [(best, backend)]


def check_graph_contract(bundle: Bundle, format_key: str, backends: dict) -> None:
    """Refuse graphs whose tensors do not fit the manifest's preset: each graph's input and output
    names, and every fixed axis (e.g. the fusion head's ``logits`` ``(N, C)`` against the
    ``C`` labels). Raises :class:`BundleError` naming the graph and tensor."""
    for graph, (inputs, outputs) in graph_tensors(bundle.preset).items():
        backend = backends[graph]
        for kind, wanted, specs in (("input", inputs, backend.input_specs), ("output", outputs, backend.output_specs)):
            have = {spec.name: spec for spec in specs}
            if sorted(have) != sorted(t.name for t in wanted):
                raise BundleError(
                    f"bundle {bundle.root}: format {format_key}'s {graph} has {kind}s {sorted(have)}; "
                    f"edge-emotion's {graph} has {sorted(t.name for t in wanted)}"
                )
            for tensor in wanted:
                got = have[tensor.name].shape
                fixed = tuple(None if d == "N" else d for d in tensor.shape)
                if len(got) != len(fixed) or any(g is not None and g != f for g, f in zip(got, fixed, strict=True)):
                    what = " (one per label in the manifest)" if tensor.name == "logits" else ""
                    raise BundleError(
                        f"bundle {bundle.root}: format {format_key}'s {graph} {kind} {tensor.name!r} has shape "
                        f"{tuple('N' if d is None else d for d in got)}, the manifest's preset needs "
                        f"{tuple(tensor.shape)}{what}"
                    )


class BundleModel:
    """The visual encoder, audio encoder and fusion head of one bundle format on one runtime.
    Build it with :meth:`from_bundle`."""

    def __init__(self, bundle: Bundle, format_key: str, backend_name: str, backends: dict):
        self.bundle = bundle
        self.format_key = format_key
        self.backend_name = backend_name
        self.backends = backends  # graph name -> runtimes.Backend

    @classmethod
    def from_bundle(
        cls,
        bundle_or_path: Bundle | str | Path,
        backend: str = "auto",
        device: str | None = None,
        threads: int | None = None,
        format: str | None = None,  # noqa: A002 - the format key, as on the command line
        trust_code: bool = False,
    ) -> BundleModel:
        """Load (and verify) a bundle and its graphs. ``backend``: ``auto`` or a runtime name;
        ``device``: as that runtime names it (None: its default); ``threads``: intra-op threads
        (onnxruntime, openvino, torch); ``format``: force one of the bundle's format keys.
        ``trust_code``: the bundle comes from a source you trust to run code on this machine, which
        the ``torch`` format needs (a ``.pt2`` program carries Python); without it ``auto`` skips
        that format and ``backend="torch"`` refuses it. The graphs' tensors are checked against
        the manifest's preset (:func:`check_graph_contract`) before anything runs."""
        from ..runtimes import available_backends, format_options, is_available, load_backend

        bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else Bundle.load(bundle_or_path)
        options = {} if threads is None else {"threads": threads}
        failures = []
        for key, runtime in _candidates(bundle, backend, format):
            if backend == "auto" and not is_available(runtime):
                continue
            if backend == "auto" and runtime == "torch" and not trust_code:
                logger.info("auto: skipping the torch format of %s (it carries code: trust_code=True)", bundle.root)
                failures.append(f"{key} on {runtime}: not run, a .pt2 program carries code (trust_code=True runs it)")
                continue
            runtime_options = {} if runtime == "tensorrt" else dict(options)  # engines fix their own threading
            runtime_options.update(format_options(runtime, get_format(key).precision))  # never a plugin default
            if runtime == "torch":
                runtime_options["trusted"] = trust_code
            try:
                backends = {
                    g: load_backend(
                        runtime,
                        bundle.graph_path(key, g),
                        device=device,
                        **runtime_options,
                        **bundle.load_options(key, g, runtime),
                    )
                    for g in GRAPHS
                }
            except BackendError as exc:
                if backend != "auto":
                    raise
                logger.warning("auto: %s on %s failed (%s); trying the next", key, runtime, exc)
                failures.append(f"{key} on {runtime}: {exc}")
                continue
            check_graph_contract(bundle, key, backends)
            logger.info("bundle %s: running format %s on %s", bundle.name, key, runtime)
            return cls(bundle, key, runtime, backends)
        if failures:
            raise BackendError(f"no runtime could load bundle {bundle.root}: " + "; ".join(failures))
        installed = list(available_backends())
        raise BackendError(
            f"no installed runtime can run bundle {bundle.root} (formats: {', '.join(bundle.formats)}; "
            f"installed runtimes: {', '.join(installed) or 'none'})"
        )

    @property
    def preset(self) -> PresetConfig:
        return self.bundle.preset

    @property
    def labels(self) -> tuple[str, ...]:
        return self.bundle.labels

    @property
    def precision(self) -> str:
        return get_format(self.format_key).precision

    @property
    def device(self) -> str:
        return self._graph(VISUAL_ENCODER).device

    def _graph(self, name: str):
        if not self.backends:
            raise BackendError(f"bundle {self.bundle.name}: the model was closed")
        return self.backends[name]

    @property
    def inference_precision(self) -> str | None:
        """The arithmetic precision the runtime reports for the graphs (``"f32"``, ``"f16"``,
        ``"bf16"``; several joined by ``/`` when the graphs differ), or None when it reports none
        (ONNX Runtime, TensorRT and torch compute in the precision stored in the graph files)."""
        found = [getattr(b, "inference_precision", None) for b in self.backends.values()]
        found = list(dict.fromkeys(p for p in found if p is not None))
        return "/".join(found) or None

    def encode_faces(self, faces: np.ndarray) -> np.ndarray:
        """``faces`` ``(N, 3, S, S) float32`` normalised crops -> embeddings ``(N, D_v) float32``."""
        return self._graph(VISUAL_ENCODER).run({"face": faces})["embedding"]

    def encode_audio(self, log_mel: np.ndarray) -> np.ndarray:
        """``log_mel`` ``(N, 1, n_mels, n_frames) float32`` normalised -> ``(N, T_a, D_a) float32``."""
        return self._graph(AUDIO_ENCODER).run({"log_mel": log_mel})["audio_steps"]

    def fuse(
        self, audio: np.ndarray, visual: np.ndarray, audio_mask: np.ndarray, visual_mask: np.ndarray
    ) -> np.ndarray:
        """Aligned ``audio`` ``(N, T, D_a)``, ``visual`` ``(N, T, D_v)`` and their masks ``(N, T)``
        (float32 1/0) -> logits ``(N, C) float32``."""
        inputs = {"audio": audio, "visual": visual, "audio_mask": audio_mask, "visual_mask": visual_mask}
        return self._graph(FUSION_HEAD).run(inputs)["logits"]

    def close(self) -> None:
        """Drop the runtime sessions (their memory is freed once nothing else holds them)."""
        for backend in self.backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()
        self.backends = {}

    def __repr__(self) -> str:
        device = self.device if self.backends else "closed"
        return (
            f"BundleModel({self.bundle.name!r}, format={self.format_key!r}, backend={self.backend_name!r}, "
            f"device={device!r})"
        )


__all__ = ["BundleModel", "check_graph_contract"]
