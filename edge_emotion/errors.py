"""The SDK's error types. Every error the SDK raises on purpose derives from :class:`EdgeEmotionError`."""

from __future__ import annotations


class EdgeEmotionError(Exception):
    """Base class of every error raised on purpose by edge-emotion."""


class InputError(EdgeEmotionError, ValueError):
    """Bad input from the user: a missing, empty or corrupt file, a wrong shape, a wrong order."""


class MediaError(InputError):
    """A media file that cannot be opened or decoded, or that holds neither audio nor video."""


class DeviceError(EdgeEmotionError):
    """A camera or microphone that does not exist or cannot be opened."""


class BundleError(EdgeEmotionError):
    """A model bundle that is missing, incomplete, altered or of an unknown schema."""


class BackendError(EdgeEmotionError):
    """A runtime that is unknown, not installed, or that failed to load a graph."""


class MissingDependencyError(BackendError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, package: str, extra: str, what: str | None = None):
        self.package = package
        self.extra = extra
        purpose = f" (needed for {what})" if what else ""
        super().__init__(f"{package} is not installed{purpose}; install it with: pip install 'edge-emotion[{extra}]'")
