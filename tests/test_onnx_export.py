"""The FP32 ONNX export of the three graphs (each graph, run in ONNX Runtime, matches
PyTorch within 1e-4) and the graph contract of edge_emotion.model.formats."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the ONNX export needs torch (the 'export' extra)")
onnx = pytest.importorskip("onnx", reason="the ONNX export needs onnx (the 'export' extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is part of the base install")

from edge_emotion.export.onnx_export import OPSET, example_inputs, export_onnx, torch_outputs  # noqa: E402
from fakes import fresh_model  # noqa: E402

from edge_emotion.model.formats import GRAPH_INPUTS, GRAPH_OUTPUTS, GRAPHS, graph_tensors  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=["edge", pytest.param("paper", marks=pytest.mark.slow)])
def exported(request, tmp_path_factory):
    """(preset name, model, {graph: .onnx path}) for a seeded model with random norm statistics."""
    model = fresh_model(request.param, seed=3)
    paths = export_onnx(model, tmp_path_factory.mktemp(f"onnx-{request.param}"))
    return request.param, model, paths


def _run(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


@pytest.mark.parametrize("graph", GRAPHS)
def test_graph_matches_pytorch(exported, graph):
    """Each exported graph in ONNX Runtime matches PyTorch within 1e-4 (batch 3)."""
    _, model, paths = exported
    inputs = example_inputs(model.preset, batch=3, seed=11)
    want = torch_outputs(model, inputs)[graph][GRAPH_OUTPUTS[graph][0]]
    got = _run(paths[graph], inputs[graph])
    assert got.shape == want.shape
    assert np.abs(got - want).max() < TOLERANCE
    assert np.abs(want).max() > 1e-3, "the reference output is ~0: the comparison would prove nothing"


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("graph", GRAPHS)
def test_dynamic_batch(exported, graph, batch):
    _, model, paths = exported
    inputs = example_inputs(model.preset, batch=batch, seed=batch)
    want = torch_outputs(model, inputs)[graph][GRAPH_OUTPUTS[graph][0]]
    got = _run(paths[graph], inputs[graph])
    assert got.shape[0] == batch
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("graph", GRAPHS)
def test_graph_contract(exported, graph):
    """Tensor names, float32, a symbolic batch axis and fixed other axes, opset >= 17, checker-clean."""
    name, model, paths = exported
    proto = onnx.load(str(paths[graph]))
    onnx.checker.check_model(proto, full_check=True)
    assert max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= OPSET
    inputs, outputs = graph_tensors(model.preset)[graph]
    for value, spec in zip(list(proto.graph.input) + list(proto.graph.output), inputs + outputs, strict=True):
        assert value.name == spec.name
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "N" and not dims[0].HasField("dim_value")
        assert [d.dim_value for d in dims[1:]] == list(spec.shape[1:])
    assert [i.name for i in proto.graph.input] == list(GRAPH_INPUTS[graph])
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["edge_emotion.graph"] == graph and props["edge_emotion.preset"] == name


def test_export_keeps_training_flag(tmp_path):
    model = fresh_model("edge").train()
    export_onnx(model, tmp_path)
    assert model.training and model.fusion.training


def test_export_runs_in_eval_mode(tmp_path):
    """A model left in training mode exports its eval behaviour (dropout off, BN running stats)."""
    model = fresh_model("edge", seed=5).train()
    paths = export_onnx(model, tmp_path)
    inputs = example_inputs(model.preset, batch=2, seed=0)
    want = torch_outputs(model, inputs)[GRAPHS[2]]["logits"]  # torch_outputs runs in eval mode
    np.testing.assert_allclose(_run(paths[GRAPHS[2]], inputs[GRAPHS[2]]), want, atol=TOLERANCE, rtol=0)


def test_subnormal_weights_are_exported_as_zero_and_change_nothing(tmp_path):
    """Training can leave weights below float32's normal range (e.g. a batch-norm scale decayed
    towards zero, folded into its convolution); CPUs compute with them slowly, so the export sets
    them to zero."""
    from onnx import numpy_helper

    from edge_emotion.model.formats import VISUAL_ENCODER

    model = fresh_model("edge", seed=7)
    with torch.no_grad():
        conv = model.visual.layer2[0].conv1.weight
        conv.view(-1)[::3] = 1e-39  # subnormal in float32
        model.visual.layer3[1].bn2.weight.fill_(1e-40)  # folded into its convolution: subnormal too
    paths = export_onnx(model, tmp_path)
    weights = [numpy_helper.to_array(i) for i in onnx.load(str(paths[VISUAL_ENCODER])).graph.initializer]
    tiny = np.finfo(np.float32).tiny
    assert not any(((w != 0) & (np.abs(w) < tiny)).any() for w in weights if w.dtype == np.float32)
    inputs = example_inputs(model.preset, batch=2, seed=0)
    want = torch_outputs(model, inputs)[VISUAL_ENCODER]
    got = _run(paths[VISUAL_ENCODER], inputs[VISUAL_ENCODER])
    np.testing.assert_allclose(got, next(iter(want.values())), atol=TOLERANCE, rtol=0)
