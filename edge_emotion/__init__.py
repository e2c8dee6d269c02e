"""edge-emotion: on-device audio-visual emotion recognition.

The SDK needs no torch. It reads in three layers, each importing only the ones before it:

- :mod:`edge_emotion.frontend` — face crop, log-mel, voice activity, resampling, and the one
  alignment of audio steps and face frames onto the model's time steps (training imports it too);
- :mod:`edge_emotion.model` — formats, bundles, export validation records and the engine that runs
  a bundle's three graphs through a runtime backend (:mod:`edge_emotion.runtimes`);
- the streaming recognizer (:mod:`edge_emotion.stream`, :mod:`edge_emotion.recognizer`,
  :mod:`edge_emotion.live`) and, beside it, :mod:`edge_emotion.eval` (corpus adapters, metrics,
  evaluation of a bundle); the command line (:mod:`edge_emotion.cli`) on top.

``edge_emotion.train`` and ``edge_emotion.export`` (torch) sit above the SDK and import it; the SDK
never imports them.

    from edge_emotion import Recognizer
    with Recognizer.from_bundle() as rec:
        for result in rec.analyze("clip.mp4"):
            print(result.label, result.scores)
"""

from __future__ import annotations

import os as _os
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edge-emotion")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

# In a clone, runtimes/, train/ and export/ sit beside this folder; an install maps them under this
# package (pyproject.toml's package-dir). Let a clone's root import them as edge_emotion.<name> too.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "runtimes")) and _os.path.isfile(
    _os.path.join(_checkout, "runtimes", "__init__.py")
):
    __path__.append(_checkout)  # noqa: F821 (a package's __path__)

from .config import EDGE, PAPER, PRESETS, PresetConfig, get_preset  # noqa: E402
from .errors import (  # noqa: E402
    BackendError,
    BundleError,
    DeviceError,
    EdgeEmotionError,
    InputError,
    MediaError,
    MissingDependencyError,
)

# The public face, imported on first use so that `import edge_emotion` stays light.
_LAZY = {
    "Recognizer": ".recognizer",
    "RecognizerOptions": ".recognizer",
    "EmotionStream": ".stream",
    "StreamConfig": ".stream",
    "EmotionResult": ".results",
    "FaceInfo": ".results",
    "LiveSession": ".live",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "Recognizer",
    "RecognizerOptions",
    "EmotionStream",
    "StreamConfig",
    "EmotionResult",
    "FaceInfo",
    "LiveSession",
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
    "MissingDependencyError",
]
