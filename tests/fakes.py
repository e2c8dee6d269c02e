"""Small real bundles for tests that need a model but not a trained one.

Two kinds, both written through the real bundle writer (:mod:`edge_emotion.export.bundle_writer`),
so that the SDK loads and verifies them as it would a shipped bundle:

- ``make_onnx_bundle(tmp_path)``: three small ONNX graphs built with the ``onnx`` helper API (no
  torch): the graph contract of :mod:`edge_emotion.model.formats` (tensor names, dynamic batch ``N``,
  shapes from the preset) with seeded random weights. Each output depends on its inputs (pooled face
  pixels, pooled log-mel frames, masked means over the window's steps), so different input gives
  different scores. For SDK plumbing: sources, stream, recognizer, live session, command line.
  Needs only ``onnx``.
- ``make_bundle(tmp_path)``: a freshly initialised, seeded PyTorch model exported as the export
  tests and parity tests need it. Needs torch and onnx (the ``train`` and ``export`` extras).

Each bundle is built once per process and copied afterwards (a copy takes milliseconds, an export of
the edge preset a few seconds), so tests may alter their copy freely.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_CACHE: dict[tuple, Path] = {}
_CACHE_ROOT: list[Path] = []


def fresh_model(preset: str = "edge", seed: int = 0, randomize_norms: bool = True):
    """A seeded, freshly initialised ``EmotionModel`` in eval mode.

    ``randomize_norms``: give every BatchNorm/LayerNorm random affine parameters and running
    statistics. A fresh ResNet zero-initialises each residual branch's last BN (every block starts
    as the identity), which would let a broken branch pass a parity test; random norms make every
    layer count, as in a trained model.
    """
    import torch
    from edge_emotion.train.model import build_model
    from torch import nn

    torch.manual_seed(seed)
    model = build_model(preset)
    if randomize_norms:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
                    n = module.weight.shape
                    module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                    module.bias.copy_(0.2 * torch.randn(n, generator=generator))
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                    module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model.eval()


def _cache_root() -> Path:
    if not _CACHE_ROOT:
        root = Path(tempfile.mkdtemp(prefix="edge-emotion-fake-bundles-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _CACHE_ROOT.append(root)
    return _CACHE_ROOT[0]


def random_inputs(preset, batch: int = 2, seed: int = 0) -> dict:
    """Seeded random inputs for each graph of ``preset`` (a :class:`~edge_emotion.config.PresetConfig`),
    ``{graph: {input name: float32 array}}`` with the shapes of
    :func:`edge_emotion.model.formats.graph_tensors` and batch ``batch``: standard normal values, and
    masks of 1/0 with about a quarter of the steps missing (never the first). No torch."""
    import numpy as np

    from edge_emotion.model.formats import graph_tensors

    rng = np.random.default_rng(seed)
    result = {}
    for graph, (inputs, _) in graph_tensors(preset).items():
        arrays = {}
        for spec in inputs:
            shape = tuple(batch if d == "N" else d for d in spec.shape)
            if spec.name.endswith("_mask"):
                arrays[spec.name] = (rng.random(shape) > 0.25).astype(np.float32)
                arrays[spec.name][:, 0] = 1.0
            else:
                arrays[spec.name] = rng.standard_normal(shape).astype(np.float32)
        result[graph] = arrays
    return result


def _onnx_graphs(preset, seed: int) -> dict:
    """The three graphs of :func:`make_onnx_bundle` as ``onnx.ModelProto`` (opset 17), ``{graph: model}``.

    - ``visual_encoder``: ``face`` ``(N, 3, S, S)`` -> average-pooled to ``(N, 3, 8, 8)``, flattened,
      ``tanh(x @ W + b)`` -> ``embedding`` ``(N, D_v)``;
    - ``audio_encoder``: ``log_mel`` ``(N, 1, n_mels, n_frames)`` -> frames average-pooled to ``T_a``
      steps, ``tanh(x @ W + b)`` per step -> ``audio_steps`` ``(N, T_a, D_a)``;
    - ``fusion_head``: each modality's mean over its masked-in steps (zero when none),
      concatenated with the two mask fractions, ``@ W + b`` -> ``logits`` ``(N, C)``.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge_emotion.model.formats import AUDIO_ENCODER, FUSION_HEAD, GRAPH_INPUTS, GRAPH_OUTPUTS, VISUAL_ENCODER

    rng = np.random.default_rng(seed)
    size, n_mels, n_frames = preset.visual.crop_size, preset.audio.n_mels, preset.audio.n_frames
    d_v, d_a, t, t_a = preset.model.visual_dim, preset.model.audio_dim, preset.model.time_steps, preset.audio_steps
    n_labels = len(preset.labels)
    if size % 8 or n_frames % t_a:
        raise ValueError(f"the fake graphs need crop_size % 8 == 0 and n_frames % T_a == 0 ({preset.name})")

    def weights(name: str, *shape: int, scale: float) -> onnx.TensorProto:
        return numpy_helper.from_array((scale * rng.standard_normal(shape)).astype(np.float32), name)

    def ints(name: str, values) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(values, np.int64), name)

    def tensor(name: str, *shape) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])

    def model(graph_key: str, nodes, inputs, outputs, initializers) -> onnx.ModelProto:
        assert [v.name for v in inputs] == list(GRAPH_INPUTS[graph_key])
        assert [v.name for v in outputs] == list(GRAPH_OUTPUTS[graph_key])
        graph = helper.make_graph(nodes, f"fake_{graph_key}", inputs, outputs, initializers)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests/fakes.py")
        proto.ir_version = 8  # readable by every onnxruntime the SDK supports
        onnx.checker.check_model(proto, full_check=True)
        return proto

    kernel = size // 8
    visual = model(
        VISUAL_ENCODER,
        [
            helper.make_node("AveragePool", ["face"], ["pooled"], kernel_shape=[kernel] * 2, strides=[kernel] * 2),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "w", "b"], ["pre"]),
            helper.make_node("Tanh", ["pre"], ["embedding"]),
        ],
        [tensor("face", 3, size, size)],
        [tensor("embedding", d_v)],
        [weights("w", 3 * 64, d_v, scale=2.0 / np.sqrt(3 * 64)), weights("b", d_v, scale=0.1)],
    )
    per_step = n_frames // t_a
    audio = model(
        AUDIO_ENCODER,
        [
            helper.make_node("Squeeze", ["log_mel", "axis1"], ["mel"]),  # (N, n_mels, n_frames)
            helper.make_node("AveragePool", ["mel"], ["pooled"], kernel_shape=[per_step], strides=[per_step]),
            helper.make_node("Transpose", ["pooled"], ["steps"], perm=[0, 2, 1]),  # (N, T_a, n_mels)
            helper.make_node("MatMul", ["steps", "w"], ["projected"]),
            helper.make_node("Add", ["projected", "b"], ["pre"]),
            helper.make_node("Tanh", ["pre"], ["audio_steps"]),
        ],
        [tensor("log_mel", 1, n_mels, n_frames)],
        [tensor("audio_steps", t_a, d_a)],
        [ints("axis1", [1]), weights("w", n_mels, d_a, scale=1.0 / np.sqrt(n_mels)), weights("b", d_a, scale=0.1)],
    )

    def masked_mean(x: str, mask: str) -> list:
        """``x`` ``(N, T, D)``, ``mask`` ``(N, T)`` -> ``{x}_mean`` ``(N, D)`` and ``{mask}_frac`` ``(N, 1)``."""
        return [
            helper.make_node("Unsqueeze", [mask, "axis2"], [f"{mask}_3d"]),
            helper.make_node("Mul", [x, f"{mask}_3d"], [f"{x}_masked"]),
            helper.make_node("ReduceSum", [f"{x}_masked", "axis1"], [f"{x}_sum"], keepdims=0),
            helper.make_node("ReduceSum", [mask, "axis1"], [f"{mask}_count"], keepdims=1),
            helper.make_node("Max", [f"{mask}_count", "one"], [f"{mask}_denominator"]),
            helper.make_node("Div", [f"{x}_sum", f"{mask}_denominator"], [f"{x}_mean"]),
            helper.make_node("Div", [f"{mask}_count", "steps"], [f"{mask}_frac"]),
        ]

    fusion = model(
        FUSION_HEAD,
        [
            *masked_mean("audio", "audio_mask"),
            *masked_mean("visual", "visual_mask"),
            helper.make_node(
                "Concat", ["audio_mean", "visual_mean", "audio_mask_frac", "visual_mask_frac"], ["joint"], axis=1
            ),
            helper.make_node("Gemm", ["joint", "w", "b"], ["logits"]),
        ],
        [tensor("audio", t, d_a), tensor("visual", t, d_v), tensor("audio_mask", t), tensor("visual_mask", t)],
        [tensor("logits", n_labels)],
        [
            ints("axis1", [1]),
            ints("axis2", [2]),
            numpy_helper.from_array(np.ones(1, np.float32), "one"),
            numpy_helper.from_array(np.full(1, t, np.float32), "steps"),
            weights("w", d_a + d_v + 2, n_labels, scale=3.0 / np.sqrt(d_a + d_v)),
            weights("b", n_labels, scale=0.1),
        ],
    )
    return {VISUAL_ENCODER: visual, AUDIO_ENCODER: audio, FUSION_HEAD: fusion}


def make_onnx_bundle(tmp_path: str | Path, preset: str = "edge", seed: int = 0) -> Path:
    """A bundle with one format, ``onnx``, of the small graphs of :func:`_onnx_graphs` (no torch),
    at ``tmp_path/onnx-bundle-<preset>-<seed>``. Returns the bundle directory, which the caller owns."""
    key = ("onnx-helper", preset, seed)
    if key not in _CACHE or not (_CACHE[key] / "manifest.json").is_file():
        import onnx
        from edge_emotion.export.bundle_writer import add_format, create_bundle

        from edge_emotion.config import get_preset

        config = get_preset(preset)
        target = _cache_root() / f"onnx-helper-{preset}-{seed}"
        provenance = {
            "training_data": f"none: small graphs with seeded random weights (seed {seed}), for tests",
            "split_protocol": None,
            "metrics": {},
            "command": "tests/fakes.py make_onnx_bundle",
        }
        create_bundle(target, config, provenance, name=f"fake-onnx-{preset}-{seed}", overwrite=True)
        work = target.parent / f"{target.name}-graphs"
        work.mkdir(exist_ok=True)
        files = {}
        for graph, proto in _onnx_graphs(config, seed).items():
            files[graph] = work / f"{graph}.onnx"
            onnx.save(proto, files[graph])
        add_format(target, "onnx", files, {"opset": 17})
        _CACHE[key] = target
    out = Path(tmp_path) / f"onnx-bundle-{preset}-{seed}"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(_CACHE[key], out)
    return out


def make_bundle(
    tmp_path: str | Path, preset: str = "edge", seed: int = 0, formats: tuple[str, ...] = ("onnx",)
) -> Path:
    """A real bundle of a fresh model (:func:`fresh_model`) at ``tmp_path/bundle-<preset>-<seed>-<formats>``,
    with ``formats`` (keys of :data:`edge_emotion.model.formats.FORMATS`; ``("onnx", "torch")`` adds the
    torch reference). Returns the bundle directory, which the caller owns."""
    key = (preset, seed, tuple(formats))
    if key not in _CACHE or not (_CACHE[key] / "manifest.json").is_file():
        from edge_emotion.export.bundle_writer import write_bundle

        provenance = {
            "training_data": f"none: freshly initialised weights (seed {seed}), for tests",
            "split_protocol": None,
            "metrics": {},
            "command": "tests/fakes.py make_bundle",
        }
        target = _cache_root() / f"{preset}-{seed}-{'+'.join(formats)}"
        _CACHE[key] = write_bundle(
            fresh_model(preset, seed), target, provenance, formats=formats, name=f"fake-{preset}-{seed}", overwrite=True
        )
    out = Path(tmp_path) / f"bundle-{preset}-{seed}-{'+'.join(formats)}"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(_CACHE[key], out)
    return out


__all__ = ["fresh_model", "make_bundle", "make_onnx_bundle", "random_inputs"]
