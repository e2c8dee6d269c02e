"""Torch -> ONNX: the three graphs of an :class:`~edge_emotion.train.model.EmotionModel`, FP32.

Each graph is exported with the TorchScript exporter (``dynamo=False``: the dynamo exporter fixes
the batch of a batch-1 example and bakes the GRU's length into a Reshape), opset
17, with the tensor names of :mod:`edge_emotion.model.formats` and a dynamic batch axis ``N``; then
simplified with onnxsim when it is installed, its subnormal weights set to zero
(:func:`flush_subnormal_weights`), and checked with ``onnx.checker``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_emotion.config import PresetConfig
from edge_emotion.model.formats import (
    AUDIO_ENCODER,
    FUSION_HEAD,
    GRAPH_INPUTS,
    GRAPH_OUTPUTS,
    GRAPHS,
    VISUAL_ENCODER,
    graph_tensors,
)

from ..train.model import EmotionModel

logger = logging.getLogger(__name__)

OPSET = 17
#: The batch of the traced examples. Not 1, so that no exporter can mistake the batch for a constant.
EXAMPLE_BATCH = 2


def graph_modules(model: EmotionModel) -> dict[str, nn.Module]:
    """The module behind each graph: ``visual`` (ResNet-18), ``audio`` (2-D CNN), ``fusion``."""
    return {VISUAL_ENCODER: model.visual, AUDIO_ENCODER: model.audio, FUSION_HEAD: model.fusion}


def example_inputs(preset: PresetConfig, batch: int = EXAMPLE_BATCH, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Seeded random inputs for each graph, ``{graph: {input name: float32 array}}``, with the
    shapes of :func:`~edge_emotion.model.formats.graph_tensors` and batch ``batch``. The masks are 1/0
    with about a quarter of the steps missing per modality (and never all of them)."""
    rng = np.random.default_rng(seed)
    result: dict[str, dict[str, np.ndarray]] = {}
    for graph, (inputs, _) in graph_tensors(preset).items():
        arrays = {}
        for spec in inputs:
            shape = tuple(batch if d == "N" else d for d in spec.shape)
            if spec.name.endswith("_mask"):
                mask = (rng.random(shape) > 0.25).astype(np.float32)
                mask[:, 0] = 1.0
                arrays[spec.name] = mask
            else:
                arrays[spec.name] = rng.standard_normal(shape).astype(np.float32)
        result[graph] = arrays
    return result


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in eval mode for the duration, then restore its training flag."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def torch_outputs(model: EmotionModel, inputs: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """The PyTorch model's outputs for :func:`example_inputs`-style inputs, ``{graph: {name: array}}``."""
    modules = graph_modules(model)
    device = next(model.parameters()).device
    outputs = {}
    with eval_mode(model), torch.inference_mode():
        for graph, named in inputs.items():
            args = [torch.from_numpy(named[name]).to(device) for name in GRAPH_INPUTS[graph]]
            result = modules[graph](*args)
            outputs[graph] = {GRAPH_OUTPUTS[graph][0]: result.float().cpu().numpy()}
    return outputs


def simplify(path: Path) -> bool:
    """Simplify an ONNX file in place with onnxsim when it is installed; True when it was."""
    import onnx

    try:
        import onnxsim
    except ImportError:
        logger.info("onnxsim is not installed: %s stays unsimplified", path.name)
        return False
    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        logger.warning("onnxsim could not validate the simplified %s; keeping the original", path.name)
        return False
    onnx.save(simplified, str(path))
    return True


def flush_subnormal_weights(proto: Any) -> int:
    """Set the float32 initializers' subnormal values (0 < |w| < 2**-126) to zero, in place; returns
    how many there were. Training leaves some (e.g. batch-norm scales decayed towards zero, folded
    into the convolutions), and CPUs compute with subnormals far more slowly unless the runtime
    flushes them: ONNX Runtime FP32 ran the edge face encoder 2x slower with 17,728 of them (2.5 % of
    its weights), for outputs that did not change in the last bit once they were zero."""
    from onnx import TensorProto, numpy_helper

    flushed = 0
    tiny = np.finfo(np.float32).tiny
    for init in proto.graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        subnormal = (values != 0) & (np.abs(values) < tiny)
        count = int(subnormal.sum())
        if count:
            init.CopyFrom(numpy_helper.from_array(np.where(subnormal, np.float32(0), values), init.name))
            flushed += count
    return flushed


def export_graph(
    module: nn.Module,
    graph: str,
    example: dict[str, np.ndarray],
    path: Path,
    opset: int = OPSET,
    simplified: bool = True,
    metadata: dict[str, str] | None = None,
) -> bool:
    """Export one graph to ``path`` (dynamic batch, the contract's tensor names), simplify it when
    asked and possible, stamp ``metadata`` (and the graph's name) into the file's metadata_props
    as ``edge_emotion.<key>``, and check it. Returns whether it was simplified."""
    import onnx

    device = next(module.parameters()).device
    args = tuple(torch.from_numpy(example[name]).to(device) for name in GRAPH_INPUTS[graph])
    names = GRAPH_INPUTS[graph] + GRAPH_OUTPUTS[graph]
    with eval_mode(module), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and GRU notes
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(GRAPH_INPUTS[graph]),
            output_names=list(GRAPH_OUTPUTS[graph]),
            dynamic_axes={name: {0: "N"} for name in names},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    was_simplified = simplify(path) if simplified else False
    proto = onnx.load(str(path))
    flushed = flush_subnormal_weights(proto)
    if flushed:
        logger.info("%s: %d subnormal weights set to zero", graph, flushed)
    stamp = {"edge_emotion.graph": graph, "edge_emotion.simplified": str(was_simplified).lower()}
    stamp.update({f"edge_emotion.{k}": v for k, v in (metadata or {}).items()})
    onnx.helper.set_model_props(proto, stamp)
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return was_simplified


def export_onnx(
    model: EmotionModel, out_dir: str | Path, opset: int = OPSET, simplified: bool = True
) -> dict[str, Path]:
    """Export the three graphs as ``out_dir/<graph>.onnx`` (FP32, dynamic batch ``N``);
    returns ``{graph: path}``. The model's training flag is left as it was."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = example_inputs(model.preset)
    modules = graph_modules(model)
    stamp = {"preset": model.preset.name, "labels": ",".join(model.preset.labels)}
    paths = {}
    for graph in GRAPHS:
        paths[graph] = out / f"{graph}.onnx"
        export_graph(modules[graph], graph, examples[graph], paths[graph], opset, simplified, stamp)
        logger.info("exported %s (%d bytes)", paths[graph], paths[graph].stat().st_size)
    return paths


def export_onnx_format(
    model: EmotionModel,
    format_key: str,
    onnx_files: dict[str, Path],
    work_dir: Path,
    **options: Any,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The ``onnx`` row's exporter (see :class:`~edge_emotion.model.formats.FormatSpec`): the FP32 graphs
    are the ONNX export itself, so it returns ``onnx_files`` and what describes them."""
    import onnx

    if format_key != "onnx":
        raise ValueError(f"export_onnx_format writes the 'onnx' format, not {format_key!r}")
    opsets, simplified = set(), set()
    for path in onnx_files.values():
        proto = onnx.load(str(path), load_external_data=False)
        opsets.update(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))
        props = {p.key: p.value for p in proto.metadata_props}
        simplified.add(props.get("edge_emotion.simplified") == "true")
    return dict(onnx_files), {"opset": max(opsets), "simplified": all(simplified), "batch_axis": "N"}


__all__ = [
    "OPSET",
    "graph_modules",
    "example_inputs",
    "torch_outputs",
    "export_graph",
    "export_onnx",
    "export_onnx_format",
    "simplify",
    "flush_subnormal_weights",
]
