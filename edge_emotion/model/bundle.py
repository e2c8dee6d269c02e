"""A model bundle: a directory with ``manifest.json`` and the graph files it lists (docs/DESIGN.md,
principle 5). Loading checks the whole manifest against its schema (:mod:`edge_emotion.model.schema`),
then every file's sha256, and refuses a bundle that does not match, naming the file. Needs neither
torch nor onnx.

What a bundle may make the SDK read is exactly what its manifest lists: every file a graph loads
(the graph, IR weights, ONNX external-data files) is listed with its sha256, every listed path stays
inside the bundle folder (``..``, absolute paths and symlinks that lead out are refused), and no
graph format that carries code is loaded from it (the ``torch`` format runs only from a bundle the
caller trusts, see ``runtimes/torch_backend.py``).

``manifest.json`` (schema version 2; version 1 is read too)::

    {
      "schema_version": 2,
      "name": "edge-emotion-edge",
      "created": "2026-11-25T10:00:00+00:00",
      "labels": ["neutral", ...],
      "preset": {...PresetConfig.to_dict()...},
      "formats": {
        "onnx": {
          "precision": "fp32",
          "graphs": {"visual_encoder": {"file": "onnx/visual_encoder.onnx", "sha256": "...",
                                        "bytes": 123, "companions": [{"file": ..., ...}]}, ...},
          ...per-format metadata (parity, tool_versions, ...)
        },
        "onnx-int8": {"graphs": {"audio_encoder": {"file": "onnx/audio_encoder.onnx", ...}, ...}, ...}
      },
      "provenance": {"training_data": ..., "split_protocol": ..., "metrics": ..., "command": ...},
      "tool_versions": {"edge-emotion": ..., "torch": ..., ...}
    }

In version 2 a format may name another format's file (``onnx-int8`` above uses the FP32 audio
encoder) instead of carrying a byte-identical copy; it is verified like any other entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import PresetConfig
from ..errors import BundleError
from .formats import FORMATS, GRAPHS, formats_for_runtime
from .schema import KNOWN_SCHEMA_VERSIONS, SCHEMA_VERSION, check_manifest

MANIFEST_NAME = "manifest.json"


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(bundle_dir: Path, path: Path) -> dict[str, Any]:
    """``{"file", "sha256", "bytes"}`` for a file inside ``bundle_dir`` (``file`` is relative, posix)."""
    return {
        "file": path.relative_to(bundle_dir).as_posix(),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
    }


def _resolve_inside(root: Path, relative: str, where: str) -> Path:
    """``root/relative`` for a relative path that stays inside ``root`` (an absolute ``root``), also
    once symlinks are followed."""
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or "\\" in relative:
        raise BundleError(f"bundle {root}: {where} names {relative!r}, which is not a path inside the bundle")
    path = root.joinpath(*rel.parts)
    real_root = root.resolve()
    if not path.resolve().is_relative_to(real_root):
        raise BundleError(
            f"bundle {root}: {where} names {relative!r}, a symlink that leads out of the bundle "
            f"(to {path.resolve()}); a bundle's files must be inside its folder"
        )
    return path


def _verify_entry(root: Path, entry: Mapping[str, Any], where: str) -> Path:
    path = _resolve_inside(root, str(entry["file"]), where)
    if not path.is_file():
        raise BundleError(f"bundle {root}: file {entry['file']} ({where}) listed in {MANIFEST_NAME} is missing")
    if "bytes" in entry and path.stat().st_size != entry["bytes"]:
        raise BundleError(
            f"bundle {root}: file {entry['file']} ({where}) has been altered: "
            f"{path.stat().st_size} bytes, the manifest says {entry['bytes']}"
        )
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise BundleError(
            f"bundle {root}: file {entry['file']} ({where}) has been altered: "
            f"sha256 {actual[:12]}..., the manifest says {str(entry['sha256'])[:12]}..."
        )
    return path


def _check_external_data(root: Path, main: Path, companions: list[Path], where: str) -> None:
    """Refuse an ONNX graph that keeps tensor data in a file the manifest does not list (and hash)
    as one of the graph's companions."""
    from .onnx_meta import OnnxFormatError, external_data_locations

    try:
        locations = external_data_locations(main)
    except OnnxFormatError as exc:
        raise BundleError(f"bundle {root}: {where}: {main.name} is not a valid ONNX file ({exc})") from None
    listed = {path.resolve() for path in companions}
    for location in locations:
        if not location:
            raise BundleError(f"bundle {root}: {where}: {main.name} has external tensor data without a location")
        target = (main.parent / location).resolve()
        if not target.is_relative_to(root.resolve()) or target not in listed:
            raise BundleError(
                f"bundle {root}: {where}: {main.name} keeps tensor data in {location!r}, which {MANIFEST_NAME} "
                "does not list (with its sha256) among the graph's companions"
            )


def read_manifest(bundle_dir: str | Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a bundle directory (or the manifest's own path), unverified."""
    path = Path(bundle_dir)
    manifest_path = path if path.name == MANIFEST_NAME and path.is_file() else path / MANIFEST_NAME
    if not path.exists():
        raise BundleError(f"no bundle at {path}: the path does not exist")
    if not manifest_path.is_file():
        raise BundleError(f"{path} is not a bundle: it has no {MANIFEST_NAME}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except RecursionError:
        raise BundleError(f"bundle {manifest_path.parent}: {MANIFEST_NAME} nests too deeply to be a manifest") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"bundle {manifest_path.parent}: {MANIFEST_NAME} cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"bundle {manifest_path.parent}: {MANIFEST_NAME} is not a JSON object")
    return manifest


@dataclass(frozen=True, eq=False)
class Bundle:
    """A verified bundle. Build it with :meth:`load`; compared by identity."""

    root: Path
    manifest: dict[str, Any] = field(repr=False)
    preset: PresetConfig = field(repr=False)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> Bundle:
        """Read and check ``path/manifest.json``: the whole manifest against its schema
        (:func:`~edge_emotion.model.schema.check_manifest`: known keys, types, ranges, finite
        numbers, a known schema version, known formats with all three graphs), a valid preset, and
        (``verify``) every listed file inside the bundle, present, with the listed sha256, and no
        ONNX graph reading a file the manifest does not list. Raises
        :class:`~edge_emotion.errors.BundleError` naming what is wrong."""
        manifest = read_manifest(path)
        root = Path(path)
        root = (root.parent if root.name == MANIFEST_NAME and root.is_file() else root).resolve()
        check_manifest(manifest, str(root))
        try:
            preset = PresetConfig.from_dict(manifest["preset"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bundle {root}: the preset in {MANIFEST_NAME} is invalid: {exc}") from None
        for key, entry in manifest["formats"].items():
            for graph in GRAPHS:
                where = f"{key} {graph}"
                graph_entry = entry["graphs"][graph]
                if not verify:
                    _resolve_inside(root, graph_entry["file"], where)
                    continue
                main = _verify_entry(root, graph_entry, where)
                companions = [_verify_entry(root, c, where) for c in graph_entry.get("companions", ())]
                if FORMATS[key].layout == "onnx":
                    _check_external_data(root, main, companions, where)
        return cls(root=root, manifest=manifest, preset=preset)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.root.name))

    @property
    def schema_version(self) -> int:
        return int(self.manifest["schema_version"])

    @property
    def labels(self) -> tuple[str, ...]:
        return self.preset.labels

    @property
    def formats(self) -> tuple[str, ...]:
        """The format keys this bundle carries, in the manifest's order."""
        return tuple(self.manifest["formats"])

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.manifest.get("provenance") or {})

    @property
    def tool_versions(self) -> dict[str, str]:
        return dict(self.manifest.get("tool_versions") or {})

    def format_info(self, format_key: str) -> dict[str, Any]:
        """The manifest's entry for one format (precision, graphs, metadata)."""
        try:
            return self.manifest["formats"][format_key]
        except KeyError:
            raise BundleError(
                f"bundle {self.root} has no format {format_key!r}; it has: {', '.join(self.formats) or 'none'}"
            ) from None

    def graph_path(self, format_key: str, graph: str) -> Path:
        """The absolute path of ``graph``'s main file in ``format_key``."""
        graphs = self.format_info(format_key)["graphs"]
        if graph not in graphs:
            raise BundleError(f"bundle {self.root}: unknown graph {graph!r}; the graphs are {', '.join(GRAPHS)}")
        return _resolve_inside(self.root, graphs[graph]["file"], f"{format_key} {graph}")

    def companion_path(self, format_key: str, graph: str, suffix: str) -> Path | None:
        """The absolute path of ``graph``'s companion file ending in ``suffix`` (an IR's ``.bin``),
        which in schema version 2 may be another format's file; None when there is none."""
        self.graph_path(format_key, graph)  # checks the names
        for companion in self.format_info(format_key)["graphs"][graph].get("companions", ()):
            if PurePosixPath(companion["file"]).suffix == suffix:
                return _resolve_inside(self.root, companion["file"], f"{format_key} {graph}")
        return None

    def load_options(self, format_key: str, graph: str, runtime: str) -> dict[str, Any]:
        """Options a backend needs beyond the graph's path to load it from this bundle: an IR's
        weights when they are not beside its ``.xml`` (a shared ``.bin``), for ``openvino``."""
        if runtime != "openvino" or FORMATS[format_key].layout != "openvino-ir":
            return {}
        weights = self.companion_path(format_key, graph, ".bin")
        main = self.graph_path(format_key, graph)
        if weights is None or weights == main.with_suffix(".bin"):
            return {}
        return {"weights_path": weights}

    def size_bytes(self, format_key: str) -> int:
        """Bytes of all files of one format (graphs and companions)."""
        total = 0
        for entry in self.format_info(format_key)["graphs"].values():
            total += int(entry.get("bytes", 0)) + sum(int(c.get("bytes", 0)) for c in entry.get("companions", ()))
        return total

    def failed_validation(self, format_key: str) -> bool:
        """True when the parity ``format_key``'s export recorded is out of its precision's bounds
        (:func:`edge_emotion.model.validation.check_parity`; no recorded parity is not a failure)."""
        from .formats import get_format
        from .validation import check_parity

        return check_parity(self.format_info(format_key), get_format(format_key).precision).passed is False

    def best_format(self, runtime: str) -> str | None:
        """The format this bundle carries that ``runtime`` runs best (``AUTO_ORDER``), preferring
        formats that passed their export validation; None when it carries none that ``runtime`` runs."""
        keys = [key for key in formats_for_runtime(runtime) if key in self.manifest["formats"]]
        keys.sort(key=self.failed_validation)  # stable: AUTO_ORDER within passed, then within failed
        return keys[0] if keys else None


__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "KNOWN_SCHEMA_VERSIONS",
    "Bundle",
    "read_manifest",
    "sha256_file",
    "file_entry",
]
