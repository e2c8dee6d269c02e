"""A live microphone through PyAudio (PortAudio), captured into a ring buffer that the consumer reads."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._quiet import native_stderr_silenced
from ..errors import DeviceError, MissingDependencyError
from ..frontend.features import to_mono
from ._av import MonoResampler
from .clock import CaptureClock
from .frames import AudioChunk

log = logging.getLogger(__name__)

#: Captured audio later than the sample count says by more than this is a gap (samples were lost).
CLOCK_GAP_MS = 50.0
#: At most one "ring buffer full" warning per this many seconds (it sums the samples dropped since the last).
DROP_WARNING_INTERVAL_S = 5.0


class _RingBuffer:
    """Captured blocks ``(pcm (S,) float32, timestamp_ms of the first sample as float)`` waiting for
    the consumer, at most ``capacity`` samples. When full, *incoming* audio is dropped (and counted):
    the oldest unread audio is kept, and the consumer sees a gap in the timestamps."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.blocks: deque[tuple[np.ndarray, float]] = deque()
        self.size = 0
        self.dropped = 0
        self.closed = False
        self.cond = threading.Condition()

    def write(self, pcm: np.ndarray, timestamp_ms: float) -> None:
        with self.cond:
            room = self.capacity - self.size
            if pcm.size > room:
                self.dropped += pcm.size - room
                pcm = pcm[:room]
            if pcm.size:
                self.blocks.append((pcm, timestamp_ms))
                self.size += pcm.size
                self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def read(self, n: int, rate: int, timeout_s: float) -> tuple[np.ndarray, float] | None:
        """Up to ``n`` contiguous samples and the timestamp of the first; fewer when a gap follows.
        None when closed and empty; raises TimeoutError when nothing arrives in ``timeout_s``."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.size >= n or self.closed, timeout_s):
                if self.size == 0:
                    raise TimeoutError
            if self.size == 0:
                return None
            parts: list[np.ndarray] = []
            start_ms = self.blocks[0][1]
            taken = 0
            while self.blocks and taken < n:
                pcm, ts = self.blocks[0]
                if abs(ts - (start_ms + 1000.0 * taken / rate)) > 0.5:  # a gap: stop before it
                    break
                take = min(n - taken, pcm.size)
                parts.append(pcm[:take])
                taken += take
                if take == pcm.size:
                    self.blocks.popleft()
                else:
                    self.blocks[0] = (pcm[take:], ts + 1000.0 * take / rate)
            self.size -= taken
            return np.concatenate(parts), start_ms


def _pyaudio() -> Any:
    try:
        import pyaudio
    except ImportError as exc:
        raise MissingDependencyError("pyaudio", "mic", "the microphone") from exc
    return pyaudio


class MicrophoneSource:
    """Mono :class:`AudioChunk` s of ``chunk_ms`` at ``sample_rate`` from a PyAudio input device.

    ``device``: ``"default"``, a device index, or (part of) a device name. PortAudio's callback
    thread writes into a ring buffer of ``buffer_s`` seconds; iterating reads it. When the buffer
    is full, incoming audio is dropped (``dropped_samples`` counts it) and shows as a gap in the
    timestamps. Capture is 16-bit (paInt16) scaled to [-1, 1], at ``sample_rate`` when the device
    accepts it, else at the device's default rate and resampled (FFmpeg's swresample,
    streaming). Channels are mixed to mono by their mean.

    Timestamps (integer ms on the capture clock, see :class:`CaptureClock`): the first block is
    stamped by ``time.monotonic`` when it arrives, minus its duration; later samples are stamped
    by counting them. When a block arrives more than :data:`CLOCK_GAP_MS` later than the count
    says (PortAudio lost samples, or the ring buffer was full), the count restarts from the clock,
    leaving a gap; the count never runs backwards. Iteration raises :class:`DeviceError` when no
    audio arrives for ``timeout_s``.
    """

    def __init__(
        self,
        device: str | int = "default",
        sample_rate: int = 16000,
        chunk_ms: int = 100,
        buffer_s: float = 10.0,
        timeout_s: float = 2.0,
        origin_s: float | None = None,
    ):
        if sample_rate <= 0 or chunk_ms < 1 or buffer_s <= 0:
            raise ValueError("sample_rate, chunk_ms and buffer_s must be positive")
        pyaudio = _pyaudio()
        self.device = device
        self.sample_rate = int(sample_rate)
        self.chunk_ms = int(chunk_ms)
        self.timeout_s = float(timeout_s)
        self.clock = CaptureClock(origin_s)
        self._ring = _RingBuffer(max(1, int(buffer_s * self.sample_rate)))
        self._next_ms: float | None = None  # the count: timestamp of the next captured sample
        self._started_ms = 0.0
        self._unreported_drops = 0
        self._last_drop_warning_s: float | None = None
        # PortAudio probes ALSA, JACK and OSS when it starts and prints ~100 lines about the ones that
        # are missing; the DeviceError below says what went wrong.
        with native_stderr_silenced():
            self._pa = pyaudio.PyAudio()
            self._stream = None
            try:
                index, info = self._resolve(device)
                self.device_name = str(info["name"])
                self._stream = self._open(pyaudio, index, info)
            except BaseException:
                self._pa.terminate()
                self._pa = None
                raise
        log.info("microphone %r (%s) opened at %d Hz", device, self.device_name, self.capture_rate)

    def _resolve(self, device: str | int) -> tuple[int, dict]:
        pa = self._pa
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            if device == "default":
                info = pa.get_default_input_device_info()
                return int(info["index"]), info
            if isinstance(device, int):
                info = pa.get_device_info_by_index(device)
                if int(info["maxInputChannels"]) < 1:
                    raise DeviceError(f"microphone {device!r}: device {info['name']!r} has no input channels")
                return device, info
        except (OSError, ValueError) as exc:
            raise DeviceError(f"microphone {device!r} not found ({exc})") from exc
        inputs = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
        inputs = [d for d in inputs if int(d["maxInputChannels"]) > 0]
        for info in inputs:
            if str(device).lower() in str(info["name"]).lower():
                return int(info["index"]), info
        names = ", ".join(repr(d["name"]) for d in inputs) or "none"
        raise DeviceError(f"microphone {device!r} not found; input devices: {names}")

    def _open(self, pyaudio: Any, index: int, info: dict) -> Any:
        attempts = [(self.sample_rate, 1)]
        default_rate = int(info.get("defaultSampleRate") or 0)
        channels = max(1, min(2, int(info["maxInputChannels"])))
        if channels != 1:
            attempts.append((self.sample_rate, channels))
        if default_rate and default_rate != self.sample_rate:
            attempts += [(default_rate, 1), (default_rate, channels)]
        error: Exception | None = None
        for rate, ch in attempts:
            self.capture_rate, self.channels = rate, ch
            self._resampler = MonoResampler(self.sample_rate)
            try:
                stream = self._pa.open(
                    format=pyaudio.paInt16,
                    channels=ch,
                    rate=rate,
                    input=True,
                    input_device_index=index,
                    frames_per_buffer=max(1, rate * self.chunk_ms // 1000),
                    stream_callback=self._callback,
                    start=False,
                )
            except (OSError, ValueError) as exc:
                error = exc
                continue
            self._started_ms = 1000.0 * self.clock.seconds()
            stream.start_stream()
            return stream
        raise DeviceError(f"microphone {self.device!r} ({info['name']}) could not be opened: {error}")

    def _callback(self, in_data: bytes, frame_count: int, time_info: dict, status: int) -> tuple[None, int]:
        arrived_s = self.clock.seconds()
        samples = np.frombuffer(in_data, dtype=np.int16)
        mono = to_mono(samples.reshape(-1, self.channels) if self.channels > 1 else samples)
        if self.capture_rate != self.sample_rate:
            mono = self._resampler.push(mono, self.capture_rate)
        # The block ended when it arrived; it cannot have started before the stream did.
        captured_ms = max(1000.0 * arrived_s - 1000.0 * frame_count / self.capture_rate, self._started_ms)
        if self._next_ms is None or captured_ms - self._next_ms > CLOCK_GAP_MS:
            if self._next_ms is not None:
                log.warning("microphone %r: %.0f ms of audio lost", self.device, captured_ms - self._next_ms)
            self._next_ms = captured_ms
        if mono.size:
            before = self._ring.dropped
            self._ring.write(mono, self._next_ms)
            lost = self._ring.dropped - before
            if lost:
                self._warn_dropped(lost, arrived_s)
            self._next_ms += 1000.0 * mono.size / self.sample_rate
        return None, 0  # paContinue

    def _warn_dropped(self, lost: int, now_s: float) -> None:
        """Log dropped samples at most once per :data:`DROP_WARNING_INTERVAL_S` (a full buffer
        drops on every PortAudio callback, ten times a second)."""
        self._unreported_drops += lost
        if self._last_drop_warning_s is not None and now_s - self._last_drop_warning_s < DROP_WARNING_INTERVAL_S:
            return
        log.warning(
            "microphone %r: ring buffer full (the consumer is behind), %d samples dropped%s",
            self.device,
            self._unreported_drops,
            "" if self._last_drop_warning_s is None else f" in the last {now_s - self._last_drop_warning_s:.0f} s",
        )
        self._last_drop_warning_s = now_s
        self._unreported_drops = 0

    def __iter__(self) -> Iterator[AudioChunk]:
        n = max(1, round(self.sample_rate * self.chunk_ms / 1000))
        last_ms: int | None = None
        while True:
            try:
                got = self._ring.read(n, self.sample_rate, self.timeout_s)
            except TimeoutError:
                raise DeviceError(f"microphone {self.device!r} delivered no audio for {self.timeout_s:g} s") from None
            if got is None:
                return
            pcm, start_ms = got
            ts = int(round(start_ms))
            if last_ms is not None and ts <= last_ms:
                ts = last_ms + 1
            last_ms = ts
            yield AudioChunk(pcm.astype(np.float32, copy=False), self.sample_rate, ts)

    @property
    def dropped_samples(self) -> int:
        """Samples lost because the ring buffer was full."""
        return self._ring.dropped

    def wake(self) -> None:
        """End the iteration once the audio already buffered is read (safe from any thread; a
        live session calls it before it joins the reader, then :meth:`close`)."""
        self._ring.close()

    def close(self) -> None:
        """Stop capturing; chunks already buffered can still be read."""
        if self._stream is not None:
            try:
                self._stream.stop_stream()
                self._stream.close()
            finally:
                self._stream = None
        if self._pa is not None:
            with native_stderr_silenced():  # PortAudio's back ends may talk while they shut down
                self._pa.terminate()
            self._pa = None
        self._ring.close()

    def __enter__(self) -> MicrophoneSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MicrophoneSource({self.device!r}, sample_rate={self.sample_rate}, chunk_ms={self.chunk_ms})"


@dataclass(frozen=True)
class MicrophoneInfo:
    """An input device found by :func:`list_microphones`: ``index`` and ``name`` are what
    ``--mic`` / ``MicrophoneSource`` take (a part of the name is enough); ``default`` marks the
    device ``"default"`` opens."""

    index: int
    name: str
    channels: int
    default_sample_rate: int
    default: bool = False


def list_microphones() -> list[MicrophoneInfo]:
    """The audio input devices PortAudio sees (its start-up noise on stderr hidden). Raises
    :class:`MissingDependencyError` when PyAudio is not installed; an empty list means none."""
    pyaudio = _pyaudio()
    with native_stderr_silenced():
        pa = pyaudio.PyAudio()
        try:
            try:
                default_index = int(pa.get_default_input_device_info()["index"])
            except (OSError, ValueError):
                default_index = None
            found = []
            for i in range(pa.get_device_count()):
                info = pa.get_device_info_by_index(i)
                channels = int(info.get("maxInputChannels", 0))
                if channels > 0:
                    index = int(info["index"])
                    rate = int(info.get("defaultSampleRate") or 0)
                    found.append(MicrophoneInfo(index, str(info["name"]), channels, rate, index == default_index))
        finally:
            pa.terminate()
    return found
