"""Writing bundles: a manifest, then one call per format.

>>> bundle_dir = write_bundle(model, "out/edge", provenance={...}, formats=("onnx", "torch"))

or, step by step (how the INT8 / OpenVINO / TensorRT exporters add their formats)::

    create_bundle("out/edge", model.preset, provenance={...})
    add_format("out/edge", "openvino-int8", {"visual_encoder": xml, ...}, {"parity": ...})

:func:`add_format` copies the files to ``<bundle>/<format>/<graph><suffix>`` (with their
companions: IR's ``.bin``, an ONNX graph's external-data files), hashes them and rewrites the
manifest atomically. :func:`dedupe_bundle` then lets formats share byte-identical files (the INT8
formats keep the FP32 audio encoder and fusion head): one copy stays, the other formats' entries
name it (schema version 2), and the copies are removed. ``tools/dedupe_bundle.py`` runs it on an
existing bundle.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_emotion.config import PresetConfig
from edge_emotion.errors import BundleError
from edge_emotion.model.bundle import MANIFEST_NAME, SCHEMA_VERSION, file_entry, read_manifest, sha256_file
from edge_emotion.model.formats import FORMATS, FUSION_HEAD, GRAPH_OUTPUTS, GRAPHS, get_format
from edge_emotion.model.onnx_meta import external_data_locations

if TYPE_CHECKING:  # create_bundle and add_format need no torch
    from ..train.model import EmotionModel

logger = logging.getLogger(__name__)

#: Distributions whose versions every manifest records when they are installed.
TOOLS = ("edge-emotion", "torch", "onnx", "onnxscript", "onnxsim", "onnxruntime", "openvino", "nncf", "tensorrt")


def tool_versions(names: Iterable[str] = TOOLS) -> dict[str, str]:
    """Installed versions of ``names`` (missing ones left out), plus Python's."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _write_manifest(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = bundle_dir / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, bundle_dir / MANIFEST_NAME)


def create_bundle(
    out_dir: str | Path,
    preset: PresetConfig,
    provenance: Mapping[str, Any] | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Start a bundle at ``out_dir``: a manifest with the preset, labels, provenance, tool versions
    and no formats yet. ``out_dir`` must be absent or empty unless ``overwrite``, which removes the
    old manifest and format folders (nothing else)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise BundleError(f"{out} exists and is not empty; pass overwrite=True to replace a bundle there")
        (out / MANIFEST_NAME).unlink(missing_ok=True)
        for key in FORMATS:
            if (out / key).is_dir():
                shutil.rmtree(out / key)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": name or f"edge-emotion-{preset.name}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": list(preset.labels),
        "preset": preset.to_dict(),
        "formats": {},
        "provenance": {
            "training_data": None,
            "split_protocol": None,
            "metrics": {},
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
            **dict(provenance or {}),
        },
        "tool_versions": tool_versions(),
    }
    _write_manifest(out, manifest)
    return out


def _external_data(source: Path, format_key: str) -> list[str]:
    """The external-data files an ONNX graph reads, as names beside it (refused otherwise)."""
    names = external_data_locations(source)
    for name in names:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise BundleError(
                f"format {format_key!r}: {source.name} keeps tensor data in {name!r}; only files beside the graph "
                "are bundled"
            )
        if not (source.parent / name).is_file():
            raise BundleError(f"format {format_key!r}: {source.name}'s external data {name} is missing")
    return names


def _entries(manifest: Mapping[str, Any]):
    """Yield ``(format_key, graph, entry, is_main)`` for every file entry of a manifest."""
    for key, info in manifest["formats"].items():
        for graph in GRAPHS:
            entry = info["graphs"][graph]
            yield key, graph, entry, True
            for companion in entry.get("companions", ()):
                yield key, graph, companion, False


def _materialise_references(root: Path, manifest: dict[str, Any], folder: str) -> None:
    """Give every format other than ``folder``'s its own copy of the files it shares from
    ``<root>/<folder>/`` (before that folder is replaced), at its natural place."""
    for key, graph, entry, _ in _entries(manifest):
        if key == folder or not entry["file"].startswith(f"{folder}/"):
            continue
        source = root / entry["file"]
        target = root / key / f"{graph}{Path(entry['file']).suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        entry["file"] = target.relative_to(root).as_posix()


def training_provenance(splits: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The provenance fields saying what trained a model, from the saved splits (``split.json``
    contents) of every stage that trained it: ``training_speakers`` (``{corpus: [speaker id, ...]}``,
    train + validation speakers) and ``training_images`` (``{corpus: {"subsets": [...]}}``).
    ``edge-emotion eval`` reads them to say how many evaluated samples overlap training."""
    from edge_emotion.eval.provenance import training_ids_from_splits

    return training_ids_from_splits(list(splits)).to_provenance()


def add_format(
    bundle_dir: str | Path,
    format_key: str,
    files: Mapping[str, str | Path],
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Add (or replace) one format in a bundle: copy ``files`` (``{graph: main file}``, all three
    graphs; companions such as IR's ``.bin`` and an ONNX graph's external-data files are taken
    from beside each file) to ``<bundle>/<format_key>/<graph><suffix>``, hash them, and record them
    with ``metadata`` in the manifest. Other formats that shared files of a replaced format get
    their own copies first. Returns the format's manifest entry."""
    root = Path(bundle_dir)
    manifest = read_manifest(root)
    spec = get_format(format_key)
    if set(files) != set(GRAPHS):
        raise BundleError(f"format {format_key!r} needs exactly the graphs {', '.join(GRAPHS)}, got {sorted(files)}")
    reserved = {"precision", "layout", "graphs"} & set(metadata or {})
    if reserved:
        raise BundleError(f"metadata may not set {sorted(reserved)}: add_format records them")
    target_dir = root / format_key
    staging = Path(tempfile.mkdtemp(prefix=f".{format_key}-", dir=root))
    staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    external: dict[str, list[str]] = {}
    try:
        for graph in GRAPHS:
            source = Path(files[graph])
            if source.suffix != spec.suffix:
                raise BundleError(f"format {format_key!r} expects {spec.suffix} files, got {source.name}")
            for suffix in (spec.suffix, *spec.companion_suffixes):
                part = source.with_suffix(suffix)
                if not part.is_file():
                    raise BundleError(f"format {format_key!r}: {part} is missing")
                shutil.copyfile(part, staging / f"{graph}{suffix}")
            external[graph] = _external_data(source, format_key) if spec.layout == "onnx" else []
            for name in external[graph]:
                if (staging / name).exists():
                    raise BundleError(f"format {format_key!r}: two graphs keep tensor data in files named {name}")
                shutil.copyfile(source.parent / name, staging / name)
        _materialise_references(root, manifest, format_key)
        _write_manifest(root, manifest)
        if target_dir.exists():
            shutil.rmtree(target_dir)
        os.replace(staging, target_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    graphs = {}
    for graph in GRAPHS:
        main = target_dir / f"{graph}{spec.suffix}"
        graphs[graph] = file_entry(root, main)
        parts = [main.with_suffix(suffix) for suffix in spec.companion_suffixes]
        parts += [target_dir / name for name in external[graph]]
        if parts:
            graphs[graph]["companions"] = [file_entry(root, part) for part in parts]
    entry = {"precision": spec.precision, "layout": spec.layout, "graphs": graphs, **dict(metadata or {})}
    manifest["formats"][format_key] = entry
    _write_manifest(root, manifest)
    logger.info("bundle %s: added format %s", root, format_key)
    return entry


def _shareable(format_key: str, entry: Mapping[str, Any], is_main: bool, separate_weights: bool) -> bool:
    """Whether a file entry may name another format's file on its own: its loader must not look
    for companions beside it by name (an IR's ``.xml`` gets its ``.bin`` passed by the engine; an
    ONNX, engine or ``.pt2`` file with companions is left alone), and a companion must be an IR's
    weights (passed by the engine too). Without ``separate_weights`` an IR is shared only as a
    whole (``.xml`` and ``.bin`` together, so the ``.bin`` stays beside its ``.xml``)."""
    layout = FORMATS[format_key].layout
    if layout == "openvino-ir":
        return separate_weights and (is_main or Path(entry["file"]).suffix == ".bin")
    return is_main and not entry.get("companions")


def _group_key(format_key: str, entry: Mapping[str, Any], is_main: bool, separate_weights: bool):
    """What must be identical for two entries to share files: one file's sha256 and suffix, or for
    a whole IR (``separate_weights`` off) the ``.xml``'s and the companions' sha256s."""
    if _shareable(format_key, entry, is_main, separate_weights):
        return (entry["sha256"], Path(entry["file"]).suffix)
    if is_main and FORMATS[format_key].layout == "openvino-ir" and not separate_weights:
        return (entry["sha256"], ".xml", tuple(c["sha256"] for c in entry.get("companions", ())))
    return None


def dedupe_bundle(bundle_dir: str | Path, separate_weights: bool = True) -> dict[str, Any]:
    """Let a bundle's formats share byte-identical graph files instead of carrying copies, in place.

    Every file the manifest lists is checked first (inside the bundle, the listed sha256); an entry
    whose file is missing is pointed at another listed file with the same sha256, and a file whose
    sha256 differs from its entry is refused (:class:`BundleError`, nothing changed). Then, among
    entries with the same sha256 and suffix that may share (:func:`_shareable`), all name one file:
    the copy in its own format's folder, earliest in the format table (the FP32 formats come first).
    ``separate_weights``: an OpenVINO IR may use another format's ``.bin`` under its own ``.xml``
    (:class:`~edge_emotion.model.engine.BundleModel` passes the weights; a caller that loads a
    graph from :meth:`Bundle.graph_path` alone would not find them); off, an IR is shared only
    whole. The manifest (schema version 2) is rewritten atomically before the copies no entry
    names any more are deleted; files the manifest never listed are left alone. Running it again
    changes nothing. Returns ``{"removed": [paths], "bytes_saved": int, "shared": {path: [format keys]}}``.
    """
    from edge_emotion.model.bundle import Bundle, _resolve_inside

    root = Path(bundle_dir).resolve()
    manifest = read_manifest(root)
    Bundle.load(root, verify=False)  # the schema, before anything is touched
    listed_before = {entry["file"] for *_, entry, _ in _entries(manifest)}
    present: dict[str, str] = {}  # sha256 -> a listed file that has it
    hashes: dict[str, str] = {}
    for name in sorted(listed_before):
        path = _resolve_inside(root, name, "a listed file")
        if path.is_file():
            hashes[name] = sha256_file(path)
            present.setdefault(hashes[name], name)
    for key, graph, entry, _ in _entries(manifest):
        name = entry["file"]
        if name not in hashes:
            if entry["sha256"] not in present:
                raise BundleError(f"bundle {root}: {name} ({key} {graph}) is missing and no listed file has its sha256")
            entry["file"] = present[entry["sha256"]]
        elif hashes[name] != entry["sha256"]:
            raise BundleError(
                f"bundle {root}: {name} ({key} {graph}) does not match its sha256 in {MANIFEST_NAME}; "
                "re-export that format before deduplicating"
            )
    order = {key: i for i, key in enumerate(FORMATS)}
    groups: dict[tuple, list[tuple[str, dict]]] = {}
    for key, _, entry, is_main in _entries(manifest):
        group = _group_key(key, entry, is_main, separate_weights)
        if group is not None:
            groups.setdefault(group, []).append((key, entry))
    shared: dict[str, list[str]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        own = [(order[key], entry["file"]) for key, entry in members if entry["file"].startswith(f"{key}/")]
        keep = min(own)[1] if own else min(entry["file"] for _, entry in members)
        keeper = next(entry for _, entry in members if entry["file"] == keep)
        for _, entry in members:
            entry["file"] = keep
            if not _shareable(members[0][0], keeper, True, separate_weights) and "companions" in keeper:
                for companion, kept in zip(entry["companions"], keeper["companions"], strict=True):
                    companion["file"] = kept["file"]  # a whole IR: its .bin moves with its .xml
        shared[keep] = sorted({key for key, _ in members}, key=order.get)
    manifest["schema_version"] = max(SCHEMA_VERSION, int(manifest["schema_version"]))
    _write_manifest(root, manifest)
    listed_after = {entry["file"] for *_, entry, _ in _entries(manifest)}
    removed, saved = [], 0
    for name in sorted(listed_before - listed_after):
        path = root / name
        if path.is_file() and not path.is_symlink():
            saved += path.stat().st_size
            path.unlink()
            removed.append(name)
    Bundle.load(root)  # the result verifies as strictly as any bundle
    logger.info("bundle %s: %d duplicate file(s) removed, %d bytes saved", root, len(removed), saved)
    return {"removed": removed, "bytes_saved": saved, "shared": shared}


def measure_parity(
    model: EmotionModel,
    files: Mapping[str, str | Path],
    runtime: str,
    batch: int = 4,
    seed: int = 0,
    device: str | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Run the graph files (a format of ``precision``) on ``runtime`` and the PyTorch model on the
    same seeded random inputs: per graph the max abs difference, and for the fusion head how often
    the predicted labels agree. Usable by every format's exporter."""
    from edge_emotion.runtimes import format_options, load_backend

    from .onnx_export import example_inputs, torch_outputs

    inputs = example_inputs(model.preset, batch=batch, seed=seed)
    reference = torch_outputs(model, inputs)
    report: dict[str, Any] = {
        "reference": "pytorch fp32",
        "runtime": runtime,
        "inputs": f"seeded random (seed {seed}), batch {batch}",
        "graphs": {},
    }
    for graph in GRAPHS:
        trust = {"trusted": True} if runtime == "torch" else {}  # the files this export just wrote
        backend = load_backend(runtime, files[graph], device=device, **format_options(runtime, precision), **trust)
        output = GRAPH_OUTPUTS[graph][0]
        got = backend.run(inputs[graph])[output]
        want = reference[graph][output]
        report["graphs"][graph] = {"max_abs_diff": float(np.max(np.abs(got.astype(np.float64) - want)))}
        if graph == FUSION_HEAD:
            report["label_agreement"] = float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
    return report


def _exporter(format_key: str):
    target = get_format(format_key).exporter
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # the exporter itself is absent, not one of its imports
            raise BundleError(f"format {format_key!r} has no exporter in this version ({target})") from None
        raise
    return getattr(module, function)


def _parity_runtime(format_key: str) -> str | None:
    from edge_emotion.runtimes import is_available

    return next((r for r in get_format(format_key).runtimes if is_available(r)), None)


def write_bundle(
    model: EmotionModel,
    out_dir: str | Path,
    provenance: Mapping[str, Any] | None = None,
    formats: Iterable[str] = ("onnx",),
    name: str | None = None,
    overwrite: bool = False,
    parity: bool = True,
    **export_options: Any,
) -> Path:
    """Export ``model`` into a bundle at ``out_dir`` with ``formats`` (keys of the format table),
    recording for each its files, tool versions and, when ``parity`` and a runtime for it is
    installed, its parity against the PyTorch model. The FP32 ONNX graphs are exported first, as
    every other format derives from them. ``export_options`` go to each format's exporter.
    Returns the bundle directory."""
    from .onnx_export import export_onnx

    keys = list(dict.fromkeys(formats))
    for key in keys:
        get_format(key)  # unknown keys fail before any work
    root = create_bundle(out_dir, model.preset, provenance, name, overwrite)
    with tempfile.TemporaryDirectory(prefix="edge-emotion-export-") as work:
        work_dir = Path(work)
        onnx_files = export_onnx(model, work_dir / "onnx-fp32")
        for key in keys:
            format_dir = work_dir / key
            format_dir.mkdir()
            files, metadata = _exporter(key)(model, key, onnx_files, format_dir, **export_options)
            metadata = {**metadata, "tool_versions": tool_versions()}
            runtime = _parity_runtime(key) if parity else None
            if runtime is not None:
                metadata["parity"] = measure_parity(model, files, runtime, precision=get_format(key).precision)
            elif parity:
                metadata["parity"] = {"status": f"not measured: none of {get_format(key).runtimes} is installed"}
            add_format(root, key, files, metadata)
    dedupe_bundle(root, separate_weights=False)  # graph_path() alone still loads every graph
    return root


__all__ = [
    "TOOLS",
    "tool_versions",
    "create_bundle",
    "add_format",
    "dedupe_bundle",
    "training_provenance",
    "measure_parity",
    "write_bundle",
]
