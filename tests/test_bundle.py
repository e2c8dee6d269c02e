"""Bundles: export -> load -> predict round trips on every installed runtime, the manifest, and
the refusals of a bundle that does not match its manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge_emotion.errors import BackendError, BundleError
from edge_emotion.model.bundle import MANIFEST_NAME, Bundle
from edge_emotion.model.formats import AUTO_ORDER, FORMATS, GRAPHS, RUNTIMES

pytest.importorskip("onnx", reason="building a bundle needs onnx (the 'export' extra)")

from edge_emotion.export.bundle_writer import add_format, create_bundle, write_bundle  # noqa: E402
from edge_emotion.runtimes import is_available  # noqa: E402
from fakes import fresh_model, make_bundle, make_onnx_bundle  # noqa: E402

from edge_emotion.model.engine import BundleModel  # noqa: E402
from edge_emotion.recognizer import Recognizer  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def full_bundle(tmp_path_factory):
    """A bundle with the onnx and torch formats of ``fresh_model("edge", 0)``."""
    pytest.importorskip("torch", reason="the bundle is exported from a fresh PyTorch model (train extra)")
    return make_bundle(tmp_path_factory.mktemp("full"), formats=("onnx", "torch"))


@pytest.fixture()
def bundle_copy(tmp_path):
    """A private copy of a small ONNX bundle (no torch needed)."""
    return make_onnx_bundle(tmp_path)


# -- the format table ------------------------------------------------------------------------------
def test_format_table_is_consistent():
    from edge_emotion.runtimes import BACKENDS

    assert set(RUNTIMES) == set(BACKENDS)
    for key, spec in FORMATS.items():
        assert spec.key == key
        assert ":" in spec.exporter and spec.exporter.startswith("edge_emotion.export.")
        assert all(BACKENDS[r].extra == spec.runtime_extra[r] for r in spec.runtimes)
    assert {key for key, _ in AUTO_ORDER} == set(FORMATS)
    for key, runtime in AUTO_ORDER:
        assert runtime in FORMATS[key].runtimes
    assert {
        "onnx",
        "onnx-int8",
        "openvino",
        "openvino-fp16",
        "openvino-int8",
        "tensorrt-fp16",
        "tensorrt-int8",
        "torch",
    } <= set(FORMATS)


# -- round trips -----------------------------------------------------------------------------------
def test_manifest_contents(full_bundle):
    bundle = Bundle.load(full_bundle)
    model = fresh_model("edge", 0)
    assert bundle.preset == model.preset
    assert bundle.labels == model.preset.labels
    assert bundle.formats == ("onnx", "torch")
    assert bundle.schema_version == 2
    assert bundle.graph_path("onnx", "fusion_head") == full_bundle.resolve() / "onnx" / "fusion_head.onnx"
    assert bundle.best_format("onnxruntime") == "onnx" and bundle.best_format("tensorrt") is None
    assert {"training_data", "split_protocol", "metrics", "command"} <= set(bundle.provenance)
    assert {"torch", "onnx", "onnxruntime", "edge-emotion"} <= set(bundle.tool_versions)
    onnx_entry = bundle.format_info("onnx")
    assert onnx_entry["precision"] == "fp32" and onnx_entry["opset"] >= 17
    parity = onnx_entry["parity"]
    assert parity["label_agreement"] == 1.0
    assert all(parity["graphs"][g]["max_abs_diff"] < TOLERANCE for g in GRAPHS)
    assert bundle.size_bytes("onnx") == sum((full_bundle / "onnx" / f"{g}.onnx").stat().st_size for g in GRAPHS)


def _runnable(backend: str) -> list:
    reason = f"the {backend} runtime is not installed here"
    return [pytest.param(backend, marks=pytest.mark.skipif(not is_available(backend), reason=reason))]


@pytest.mark.parametrize("backend", _runnable("onnxruntime") + _runnable("openvino") + _runnable("torch"))
def test_round_trip_graphs_match_pytorch(full_bundle, backend):
    """export -> load -> run each graph: the backend agrees with the PyTorch model."""
    from edge_emotion.export.onnx_export import example_inputs, torch_outputs

    model = fresh_model("edge", 0)
    engine = BundleModel.from_bundle(full_bundle, backend=backend, threads=1, trust_code=backend == "torch")
    assert engine.backend_name == backend
    assert engine.format_key == ("torch" if backend == "torch" else "onnx")
    inputs = example_inputs(model.preset, batch=3, seed=7)
    want = torch_outputs(model, inputs)
    np.testing.assert_allclose(
        engine.encode_faces(inputs["visual_encoder"]["face"]),
        want["visual_encoder"]["embedding"],
        atol=TOLERANCE,
        rtol=0,
    )
    np.testing.assert_allclose(
        engine.encode_audio(inputs["audio_encoder"]["log_mel"]),
        want["audio_encoder"]["audio_steps"],
        atol=TOLERANCE,
        rtol=0,
    )
    logits = engine.fuse(**inputs["fusion_head"])
    np.testing.assert_allclose(logits, want["fusion_head"]["logits"], atol=TOLERANCE, rtol=0)
    assert logits.dtype == np.float32 and logits.shape == (3, len(engine.labels))


@pytest.mark.parametrize("backend", _runnable("onnxruntime") + _runnable("openvino"))
def test_round_trip_predict(full_bundle, backend):
    """The whole model (encoders -> alignment -> fusion) through the bundle predicts what
    ``EmotionModel.forward`` predicts on the same window."""
    import torch

    model = fresh_model("edge", 0)
    preset = model.preset
    engine = BundleModel.from_bundle(full_bundle, backend=backend)
    rng = np.random.default_rng(0)
    n, t_v, s = 2, preset.video_frames, preset.visual.crop_size
    log_mel = rng.standard_normal((n, 1, preset.audio.n_mels, preset.audio.n_frames)).astype(np.float32)
    faces = rng.standard_normal((n, t_v, 3, s, s)).astype(np.float32)
    face_mask = (rng.random((n, t_v)) > 0.3).astype(np.float32)
    audio_mask = (rng.random((n, preset.model.time_steps)) > 0.3).astype(np.float32)
    with torch.no_grad():
        want = model(*(torch.from_numpy(a) for a in (log_mel, faces, face_mask, audio_mask))).numpy()

    embeddings = engine.encode_faces(faces.reshape(n * t_v, 3, s, s)).reshape(n, t_v, -1)
    audio_seq = engine.encode_audio(log_mel)
    audio_idx, video_idx = model.audio_index.numpy(), model.video_index.numpy()
    visual_mask = face_mask[:, video_idx] * model.video_index_ok.numpy()
    audio = audio_seq[:, audio_idx] * audio_mask[..., None]
    visual = embeddings[:, video_idx] * visual_mask[..., None]
    got = engine.fuse(audio, visual, audio_mask, visual_mask)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_auto_picks_the_best_installed_format(full_bundle):
    engine = BundleModel.from_bundle(full_bundle)
    # no INT8 or OpenVINO IR in this bundle: FP32 ONNX on ONNX Runtime comes before torch
    assert (engine.format_key, engine.backend_name) == ("onnx", "onnxruntime")
    assert engine.preset == Bundle.load(full_bundle).preset and engine.precision == "fp32"


@pytest.mark.skipif(not is_available("openvino"), reason="openvino is not installed here")
def test_add_format_with_companions_and_auto_prefers_it(bundle_copy, tmp_path):
    """An OpenVINO IR (.xml + .bin) added with add_format is hashed with its companion, loads, and
    is what ``auto`` picks over FP32 ONNX on ONNX Runtime, computing what the ONNX graphs compute."""
    import openvino as ov

    files = {}
    for graph in GRAPHS:
        files[graph] = tmp_path / "ir" / f"{graph}.xml"
        ov.save_model(
            ov.convert_model(str(bundle_copy / "onnx" / f"{graph}.onnx")), str(files[graph]), compress_to_fp16=False
        )
    entry = add_format(bundle_copy, "openvino", files, {"note": "test"})
    assert entry["graphs"]["visual_encoder"]["companions"][0]["file"] == "openvino/visual_encoder.bin"
    engine = BundleModel.from_bundle(bundle_copy)
    assert (engine.format_key, engine.backend_name) == ("openvino", "openvino")
    reference = BundleModel.from_bundle(bundle_copy, format="onnx", backend="onnxruntime")
    rng = np.random.default_rng(0)
    t, d_a, d_v = engine.preset.model.time_steps, engine.preset.model.audio_dim, engine.preset.model.visual_dim
    inputs = {
        "audio": rng.standard_normal((2, t, d_a)).astype(np.float32),
        "visual": rng.standard_normal((2, t, d_v)).astype(np.float32),
        "audio_mask": (rng.random((2, t)) > 0.3).astype(np.float32),
        "visual_mask": (rng.random((2, t)) > 0.3).astype(np.float32),
    }
    np.testing.assert_allclose(engine.fuse(**inputs), reference.fuse(**inputs), atol=TOLERANCE, rtol=0)
    (bundle_copy / "openvino" / "audio_encoder.bin").write_bytes(b"\0" * 16)
    with pytest.raises(BundleError, match=r"openvino/audio_encoder\.bin .*altered"):
        Bundle.load(bundle_copy)


def test_auto_tries_formats_that_failed_their_export_validation_last(bundle_copy):
    """INT8 comes before FP32 in ``auto`` — unless its recorded parity is out of bounds (what bench
    reports as "exported but failed validation"): then FP32 is used and INT8 is only a fallback."""
    onnx_files = {g: bundle_copy / "onnx" / f"{g}.onnx" for g in GRAPHS}
    parity = {"end_to_end": {"label_agreement": 0.90, "max_abs_diff_logits": 0.5}}
    add_format(bundle_copy, "onnx-int8", onnx_files, {"parity": parity})
    bundle = Bundle.load(bundle_copy)
    assert bundle.failed_validation("onnx-int8") and not bundle.failed_validation("onnx")
    assert bundle.best_format("onnxruntime") == "onnx"
    assert BundleModel.from_bundle(bundle_copy).format_key == "onnx"
    assert BundleModel.from_bundle(bundle_copy, format="onnx-int8").format_key == "onnx-int8"  # still loadable
    assert Recognizer.from_bundle(bundle_copy, format="onnx-int8").model.format_key == "onnx-int8"

    manifest_path = bundle_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["formats"]["onnx-int8"]["parity"]["end_to_end"]["label_agreement"] = 0.99
    manifest_path.write_text(json.dumps(manifest))
    assert Bundle.load(bundle_copy).best_format("onnxruntime") == "onnx-int8"
    assert BundleModel.from_bundle(bundle_copy).format_key == "onnx-int8"


def test_add_format_checks_its_files(bundle_copy):
    onnx_files = {g: bundle_copy / "onnx" / f"{g}.onnx" for g in GRAPHS}
    with pytest.raises(BundleError, match="needs exactly the graphs"):
        add_format(bundle_copy, "onnx-int8", {"visual_encoder": onnx_files["visual_encoder"]})
    with pytest.raises(BundleError, match=r"expects \.xml"):
        add_format(bundle_copy, "openvino", onnx_files)
    with pytest.raises(ValueError, match="unknown format 'onnx-int4'"):
        add_format(bundle_copy, "onnx-int4", onnx_files)
    entry = add_format(bundle_copy, "onnx-int8", onnx_files, {"quantization": "none (test)"})
    assert Bundle.load(bundle_copy).format_info("onnx-int8")["quantization"] == "none (test)"
    assert entry["precision"] == "int8"


def test_write_bundle_refuses_a_non_empty_directory(tmp_path):
    pytest.importorskip("torch", reason="write_bundle exports a PyTorch model (train extra)")
    (tmp_path / "notes.txt").write_text("mine")
    model = fresh_model("edge")
    with pytest.raises(BundleError, match="not empty"):
        create_bundle(tmp_path, model.preset)
    with pytest.raises(ValueError, match="unknown format"):
        write_bundle(model, tmp_path / "b", formats=("onnx", "nope"))
    assert not (tmp_path / "b").exists()


# -- refusals --------------------------------------------------------------------------------------
def test_altered_file_is_refused(bundle_copy):
    path = bundle_copy / "onnx" / "fusion_head.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"onnx/fusion_head\.onnx .*altered.*sha256"):
        Bundle.load(bundle_copy)
    Bundle.load(bundle_copy, verify=False)  # the caller can opt out of hashing


def test_truncated_file_is_refused(bundle_copy):
    path = bundle_copy / "onnx" / "audio_encoder.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"onnx/audio_encoder\.onnx .*altered.*bytes"):
        Bundle.load(bundle_copy)


def test_missing_file_is_refused(bundle_copy):
    (bundle_copy / "onnx" / "visual_encoder.onnx").unlink()
    with pytest.raises(BundleError, match=r"onnx/visual_encoder\.onnx .*missing"):
        Bundle.load(bundle_copy)
    with pytest.raises(BundleError, match=r"visual_encoder\.onnx .*missing"):
        BundleModel.from_bundle(bundle_copy)


def test_missing_manifest_is_refused(bundle_copy, tmp_path):
    (bundle_copy / MANIFEST_NAME).unlink()
    with pytest.raises(BundleError, match="has no manifest.json"):
        Bundle.load(bundle_copy)
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.load(tmp_path / "nowhere")


def _edit_manifest(bundle_dir, edit):
    path = bundle_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_unknown_schema_is_refused(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="schema_version 99 is not known"):
        Bundle.load(bundle_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("preset"), "lacks preset"),
        (lambda m: m["preset"]["model"].update(heads=3), "preset .* is invalid"),
        (lambda m: m.update(labels=["a", "b"]), "labels"),
        (lambda m: m["formats"].update(onnx8=m["formats"]["onnx"]), "format 'onnx8' is not known"),
        (lambda m: m["formats"]["onnx"]["graphs"].pop("audio_encoder"), "lacks the graph.*audio_encoder"),
        (lambda m: m["formats"]["onnx"]["graphs"]["fusion_head"].update(file="../escape.onnx"), "not a path inside"),
    ],
    ids=["no-preset", "bad-preset", "labels", "unknown-format", "missing-graph", "escape"],
)
def test_inconsistent_manifest_is_refused(bundle_copy, edit, message):
    _edit_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=message):
        Bundle.load(bundle_copy)


def test_corrupt_manifest_is_refused(bundle_copy):
    (bundle_copy / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match="manifest.json cannot be read"):
        Bundle.load(bundle_copy)


def test_backend_choice_errors(bundle_copy):
    with pytest.raises(
        BackendError, match="unknown backend 'onnx'; choose one of: auto, onnxruntime, openvino, tensorrt, torch"
    ):
        BundleModel.from_bundle(bundle_copy, backend="onnx")
    with pytest.raises(BackendError, match="no format that tensorrt runs"):
        BundleModel.from_bundle(bundle_copy, backend="tensorrt")
    with pytest.raises(BackendError, match="has no format 'torch'"):
        BundleModel.from_bundle(bundle_copy, format="torch")


def test_loading_a_bundle_imports_no_torch_or_onnx(bundle_copy):
    code = (
        "import sys; from edge_emotion.model.bundle import Bundle;"
        "import edge_emotion.model.formats, edge_emotion.model.engine;"
        f"b = Bundle.load({str(bundle_copy)!r}); assert b.formats == ('onnx',);"
        "heavy = [m for m in ('torch', 'onnx', 'openvino', 'onnxruntime') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bundle_copies_are_independent(tmp_path):
    first = make_onnx_bundle(tmp_path / "a")
    second = make_onnx_bundle(tmp_path / "b")
    shutil.rmtree(first / "onnx")
    Bundle.load(second)


def test_auto_skips_runtimes_that_are_not_installed(bundle_copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    if is_available("openvino"):
        engine = BundleModel.from_bundle(bundle_copy)
        assert (engine.format_key, engine.backend_name) == ("onnx", "openvino")
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(BackendError, match="no installed runtime can run bundle .*formats: onnx"):
        BundleModel.from_bundle(bundle_copy)


# -- tampered manifests: one schema check, one clear BundleError, before anything runs -------------
def _rename_fusion_output(bundle_dir):
    """The fusion head's output renamed (logits -> scores), its sha256 and size updated."""
    import onnx

    from edge_emotion.model.bundle import sha256_file

    path = bundle_dir / "onnx" / "fusion_head.onnx"
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.output[:] = ["scores" if name == "logits" else name for name in node.output]
    model.graph.output[0].name = "scores"
    onnx.save(model, str(path))
    manifest_path = bundle_dir / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["formats"]["onnx"]["graphs"]["fusion_head"].update(sha256=sha256_file(path), bytes=path.stat().st_size)
    manifest_path.write_text(json.dumps(manifest))


def _labels(count):
    names = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "bored"][:count]

    def edit(m):
        m["labels"] = names
        m["preset"]["labels"] = names

    return edit


def _nest(m):
    deep = "x"
    for _ in range(100_000):  # past the JSON parser's recursion limit
        deep = [deep]
    m["provenance"]["notes"] = deep


#: (id, edit of the manifest dict or of the bundle folder, what the one error line says)
TAMPERED = [
    ("labels-int", lambda m: m.update(labels=8), "labels: must be a list of non-empty strings"),
    ("labels-null", lambda m: m.update(labels=None), "labels: must be a list"),
    ("graphs-list", lambda m: m["formats"]["onnx"].update(graphs=["a", "b"]), "formats.onnx.graphs: must be an object"),
    ("graphs-string", lambda m: m["formats"]["onnx"].update(graphs="onnx/"), "formats.onnx.graphs: must be an object"),
    ("deep-json", _nest, "nests too deeply"),
    ("sample-rate-float", lambda m: m["preset"]["audio"].update(sample_rate=16000.0), "sample_rate: must be an int"),
    ("fps-nan", lambda m: m["preset"]["visual"].update(fps=float("nan")), "preset.visual.fps: must be a finite number"),
    ("fps-inf", lambda m: m["preset"]["visual"].update(fps=float("inf")), "preset.visual.fps: must be a finite number"),
    ("fps-tiny", lambda m: m["preset"]["visual"].update(fps=1e-9), "preset.visual.fps: 1e-09 is out of range"),
    ("crop-huge", lambda m: m["preset"]["visual"].update(crop_size=10**9), "visual.crop_size: 1000000000 is out"),
    ("labels-7", _labels(7), "'logits' has shape ('N', 8), the manifest's preset needs ('N', 7)"),
    ("labels-9", _labels(9), "'logits' has shape ('N', 8), the manifest's preset needs ('N', 9)"),
    ("fusion-output-renamed", None, "fusion_head has outputs ['scores']; edge-emotion's fusion_head has ['logits']"),
    ("std-nan", lambda m: m["preset"]["audio"].update(std=float("nan")), "preset.audio.std: must be a finite number"),
    ("vad-nan", lambda m: m["preset"]["audio"].update(vad_floor_db=float("nan")), "vad_floor_db: must be a finite"),
    ("score-2", lambda m: m["preset"]["visual"].update(min_detection_score=2), "min_detection_score: 2 is out of"),
    ("schema-true", lambda m: m.update(schema_version=True), "schema_version True is not known"),
]


def _tamper(bundle_dir, edit):
    if edit is None:
        _rename_fusion_output(bundle_dir)
        return
    path = bundle_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    try:
        text = json.dumps(manifest)
    except RecursionError:  # json.dumps cannot write it either: build the text by hand
        manifest["provenance"]["notes"] = "@DEEP@"
        text = json.dumps(manifest).replace('"@DEEP@"', "[" * 100_000 + '"x"' + "]" * 100_000)
    path.write_text(text)


@pytest.mark.parametrize(("case", "edit", "message"), TAMPERED, ids=[case for case, _, _ in TAMPERED])
def test_tampered_manifest_is_refused_before_anything_runs(bundle_copy, case, edit, message):
    """Each tampered manifest gets one BundleError naming the field, from loading the bundle (the
    schema) or, for what only the graph knows (its output names and size), from loading its graphs."""
    _tamper(bundle_copy, edit)
    with pytest.raises(BundleError) as caught:
        BundleModel.from_bundle(bundle_copy, backend="onnxruntime")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", ["labels-null", "fps-nan", "labels-7", "fusion-output-renamed", "schema-true"])
def test_tampered_manifest_in_the_cli_is_one_line_and_exit_2(bundle_copy, shared_data, case):
    clip = shared_data / "crema-d" / "video" / "1001_DFA_ANG_XX.flv"
    if not clip.is_file():
        pytest.skip(f"the CREMA-D clip {clip.name} is not in the shared data folder")
    _, edit, message = next(row for row in TAMPERED if row[0] == case)
    _tamper(bundle_copy, edit)
    proc = subprocess.run(
        [sys.executable, "-m", "edge_emotion", "run", "--model", str(bundle_copy), "--video", str(clip)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""
