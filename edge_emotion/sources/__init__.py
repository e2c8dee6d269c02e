"""Video and audio sources with integer ``timestamp_ms`` on one clock: files (PyAV) and live devices
(OpenCV camera, PyAudio microphone). Every backend library is imported lazily."""

from .camera import CameraSource
from .files import AudioFileSource, MediaFile, VideoFileSource, open_media, read_audio
from .frames import AudioChunk, VideoFrame
from .microphone import MicrophoneSource

__all__ = [
    "VideoFrame",
    "AudioChunk",
    "MediaFile",
    "open_media",
    "VideoFileSource",
    "AudioFileSource",
    "read_audio",
    "CameraSource",
    "MicrophoneSource",
]
