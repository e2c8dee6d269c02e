"""What this install can do: versions, importable runtimes and their devices, the default bundle."""

from __future__ import annotations

import importlib
import importlib.util
import platform
from pathlib import Path
from typing import Any

from . import __version__

# runtime name -> (import name, extra that installs it)
RUNTIME_PACKAGES: dict[str, tuple[str, str]] = {
    "onnxruntime": ("onnxruntime", "edge-emotion (base install)"),
    "openvino": ("openvino", "pip install 'edge-emotion[openvino]'"),
    "tensorrt": ("tensorrt", "pip install 'edge-emotion[tensorrt]' or JetPack"),
    "torch": ("torch", "pip install 'edge-emotion[train]'"),
}


def _devices(name: str, module: Any) -> list[str]:
    try:
        if name == "onnxruntime":
            return list(module.get_available_providers())
        if name == "openvino":
            return list(module.Core().available_devices)
        if name == "torch":
            devices = ["cpu"]
            if module.cuda.is_available():
                devices += [f"cuda:{i} ({module.cuda.get_device_name(i)})" for i in range(module.cuda.device_count())]
            return devices
        if name == "tensorrt":
            return ["cuda (engines are built for the GPU they run on)"]
    except Exception as exc:  # a runtime that imports but cannot enumerate devices is still reported
        return [f"error listing devices: {exc}"]
    return []


def runtime_report(name: str) -> dict[str, Any]:
    import_name, install = RUNTIME_PACKAGES[name]
    if importlib.util.find_spec(import_name) is None:
        return {"available": False, "install": install}
    try:
        module = importlib.import_module(import_name)
    except Exception as exc:  # installed but broken (e.g. a missing shared library)
        return {"available": False, "install": f"import failed: {exc}"}
    version = getattr(module, "__version__", None) or getattr(module, "get_version", lambda: "?")()
    return {"available": True, "version": str(version), "devices": _devices(name, module)}


def default_bundle_path() -> Path | None:
    """The bundle shipped inside the package, or None when this install carries none."""
    path = Path(__file__).resolve().parent / "models" / "default"
    return path if (path / "manifest.json").is_file() else None


def collect_info() -> dict[str, Any]:
    from .frontend.blazeface import ONNX_MODEL_PATH

    default = default_bundle_path()
    runtimes = {name: runtime_report(name) for name in RUNTIME_PACKAGES}
    return {
        "version": __version__,
        "python": platform.python_version(),
        "runtimes": runtimes,
        "default_bundle": str(default) if default else None,
        # what --face-detector auto runs (edge_emotion/frontend/blazeface.py), without loading it
        "face_detector": {
            "model": ONNX_MODEL_PATH.name,
            "runtime": "openvino" if runtimes["openvino"]["available"] else "onnxruntime",
            "licence": "Apache-2.0 (The MediaPipe Authors; edge_emotion/assets/LICENSE-mediapipe.txt)",
        },
    }
