"""What a bundle may make the SDK do: no code from it runs (the torch format's ``.pt2``), nothing
outside it is read (symlinks), nothing unlisted is read (ONNX external data), and formats that share
files (schema version 2) are verified as strictly as copies."""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_emotion.errors import BackendError, BundleError
from edge_emotion.model.bundle import MANIFEST_NAME, Bundle, sha256_file
from edge_emotion.model.formats import GRAPHS

torch = pytest.importorskip("torch", reason="building a bundle needs torch (the 'export' extra)")
onnx = pytest.importorskip("onnx", reason="building a bundle needs onnx (the 'export' extra)")

from edge_emotion.export.bundle_writer import add_format, dedupe_bundle  # noqa: E402
from edge_emotion.runtimes import is_available  # noqa: E402
from edge_emotion.runtimes.torch_backend import TorchBackend  # noqa: E402
from fakes import make_bundle  # noqa: E402

from edge_emotion.model.engine import BundleModel  # noqa: E402

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "edge_emotion" / "models" / "default"


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST_NAME).read_text())


def _write_manifest(bundle: Path, manifest: dict) -> None:
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))


def _rehash(bundle: Path, entry: dict) -> None:
    path = bundle / entry["file"]
    entry.update(sha256=sha256_file(path), bytes=path.stat().st_size)


# -- row 1: the torch format never runs code from a bundle ----------------------------------------
class _WritesMarker:
    """Unpickling this object opens (creates) the marker file: code from the archive running."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _pickled_weight_pt2(source: Path, target: Path, marker: Path) -> None:
    """A copy of the ``.pt2`` at ``source`` whose first weight is marked ``use_pickle`` and holds a
    pickle that creates ``marker`` when unpickled (every other entry unchanged)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        config_name = next(n for n in archive.namelist() if n.endswith("_weights_config.json"))
        config = json.loads(archive.read(config_name))
        fqn, meta = next(iter(config["config"].items()))
        meta["use_pickle"] = True
        buffer = io.BytesIO()
        torch.save(_WritesMarker(marker), buffer)
        weight_name = config_name.rsplit("/", 1)[0] + "/" + meta["path_name"]
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename == config_name:
                data = json.dumps(config).encode()
            elif info.filename == weight_name:
                data = buffer.getvalue()
            out.writestr(info.filename, data)


@pytest.fixture(scope="module")
def torch_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("torch"), formats=("onnx", "torch"))


@pytest.fixture()
def evil_torch_bundle(torch_bundle, tmp_path):
    """The torch bundle with its fusion head replaced by a pickled-weight archive, sha256s correct."""
    bundle = tmp_path / "evil"
    shutil.copytree(torch_bundle, bundle)
    marker = tmp_path / "MARKER"
    target = bundle / "torch" / "fusion_head.pt2"
    _pickled_weight_pt2(torch_bundle / "torch" / "fusion_head.pt2", target, marker)
    manifest = _manifest(bundle)
    _rehash(bundle, manifest["formats"]["torch"]["graphs"]["fusion_head"])
    _write_manifest(bundle, manifest)
    Bundle.load(bundle)  # the sha256s are right: only the content is hostile
    return bundle, marker


def test_the_crafted_archive_does_run_code_in_torch_export_load(evil_torch_bundle):
    """The threat is real: torch's own loader unpickles the weight and creates the marker."""
    bundle, marker = evil_torch_bundle
    with pytest.raises(Exception):  # noqa: B017 - torch fails after the payload ran
        torch.export.load(str(bundle / "torch" / "fusion_head.pt2"))
    assert marker.exists()


def test_pickled_weight_is_refused_and_never_unpickled(evil_torch_bundle):
    bundle, marker = evil_torch_bundle
    with pytest.raises(BackendError, match="as a pickle; pickles are never loaded"):
        BundleModel.from_bundle(bundle, backend="torch", trust_code=True)
    with pytest.raises(BackendError, match="pickle"):
        TorchBackend(bundle / "torch" / "fusion_head.pt2", trusted=True)
    assert not marker.exists()


def test_torch_format_runs_only_from_a_trusted_bundle(torch_bundle, tmp_path):
    with pytest.raises(BackendError, match="carries code .*trust_code=True"):
        BundleModel.from_bundle(torch_bundle, backend="torch")
    engine = BundleModel.from_bundle(torch_bundle, backend="torch", trust_code=True)
    assert (engine.format_key, engine.backend_name) == ("torch", "torch")
    only_torch = tmp_path / "only-torch"
    shutil.copytree(torch_bundle, only_torch)
    manifest = _manifest(only_torch)
    del manifest["formats"]["onnx"]
    _write_manifest(only_torch, manifest)
    with pytest.raises(BackendError, match="trust_code=True"):  # auto skips it
        BundleModel.from_bundle(only_torch)


@pytest.mark.parametrize("extra", ["extra/evil.py", "data/aotinductor/model/model.so"])
def test_archive_entries_beyond_a_plain_program_are_refused(torch_bundle, tmp_path, extra):
    source = torch_bundle / "torch" / "visual_encoder.pt2"
    target = tmp_path / "visual_encoder.pt2"
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        top = archive.namelist()[0].split("/", 1)[0]
        for info in archive.infolist():
            out.writestr(info.filename, archive.read(info.filename))
        out.writestr(f"{top}/{extra}", b"import os")
    with pytest.raises(BackendError, match="never loaded"):
        TorchBackend(target, trusted=True)


# -- row 12: symlinks out of the bundle, and files a graph reads ---------------------------------
def test_graph_file_symlinked_out_of_the_bundle_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    outside = tmp_path / "outside.onnx"
    graph = bundle / "onnx" / "fusion_head.onnx"
    shutil.move(graph, outside)
    graph.symlink_to(outside)  # same bytes, same sha256: only the location is wrong
    with pytest.raises(BundleError, match="symlink that leads out of the bundle"):
        Bundle.load(bundle)


def test_format_folder_symlinked_out_of_the_bundle_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(bundle / "onnx", outside)
    (bundle / "onnx").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BundleError, match="leads out of the bundle"):
        Bundle.load(bundle)
    with pytest.raises(BundleError, match="leads out of the bundle"):
        BundleModel.from_bundle(bundle)


def test_symlink_inside_the_bundle_is_accepted(tmp_path):
    bundle = make_bundle(tmp_path)
    graph = bundle / "onnx" / "fusion_head.onnx"
    kept = bundle / "onnx" / "fusion_head.real.onnx"
    shutil.move(graph, kept)
    graph.symlink_to(kept.name)
    Bundle.load(bundle)


def _to_external_data(graph: Path, location: str) -> None:
    model = onnx.load(str(graph))
    # the weights move out; small tensors (shapes, axes) stay inline, as onnx does by default
    onnx.save_model(model, str(graph), save_as_external_data=True, location=location, size_threshold=1024)


def test_unlisted_onnx_external_data_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    graph = bundle / "onnx" / "fusion_head.onnx"
    _to_external_data(graph, "fusion_head.onnx.data")
    manifest = _manifest(bundle)
    entry = manifest["formats"]["onnx"]["graphs"]["fusion_head"]
    _rehash(bundle, entry)  # the graph's own sha256 is right; its weights are not listed
    _write_manifest(bundle, manifest)
    with pytest.raises(BundleError, match="keeps tensor data in 'fusion_head.onnx.data', which manifest.json"):
        Bundle.load(bundle)

    entry["companions"] = [{"file": "onnx/fusion_head.onnx.data"}]
    _rehash(bundle, entry["companions"][0])
    _write_manifest(bundle, manifest)
    engine = BundleModel.from_bundle(bundle, backend="onnxruntime")  # listed and hashed: it loads
    assert engine.backends["fusion_head"].output_specs[0].name == "logits"

    data = bundle / "onnx" / "fusion_head.onnx.data"
    weights = bytearray(data.read_bytes())
    weights[len(weights) // 2] ^= 0x40  # what flipped a label before: now the bundle fails
    data.write_bytes(bytes(weights))
    with pytest.raises(BundleError, match=r"onnx/fusion_head\.onnx\.data .*altered"):
        Bundle.load(bundle)


def test_external_data_outside_the_bundle_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    graph = bundle / "onnx" / "audio_encoder.onnx"
    _to_external_data(graph, "audio.data")
    shutil.move(bundle / "onnx" / "audio.data", tmp_path / "outside.data")
    model = onnx.load(str(graph), load_external_data=False)
    for tensor in model.graph.initializer:
        for item in tensor.external_data:
            if item.key == "location":
                item.value = "../../outside.data"
    onnx.save(model, str(graph))
    manifest = _manifest(bundle)
    _rehash(bundle, manifest["formats"]["onnx"]["graphs"]["audio_encoder"])
    _write_manifest(bundle, manifest)
    with pytest.raises(BundleError, match=r"keeps tensor data in '\.\./\.\./outside\.data'"):
        Bundle.load(bundle)


def test_add_format_bundles_and_hashes_external_data(tmp_path):
    bundle = make_bundle(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    files = {}
    for graph in GRAPHS:
        files[graph] = work / f"{graph}.onnx"
        shutil.copy(bundle / "onnx" / f"{graph}.onnx", files[graph])
        _to_external_data(files[graph], f"{graph}.weights")
    entry = add_format(bundle, "onnx-int8", files)
    assert entry["graphs"]["visual_encoder"]["companions"][0]["file"] == "onnx-int8/visual_encoder.weights"
    engine = BundleModel.from_bundle(bundle, format="onnx-int8")
    faces = np.zeros((1, 3, engine.preset.visual.crop_size, engine.preset.visual.crop_size), np.float32)
    reference = BundleModel.from_bundle(bundle, format="onnx")
    np.testing.assert_allclose(engine.encode_faces(faces), reference.encode_faces(faces), atol=1e-6)


# -- shared files (schema version 2) ---------------------------------------------------------------
def _with_int8_copy(tmp_path) -> Path:
    """A bundle whose onnx-int8 format is a byte-identical copy of its onnx format."""
    bundle = make_bundle(tmp_path)
    add_format(bundle, "onnx-int8", {g: bundle / "onnx" / f"{g}.onnx" for g in GRAPHS})
    return bundle


def test_dedupe_shares_identical_files_and_is_idempotent(tmp_path):
    bundle = _with_int8_copy(tmp_path)
    before = sum(f.stat().st_size for f in bundle.rglob("*.onnx"))
    report = dedupe_bundle(bundle)
    assert sorted(report["removed"]) == sorted(f"onnx-int8/{g}.onnx" for g in GRAPHS)
    assert not any((bundle / "onnx-int8").glob("*.onnx"))
    manifest = _manifest(bundle)
    assert manifest["schema_version"] == 2
    assert manifest["formats"]["onnx-int8"]["graphs"]["fusion_head"]["file"] == "onnx/fusion_head.onnx"
    after = sum(f.stat().st_size for f in bundle.rglob("*.onnx"))
    assert before - after == report["bytes_saved"] > 0
    assert BundleModel.from_bundle(bundle, format="onnx-int8").format_key == "onnx-int8"

    text = (bundle / MANIFEST_NAME).read_text()
    again = dedupe_bundle(bundle)
    assert again["removed"] == [] and again["bytes_saved"] == 0
    assert (bundle / MANIFEST_NAME).read_text() == text

    shared = bundle / "onnx" / "fusion_head.onnx"
    data = bytearray(shared.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shared.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"onnx/fusion_head\.onnx \(onnx fusion_head\) has been altered"):
        Bundle.load(bundle)


def test_dedupe_repairs_missing_copies_and_refuses_altered_files(tmp_path):
    """The tool on a bundle whose files changed under it (a merge): an entry whose copy is gone is
    pointed at a listed file with its sha256; a file that no longer matches stops it unchanged."""
    bundle = _with_int8_copy(tmp_path)
    (bundle / "onnx-int8" / "audio_encoder.onnx").unlink()
    dedupe_bundle(bundle)
    Bundle.load(bundle)

    bundle = _with_int8_copy(tmp_path / "second")
    (bundle / "onnx-int8" / "visual_encoder.onnx").write_bytes(b"re-exported elsewhere")
    text = (bundle / MANIFEST_NAME).read_text()
    with pytest.raises(BundleError, match=r"onnx-int8/visual_encoder\.onnx .*does not match its sha256"):
        dedupe_bundle(bundle)
    assert (bundle / MANIFEST_NAME).read_text() == text
    assert (bundle / "onnx-int8" / "fusion_head.onnx").is_file()


def test_replacing_a_format_keeps_the_formats_that_shared_its_files(tmp_path):
    bundle = _with_int8_copy(tmp_path)
    dedupe_bundle(bundle)
    add_format(bundle, "onnx", {g: DEFAULT_BUNDLE / "onnx" / f"{g}.onnx" for g in GRAPHS})  # other weights
    manifest = _manifest(bundle)
    assert manifest["formats"]["onnx-int8"]["graphs"]["fusion_head"]["file"] == "onnx-int8/fusion_head.onnx"
    Bundle.load(bundle)


def test_schema_version_1_is_still_read(tmp_path):
    bundle = make_bundle(tmp_path)
    manifest = _manifest(bundle)
    manifest["schema_version"] = 1
    _write_manifest(bundle, manifest)
    assert Bundle.load(bundle).schema_version == 1


def test_the_shipped_bundle_holds_each_distinct_file_once():
    bundle = Bundle.load(DEFAULT_BUNDLE)
    files = [f for f in DEFAULT_BUNDLE.rglob("*") if f.is_file() and f.name != MANIFEST_NAME]
    digests = [sha256_file(f) for f in files]
    assert len(set(digests)) == len(digests), "byte-identical files in the shipped bundle"
    listed = {
        (DEFAULT_BUNDLE / e["file"]).resolve()
        for key in bundle.formats
        for g in GRAPHS
        for e in (bundle.format_info(key)["graphs"][g], *bundle.format_info(key)["graphs"][g].get("companions", ()))
    }
    assert listed == {f.resolve() for f in files}


@pytest.mark.skipif(not is_available("openvino"), reason="openvino is not installed here")
def test_shared_ir_weights_load_under_their_own_xml(tmp_path):
    """openvino-int8 of the shipped bundle keeps its own .xml for the audio encoder and uses the FP32
    format's .bin: the engine passes it, and the graph computes what the FP32 IR computes."""
    bundle = tmp_path / "default"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    loaded = Bundle.load(bundle)
    options = loaded.load_options("openvino-int8", "audio_encoder", "openvino")
    assert options == {"weights_path": (bundle / "openvino" / "audio_encoder.bin").resolve()}
    int8 = BundleModel.from_bundle(loaded, format="openvino-int8", threads=1)
    fp32 = BundleModel.from_bundle(loaded, format="openvino", threads=1)
    preset = loaded.preset
    log_mel = np.random.default_rng(0).standard_normal((2, 1, preset.audio.n_mels, preset.audio.n_frames))
    log_mel = log_mel.astype(np.float32)
    np.testing.assert_allclose(int8.encode_audio(log_mel), fp32.encode_audio(log_mel), atol=1e-5)


def test_loading_a_bundle_reads_no_onnx_package(tmp_path):
    """The external-data scan parses ONNX itself: a device install has no onnx package."""
    import subprocess

    bundle = make_bundle(tmp_path)
    code = (
        "import sys; from edge_emotion.model.bundle import Bundle;"
        f"Bundle.load({str(bundle)!r}); assert 'onnx' not in sys.modules, 'onnx imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
