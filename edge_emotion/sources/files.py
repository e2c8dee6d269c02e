"""File sources decoded with PyAV: :func:`open_media`, :class:`VideoFileSource`,
:class:`AudioFileSource` and :func:`read_audio`.

Only the audio and video streams are demuxed (a CREMA-D ``.flv`` also holds a data stream).
Timestamps come from each stream's own ``pts * time_base`` minus the container's start time, so
all sources of one file share the file's clock: an audio track that starts late, or a variable
frame rate, lines up. They are integer ms and strictly increasing per source.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import half_the_cpus
from ..errors import MediaError
from ._av import (
    MonoResampler,
    RateLimiter,
    audio_frame_to_mono,
    check_file,
    clock_origin_s,
    duration_ms,
    frame_seconds,
    open_container,
    video_frame_luma,
    video_frame_to_rgb,
)
from .frames import AudioChunk, _DeferredFrame

log = logging.getLogger(__name__)

#: A jump of more than this between the end of one decoded audio frame and the pts of the next
#: is a gap: the chunk in progress is cut there and the timeline restarts at the new pts.
AUDIO_GAP_MS = 20.0


@dataclass(frozen=True)
class _Probe:
    duration_ms: int
    has_video: bool
    has_audio: bool


def _probe(path: Path) -> _Probe:
    with open_container(path) as container:
        return _Probe(
            duration_ms=duration_ms(container),
            has_video=len(container.streams.video) > 0,
            has_audio=len(container.streams.audio) > 0,
        )


class DecodedVideoFrame(_DeferredFrame):
    """A :class:`VideoFrame` as it leaves the decoder: ``image`` ``(H, W, 3) uint8`` RGB is
    converted from the decoded picture on first access and kept.

    Colour conversion costs more than decoding, and a consumer often uses a fraction of the
    frames (an :class:`~edge_emotion.stream.EmotionStream` keeps the model's frame rate, 10 of a
    clip's 30 per second at the edge preset): frames whose ``image`` is never read are never
    converted. The frame holds the decoded picture (for YUV 4:2:0, half the size of the RGB one)
    as long as it lives. ``width`` / ``height`` and ``timestamp_ms`` do not convert, and
    :meth:`luma` reads a YUV picture's luma plane (no conversion; the same values whether or not
    ``image`` was read, so that frames compared with each other are alike).
    """

    def __init__(self, decoded: Any, timestamp_ms: int):
        # frozen dataclass parent: attributes are set through object.__setattr__, as dataclasses do
        object.__setattr__(self, "timestamp_ms", int(timestamp_ms))
        object.__setattr__(self, "_decoded", decoded)
        object.__setattr__(self, "_rgb", None)
        object.__setattr__(self, "_luma", None)
        object.__setattr__(self, "_size", (int(decoded.width), int(decoded.height)))
        # One conversion at a time: the stream's worker and a display may read the same frame, and a
        # PyAV frame converted by two threads at once can hang in swscale.
        object.__setattr__(self, "_convert_lock", threading.Lock())

    @property
    def image(self) -> np.ndarray:  # type: ignore[override]
        rgb = self._rgb
        if rgb is None:
            with self._convert_lock:
                rgb = self._rgb
                if rgb is None:  # not converted by another thread while this one waited
                    rgb = video_frame_to_rgb(self._decoded)
                    object.__setattr__(self, "_rgb", rgb)
        return rgb

    def luma(self) -> np.ndarray:
        luma = self._luma
        if luma is None:
            with self._convert_lock:
                luma = self._luma
                if luma is None:
                    luma = video_frame_luma(self._decoded)
                    if luma is None:  # RGB or paletted video: from the RGB picture (converted here, under the lock)
                        if self._rgb is None:
                            object.__setattr__(self, "_rgb", video_frame_to_rgb(self._decoded))
                        luma = super().luma()  # reads image, which is set: the lock is not taken again
                    object.__setattr__(self, "_luma", luma)
        return luma

    def __repr__(self) -> str:
        state = "converted" if self.converted else "not converted"
        return f"DecodedVideoFrame({self.width}x{self.height}, timestamp_ms={self.timestamp_ms}, {state})"


class VideoFileSource:
    """The first video stream of a file as :class:`VideoFrame` s (RGB), on the file's clock.

    Frames are :class:`DecodedVideoFrame` s: each is converted to RGB only when its ``image`` is
    read. ``decoder_threads``: FFmpeg's decoding threads (frame and slice threading, as the codec
    allows); None: half the CPUs (:func:`~edge_emotion.config.half_the_cpus`). 1 decodes on the
    iterating thread alone, the cheapest in CPU: on 2 CPUs, where a stream keeps the other CPU busy,
    threading cost a 60-s 640x480 H.264 clip 1.8 CPU s against 1.0-1.2 without (BENCHMARKS.md §4).
    The decoded pictures are the same either way.
    ``max_fps`` drops frames so that at most ``max_fps`` per second reach the consumer: the first
    frame of each ``1 / max_fps`` interval (counted from the first frame) is kept. Frames whose
    timestamp does not increase (duplicated pts) are dropped. Iterating again decodes again.
    """

    def __init__(self, path: str | os.PathLike, max_fps: float | None = None, decoder_threads: int | None = None):
        self.path = check_file(path)
        RateLimiter(max_fps)  # validates max_fps
        self.max_fps = max_fps
        if decoder_threads is not None and (isinstance(decoder_threads, bool) or decoder_threads < 1):
            raise ValueError(f"decoder_threads must be a whole number of at least 1, got {decoder_threads!r}")
        self.decoder_threads = half_the_cpus() if decoder_threads is None else int(decoder_threads)
        with open_container(self.path) as container:
            if not container.streams.video:
                raise MediaError(f"{self.path}: the file has no video stream")
            stream = container.streams.video[0]
            self.width = int(stream.codec_context.width)
            self.height = int(stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.duration_ms = duration_ms(container)

    def __iter__(self) -> Iterator[DecodedVideoFrame]:
        limiter = RateLimiter(self.max_fps)
        last_ms: int | None = None
        period_s = 1.0 / self.fps if self.fps else 1.0 / 30
        with open_container(self.path) as container:
            origin = clock_origin_s(container)
            stream = container.streams.video[0]
            if self.decoder_threads > 1:  # FFmpeg uses the threading the codec supports (frame and/or slice)
                stream.thread_type = "AUTO"
            stream.thread_count = self.decoder_threads
            previous_s: float | None = None
            for packet in container.demux(stream):
                for frame in packet.decode():
                    seconds = frame_seconds(frame, origin)
                    if seconds is None:  # no pts: one nominal period after the previous frame
                        seconds = 0.0 if previous_s is None else previous_s + period_s
                    previous_s = seconds
                    ts = int(round(1000 * seconds))
                    if last_ms is not None and ts <= last_ms:
                        log.debug("%s: dropping a video frame at %d ms (not after %d ms)", self.path, ts, last_ms)
                        continue
                    if not limiter.keep(ts):
                        continue
                    last_ms = ts
                    yield DecodedVideoFrame(frame, ts)

    def __repr__(self) -> str:
        return f"VideoFileSource({str(self.path)!r}, max_fps={self.max_fps})"


class AudioFileSource:
    """The first audio stream of a file as mono :class:`AudioChunk` s of ``chunk_ms`` (the last may
    be shorter), resampled to ``sample_rate`` (None: the stream's rate).

    Mixdown is the mean of the channels (:func:`~edge_emotion.frontend.features.to_mono`); resampling is
    FFmpeg's swresample, a streaming windowed-sinc polyphase filter. A chunk's ``timestamp_ms`` is
    the pts of the decoded audio it starts in plus the samples before it; a gap in the pts (more
    than :data:`AUDIO_GAP_MS`) ends the chunk in progress early and restarts there, so gaps stay gaps.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int | None = None, chunk_ms: int = 100):
        self.path = check_file(path)
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if chunk_ms < 1:
            raise ValueError(f"chunk_ms must be at least 1, got {chunk_ms}")
        self.chunk_ms = int(chunk_ms)
        with open_container(self.path) as container:
            if not container.streams.audio:
                raise MediaError(f"{self.path}: the file has no audio stream")
            stream = container.streams.audio[0]
            self.source_rate = int(stream.codec_context.sample_rate or stream.rate)
            self.channels = int(stream.codec_context.channels)
            self.duration_ms = duration_ms(container)
        self.sample_rate = int(sample_rate) if sample_rate is not None else self.source_rate

    def __iter__(self) -> Iterator[AudioChunk]:
        rate = self.sample_rate
        chunk = max(1, round(rate * self.chunk_ms / 1000))
        resampler = MonoResampler(rate)
        pending: list[np.ndarray] = []
        start_s: float | None = None  # the file time of the first sample of the current run
        emitted = 0  # samples of the current run already yielded
        expected_s: float | None = None  # where the next decoded frame should start

        def drain(final: bool) -> Iterator[AudioChunk]:
            nonlocal pending, emitted
            buffer = np.concatenate(pending) if pending else np.zeros(0, np.float32)
            cut = buffer.size if final else buffer.size - buffer.size % chunk
            for i in range(0, cut, chunk):
                piece = buffer[i : min(i + chunk, cut)]
                yield AudioChunk(piece, rate, int(round(1000 * start_s + 1000 * emitted / rate)))
                emitted += piece.size
            pending = [buffer[cut:]] if cut < buffer.size else []

        # Decoded audio is resampled in blocks of about a chunk (a few decoded frames) rather than
        # frame by frame: the streaming resampler gives the same samples, with fewer calls.
        block: list[np.ndarray] = []  # mono at block_rate, not resampled yet
        block_rate, block_size = 0, 0

        def resample_block() -> None:
            nonlocal block, block_size
            if block:
                pending.append(resampler.push(block[0] if len(block) == 1 else np.concatenate(block), block_rate))
                block, block_size = [], 0

        with open_container(self.path) as container:
            origin = clock_origin_s(container)
            stream = container.streams.audio[0]
            for packet in container.demux(stream):
                for frame in packet.decode():
                    seconds = frame_seconds(frame, origin)
                    if seconds is None:
                        seconds = expected_s if expected_s is not None else 0.0
                    if start_s is not None and expected_s is not None and seconds - expected_s > AUDIO_GAP_MS / 1000:
                        log.info(
                            "%s: audio gap of %.0f ms at %.3f s", self.path, 1000 * (seconds - expected_s), expected_s
                        )
                        resample_block()
                        pending.append(resampler.flush())
                        yield from drain(final=True)
                        start_s = None
                    if start_s is None:
                        start_s, emitted = seconds, 0
                    if frame.sample_rate != block_rate:
                        resample_block()
                        block_rate = frame.sample_rate
                    mono = audio_frame_to_mono(frame)
                    block.append(mono)
                    block_size += mono.size
                    expected_s = seconds + frame.samples / frame.sample_rate
                    if block_size * 1000 >= self.chunk_ms * block_rate:
                        resample_block()
                        yield from drain(final=False)
            if start_s is not None:
                resample_block()
                pending.append(resampler.flush())
                yield from drain(final=True)

    def __repr__(self) -> str:
        return f"AudioFileSource({str(self.path)!r}, sample_rate={self.sample_rate}, chunk_ms={self.chunk_ms})"


def read_audio(path: str | os.PathLike, sample_rate: int) -> tuple[np.ndarray, int]:
    """The whole first audio track: ``(S,) float32`` mono at ``sample_rate`` and the
    ``timestamp_ms`` of its first sample on the file's clock. Gaps in the track are filled with
    zeros so that sample ``i`` is at ``start_ms + 1000 i / sample_rate``."""
    source = AudioFileSource(path, sample_rate=sample_rate, chunk_ms=1000)
    parts: list[np.ndarray] = []
    start_ms: int | None = None
    length = 0
    for chunk in source:
        if start_ms is None:
            start_ms = chunk.timestamp_ms
        at = int(round((chunk.timestamp_ms - start_ms) * sample_rate / 1000))
        if at > length:
            parts.append(np.zeros(at - length, np.float32))
            length = at
        parts.append(chunk.pcm)
        length += chunk.pcm.size
    pcm = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return pcm, (start_ms if start_ms is not None else 0)


class MediaFile:
    """A probed media file. ``video`` / ``audio`` are its sources (None when it lacks that
    stream); ``duration_ms`` is the container's duration. Opening decodes nothing."""

    def __init__(
        self,
        path: str | os.PathLike,
        max_fps: float | None = None,
        sample_rate: int | None = None,
        chunk_ms: int = 100,
    ):
        self.path = check_file(path)
        probe = _probe(self.path)
        if not (probe.has_video or probe.has_audio):
            raise MediaError(f"{self.path}: the file holds neither audio nor video")
        self.duration_ms = probe.duration_ms
        self.video: VideoFileSource | None = VideoFileSource(self.path, max_fps) if probe.has_video else None
        self.audio: AudioFileSource | None = (
            AudioFileSource(self.path, sample_rate, chunk_ms) if probe.has_audio else None
        )

    def __repr__(self) -> str:
        kinds = [k for k in ("video", "audio") if getattr(self, k) is not None]
        return f"MediaFile({str(self.path)!r}, {'+'.join(kinds)}, {self.duration_ms} ms)"


def open_media(
    path: str | os.PathLike,
    max_fps: float | None = None,
    sample_rate: int | None = None,
    chunk_ms: int = 100,
) -> MediaFile:
    """Probe ``path`` and return its :class:`MediaFile`. Raises :class:`MediaError` for a missing,
    empty or corrupt file and for one with neither audio nor video."""
    return MediaFile(path, max_fps=max_fps, sample_rate=sample_rate, chunk_ms=chunk_ms)
