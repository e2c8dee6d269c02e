"""A model bundle: a directory with ``manifest.json`` and the graph files it lists (docs/DESIGN.md,
principle 5). Loading verifies the manifest and every file's sha256 and refuses a bundle that does
not match, naming the file. Needs neither torch nor onnx.

``manifest.json`` (schema version 1)::

    {
      "schema_version": 1,
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
        }
      },
      "provenance": {"training_data": ..., "split_protocol": ..., "metrics": ..., "command": ...},
      "tool_versions": {"edge-emotion": ..., "torch": ..., ...}
    }
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

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
#: Schema versions this version of the SDK reads.
KNOWN_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
_REQUIRED_KEYS = ("schema_version", "labels", "preset", "formats")


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
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise BundleError(f"bundle {root}: {where} names {relative!r}, which is not a path inside the bundle")
    return root.joinpath(*rel.parts)


def _verify_entry(root: Path, entry: Any, where: str) -> Path:
    if not isinstance(entry, Mapping) or not {"file", "sha256"} <= set(entry):
        raise BundleError(f"bundle {root}: {where} needs 'file' and 'sha256' in {MANIFEST_NAME}")
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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
        """Read and check ``path/manifest.json``: a known schema version, a valid preset, known
        format keys with all three graphs, and (``verify``) every listed file present with the
        listed sha256. Raises :class:`~edge_emotion.errors.BundleError` naming what is wrong."""
        manifest = read_manifest(path)
        root = Path(path)
        root = (root.parent if root.name == MANIFEST_NAME and root.is_file() else root).resolve()
        missing = [key for key in _REQUIRED_KEYS if key not in manifest]
        if missing:
            raise BundleError(f"bundle {root}: {MANIFEST_NAME} lacks {', '.join(missing)}")
        version = manifest["schema_version"]
        if version not in KNOWN_SCHEMA_VERSIONS:
            raise BundleError(
                f"bundle {root}: schema_version {version!r} is not known to this edge-emotion "
                f"(it reads {', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}); upgrade edge-emotion or re-export"
            )
        try:
            preset = PresetConfig.from_dict(manifest["preset"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bundle {root}: the preset in {MANIFEST_NAME} is invalid: {exc}") from None
        if tuple(manifest["labels"]) != preset.labels:
            raise BundleError(f"bundle {root}: 'labels' and the preset's labels differ in {MANIFEST_NAME}")
        formats = manifest["formats"]
        if not isinstance(formats, Mapping):
            raise BundleError(f"bundle {root}: 'formats' in {MANIFEST_NAME} is not an object")
        for key, entry in formats.items():
            if key not in FORMATS:
                raise BundleError(
                    f"bundle {root}: format {key!r} is not known to this edge-emotion (known: {', '.join(FORMATS)})"
                )
            graphs = entry.get("graphs", {}) if isinstance(entry, Mapping) else {}
            absent = [g for g in GRAPHS if g not in graphs]
            if absent:
                raise BundleError(f"bundle {root}: format {key!r} lacks the graph(s) {', '.join(absent)}")
            if verify:
                for graph in GRAPHS:
                    where = f"{key} {graph}"
                    _verify_entry(root, graphs[graph], where)
                    for companion in graphs[graph].get("companions", ()):
                        _verify_entry(root, companion, where)
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
