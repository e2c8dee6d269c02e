"""torch backend: runs a ``.pt2`` program written by ``torch.export.save`` (the bundle's ``torch``
format) — the PyTorch reference without the training code. Needs the ``train`` extra (torch).

The program's input and output names come from the file's sidecar ``<graph>.json``
(``{"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}``), written by the exporter beside it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_emotion.errors import BackendError

from .base import TensorSpec, import_runtime, prepare_inputs

logger = logging.getLogger(__name__)


def signature_path(graph_path: Path) -> Path:
    """The sidecar that names a ``.pt2`` program's tensors: ``visual_encoder.pt2`` -> ``visual_encoder.json``."""
    return graph_path.with_suffix(".json")


def read_signature(graph_path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    path = signature_path(graph_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        specs = [
            tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in data[key])
            for key in ("inputs", "outputs")
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"torch: cannot read the tensor names of {graph_path} from {path}: {exc}") from None
    return specs[0], specs[1]


class TorchBackend:
    """One ``torch.export`` program. ``device``: ``cpu`` (default) or ``cuda[:N]``;
    ``threads``: torch's intra-op threads (process-wide, as torch has no per-model setting)."""

    name = "torch"

    def __init__(self, graph_path: str | Path, device: str | None = None, threads: int | None = None):
        self.torch = import_runtime("torch", "torch", "train", "the torch backend")
        self.graph_path = Path(graph_path)
        self.device = device or "cpu"
        self.input_specs, self.output_specs = read_signature(self.graph_path)
        if threads is not None:
            self.torch.set_num_threads(threads)
        self.threads = threads
        try:
            program = self.torch.export.load(str(self.graph_path))
            self.module = program.module().to(self.device)
        except Exception as exc:  # torch raises many kinds for a bad file or device
            raise BackendError(f"torch could not load {self.graph_path} on {self.device}: {exc}") from exc
        logger.debug("torch loaded %s on %s", self.graph_path, self.device)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named inputs -> named outputs; shapes and dtypes as in :attr:`input_specs`."""
        feed = prepare_inputs(self.input_specs, inputs, self.graph_path.stem)
        torch = self.torch
        args = [torch.from_numpy(feed[spec.name]).to(self.device) for spec in self.input_specs]
        with torch.inference_mode():
            result = self.module(*args)
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        return {spec.name: out.detach().cpu().numpy() for spec, out in zip(self.output_specs, outputs, strict=True)}
