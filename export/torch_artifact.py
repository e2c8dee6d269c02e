"""Torch -> ``.pt2``: the three graphs as ``torch.export`` programs, for the torch backend.

A ``.pt2`` file holds the traced graph and its weights, so ``torch.export.load`` runs it without
the training code (``train/``). Beside each program, ``<graph>.json`` names its tensors (a
``.pt2`` program only knows positional arguments); the torch backend reads it.

Every written program is checked with the torch backend's archive inspection
(``runtimes/torch_backend.py``: plain tensors only, nothing stored as a pickle), so the SDK can load
what the exporter writes without unpickling anything.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from edge_emotion.runtimes.torch_backend import inspect_pt2

from edge_emotion.model.formats import GRAPH_INPUTS, GRAPHS, graph_tensors

from ..train.model import EmotionModel
from .onnx_export import EXAMPLE_BATCH, eval_mode, example_inputs, graph_modules

logger = logging.getLogger(__name__)

#: The largest batch the programs accept (torch.export needs a bound for the dynamic axis).
MAX_BATCH = 4096


def _signature(preset, graph: str) -> dict[str, list[dict[str, Any]]]:
    inputs, outputs = graph_tensors(preset)[graph]

    def row(t):
        return {"name": t.name, "shape": [None if d == "N" else d for d in t.shape], "dtype": t.dtype}

    return {"inputs": [row(t) for t in inputs], "outputs": [row(t) for t in outputs]}


def export_torch_programs(model: EmotionModel, out_dir: str | Path) -> dict[str, Path]:
    """Write ``out_dir/<graph>.pt2`` (dynamic batch 1..MAX_BATCH) and ``out_dir/<graph>.json``;
    returns ``{graph: .pt2 path}``. The model's training flag is left as it was."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = example_inputs(model.preset, batch=EXAMPLE_BATCH)
    modules = graph_modules(model)
    device = next(model.parameters()).device
    batch = torch.export.Dim("N", min=1, max=MAX_BATCH)
    paths = {}
    for graph in GRAPHS:
        args = tuple(torch.from_numpy(examples[graph][name]).to(device) for name in GRAPH_INPUTS[graph])
        with eval_mode(modules[graph]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(modules[graph], args, dynamic_shapes=tuple({0: batch} for _ in args))
        paths[graph] = out / f"{graph}.pt2"
        torch.export.save(program, str(paths[graph]))
        inspect_pt2(paths[graph].read_bytes(), paths[graph])  # a tensor stored as a pickle fails here
        (out / f"{graph}.json").write_text(json.dumps(_signature(model.preset, graph), indent=2), encoding="utf-8")
        logger.info("exported %s (%d bytes)", paths[graph], paths[graph].stat().st_size)
    return paths


def export_torch_format(
    model: EmotionModel,
    format_key: str,
    onnx_files: dict[str, Path],
    work_dir: Path,
    **options: Any,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The ``torch`` row's exporter (see :class:`~edge_emotion.model.formats.FormatSpec`)."""
    if format_key != "torch":
        raise ValueError(f"export_torch_format writes the 'torch' format, not {format_key!r}")
    files = export_torch_programs(model, work_dir)
    return files, {"program": "torch.export", "max_batch": MAX_BATCH}


__all__ = ["MAX_BATCH", "export_torch_programs", "export_torch_format"]
