"""What sources yield: video frames and mono PCM chunks, each with an integer ``timestamp_ms``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoFrame:
    """One picture: ``image`` ``(H, W, 3) uint8`` RGB, taken at ``timestamp_ms`` on the source's clock."""

    image: np.ndarray
    timestamp_ms: int

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {self.image.shape} {self.image.dtype}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def luma(self) -> np.ndarray:
        """``(H, W) uint8`` brightness of the picture, for comparing frames of one source with each
        other (mouth motion): the ITU-R 601 luma of ``image``. A decoded frame gives its Y plane
        as coded instead, without converting to RGB (limited-range video then spans 16..235)."""
        import cv2

        return cv2.cvtColor(self.image, cv2.COLOR_RGB2GRAY)


class _DeferredFrame(VideoFrame):
    """A frame whose RGB picture is made later, or not at all: it keeps its size (``_size``,
    ``(width, height)``) and its picture once there is one (``_rgb``) beside the dataclass fields
    (set through ``object.__setattr__``, the parent being frozen)."""

    @property
    def converted(self) -> bool:
        """Whether ``image`` has its RGB picture yet."""
        return self._rgb is not None

    @property
    def width(self) -> int:
        return self._size[0]

    @property
    def height(self) -> int:
        return self._size[1]


@dataclass(frozen=True)
class AudioChunk:
    """Mono PCM ``pcm`` ``(S,) float32`` in [-1, 1] at ``sample_rate`` Hz; its first sample was
    captured at ``timestamp_ms``."""

    pcm: np.ndarray
    sample_rate: int
    timestamp_ms: int

    def __post_init__(self) -> None:
        if self.pcm.ndim != 1 or self.pcm.dtype != np.float32:
            raise ValueError(f"pcm must be (S,) float32, got {self.pcm.shape} {self.pcm.dtype}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.pcm.shape[0] / self.sample_rate

    @property
    def end_ms(self) -> float:
        """The time just after the last sample."""
        return self.timestamp_ms + self.duration_ms
