"""edge-emotion: on-device audio-visual emotion recognition.

The SDK needs no torch: sources, face tracking, log-mel, alignment and fused inference through a
runtime backend (:mod:`edge_emotion.runtimes`).
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edge-emotion")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

from .config import EDGE, PAPER, PRESETS, PresetConfig, get_preset
from .errors import BackendError, BundleError, DeviceError, EdgeEmotionError, InputError, MediaError

__all__ = [
    "__version__",
    "EDGE",
    "PAPER",
    "PRESETS",
    "PresetConfig",
    "get_preset",
    "EdgeEmotionError",
    "InputError",
    "MediaError",
    "DeviceError",
    "BundleError",
    "BackendError",
]
