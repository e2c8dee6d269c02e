"""The streaming recognizer: frames and PCM in, :class:`EmotionResult` out.

An :class:`EmotionStream` holds one input's state (like sherpa-onnx's streams); the model lives in
the :class:`~edge_emotion.recognizer.Recognizer` that created it. Video frames are subsampled to the
model's frame rate, the face is tracked and encoded **once per frame** (as the frame arrives, or
with other frames' faces in one call: ``StreamConfig.face_batch``), and the embedding is cached by
timestamp, so overlapping windows never recompute a frame (docs/DESIGN.md, principle 1). Audio is
kept at its source rate and each window is resampled on its own, so the
results do not depend on how the audio was chunked.

Several people (``StreamConfig.max_faces`` > 1): every followed face has a track id
(:mod:`edge_emotion.frontend.tracks`) and its own embeddings in the cache, and each window gives one
result per person seen in it. The voice goes only to the face that speaks
(:mod:`edge_emotion.frontend.speaker`: its mouth moves with the voice); the others get a face-only
result with ``speaking`` false. When speech is heard and no visible face speaks, the window gets one
more result for the voice alone (``person`` None, ``speaking`` true, audio only). With
``max_faces=1`` (the default) the results are those of a one-person stream, as before: the voice is
fused with the one face, and ``speaking`` only reports whether that face's mouth followed it.
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
from .frontend.speaker import ActiveSpeaker
from .frontend.tracks import FaceTracks, TrackConfig, TrackedFace
from .results import UNKNOWN_LABEL, EmotionResult, FaceInfo
from .sources.frames import VideoFrame

if TYPE_CHECKING:
    from .config import PresetConfig
    from .frontend.face import FaceObservation

log = logging.getLogger(__name__)

# Audio chunks whose timestamps are within this of the expected position are contiguous
# (capture clocks jitter); a larger jump is a gap, filled with silence and so masked.
_AUDIO_JITTER_MS = 20.0

#: Sample rates ``push_audio`` accepts, in Hz.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
#: Timestamps are integers in ``[0, MAX_TIMESTAMP_MS]`` ms (2**53: exact in a float64).
MAX_TIMESTAMP_MS = 2**53


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
    """A one-face detector (``FaceTracker``). A stream also takes a several-face tracker
    (``edge_emotion.frontend.tracks.MultiFaceTracker``), recognised by its ``track`` method."""

    def detect(self, frame_rgb: np.ndarray, timestamp_ms: int) -> FaceObservation: ...


@dataclass(frozen=True)
class StreamConfig:
    """How a stream cuts its input into windows.

    ``window_ms`` may be shorter than the model's window (the rest is padded and masked);
    ``hop_ms`` is the distance between successive windows' starts. ``smoothing`` in ``[0, 1)`` is
    the weight of the previous smoothed scores in an exponential moving average (0: none).
    ``audio`` / ``video``: which modalities this stream expects; a window is complete when every
    expected modality has reached its end, or once another modality has data ``max_lead_ms``
    past it (the wait for a late or absent modality is bounded, and so are the buffers).
    ``max_faces``: how many people a window's results are about (see the module docstring); the
    face detector must follow as many. ``max_pending_results``: how many results computed at push
    a stream keeps for a :meth:`EmotionStream.poll` that does not come (the oldest go first).
    ``face_batch``: how many face crops the visual encoder takes in one call at most. 1 (the
    default) encodes each frame's faces as the frame arrives; N > 1 holds the crops until N wait or
    a window needs them (so a call gets at most N faces, in a file polled at every push about one
    hop's worth), and encodes them together (for files: an encoder called once per frame finds its
    weights gone from the CPU's caches, one called on several faces pays that once; BENCHMARKS.md,
    §4). Results equal those of 1 where the runtime computes each batch item alike at any batch
    size, as measured for the shipped bundle's CPU formats; a graph with a fixed batch needs 1, one
    with a bounded batch an N within the bound.
    """

    window_ms: int
    hop_ms: int
    smoothing: float = 0.0
    audio: bool = True
    video: bool = True
    max_lead_ms: int = 60_000
    max_faces: int = 1
    max_pending_results: int = 3600
    face_batch: int = 1

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.hop_ms <= 0:
            raise InputError("window_ms and hop_ms must be positive")
        if not 0.0 <= self.smoothing < 1.0:
            raise InputError("smoothing must be in [0, 1)")
        if not (self.audio or self.video):
            raise InputError("a stream needs audio, video or both")
        if self.max_lead_ms <= 0:
            raise InputError("max_lead_ms must be positive")
        if isinstance(self.max_faces, bool) or not isinstance(self.max_faces, int) or self.max_faces < 1:
            raise InputError(f"max_faces must be a whole number of at least 1, got {self.max_faces!r}")
        pending = self.max_pending_results
        if isinstance(pending, bool) or not isinstance(pending, int) or pending < 1:
            raise InputError(f"max_pending_results must be a whole number of at least 1, got {pending!r}")
        batch = self.face_batch
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InputError(f"face_batch must be a whole number of at least 1, got {batch!r}")


@dataclass
class _Frame:
    timestamp_ms: int
    # track id -> (embedding, face); empty: no usable face. The embedding is None while the face's
    # crop waits to be encoded with others (StreamConfig.face_batch).
    people: dict[int, tuple[np.ndarray | None, FaceInfo]]


class EmotionStream:
    """Push timestamped frames and PCM; :meth:`poll` returns the results of completed windows.

    Timestamps are integers in ms on one clock, in ``[0, MAX_TIMESTAMP_MS]``, and must strictly
    increase per modality (:class:`~edge_emotion.errors.InputError`, a ``ValueError``, otherwise, as
    in MediaPipe). Call :meth:`flush` at the end of the input to get the last, partial window (a
    clip shorter than one window gets exactly one result).

    Gaps and skew. A push more than one model window past the end of everything received so far
    is a gap (a clock that jumped, a pause): the windows before it are finished as by
    :meth:`flush` (returned by the next :meth:`poll`), the buffers are emptied and the window grid
    restarts at the new timestamp, so no result covers the inside of the gap and nothing is
    allocated for it. Shorter gaps in the audio are filled with silence (no speech). A push more
    than ``StreamConfig.max_lead_ms`` behind the other modality's data is dropped with a warning
    (its windows were already given up waiting for it).

    Memory. A window waits for every expected modality to reach its end, but at most until another
    modality has data ``max_lead_ms`` (default 60 s) past that end; then it completes without the
    late one (a warning is logged once per episode). So the buffers hold at most about
    ``max_lead_ms + window + hop`` of audio (at the source rate, float32) and of video frames
    (one embedding per frame kept at the model's rate), even when an expected modality never
    arrives; when :meth:`poll` is not called that long, the windows are computed at push and kept
    for the next :meth:`poll`, at most ``StreamConfig.max_pending_results`` of them (by default an
    hour of results at a 1-s hop with one person): past that the oldest windows' results are
    dropped, counted in :attr:`dropped_results`, with a warning once per episode.
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
        # a one-face detector's faces get their track ids here
        self._tracks = None if hasattr(face_detector, "track") else FaceTracks(TrackConfig(1, config.window_ms))
        self._speaker = ActiveSpeaker(preset) if config.audio and config.video else None
        self._frame_period_ms = frame_period_ms(preset)
        self._subsampler = FrameSubsampler(preset)
        self._labels = tuple(model.labels)
        # time origin and windows
        self._origin_ms: int | None = None
        self._first_audio_ms: int | None = None
        self._first_video_ms: int | None = None
        self._ended: set[str] = set()  # expected modalities whose input has ended (end_input)
        self._next_window = 0
        self._smoothed: dict[int | None, np.ndarray] = {}  # person (None: the one-face stream's or the voice's)
        self._finished = False
        # video state
        self._frames: deque[_Frame] = deque()
        self._unencoded: list[tuple[_Frame, int, np.ndarray]] = []  # (frame, track id, crop): face_batch
        self._last_video_ms: int | None = None  # the last pushed (timestamps strictly increase)
        self._last_frame_ms: int | None = None  # the last placed since the stream (re)started
        self._video_end_ms: float | None = None
        # audio state: samples at the source rate, sample 0 stamped _audio_t0_ms
        self._audio_rate: int | None = None
        self._audio_t0_ms: float | None = None
        self._audio_offset = 0  # samples dropped from the front of the buffer
        self._pcm = np.zeros(0, np.float32)
        self._last_audio_ms: int | None = None
        self._stream_rate: int | None = None  # the audio rate for the life of the stream
        # results of windows finished inside push (a gap, a full buffer), for the next poll
        self._pending: deque[EmotionResult] = deque()
        self._dropped_results = 0  # pending results dropped because nobody polled
        self._dropped_results_warned = False  # warned once per episode (until the next poll)
        self._waived = False  # a window completed without a late modality (warned once per episode)
        self._dropped_late = False  # a late push was dropped (warned once per episode)

    @property
    def config(self) -> StreamConfig:
        return self._config

    @property
    def dropped_results(self) -> int:
        """Results dropped, oldest first, because they waited for a :meth:`poll` past
        ``StreamConfig.max_pending_results`` (0 for an app that polls)."""
        return self._dropped_results

    def buffered(self) -> tuple[int, int]:
        """What the stream holds now: ``(audio samples at the source rate, video frames)``."""
        return int(self._pcm.size), len(self._frames)

    def close(self) -> None:
        """Release the face detector. Idempotent."""
        close = getattr(self._faces, "close", None)
        if close is not None:
            close()
        self._faces = None
        self._unencoded = []  # crops that no window will need now
        self._finished = True

    def __enter__(self) -> EmotionStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def last_face(self) -> tuple[int, FaceInfo | None] | None:
        """``(timestamp_ms, face)`` of the last frame the face detector ran on (``face`` None: no
        usable face in it; with several, the first followed one); None before any. A display draws
        the current box from it."""
        if not self._frames:
            return None
        frame = self._frames[-1]
        first = next(iter(frame.people.values()), None)
        return frame.timestamp_ms, None if first is None else first[1]

    @property
    def last_faces(self) -> tuple[int, dict[int, FaceInfo]] | None:
        """``(timestamp_ms, {track id: face})``: every followed face of the last frame the face
        detector ran on (empty: none); None before any. A display draws every person's box from it."""
        if not self._frames:
            return None
        frame = self._frames[-1]
        return frame.timestamp_ms, {tid: face for tid, (_, face) in frame.people.items()}

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
            started = all(firsts[k] is not None for k in self._active())
            # a modality that never starts is waited for at most max_lead_ms
            waited = present and (self._data_end_ms() or 0.0) - min(present) >= self._config.max_lead_ms
            if present and (final or started or waited):
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

    def push_video(self, frame: np.ndarray | VideoFrame, timestamp_ms: int) -> None:
        """One RGB frame ``(H, W, 3) uint8`` shown at ``timestamp_ms``: the array, or a source's
        :class:`~edge_emotion.sources.VideoFrame`, whose ``image`` is read only if the stream keeps
        the frame (a file source converts a frame to RGB when its ``image`` is first read, so the
        frames that the subsampling drops are never converted)."""
        self._check_open()
        if not self._config.video:
            raise InputError("this stream was created without video")
        deferred = isinstance(frame, VideoFrame)  # not hasattr(frame, "image"): that would read it
        if not deferred:
            frame = _checked_frame(frame)
        timestamp_ms = _timestamp(timestamp_ms, "video")
        if self._last_video_ms is not None and timestamp_ms <= self._last_video_ms:
            raise InputError(
                f"video timestamps must strictly increase: {timestamp_ms} ms after {self._last_video_ms} ms"
            )
        if not self._place(timestamp_ms, "video"):
            self._last_video_ms = timestamp_ms
            return
        if self._first_video_ms is None:
            self._first_video_ms = timestamp_ms
        self._last_video_ms = self._last_frame_ms = timestamp_ms
        self._video_end_ms = data_end_ms(None, timestamp_ms, self._preset)
        if not self._subsampler.keep(timestamp_ms):  # the model's frame rate, as in training
            # Mouths move between the model's frames too: with several people the speaker is told
            # from every frame. With one, the model's frames suffice to tell a face that speaks from
            # an off-screen voice, and the frames the model drops are never converted or read.
            if self._speaker is not None and self._config.max_faces > 1:
                self._speaker.push_frame(frame.luma() if deferred else frame, timestamp_ms)
            return
        luma = frame.luma() if deferred and self._speaker is not None else None  # a decoded frame's Y plane
        if deferred:
            frame = _checked_frame(frame.image)
        followed = self._follow(frame, timestamp_ms)
        if self._speaker is not None:
            picture = frame if luma is None else luma
            self._speaker.push_frame(picture, timestamp_ms, {tf.track_id: tf.observation for tf in followed})
        entry = _Frame(timestamp_ms, {})
        if followed:
            from .frontend.face import crop_face

            crops = np.stack([crop_face(frame, tf.bbox, self._preset.visual) for tf in followed]).astype(np.float32)
            faces = [FaceInfo(tuple(int(v) for v in tf.bbox), float(tf.observation.score)) for tf in followed]
            if self._config.face_batch == 1:
                embeddings = self._model.encode_faces(crops)
                for tf, embedding, face in zip(followed, embeddings, faces, strict=True):
                    entry.people[tf.track_id] = (embedding, face)
            else:
                for tf, crop, face in zip(followed, crops, faces, strict=True):
                    entry.people[tf.track_id] = (None, face)
                    self._unencoded.append((entry, tf.track_id, crop))
        self._frames.append(entry)
        if len(self._unencoded) >= self._config.face_batch:
            self._encode_waiting()
        self._bound_buffers()

    def _encode_waiting(self) -> None:
        """Encode the crops waiting for a batch (``StreamConfig.face_batch`` at most per call). A
        crop leaves the queue only once encoded: after an encoder error the next window retries it."""
        size = self._config.face_batch
        while self._unencoded:
            part = self._unencoded[:size]
            embeddings = self._model.encode_faces(np.stack([crop for _, _, crop in part]))
            for (entry, track_id, _), embedding in zip(part, embeddings, strict=True):
                entry.people[track_id] = (embedding, entry.people[track_id][1])
            del self._unencoded[: len(part)]

    def _follow(self, frame: np.ndarray, timestamp_ms: int) -> list[TrackedFace]:
        """The usable faces of a frame with their track ids."""
        if self._tracks is None:
            followed, _ = self._faces.track(frame, timestamp_ms)
            return followed[: self._config.max_faces]
        return self._tracks.update([self._faces.detect(frame, timestamp_ms)], timestamp_ms)

    def push_audio(self, pcm: np.ndarray, sample_rate: int, timestamp_ms: int) -> None:
        """PCM ``(S,)`` or ``(S, C)`` (float in [-1, 1] or int16) whose first sample is at
        ``timestamp_ms``. The sample rate, an integer in ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` Hz,
        must stay the same for the life of the stream. Channels-first arrays, float samples at
        integer scale and NaN or infinite samples are refused (:class:`~edge_emotion.errors.InputError`,
        see :func:`~edge_emotion.frontend.features.to_mono`)."""
        self._check_open()
        if not self._config.audio:
            raise InputError("this stream was created without audio")
        sample_rate = _sample_rate(sample_rate)
        if self._stream_rate is not None and sample_rate != self._stream_rate:
            raise InputError(f"sample rate changed from {self._stream_rate} to {sample_rate} Hz within a stream")
        timestamp_ms = _timestamp(timestamp_ms, "audio")
        if self._last_audio_ms is not None and timestamp_ms <= self._last_audio_ms:
            raise InputError(
                f"audio timestamps must strictly increase: {timestamp_ms} ms after {self._last_audio_ms} ms"
            )
        mono = to_mono(np.asarray(pcm))
        self._stream_rate = sample_rate
        if not self._place(timestamp_ms, "audio"):
            self._last_audio_ms = timestamp_ms
            return
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
        self._bound_buffers()

    def _place(self, timestamp_ms: int, kind: str) -> bool:
        """Where a push at ``timestamp_ms`` falls: past a gap (restart the stream there; True),
        too far behind the data of the other modality (warn, drop: False), or in line (True)."""
        data_end = self._data_end_ms()
        if data_end is None:
            return True
        if timestamp_ms > data_end + self._preset.window_ms:
            log.warning(
                "%s jumped %.0f ms past the end of the input (%.0f ms): the stream restarts at %d ms",
                kind,
                timestamp_ms - data_end,
                data_end,
                timestamp_ms,
            )
            self._restart()
            return True
        if timestamp_ms < data_end - self._config.max_lead_ms:
            if not self._dropped_late:
                log.warning(
                    "dropping %s at %d ms: more than %d ms behind the other input (at %.0f ms)",
                    kind,
                    timestamp_ms,
                    self._config.max_lead_ms,
                    data_end,
                )
            self._dropped_late = True
            return False
        self._dropped_late = False
        return True

    def _restart(self) -> None:
        """After a gap: finish the windows of what came before (kept for the next poll), empty the
        buffers and start a new window grid at the next push. Timestamps keep strictly increasing
        and the audio sample rate stays the stream's."""
        self._keep_pending(self._drain())
        self._origin_ms = self._first_audio_ms = self._first_video_ms = None
        self._next_window = 0
        self._smoothed = {}
        self._frames.clear()
        self._unencoded = []
        if self._speaker is not None:  # nobody keeps the turn across a gap
            self._speaker = ActiveSpeaker(self._preset)
        self._last_frame_ms = self._video_end_ms = None
        self._subsampler = FrameSubsampler(self._preset)
        self._audio_rate = self._audio_t0_ms = None
        self._audio_offset = 0
        self._pcm = np.zeros(0, np.float32)
        self._waived = False

    def _bound_buffers(self) -> None:
        """Without poll calls the buffers would grow: compute the windows completed by now (for the
        next poll) once the data reach ``max_lead_ms`` past the next window's end."""
        data_end = self._data_end_ms()
        if self._fix_origin() is None or data_end is None:
            return
        next_end = self._window_start(self._next_window) + self._config.window_ms
        if data_end - next_end > self._config.max_lead_ms + self._config.hop_ms:
            self._keep_pending(self._poll_ready())

    def _keep_pending(self, results: list[EmotionResult]) -> None:
        """Keep results computed at push for the next poll: the newest ``max_pending_results`` at
        most, dropping whole windows."""
        self._pending.extend(results)
        if len(self._pending) <= self._config.max_pending_results:
            return
        if not self._dropped_results_warned:
            log.warning(
                "nobody polled this stream for %d results: the oldest are dropped (max_pending_results)",
                self._config.max_pending_results,
            )
            self._dropped_results_warned = True
        dropped = []
        while len(self._pending) > self._config.max_pending_results or (
            dropped and self._pending and self._pending[0].t_start_ms == dropped[-1].t_start_ms
        ):  # whole windows: with several people a window has one result per person
            dropped.append(self._pending.popleft())
        self._dropped_results += len(dropped)

    # -- output ----------------------------------------------------------------------------
    def _audio_end_ms(self) -> float | None:
        if self._audio_rate is None or self._audio_t0_ms is None:
            return None
        return self._audio_t0_ms + 1000.0 * (self._audio_offset + self._pcm.size) / self._audio_rate

    def _window_start(self, k: int) -> int:
        return self._origin_ms + k * self._config.hop_ms

    def _data_end_ms(self) -> float | None:
        return data_end_ms(self._audio_end_ms(), self._last_frame_ms, self._preset)

    def _ready(self, end_ms: float) -> bool:
        active = self._active()
        if not active:  # every input has ended: what remains is flush's
            return False
        ends = {"audio": self._audio_end_ms(), "video": self._video_end_ms}
        late = [k for k in active if ends[k] is None or ends[k] < end_ms]
        if not late:
            self._waived = False
            return True
        # Bounded wait: another modality already holds data max_lead_ms past this window's end.
        data_end = self._data_end_ms()
        if data_end is None or data_end - end_ms < self._config.max_lead_ms:
            return False
        if not self._waived:
            log.warning(
                "no %s for %d ms while the other input goes on: windows complete without it",
                " or ".join(late),
                self._config.max_lead_ms,
            )
        self._waived = True
        return True

    def poll(self) -> list[EmotionResult]:
        """Results of the windows completed since the last call, oldest first (with several
        people, a window's results are in the order of their ``person``, the voice alone last)."""
        results, self._pending = list(self._pending), deque()
        self._dropped_results_warned = False
        return results + self._poll_ready()

    def _poll_ready(self) -> list[EmotionResult]:
        results = []
        while self._fix_origin() is not None:
            start = self._window_start(self._next_window)
            end = start + self._config.window_ms
            if not self._ready(end):
                break
            results.extend(self._emit(start, end))
        return results

    def flush(self) -> list[EmotionResult]:
        """End of input: every remaining window that holds data, the last one partial, so the end
        of the input is never dropped (a clip shorter than one window gets exactly one result; a
        tail shorter than ``MIN_TAIL_MS`` past the last window gets no window of its own).
        The stream accepts no input afterwards and its face detector is released."""
        results = self.poll() + self._drain()
        self.close()  # no more input: release the face detector now, not at garbage collection
        return results

    def _drain(self) -> list[EmotionResult]:
        """Every remaining window that holds data (see :meth:`flush`)."""
        self._fix_origin(final=True)
        results = self._poll_ready()
        data_end = self._data_end_ms()
        while self._origin_ms is not None and data_end is not None:
            start = self._window_start(self._next_window)
            previous_end = (
                self._window_start(self._next_window - 1) + self._config.window_ms if self._next_window else None
            )
            if start >= data_end or not has_next_window(start, previous_end, data_end):
                break
            results.extend(self._emit(start, min(start + self._config.window_ms, math.ceil(data_end))))
        return results

    def _emit(self, start: int, end: int) -> list[EmotionResult]:
        results = self._compute(start, end)
        self._next_window += 1
        self._evict(self._window_start(self._next_window))
        return results

    def _evict(self, next_start: int) -> None:
        keep_from = next_start - 2 * self._frame_period_ms
        while self._frames and self._frames[0].timestamp_ms < keep_from:
            self._frames.popleft()
        if self._speaker is not None:
            self._speaker.forget_before(next_start - self._speaker.config.evidence_ms)
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

    def _compute(self, start: int, end: int) -> list[EmotionResult]:
        """One window's results. Audio and frames reach the model's steps through
        :mod:`edge_emotion.frontend.align`, the functions training's preprocessing uses."""
        preset, m = self._preset, self._preset.model
        length_ms = end - start
        if self._unencoded:
            self._encode_waiting()

        audio_seq = np.zeros((1, preset.audio_steps, m.audio_dim), np.float32)
        speech = np.zeros(m.time_steps, bool)
        speaker = None
        if self._audio_rate is not None:
            pcm = self._window_pcm(start, length_ms)
            speech = window_speech(pcm, preset, length_ms)
            if speech.any():
                log_mel = window_log_mel(pcm, preset.audio)
                audio_seq = self._model.encode_audio(log_mel[None, None].astype(np.float32))
            if self._speaker is not None:
                speaker = self._speaker.decide(pcm, start, length_ms, int(speech.sum())).speaker

        # Each person's embeddings on the window's ticks and last face inside the window. With one
        # face, every face is the window's one person, whatever its track id (as before tracks).
        single = self._config.max_faces == 1
        people: dict[int | None, _Person] = {}
        period = self._frame_period_ms
        frames = [f for f in self._frames if start - period <= f.timestamp_ms < end + period]
        if frames:
            index, ok = tick_frames(np.array([f.timestamp_ms for f in frames], np.float64), start, end, preset)
            for k in np.flatnonzero(ok):
                for tid, (embedding, _) in frames[index[k]].people.items():
                    person = people.setdefault(None if single else tid, _Person.empty(preset))
                    person.ticks[k], person.mask[k] = embedding, True
            for f in frames:
                if start <= f.timestamp_ms < end:
                    for tid, (_, face) in f.people.items():
                        key = None if single else tid
                        if key in people or single:  # with one face, a face on no tick still names it
                            person = people.setdefault(key, _Person.empty(preset))
                            person.face, person.track_id = face, tid

        # One row per result: (smoothing key, person, speaking, fused with the voice, _Person).
        heard = bool(speech.any())
        rows: list[tuple[int | None, int | None, bool, bool, _Person]] = []
        if single:
            one = people.get(None) or _Person.empty(preset)
            speaking = heard and (one.track_id is None or speaker == one.track_id)
            rows.append((None, one.track_id, speaking, True, one))
        else:
            for tid in sorted(people):
                rows.append((tid, tid, tid == speaker, tid == speaker, people[tid]))
            if (heard and speaker not in people) or not rows:  # the voice alone, or nothing at all
                rows.append((None, None, heard, True, _Person.empty(preset)))

        aligned = []
        for _, _, _, voice, person in rows:
            aligned.append(
                align_encoded(
                    preset,
                    audio_seq if voice else np.zeros_like(audio_seq),
                    person.ticks[None],
                    person.mask[None],
                    (speech if voice else np.zeros_like(speech))[None],
                )
            )
        results: list[EmotionResult | None] = [None] * len(rows)
        fused = []
        for i, (key, track_id, speaking, _, person) in enumerate(rows):
            audio_mask, visual_mask = aligned[i][2][0] > 0, aligned[i][3][0] > 0
            modalities = tuple(name for name, mask in (("audio", audio_mask), ("video", visual_mask)) if mask.any())
            if modalities:
                fused.append((i, modalities))
                continue
            self._smoothed.pop(key, None)  # after nobody was seen or heard, start afresh
            uniform = {label: 1.0 / len(self._labels) for label in self._labels}
            results[i] = EmotionResult(start, end, UNKNOWN_LABEL, uniform, (), person.face, uniform, track_id, speaking)
        if fused:  # every person's window in one call of the fusion head
            audio, visual, audio_mask, visual_mask = (
                np.concatenate([aligned[i][j] for i, _ in fused]) for j in range(4)
            )
            logits = self._model.fuse(audio, visual, audio_mask.astype(np.float32), visual_mask.astype(np.float32))
            for (i, modalities), row_logits in zip(fused, logits, strict=True):
                key, track_id, speaking, _, person = rows[i]
                results[i] = self._result(start, end, key, row_logits, modalities, person.face, track_id, speaking)
        if not single:  # forget the smoothing of people no longer in view
            keys = {row[0] for row in rows}
            self._smoothed = {k: v for k, v in self._smoothed.items() if k in keys}
        return results

    def _result(
        self,
        start: int,
        end: int,
        key: int | None,
        logits: np.ndarray,
        modalities: tuple[str, ...],
        face: FaceInfo | None,
        person: int | None,
        speaking: bool,
    ) -> EmotionResult:
        probs = _softmax(np.asarray(logits, np.float64))
        previous = self._smoothed.get(key)
        if previous is None or self._config.smoothing == 0.0:
            smoothed = probs
        else:
            smoothed = self._config.smoothing * previous + (1 - self._config.smoothing) * probs
        self._smoothed[key] = smoothed
        scores = {label: float(p) for label, p in zip(self._labels, smoothed, strict=True)}
        raw = {label: float(p) for label, p in zip(self._labels, probs, strict=True)}
        label = self._labels[int(np.argmax(smoothed))]
        return EmotionResult(start, end, label, scores, modalities, face, raw, person, bool(speaking))


@dataclass
class _Person:
    """One person's part of a window: tick embeddings ``(T_v, D_v)``, their mask ``(T_v,)``, the
    last face seen inside the window and its track id."""

    ticks: np.ndarray
    mask: np.ndarray
    face: FaceInfo | None = None
    track_id: int | None = None

    @classmethod
    def empty(cls, preset: PresetConfig) -> _Person:
        return cls(
            np.zeros((preset.video_frames, preset.model.visual_dim), np.float32), np.zeros(preset.video_frames, bool)
        )


def _checked_frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"a video frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"a video frame needs pixels, got shape {frame.shape}")
    return frame


def _timestamp(value, kind: str) -> int:
    """``value`` as integer ms in ``[0, MAX_TIMESTAMP_MS]``, else :class:`InputError`."""
    try:
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            raise ValueError
        timestamp_ms = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{kind} timestamp_ms must be an integer number of ms, got {value!r}") from None
    if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
        raise InputError(f"{kind} timestamp_ms must be in [0, 2**53] ms, got {timestamp_ms}")
    return timestamp_ms


def _sample_rate(value) -> int:
    """``value`` as an integer rate in ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` Hz, else :class:`InputError`."""
    try:
        rate = int(value)
        exact = rate == value
    except (TypeError, ValueError, OverflowError):
        rate, exact = 0, False
    if not exact or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError(
            f"sample_rate must be a whole number of Hz in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}], got {value!r}"
        )
    return rate


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
