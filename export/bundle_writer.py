"""Writing bundles: a manifest, then one call per format.

>>> bundle_dir = write_bundle(model, "out/edge", provenance={...}, formats=("onnx", "torch"))

or, step by step (how the INT8 / OpenVINO / TensorRT exporters add their formats)::

    create_bundle("out/edge", model.preset, provenance={...})
    add_format("out/edge", "openvino-int8", {"visual_encoder": xml, ...}, {"parity": ...})

:func:`add_format` copies the files to ``<bundle>/<format>/<graph><suffix>`` (with their
companions, e.g. IR's ``.bin``), hashes them and rewrites the manifest atomically.
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
from typing import Any

import numpy as np

from edge_emotion.config import PresetConfig
from edge_emotion.errors import BundleError
from edge_emotion.model.bundle import MANIFEST_NAME, SCHEMA_VERSION, file_entry, read_manifest
from edge_emotion.model.formats import FORMATS, FUSION_HEAD, GRAPH_OUTPUTS, GRAPHS, get_format

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


def add_format(
    bundle_dir: str | Path,
    format_key: str,
    files: Mapping[str, str | Path],
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Add (or replace) one format in a bundle: copy ``files`` (``{graph: main file}``, all three
    graphs; companions such as IR's ``.bin`` are taken from beside each file) to
    ``<bundle>/<format_key>/<graph><suffix>``, hash them, and record them with ``metadata`` in the
    manifest. Returns the format's manifest entry."""
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
        if spec.companion_suffixes:
            graphs[graph]["companions"] = [
                file_entry(root, main.with_suffix(suffix)) for suffix in spec.companion_suffixes
            ]
    entry = {"precision": spec.precision, "layout": spec.layout, "graphs": graphs, **dict(metadata or {})}
    manifest["formats"][format_key] = entry
    _write_manifest(root, manifest)
    logger.info("bundle %s: added format %s", root, format_key)
    return entry


def measure_parity(
    model: EmotionModel,
    files: Mapping[str, str | Path],
    runtime: str,
    batch: int = 4,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """Run the graph files on ``runtime`` and the PyTorch model on the same seeded random inputs:
    per graph the max abs difference, and for the fusion head how often the predicted labels
    agree. Usable by every format's exporter."""
    from edge_emotion.runtimes import load_backend

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
        backend = load_backend(runtime, files[graph], device=device)
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
                metadata["parity"] = measure_parity(model, files, runtime)
            elif parity:
                metadata["parity"] = {"status": f"not measured: none of {get_format(key).runtimes} is installed"}
            add_format(root, key, files, metadata)
    return root


__all__ = ["TOOLS", "tool_versions", "create_bundle", "add_format", "measure_parity", "write_bundle"]
