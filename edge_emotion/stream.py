"""The streaming recognizer: frames and PCM in, :class:`EmotionResult` out.

An :class:`EmotionStream` holds one input's state (like sherpa-onnx's streams); the model lives in
the :class:`~edge_emotion.recognizer.Recognizer` that created it. Video frames are subsampled to the
model's frame rate, the face is tracked and encoded **once per frame as it arrives**, and the
embedding is cached by timestamp, so overlapping windows never recompute a frame (docs/DESIGN.md,
principle 1). Audio is kept at its source rate and each window is resampled on its own, so the
results do not depend on how the audio was chunked.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import InputError
from .frontend.align import (
    FrameSubsampler,
    align_encoded,
    data_end_ms,
    frame_period_ms,
    has_next_window,
    tick_frames,
    window_speech,
)
from .frontend.features import resample, to_mono, window_log_mel
from .results import UNKNOWN_LABEL, EmotionResult, FaceInfo

if TYPE_CHECKING:
    from .config import PresetConfig
    from .frontend.face import FaceObservation

log = logging.getLogger(__name__)

# Audio chunks whose timestamps are within this of the expected position are contiguous
# (capture clocks jitter); a larger jump is a gap, filled with silence and so masked.
_AUDIO_JITTER_MS = 20.0


class FusionModel(Protocol):
    """What a stream needs from a model (``edge_emotion.model.engine.BundleModel`` provides it)."""

    preset: PresetConfig
    labels: tuple[str, ...]

    def encode_faces(self, faces: np.ndarray) -> np.ndarray: ...
    def encode_audio(self, log_mel: np.ndarray) -> np.ndarray: ...
    def fuse(
        self, audio: np.ndarray, visual: np.ndarray, audio_mask: np.ndarray, visual_mask: np.ndarray
    ) -> np.ndarray: ...


class FaceDetector(Protocol):
    def detect(self, frame_rgb: np.ndarray, timestamp_ms: int) -> FaceObservation: ...


@dataclass(frozen=True)
class StreamConfig:
    """How a stream cuts its input into windows.

    ``window_ms`` may be shorter than the model's window (the rest is padded and masked);
    ``hop_ms`` is the distance between successive windows' starts. ``smoothing`` in ``[0, 1)`` is
    the weight of the previous smoothed scores in an exponential moving average (0: none).
    ``audio`` / ``video``: which modalities this stream expects; a window is complete when every
    expected modality has reached its end.
    """

    window_ms: int
    hop_ms: int
    smoothing: float = 0.0
    audio: bool = True
    video: bool = True

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.hop_ms <= 0:
            raise InputError("window_ms and hop_ms must be positive")
        if not 0.0 <= self.smoothing < 1.0:
            raise InputError("smoothing must be in [0, 1)")
        if not (self.audio or self.video):
            raise InputError("a stream needs audio, video or both")


@dataclass
class _Frame:
    timestamp_ms: int
    embedding: np.ndarray | None  # None: no usable face in this frame
    face: FaceInfo | None


class EmotionStream:
    """Push timestamped frames and PCM; :meth:`poll` returns the results of completed windows.

    Timestamps are integers in ms on one clock and must strictly increase per modality
    (``ValueError`` otherwise, as in MediaPipe). Call :meth:`flush` at the end of the input to get
    the last, partial window (a clip shorter than one window gets exactly one result).
    """

    def __init__(self, model: FusionModel, config: StreamConfig, face_detector: FaceDetector | None):
        preset = model.preset
        if config.window_ms > preset.window_ms:
            raise InputError(f"window_ms can be at most the model's window, {preset.window_ms} ms")
        if config.video and face_detector is None:
            raise InputError("a stream that expects video needs a face detector")
        self._model = model
        self._preset = preset
        self._config = config
        self._faces = face_detector
        self._frame_period_ms = frame_period_ms(preset)
        self._subsampler = FrameSubsampler(preset)
        self._labels = tuple(model.labels)
        # time origin and windows
        self._origin_ms: int | None = None
        self._first_audio_ms: int | None = None
        self._first_video_ms: int | None = None
        self._ended: set[str] = set()  # expected modalities whose input has ended (end_input)
        self._next_window = 0
        self._smoothed: np.ndarray | None = None
        self._finished = False
        # video state
        self._frames: deque[_Frame] = deque()
        self._last_video_ms: int | None = None
        self._video_end_ms: float | None = None
        # audio state: samples at the source rate, sample 0 stamped _audio_t0_ms
        self._audio_rate: int | None = None
        self._audio_t0_ms: float | None = None
        self._audio_offset = 0  # samples dropped from the front of the buffer
        self._pcm = np.zeros(0, np.float32)
        self._last_audio_ms: int | None = None

    def close(self) -> None:
        """Release the face detector. Idempotent."""
        close = getattr(self._faces, "close", None)
        if close is not None:
            close()
        self._faces = None
        self._finished = True

    def __enter__(self) -> EmotionStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- input -----------------------------------------------------------------------------
    def _active(self) -> list[str]:
        """The expected modalities whose input has not ended."""
        return [k for k in ("audio", "video") if getattr(self._config, k) and k not in self._ended]

    def _fix_origin(self, final: bool = False) -> int | None:
        """The window grid starts at the earliest first timestamp of the expected modalities, so
        that it does not depend on which modality was pushed first. Fixed once every active
        modality has started (or at :meth:`flush`, from whatever has)."""
        if self._origin_ms is None:
            firsts = {"audio": self._first_audio_ms, "video": self._first_video_ms}
            present = [t for t in firsts.values() if t is not None]
            if present and (final or all(firsts[k] is not None for k in self._active())):
                self._origin_ms = int(min(present))
        return self._origin_ms

    def end_input(self, kind: str) -> None:
        """Declare that no more ``kind`` ("audio" or "video") will be pushed (a camera unplugged, a
        microphone that stopped): windows then complete on the other modality alone."""
        if kind not in ("audio", "video"):
            raise InputError(f"kind must be 'audio' or 'video', got {kind!r}")
        self._ended.add(kind)

    def _check_open(self) -> None:
        if self._finished:
            raise InputError("this stream was flushed; create a new stream for new input")

    def push_video(self, frame: np.ndarray, timestamp_ms: int) -> None:
        """One RGB frame ``(H, W, 3) uint8`` shown at ``timestamp_ms``."""
        self._check_open()
        if not self._config.video:
            raise InputError("this stream was created without video")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"a video frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        timestamp_ms = int(timestamp_ms)
        if self._last_video_ms is not None and timestamp_ms <= self._last_video_ms:
            raise ValueError(
                f"video timestamps must strictly increase: {timestamp_ms} ms after {self._last_video_ms} ms"
            )
        if self._first_video_ms is None:
            self._first_video_ms = timestamp_ms
        self._last_video_ms = timestamp_ms
        self._video_end_ms = data_end_ms(None, timestamp_ms, self._preset)
        if not self._subsampler.keep(timestamp_ms):  # the model's frame rate, as in training
            return
        observation = self._faces.detect(frame, timestamp_ms)
        embedding, face = None, None
        if observation.usable:
            from .frontend.face import crop_face

            crop = crop_face(frame, observation.bbox, self._preset.visual)
            embedding = self._model.encode_faces(crop[None].astype(np.float32))[0]
            face = FaceInfo(tuple(int(v) for v in observation.bbox), float(observation.score))
        self._frames.append(_Frame(timestamp_ms, embedding, face))

    def push_audio(self, pcm: np.ndarray, sample_rate: int, timestamp_ms: int) -> None:
        """PCM ``(S,)`` or ``(S, C)`` (float in [-1, 1] or int16) whose first sample is at
        ``timestamp_ms``. The sample rate must stay the same for the life of the stream."""
        self._check_open()
        if not self._config.audio:
            raise InputError("this stream was created without audio")
        if sample_rate <= 0:
            raise InputError(f"sample_rate must be positive, got {sample_rate}")
        if self._audio_rate is not None and sample_rate != self._audio_rate:
            raise InputError(f"sample rate changed from {self._audio_rate} to {sample_rate} Hz within a stream")
        timestamp_ms = int(timestamp_ms)
        if self._last_audio_ms is not None and timestamp_ms <= self._last_audio_ms:
            raise ValueError(
                f"audio timestamps must strictly increase: {timestamp_ms} ms after {self._last_audio_ms} ms"
            )
        mono = to_mono(np.asarray(pcm))
        if self._first_audio_ms is None:
            self._first_audio_ms = timestamp_ms
        self._last_audio_ms = timestamp_ms
        if self._audio_rate is None:
            self._audio_rate, self._audio_t0_ms = int(sample_rate), float(timestamp_ms)
        expected = self._audio_offset + self._pcm.size  # absolute index of the next sample
        position = round((timestamp_ms - self._audio_t0_ms) * sample_rate / 1000.0)
        jitter = _AUDIO_JITTER_MS * sample_rate / 1000.0
        if position > expected + jitter:  # a gap: silence, which voice activity masks
            self._pcm = np.concatenate([self._pcm, np.zeros(position - expected, np.float32)])
        elif position < expected - jitter:  # overlaps what we have: keep only the new part
            mono = mono[expected - position :]
        self._pcm = np.concatenate([self._pcm, mono.astype(np.float32, copy=False)])

    # -- output ----------------------------------------------------------------------------
    def _audio_end_ms(self) -> float | None:
        if self._audio_rate is None:
            return None
        return self._audio_t0_ms + 1000.0 * (self._audio_offset + self._pcm.size) / self._audio_rate

    def _window_start(self, k: int) -> int:
        return self._origin_ms + k * self._config.hop_ms

    def _data_end_ms(self) -> float | None:
        return data_end_ms(self._audio_end_ms(), self._last_video_ms, self._preset)

    def _ready(self, end_ms: float) -> bool:
        active = self._active()
        if not active:  # every input has ended: what remains is flush's
            return False
        if "audio" in active and (self._audio_end_ms() is None or self._audio_end_ms() < end_ms):
            return False
        if "video" in active and (self._video_end_ms is None or self._video_end_ms < end_ms):
            return False
        return True

    def poll(self) -> list[EmotionResult]:
        """Results of the windows completed since the last call, oldest first."""
        results = []
        while self._fix_origin() is not None:
            start = self._window_start(self._next_window)
            end = start + self._config.window_ms
            if not self._ready(end):
                break
            results.append(self._emit(start, end))
        return results

    def flush(self) -> list[EmotionResult]:
        """End of input: every remaining window that holds data, the last one partial, so the end
        of the input is never dropped (a clip shorter than one window gets exactly one result; a
        tail shorter than ``MIN_TAIL_MS`` past the last window gets no window of its own).
        The stream accepts no input afterwards and its face detector is released."""
        self._fix_origin(final=True)
        results = self.poll()
        data_end = self._data_end_ms()
        while self._origin_ms is not None and data_end is not None:
            start = self._window_start(self._next_window)
            previous_end = (
                self._window_start(self._next_window - 1) + self._config.window_ms if self._next_window else None
            )
            if start >= data_end or not has_next_window(start, previous_end, data_end):
                break
            results.append(self._emit(start, min(start + self._config.window_ms, math.ceil(data_end))))
        self.close()  # no more input: release the face detector now, not at garbage collection
        return results

    def _emit(self, start: int, end: int) -> EmotionResult:
        result = self._compute(start, end)
        self._next_window += 1
        self._evict(self._window_start(self._next_window))
        return result

    def _evict(self, next_start: int) -> None:
        keep_from = next_start - 2 * self._frame_period_ms
        while self._frames and self._frames[0].timestamp_ms < keep_from:
            self._frames.popleft()
        if self._audio_rate is not None:
            drop = int((next_start - self._audio_t0_ms) * self._audio_rate / 1000.0) - 2 * self._audio_rate // 10
            drop -= self._audio_offset
            if drop > 0:
                self._pcm = self._pcm[drop:]
                self._audio_offset += drop

    def _window_pcm(self, start: int, length_ms: int) -> np.ndarray:
        """``(window_samples,) float32`` at the model's rate: the window's audio, zero beyond
        ``length_ms`` and beyond what was received."""
        cfg = self._preset.audio
        src_rate, dst_rate = self._audio_rate, cfg.sample_rate
        g = math.gcd(src_rate, dst_rate)
        up, down = dst_rate // g, src_rate // g
        first = round((start - self._audio_t0_ms) * src_rate / 1000.0) - self._audio_offset
        n_src = math.ceil(cfg.window_samples * src_rate / dst_rate)
        pad_blocks = 0 if up == down else max(1, math.ceil(256 / down))
        pad = pad_blocks * down  # source samples of context each side, a whole number of blocks
        lo, hi = first - pad, first + n_src + pad
        segment = np.zeros(hi - lo, np.float32)
        a, b = max(lo, 0), min(hi, self._pcm.size)
        if b > a:
            segment[a - lo : b - lo] = self._pcm[a:b]
        if up != down:
            segment = resample(segment, src_rate, dst_rate)
            segment = segment[pad_blocks * up : pad_blocks * up + cfg.window_samples]
        window = np.zeros(cfg.window_samples, np.float32)
        window[: min(segment.size, window.size)] = segment[: window.size]
        keep = round(length_ms * dst_rate / 1000.0)
        window[keep:] = 0.0
        return window

    def _compute(self, start: int, end: int) -> EmotionResult:
        """One window's result. Audio and frames reach the model's steps through
        :mod:`edge_emotion.frontend.align`, the functions training's preprocessing uses."""
        preset, m = self._preset, self._preset.model
        length_ms = end - start

        audio_seq = np.zeros((1, preset.audio_steps, m.audio_dim), np.float32)
        speech = np.zeros(m.time_steps, bool)
        if self._audio_rate is not None:
            pcm = self._window_pcm(start, length_ms)
            speech = window_speech(pcm, preset, length_ms)
            if speech.any():
                log_mel = window_log_mel(pcm, preset.audio)
                audio_seq = self._model.encode_audio(log_mel[None, None].astype(np.float32))

        tick_embeddings = np.zeros((1, preset.video_frames, m.visual_dim), np.float32)
        tick_mask = np.zeros((1, preset.video_frames), bool)
        face = None
        period = self._frame_period_ms
        frames = [f for f in self._frames if start - period <= f.timestamp_ms < end + period]
        if frames:
            index, ok = tick_frames(np.array([f.timestamp_ms for f in frames], np.float64), start, end, preset)
            for k in np.flatnonzero(ok):
                embedding = frames[index[k]].embedding
                if embedding is not None:
                    tick_embeddings[0, k], tick_mask[0, k] = embedding, True
            inside = [f for f in frames if start <= f.timestamp_ms < end and f.face is not None]
            face = inside[-1].face if inside else None
        audio, visual, audio_mask, visual_mask = align_encoded(
            preset, audio_seq, tick_embeddings, tick_mask, speech[None]
        )
        audio_mask, visual_mask = audio_mask[0] > 0, visual_mask[0] > 0

        modalities = tuple(name for name, mask in (("audio", audio_mask), ("video", visual_mask)) if mask.any())
        if not modalities:
            self._smoothed = None  # after nobody was seen or heard, start afresh
            uniform = {label: 1.0 / len(self._labels) for label in self._labels}
            return EmotionResult(start, end, UNKNOWN_LABEL, uniform, (), face, uniform)

        logits = self._model.fuse(
            audio, visual, audio_mask[None].astype(np.float32), visual_mask[None].astype(np.float32)
        )[0]
        probs = _softmax(logits.astype(np.float64))
        if self._smoothed is None or self._config.smoothing == 0.0:
            self._smoothed = probs
        else:
            self._smoothed = self._config.smoothing * self._smoothed + (1 - self._config.smoothing) * probs
        scores = {label: float(p) for label, p in zip(self._labels, self._smoothed, strict=True)}
        raw = {label: float(p) for label, p in zip(self._labels, probs, strict=True)}
        label = self._labels[int(np.argmax(self._smoothed))]
        return EmotionResult(start, end, label, scores, modalities, face, raw)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
