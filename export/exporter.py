"""The export driver: a checkpoint (or a model) -> a bundle with a list of formats.

Driven by the format table (:data:`edge_emotion.model.formats.FORMATS`): each requested row's
``exporter`` writes its files from the FP32 ONNX graphs, then every format is checked against the
FP32 PyTorch model on real windows (:mod:`.parity`) on the first of its runtimes installed here,
and recorded in the manifest (:func:`~.bundle_writer.add_format`) with its sizes, parity, the
accuracy on an eval set when one is given, and the tool versions.

>>> export_checkpoint("runs/edge/best.pt", "bundles/edge", select_formats(["openvino"], int8=True),
...                   calib_dir="data/calib")
"""

from __future__ import annotations

import importlib
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_emotion.errors import InputError
from edge_emotion.model.formats import FORMATS, get_format

from .bundle_writer import add_format, create_bundle, tool_versions
from .bundle_writer import measure_parity as measure_random_parity
from .calibration import CalibrationSet, load_calibration
from .parity import measure_accuracy, measure_parity

logger = logging.getLogger(__name__)

#: The format every bundle carries: the FP32 reference graphs the other formats are built from,
#: and the format that runs everywhere.
BASE_FORMAT = "onnx"


def family(key: str) -> str:
    """A format key's family as ``--format`` names it: ``openvino-int8`` -> ``openvino``."""
    return key.split("-", 1)[0]


def families() -> tuple[str, ...]:
    """The ``--format`` families of the table, in its order (``onnx``, ``openvino``, ...)."""
    return tuple(dict.fromkeys(family(k) for k in FORMATS))


def select_formats(names: Sequence[str], fp16: bool = False, int8: bool = False) -> tuple[str, ...]:
    """``--format`` names (families or exact keys) and the precision flags -> format keys, the
    base ``onnx`` first.

    A family gives its FP32 row, plus its FP16 row with ``fp16`` and its INT8 row with ``int8``;
    a family without an FP32 row (``tensorrt``) gives FP16 by default. An exact key is taken as is.
    Raises :class:`InputError` for an unknown name or a precision a family does not offer.
    """
    keys = [BASE_FORMAT]
    for name in names:
        rows = {FORMATS[k].precision: k for k in FORMATS if family(k) == name}
        if not rows and name in FORMATS:
            keys.append(name)
            continue
        if not rows:
            raise InputError(
                f"unknown format {name!r}; choose one of: {', '.join(families())} (or a key: {', '.join(FORMATS)})"
            )
        wanted = [p for p, flag in (("fp16", fp16), ("int8", int8)) if flag]
        if "fp32" in rows:
            wanted.insert(0, "fp32")
        elif not wanted:
            wanted = ["fp16"]
        missing = [p for p in wanted if p not in rows]
        if missing:
            raise InputError(f"format {name!r} has no {'/'.join(missing)} variant; it offers {', '.join(sorted(rows))}")
        keys.extend(rows[p] for p in wanted)
    return tuple(dict.fromkeys(keys))


def needs_calibration(keys: Sequence[str]) -> bool:
    return any(get_format(k).precision == "int8" for k in keys)


def exporter_for(key: str) -> Callable[..., tuple[dict[str, Path], dict[str, Any]]]:
    """The function the table's row names (``"module:function"``)."""
    module_name, _, function = get_format(key).exporter.partition(":")
    return getattr(importlib.import_module(module_name), function)


def parity_runtime(key: str) -> str | None:
    """The first of the row's runtimes installed here (None: none is)."""
    from edge_emotion.runtimes import is_available

    return next((r for r in get_format(key).runtimes if is_available(r)), None)


def preflight(keys: Sequence[str]) -> None:
    """Fail before any work when a format's build tool is missing (TensorRT off the target)."""
    if any(get_format(k).layout == "tensorrt-engine" for k in keys):
        from .tensorrt_export import import_tensorrt

        import_tensorrt()


@dataclass(frozen=True)
class ExportSettings:
    """``threads``: runtime threads for the parity runs; ``overwrite``: replace a bundle at the
    destination; ``export_options``: passed to every exporter (e.g. ``engine_options`` for TensorRT)."""

    threads: int | None = 2
    overwrite: bool = False
    export_options: Mapping[str, Any] | None = None


def _check(
    model,
    key: str,
    files: dict[str, Path],
    calibration: CalibrationSet | None,
    eval_set: CalibrationSet | None,
    threads: int | None,
) -> dict[str, Any]:
    runtime = parity_runtime(key)
    if runtime is None:
        return {"parity": {"status": f"not measured: none of {', '.join(get_format(key).runtimes)} is installed"}}
    checks: dict[str, Any] = {}
    precision = get_format(key).precision
    if calibration is not None:
        checks["parity"] = measure_parity(model, files, runtime, calibration, threads=threads, precision=precision)
    else:
        checks["parity"] = measure_random_parity(model, files, runtime, precision=precision)
    if eval_set is not None:
        checks["accuracy"] = measure_accuracy(model, files, runtime, eval_set, threads=threads, precision=precision)
    return checks


def export_model(
    model,
    out_dir: str | Path,
    formats: Sequence[str],
    calibration: CalibrationSet | None = None,
    eval_set: CalibrationSet | None = None,
    provenance: Mapping[str, Any] | None = None,
    settings: ExportSettings = ExportSettings(),
) -> Path:
    """Write a bundle at ``out_dir`` with the format keys ``formats`` (see :func:`select_formats`).
    INT8 formats need ``calibration``. Returns the bundle directory."""
    from .onnx_export import export_onnx

    keys = list(dict.fromkeys(formats))
    for key in keys:
        get_format(key)
    if needs_calibration(keys) and calibration is None:
        raise InputError("INT8 formats need calibration data: pass --calib DIR with real speech and face crops")
    preflight(keys)
    model.eval()
    root = create_bundle(out_dir, model.preset, provenance, overwrite=settings.overwrite)
    options = dict(settings.export_options or {})
    with tempfile.TemporaryDirectory(prefix="edge-emotion-export-") as work:
        work_dir = Path(work)
        onnx_files = export_onnx(model, work_dir / "onnx-fp32")
        for key in keys:
            logger.info("exporting %s", key)
            files, metadata = exporter_for(key)(
                model, key, onnx_files, work_dir / key, calibration=calibration, **options
            )
            sizes = {g: Path(p).stat().st_size for g, p in files.items()}
            checks = _check(model, key, files, calibration, eval_set, settings.threads)
            add_format(root, key, files, {**metadata, **checks, "tool_versions": tool_versions()})
            logger.info(
                "%s: %s bytes (main files), parity %s",
                key,
                sum(sizes.values()),
                checks["parity"].get("end_to_end", checks["parity"]),
            )
    return root


def load_model(checkpoint: str | Path):
    """The model of a training checkpoint (:func:`edge_emotion.train.checkpoint.load_model`)."""
    from ..train.checkpoint import load_model as load

    return load(checkpoint)


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    formats: Sequence[str],
    calib_dir: str | Path | None = None,
    eval_dir: str | Path | None = None,
    max_windows: int = 128,
    settings: ExportSettings = ExportSettings(),
) -> Path:
    """:func:`export_model` for a checkpoint file, with calibration (and eval) data read from
    directories of real speech and face crops (:func:`~.calibration.load_calibration`)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    if needs_calibration(formats) and calib_dir is None:
        raise InputError("INT8 formats need calibration data: pass --calib DIR with real speech and face crops")
    model = load_model(path)
    preset = model.preset
    calibration = load_calibration(calib_dir, preset, max_windows, max_windows) if calib_dir is not None else None
    eval_set = load_calibration(eval_dir, preset, max_windows, max_windows) if eval_dir is not None else None
    provenance = {"checkpoint": path.name}
    if calibration is not None:
        provenance["calibration_data"] = {"directory": str(calib_dir), **calibration.summary()}
    if eval_set is not None:
        provenance["eval_data"] = {"directory": str(eval_dir), **eval_set.summary()}
    return export_model(model, out_dir, formats, calibration, eval_set, provenance, settings)


__all__ = [
    "BASE_FORMAT",
    "ExportSettings",
    "family",
    "families",
    "select_formats",
    "needs_calibration",
    "preflight",
    "exporter_for",
    "parity_runtime",
    "export_model",
    "export_checkpoint",
    "load_model",
]
