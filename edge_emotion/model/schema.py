"""The schema of ``manifest.json``: one check of the whole manifest (types, ranges, finite numbers,
known keys) before anything is built from it.

:func:`check_manifest` raises :class:`~edge_emotion.errors.BundleError` with one message naming the
first offending field by its path (``preset.visual.fps``). It checks the manifest alone; that the
listed files exist and match their sha256, and that the graphs' tensors fit the preset (the
labels count against the fusion head's output), are checked by :class:`~edge_emotion.model.bundle.Bundle`
and :class:`~edge_emotion.model.engine.BundleModel`.

Schema versions: 1, and 2, whose graph files and companions may be another format's files
(``"file": "onnx/audio_encoder.onnx"`` under ``onnx-int8``) instead of copies. The fields are the
same in both; a reader of version 1 alone would load a version-2 bundle's OpenVINO graphs without
their shared weights, so such a bundle says 2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import BundleError
from .formats import FORMATS, GRAPHS

#: Schema versions this version of the SDK reads.
KNOWN_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
#: The version :mod:`edge_emotion.export.bundle_writer` writes.
SCHEMA_VERSION = 2
#: Deeper JSON than this is refused (the manifest's own structure is 6 levels deep).
MAX_DEPTH = 32
#: At most this many labels (a classifier head with more is not an emotion model).
MAX_LABELS = 1000

_TOP_KEYS = {"schema_version", "name", "created", "labels", "preset", "formats", "provenance", "tool_versions"}
_REQUIRED_TOP_KEYS = ("schema_version", "labels", "preset", "formats")
_FORMAT_RESERVED = {"precision", "layout", "graphs"}
_ENTRY_KEYS = {"file", "sha256", "bytes", "companions"}
_SHA256 = re.compile(r"[0-9a-f]{64}")

# (kind, low, high) per preset field; kind "int" refuses floats and booleans, "num" takes ints and
# finite floats; bounds are inclusive, None for none.
_INT, _NUM, _BOOL, _STR = "int", "num", "bool", "str"
_AUDIO = {
    "sample_rate": (_INT, 1000, 384_000),
    "n_mels": (_INT, 1, 1024),
    "n_fft": (_INT, 16, 65_536),
    "win_length": (_INT, 1, 65_536),
    "hop_length": (_INT, 1, 65_536),
    "n_frames": (_INT, 1, 100_000),
    "f_min": (_NUM, 0, 192_000),
    "f_max": (_NUM, 1, 192_000),
    "mel_scale": (_STR, ("slaney", "htk"), None),
    "log_floor": (_NUM, 1e-30, 1.0),
    "mean": (_NUM, -1e6, 1e6),
    "std": (_NUM, 1e-12, 1e6),
    "vad_floor_db": (_NUM, -200, 0),
    "vad_range_db": (_NUM, 0, 200),
}
_VISUAL = {
    "crop_size": (_INT, 8, 4096),
    "margin": (_NUM, 0, 10),
    "grayscale": (_BOOL, None, None),
    "mean": ("num3", -1e6, 1e6),
    "std": ("num3", 1e-12, 1e6),
    "fps": (_NUM, 0.1, 1000),
    "min_face_px": (_INT, 1, 100_000),
    "min_detection_score": (_NUM, 0, 1),
}
_MODEL = {
    "visual_width": (_INT, 1, 4096),
    "visual_stem_pool": (_BOOL, None, None),
    "audio_channels": ("ints", 1, 65_536),
    "audio_time_pool": ("bools", None, None),
    "audio_dim": (_INT, 1, 65_536),
    "time_steps": (_INT, 1, 100_000),
    "d_model": (_INT, 1, 65_536),
    "heads": (_INT, 1, 1024),
    "ranks": ("ints", 1, 65_536),
    "gru_hidden": (_INT, 1, 65_536),
    "dropout": (_NUM, 0, 1),
}
_PRESET_SECTIONS = {"audio": _AUDIO, "visual": _VISUAL, "model": _MODEL}
_PRESET_KEYS = {"name", "audio", "visual", "model", "labels", "hop_ms"}


class _Invalid(Exception):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of JSON data, stopping early past ``limit`` (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(where, f"must be an object, got {type(value).__name__}")
    return value


def _known(mapping: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise _Invalid(where, f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}")


def _in_range(value: float, low: float | None, high: float | None, where: str) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise _Invalid(where, f"{_describe(value)} is out of range [{low}, {high}]")


def _field(value: Any, spec: tuple, where: str) -> None:
    kind, low, high = spec
    if kind == _INT:
        if not _is_int(value):
            raise _Invalid(where, f"must be an integer, got {_describe(value)}")
        _in_range(value, low, high, where)
    elif kind == _NUM:
        if not _is_number(value):
            raise _Invalid(where, f"must be a finite number, got {_describe(value)}")
        _in_range(value, low, high, where)
    elif kind == _BOOL:
        if not isinstance(value, bool):
            raise _Invalid(where, f"must be true or false, got {_describe(value)}")
    elif kind == _STR:
        if value not in low:
            raise _Invalid(where, f"must be one of {', '.join(low)}, got {_describe(value)}")
    elif kind == "num3":
        if not isinstance(value, list) or len(value) != 3:
            raise _Invalid(where, f"must be a list of 3 numbers, got {_describe(value)}")
        for i, item in enumerate(value):
            _field(item, (_NUM, low, high), f"{where}[{i}]")
    elif kind in ("ints", "bools"):
        if not isinstance(value, list) or not 1 <= len(value) <= 64:
            raise _Invalid(where, f"must be a list of 1 to 64 items, got {_describe(value)}")
        for i, item in enumerate(value):
            _field(item, (_INT, low, high) if kind == "ints" else (_BOOL, None, None), f"{where}[{i}]")


def _labels(value: Any, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(label, str) and label.strip() for label in value):
        raise _Invalid(where, f"must be a list of non-empty strings, got {_describe(value)}")
    if not 2 <= len(value) <= MAX_LABELS or len(set(value)) != len(value):
        distinct = len(set(value))
        raise _Invalid(where, f"must be 2 to {MAX_LABELS} distinct names, got {len(value)} ({distinct} distinct)")


def _preset(value: Any) -> None:
    preset = _object(value, "preset")
    _known(preset, _PRESET_KEYS, "preset")
    missing = [key for key in ("name", "audio", "visual", "model", "labels") if key not in preset]
    if missing:
        raise _Invalid("preset", f"lacks {', '.join(missing)}")
    if not isinstance(preset["name"], str):
        raise _Invalid("preset.name", f"must be a string, got {_describe(preset['name'])}")
    _labels(preset["labels"], "preset.labels")
    if "hop_ms" in preset:
        _field(preset["hop_ms"], (_INT, 1, 60_000), "preset.hop_ms")
    for section, fields in _PRESET_SECTIONS.items():
        values = _object(preset[section], f"preset.{section}")
        _known(values, set(fields), f"preset.{section}")
        for name, spec in fields.items():
            if name in values:  # absent fields take the preset's defaults
                _field(values[name], spec, f"preset.{section}.{name}")


def _entry(value: Any, where: str, companions_allowed: bool) -> None:
    entry = _object(value, where)
    _known(entry, _ENTRY_KEYS if companions_allowed else _ENTRY_KEYS - {"companions"}, where)
    if not isinstance(entry.get("file"), str) or not entry["file"]:
        raise _Invalid(f"{where}.file", f"must be a path inside the bundle, got {_describe(entry.get('file'))}")
    if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
        raise _Invalid(f"{where}.sha256", f"must be 64 lowercase hex digits, got {_describe(entry.get('sha256'))}")
    if "bytes" in entry:
        _field(entry["bytes"], (_INT, 0, 1 << 40), f"{where}.bytes")
    if "companions" in entry:
        if not isinstance(entry["companions"], list):
            raise _Invalid(f"{where}.companions", f"must be a list, got {type(entry['companions']).__name__}")
        for i, companion in enumerate(entry["companions"]):
            _entry(companion, f"{where}.companions[{i}]", companions_allowed=False)


def _formats(value: Any) -> None:
    formats = _object(value, "formats")
    for key, entry in formats.items():
        where = f"formats.{key}"
        if key not in FORMATS:
            raise _Invalid(where, f"format {key!r} is not known to this edge-emotion (known: {', '.join(FORMATS)})")
        entry = _object(entry, where)
        spec = FORMATS[key]
        if "precision" in entry and entry["precision"] != spec.precision:
            got = _describe(entry["precision"])
            raise _Invalid(f"{where}.precision", f"is {got}, format {key} is {spec.precision}")
        if "layout" in entry and entry["layout"] != spec.layout:
            raise _Invalid(f"{where}.layout", f"is {_describe(entry['layout'])}, format {key} is {spec.layout}")
        graphs = _object(entry.get("graphs"), f"{where}.graphs")
        _known(graphs, set(GRAPHS), f"{where}.graphs")
        absent = [g for g in GRAPHS if g not in graphs]
        if absent:
            raise _Invalid(f"{where}.graphs", f"lacks the graph(s) {', '.join(absent)}")
        for graph in GRAPHS:
            _entry(graphs[graph], f"{where}.graphs.{graph}", companions_allowed=True)


def check_manifest(manifest: Any, bundle: str = "") -> int:
    """Check a parsed manifest against the schema; returns its schema version. Raises
    :class:`BundleError` ``"bundle <bundle>: manifest.json: <field>: <problem>"`` for the first
    problem found."""
    prefix = f"bundle {bundle}: manifest.json" if bundle else "manifest.json"
    try:
        if _depth(manifest, MAX_DEPTH) > MAX_DEPTH:
            raise _Invalid("(document)", f"nests deeper than {MAX_DEPTH} levels")
        manifest = _object(manifest, "(document)")
        missing = [key for key in _REQUIRED_TOP_KEYS if key not in manifest]
        if missing:
            raise _Invalid("(document)", f"lacks {', '.join(missing)}")
        version = manifest["schema_version"]
        if not _is_int(version) or version not in KNOWN_SCHEMA_VERSIONS:
            raise BundleError(
                f"{prefix}: schema_version {version!r} is not known to this edge-emotion "
                f"(it reads {', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}); upgrade edge-emotion or re-export"
            )
        _known(manifest, _TOP_KEYS, "(document)")
        for key in ("name", "created"):
            if key in manifest and not isinstance(manifest[key], str):
                raise _Invalid(key, f"must be a string, got {_describe(manifest[key])}")
        for key in ("provenance", "tool_versions"):
            if key in manifest and manifest[key] is not None:
                _object(manifest[key], key)
        _labels(manifest["labels"], "labels")
        _preset(manifest["preset"])
        if manifest["labels"] != manifest["preset"]["labels"]:
            raise _Invalid("labels", "differ from preset.labels")
        _formats(manifest["formats"])
    except _Invalid as exc:
        raise BundleError(f"{prefix}: {exc}") from None
    return version


__all__ = ["KNOWN_SCHEMA_VERSIONS", "SCHEMA_VERSION", "MAX_DEPTH", "check_manifest"]
