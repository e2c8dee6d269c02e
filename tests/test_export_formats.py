"""Export -> Bundle.load -> run through the runtime backend -> compare with PyTorch, for every row of
the format table this machine can produce, on real preprocessed windows (RAVDESS speech, FER2013
faces). The model is the ``edge`` preset with seeded weights whose BatchNorm statistics are
re-estimated on the same real data, so activations have a trained model's ranges.

Tolerances per precision (relative L2 error ``|got - ref| / |ref|`` of each output, and labels of the
whole pipeline against the FP32 PyTorch model):

- fp32: 1e-4, labels 100 %;
- fp16 (OpenVINO IR with FP16 weights): 1e-2, labels >= 95 %;
- int8: encoders 0.25, labels >= 75 %. An untrained model's logits lie close together, so a small
  error flips labels that a trained model keeps (the >= 97 % target is measured by ``bench`` on
  the trained bundle); the fusion head stays FP32 in every INT8 format (1e-4).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need the 'export' extra (torch)")
pytest.importorskip("onnx", reason="export tests need the 'export' extra (onnx)")

from edge_emotion.export.calibration import label_name, load_calibration  # noqa: E402
from edge_emotion.export.exporter import export_model, select_formats  # noqa: E402
from edge_emotion.export.onnx_export import torch_outputs  # noqa: E402
from edge_emotion.runtimes import is_available  # noqa: E402
from edge_emotion.train.model import build_model  # noqa: E402

from edge_emotion.bench.machine import cpu_features  # noqa: E402
from edge_emotion.errors import InputError, MissingDependencyError  # noqa: E402
from edge_emotion.frontend.align import align_encoded  # noqa: E402
from edge_emotion.model.bundle import Bundle  # noqa: E402
from edge_emotion.model.engine import BundleModel  # noqa: E402
from edge_emotion.model.formats import AUDIO_ENCODER, FORMATS, FUSION_HEAD, GRAPHS, VISUAL_ENCODER  # noqa: E402

TOLERANCE = {"fp32": (1e-4, 1.0), "fp16": (1e-2, 0.95), "int8": (0.25, 0.75)}


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - want) / np.linalg.norm(want))


N_AUDIO = 12
N_FACES = 12


def make_calib_dir(shared: Path, out: Path, n_audio: int = N_AUDIO, n_faces: int = N_FACES) -> Path:
    """Real speech (RAVDESS flac, spread over actors and emotions) and a small zip of FER2013
    faces (spread over the emotion folders), as a user's ``--calib`` folder would hold them."""
    out.mkdir(parents=True, exist_ok=True)
    speech = sorted((shared / "ravdess" / "audio16k").rglob("*.flac"))
    for i in np.linspace(0, len(speech) - 1, n_audio).round().astype(int):
        (out / speech[i].name).write_bytes(speech[i].read_bytes())
    with zipfile.ZipFile(shared / "fer2013" / "public_test.zip") as src:
        names = sorted(n for n in src.namelist() if n.endswith(".jpg"))
        picks = [names[i] for i in np.linspace(0, len(names) - 1, n_faces).round().astype(int)]
        with zipfile.ZipFile(out / "faces.zip", "w") as dst:
            for name in picks:
                dst.writestr(name, src.read(name))
    return out


def calibrated_model(calibration):
    """``build_model("edge")``, seeded, with BatchNorm statistics re-estimated on real windows."""
    torch.manual_seed(0)
    model = build_model("edge")
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model.visual(torch.from_numpy(calibration.faces))
            model.audio(torch.from_numpy(calibration.log_mel))
    return model.eval()


@pytest.fixture(scope="module")
def calib_dir(shared_data, tmp_path_factory) -> Path:
    return make_calib_dir(shared_data, tmp_path_factory.mktemp("calib"))


@pytest.fixture(scope="module")
def calibration(calib_dir):
    return load_calibration(calib_dir, build_model("edge").preset)


@pytest.fixture(scope="module")
def model(calibration):
    return calibrated_model(calibration)


def _local_keys() -> list[str]:
    return [k for k, spec in FORMATS.items() if spec.exportable_here and k != "torch"]


@pytest.fixture(scope="module")
def bundle_dir(model, calibration, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "edge"
    return export_model(model, out, _local_keys(), calibration=calibration, eval_set=calibration)


def test_calibration_reads_real_speech_and_faces_with_labels(calibration):
    assert calibration.log_mel.shape == (N_AUDIO, 1, 128, 128)
    assert calibration.faces.shape == (N_FACES, 3, 64, 64)
    assert np.isfinite(calibration.log_mel).all() and np.isfinite(calibration.faces).all()
    assert calibration.speech.shape == (N_AUDIO, 30) and calibration.speech.any()
    assert (calibration.audio_labels >= 0).all()  # RAVDESS names every emotion of the edge labels
    # FER2013's folder names (fear, surprise, ...) map onto the model's labels
    assert len(set(calibration.face_labels.tolist())) >= 4
    assert calibration.log_mel.std() > 0.1 and calibration.faces.std() > 0.1


def test_label_names_from_corpus_file_names():
    assert label_name("x/03-01-05-01-02-01-12.flac") == "angry"
    assert label_name("1001_DFA_HAP_XX.wav") == "HAP"
    assert label_name("faces.zip:fear/PublicTest_1.jpg".split(":")[1]) == "fear"


def test_calibration_rejects_a_directory_without_data(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(InputError, match="holds no audio"):
        load_calibration(tmp_path, build_model("edge").preset)
    with pytest.raises(InputError, match="not a directory"):
        load_calibration(tmp_path / "absent", build_model("edge").preset)


def _skip_reason(key: str) -> str | None:
    spec = FORMATS[key]
    if not spec.exportable_here:
        return f"{key}: built on the target GPU with TensorRT, which cannot be installed on this machine"
    if key == "torch":
        return "torch: the torch.export artifact is the bundle writer's round trip (tests/test_bundle.py)"
    runtime = next((r for r in spec.runtimes if is_available(r)), None)
    if runtime is None:
        return f"{key}: none of its runtimes ({', '.join(spec.runtimes)}) is installed"
    return None


@pytest.mark.parametrize("key", list(FORMATS))
def test_round_trip_export_load_predict(key, bundle_dir, model, calibration):
    reason = _skip_reason(key)
    if reason:
        pytest.skip(reason)
    runtime = next(r for r in FORMATS[key].runtimes if is_available(r))
    loaded = BundleModel.from_bundle(bundle_dir, backend=runtime, format=key, threads=2)
    assert loaded.precision == FORMATS[key].precision
    tolerance, min_agreement = TOLERANCE[loaded.precision]
    ref = torch_outputs(
        model, {"visual_encoder": {"face": calibration.faces}, "audio_encoder": {"log_mel": calibration.log_mel}}
    )
    emb_ref, steps_ref = ref["visual_encoder"]["embedding"], ref["audio_encoder"]["audio_steps"]
    emb, steps = loaded.encode_faces(calibration.faces), loaded.encode_audio(calibration.log_mel)
    assert relative_error(emb, emb_ref) <= tolerance
    assert relative_error(steps, steps_ref) <= tolerance

    # both modalities, as the SDK fuses them: face i on every frame of window i
    preset = model.preset
    frames = lambda e: np.repeat(e[:, None], preset.video_frames, axis=1)  # noqa: E731
    ones = np.ones((N_AUDIO, preset.video_frames), np.float32)
    fused = align_encoded(preset, steps, frames(emb), ones, calibration.speech.astype(np.float32))
    fused_ref = align_encoded(preset, steps_ref, frames(emb_ref), ones, calibration.speech.astype(np.float32))
    names = ("audio", "visual", "audio_mask", "visual_mask")
    logits = loaded.fuse(*fused)
    logits_ref = torch_outputs(model, {FUSION_HEAD: dict(zip(names, fused_ref, strict=True))})[FUSION_HEAD]["logits"]
    head_only = loaded.fuse(*fused_ref)
    head_tolerance = 1e-4 if loaded.precision == "int8" else tolerance  # INT8 formats keep an FP32 head
    assert relative_error(head_only, logits_ref) <= head_tolerance
    agreement = np.mean(logits.argmax(1) == logits_ref.argmax(1))
    assert agreement >= min_agreement, f"{key}: labels agree on {agreement:.0%} of windows"


def test_manifest_records_sizes_parity_accuracy_and_versions(bundle_dir):
    bundle = Bundle.load(bundle_dir)
    assert set(bundle.formats) == set(_local_keys())
    for key in bundle.formats:
        entry = bundle.format_info(key)
        assert all(entry["graphs"][g]["bytes"] > 0 for g in GRAPHS)
        parity = entry["parity"]
        assert parity["reference"] == "pytorch fp32" and parity["inputs"].startswith("real windows")
        assert set(parity["graphs"]) == set(GRAPHS)
        for graph in GRAPHS:
            assert parity["graphs"][graph]["max_abs_diff"] >= 0
            assert 0 <= parity["graphs"][graph]["label_agreement"] <= 1
        assert 0 <= parity["end_to_end"]["label_agreement"] <= 1
        # where it was measured: the CPU's features and the precision the runtime computed in
        assert parity["machine"]["isa"] == list(cpu_features()) and parity["machine"]["cpu"]
        if parity["runtime"] != "openvino":
            assert parity["inference_precision"] == "as stored"
        elif FORMATS[key].precision == "fp16":
            assert parity["inference_precision"] in ("f16", "f32")  # f16 only where the CPU has FP16 arithmetic
        else:
            assert parity["inference_precision"] == "f32"  # never the plugin's bf16 default
        accuracy = entry["accuracy"]
        assert accuracy["audio"]["windows"] == N_AUDIO and 0 <= accuracy["audio"]["accuracy"] <= 1
        assert accuracy["video"]["faces"] > 0
        assert "onnxruntime" in entry["tool_versions"] and "torch" in entry["tool_versions"]
        if FORMATS[key].precision == "fp32":
            assert parity["end_to_end"]["label_agreement"] == 1.0
            assert accuracy["audio"]["accuracy"] == accuracy["audio"]["accuracy_pytorch"]
    json.dumps(bundle.manifest)  # all of it is plain JSON


def test_parity_against_a_bundles_own_fp32_graphs(bundle_dir, calibration):
    """A GraphReference (the FP32 ONNX graphs) stands in for the PyTorch model: the FP32 graphs
    agree with themselves exactly, and the INT8 visual encoder is checked against them."""
    from edge_emotion.export.parity import measure_parity
    from edge_emotion.export.reference import GraphReference

    bundle = Bundle.load(bundle_dir)
    onnx_files = {g: bundle.graph_path("onnx", g) for g in GRAPHS}
    reference = GraphReference(bundle.preset, onnx_files, "the onnx fp32 graphs", threads=1, short_name="onnx fp32")
    same = measure_parity(reference, onnx_files, "onnxruntime", calibration, threads=1)
    assert same["reference"] == "the onnx fp32 graphs"
    assert same["end_to_end"] == {**same["end_to_end"], "label_agreement": 1.0, "max_abs_diff_logits": 0.0}
    assert same["graphs"]["visual_encoder"]["label_agreement_via"].startswith("onnx fp32 fusion head")
    int8 = measure_parity(
        reference, {g: bundle.graph_path("onnx-int8", g) for g in GRAPHS}, "onnxruntime", calibration, precision="int8"
    )
    assert int8["graphs"]["visual_encoder"]["max_abs_diff"] > 0
    assert int8["graphs"]["fusion_head"]["max_abs_diff"] == 0.0  # the same FP32 head file


def test_int8_formats_quantize_the_visual_encoder_and_keep_the_rest_fp32(bundle_dir):
    import onnx

    bundle = Bundle.load(bundle_dir)
    for graph in GRAPHS:
        ops = {n.op_type for n in onnx.load(str(bundle.graph_path("onnx-int8", graph))).graph.node}
        assert ("QuantizeLinear" in ops) == (graph == VISUAL_ENCODER), graph
        ir = bundle.graph_path("openvino-int8", graph).read_text()
        assert ("FakeQuantize" in ir) == (graph == VISUAL_ENCODER), graph
    for key in ("onnx-int8", "openvino-int8"):
        plan = bundle.format_info(key)["quantization"]["graphs"]
        assert plan[FUSION_HEAD]["quantized"] is False and "slower" in plan[FUSION_HEAD]["reason"]
        assert plan[AUDIO_ENCODER]["quantized"] is False and "once per window" in plan[AUDIO_ENCODER]["reason"]
    sizes = {k: bundle.size_bytes(k) for k in ("onnx", "onnx-int8", "openvino", "openvino-fp16")}
    assert sizes["openvino-fp16"] < sizes["openvino"]
    encoders = lambda k: sum(  # noqa: E731
        bundle.format_info(k)["graphs"][g]["bytes"] for g in GRAPHS if g != FUSION_HEAD
    )
    assert encoders("onnx-int8") < encoders("onnx") / 2


def test_select_formats_from_the_table():
    assert select_formats(["onnx"]) == ("onnx",)
    assert select_formats(["onnx"], int8=True) == ("onnx", "onnx-int8")
    assert select_formats(["openvino"], fp16=True, int8=True) == ("onnx", "openvino", "openvino-fp16", "openvino-int8")
    assert select_formats(["tensorrt"]) == ("onnx", "tensorrt-fp16")
    assert select_formats(["tensorrt"], int8=True) == ("onnx", "tensorrt-int8")
    assert select_formats(["openvino-int8"]) == ("onnx", "openvino-int8")
    with pytest.raises(InputError, match="unknown format 'caffe'"):
        select_formats(["caffe"])
    with pytest.raises(InputError, match="no fp16 variant"):
        select_formats(["onnx"], fp16=True)


def test_export_model_refuses_int8_without_calibration(tmp_path):
    with pytest.raises(InputError, match="calibration"):
        export_model(build_model("edge"), tmp_path / "b", ["onnx", "onnx-int8"])
    assert not (tmp_path / "b").exists()


def test_static_batch_graph_for_tensorrt_matches_the_dynamic_one(bundle_dir, calibration):
    from edge_emotion.export.tensorrt_export import make_static
    from edge_emotion.runtimes import load_backend

    bundle = Bundle.load(bundle_dir)
    source = bundle.graph_path("onnx", FUSION_HEAD)
    static = make_static(source, bundle_dir.parent / "fusion_static.onnx", batch=1)
    backend = load_backend("onnxruntime", static, threads=1)
    assert all(spec.shape[0] == 1 for spec in backend.input_specs)
    dynamic = load_backend("onnxruntime", source, threads=1)
    inputs = {
        spec.name: np.random.default_rng(0).standard_normal((1, *spec.shape[1:])).astype(np.float32)
        for spec in dynamic.input_specs
    }
    for name in ("audio_mask", "visual_mask"):
        inputs[name] = np.ones_like(inputs[name])
    np.testing.assert_allclose(backend.run(inputs)["logits"], dynamic.run(inputs)["logits"], atol=1e-5)


@pytest.mark.skipif(
    is_available("tensorrt"), reason="tensorrt is installed: the missing-dependency path cannot be seen"
)
def test_tensorrt_export_without_tensorrt_names_the_extra(tmp_path):
    from edge_emotion.export.tensorrt_export import export

    with pytest.raises(MissingDependencyError, match=r"edge-emotion\[tensorrt\]"):
        export(build_model("edge"), "tensorrt-fp16", {}, tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not is_available("tensorrt"), reason="TensorRT is not installed (it is on a Jetson with JetPack)")
@pytest.mark.parametrize("key", ["tensorrt-fp16", "tensorrt-int8"])
def test_tensorrt_round_trip_on_the_gpu(key, model, calibration, tmp_path):
    out = export_model(model, tmp_path / "trt", ["onnx", key], calibration=calibration)
    loaded = BundleModel.from_bundle(out, backend="tensorrt", format=key)
    ref = torch_outputs(model, {"audio_encoder": {"log_mel": calibration.log_mel[:4]}})["audio_encoder"]["audio_steps"]
    got = loaded.encode_audio(calibration.log_mel[:4])
    assert relative_error(got, ref) <= TOLERANCE[FORMATS[key].precision][0]
