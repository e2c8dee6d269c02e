"""PyAV plumbing shared by the file sources: opening with clear errors, the file's clock, mono
mixdown and streaming resampling of decoded audio frames. PyAV is imported lazily."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MediaError
from ..frontend.features import to_mono

log = logging.getLogger(__name__)


def check_file(path: str | os.PathLike) -> Path:
    """The path as a :class:`Path`; :class:`MediaError` if it is missing, not a file, or empty."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if not p.is_file():
        raise MediaError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: the file is empty")
    return p


@contextmanager
def open_container(path: str | os.PathLike) -> Iterator[Any]:
    """``av.open(path)`` as a context manager; FFmpeg failures become :class:`MediaError`."""
    import av

    p = check_file(path)
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{p}: cannot be opened as audio or video ({exc})") from exc
    try:
        yield container
    except av.error.FFmpegError as exc:
        raise MediaError(f"{p}: decoding failed ({exc})") from exc
    finally:
        container.close()


def clock_origin_s(container: Any) -> float:
    """The file's time zero in seconds: the container's start time (0 when it has none).

    Every stream's timestamps are ``pts * time_base - clock_origin_s``, so streams that start at
    different times keep their offset."""
    start = container.start_time
    return 0.0 if start is None else float(start) / 1_000_000


def duration_ms(container: Any) -> int:
    """The container's duration in ms, else the latest stream end, else 0."""
    if container.duration is not None:
        return int(round(container.duration / 1000))
    ends = []
    for stream in container.streams:
        if stream.type in ("audio", "video") and stream.duration is not None and stream.time_base is not None:
            ends.append(float((stream.duration + (stream.start_time or 0)) * stream.time_base))
    return int(round(1000 * max(ends))) if ends else 0


def frame_seconds(frame: Any, origin_s: float) -> float | None:
    """A decoded frame's time on the file's clock, or None when it carries no pts."""
    return None if frame.time is None else float(frame.time) - origin_s


def video_frame_to_rgb(frame: Any) -> np.ndarray:
    """A decoded PyAV video frame (any pixel format) -> ``(H, W, 3) uint8`` RGB (FFmpeg's swscale)."""
    return frame.to_ndarray(format="rgb24")


#: 8-bit pixel formats whose first plane is the luma (Y) at full resolution.
LUMA_FORMATS = frozenset(
    {"yuv420p", "yuv422p", "yuv444p", "yuv411p", "yuv410p", "yuv440p", "nv12", "nv21", "gray"}
    | {"yuvj420p", "yuvj422p", "yuvj444p", "yuvj411p", "yuvj440p"}
)


def video_frame_luma(frame: Any) -> np.ndarray | None:
    """A decoded PyAV video frame -> a copy of its luma (Y) plane, ``(H, W) uint8``, with no colour
    conversion; None for a pixel format without one (RGB, paletted, more than 8 bits). The values
    are as coded: ITU-R 601 luma of the picture, on 16..235 for limited-range ("TV") video (most
    video) and on 0..255 for full-range video."""
    if frame.format.name not in LUMA_FORMATS:
        return None
    plane = frame.planes[0]
    height, width = int(frame.height), int(frame.width)
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width].copy()


def audio_frame_to_mono(frame: Any) -> np.ndarray:
    """A decoded PyAV audio frame (planar or packed, any sample format) -> ``(S,) float32`` mono
    (the mean of the channels, integer formats scaled to [-1, 1])."""
    channels = len(frame.layout.channels)
    if frame.format.name == "fltp" and channels <= 2:
        # What decoders of compressed audio (AAC, MP3, Opus) give: read the planes directly. The same
        # float32 arithmetic as the general path below ((left + right) / 2), without its copies.
        planes = [np.frombuffer(plane, np.float32, frame.samples) for plane in frame.planes[:channels]]
        if channels == 1:
            return planes[0].copy()
        return (planes[0] + planes[1]) / np.float32(2)
    data = frame.to_ndarray()
    if frame.format.is_planar:
        samples = data.T  # (C, S) -> (S, C)
    else:
        samples = data.reshape(-1, channels)  # (1, S * C) interleaved -> (S, C)
    return to_mono(samples if channels > 1 else samples[:, 0])


class MonoResampler:
    """Streaming resampling of mono float32 PCM to ``target_rate`` with FFmpeg's swresample
    (a windowed-sinc polyphase filter, state kept between calls). ``target_rate=None`` passes
    audio through unchanged."""

    def __init__(self, target_rate: int | None):
        self.target_rate = target_rate
        self._rate: int | None = None
        self._resampler: Any = None

    def push(self, mono: np.ndarray, rate: int) -> np.ndarray:
        """``(S,) float32`` at ``rate`` -> the ``(S',) float32`` output available so far."""
        if self.target_rate is None or rate == self.target_rate:
            return _concat([self.flush(), mono]) if self._resampler is not None else mono
        import av

        out = []
        if self._rate != rate:
            out.append(self.flush())
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.target_rate)
            self._rate = rate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[None, :]), format="flt", layout="mono")
        frame.sample_rate = rate
        out.extend(f.to_ndarray()[0] for f in self._resampler.resample(frame))
        return _concat(out)

    def flush(self) -> np.ndarray:
        """The samples still held in the filter; the resampler starts afresh afterwards."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        frames = self._resampler.resample(None)
        self._resampler = None
        self._rate = None
        return _concat([f.to_ndarray()[0] for f in frames])


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    if not parts:
        return np.zeros(0, np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


class RateLimiter:
    """Keeps at most ``max_fps`` items per second: the first item of each ``1 / max_fps`` interval,
    intervals counted from the first item's timestamp."""

    def __init__(self, max_fps: float | None):
        if max_fps is not None and max_fps <= 0:
            raise ValueError(f"max_fps must be positive, got {max_fps}")
        self.max_fps = max_fps
        self._first_ms: float | None = None
        self._last_slot = -1

    def keep(self, timestamp_ms: float) -> bool:
        if self.max_fps is None:
            return True
        if self._first_ms is None:
            self._first_ms = timestamp_ms
        slot = int(np.floor((timestamp_ms - self._first_ms) * self.max_fps / 1000.0 + 1e-9))
        if slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True
