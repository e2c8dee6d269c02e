"""The one alignment of audio and video onto the common ``T`` steps of a window (appendix A.4).

Everything that feeds the fusion head goes through this module: the streaming recognizer
(:mod:`edge_emotion.stream`), offline clip preprocessing and evaluation
(:mod:`edge_emotion.frontend.preprocess`, :mod:`edge_emotion.eval`) and training
(``edge_emotion.train.model`` builds its torch indexing from :func:`audio_step_index` and
:func:`video_tick_index`). There is no second implementation to drift (docs/DESIGN.md, principle 2).

Windows start every ``hop_ms`` from the input's first timestamp; the input ends where its data
ends (:func:`data_end_ms`); the last window may be partial, and a tail shorter than
:data:`MIN_TAIL_MS` past the previous window gets no window of its own (:func:`window_starts_ms`).
A window ``[start_ms, start_ms + window_ms)`` is cut into ``T`` equal steps; a step is matched
at its centre. Three things happen, always in this order:

1. **Frames.** Video is first subsampled to the model's frame rate (:class:`FrameSubsampler`: a
   frame is kept once 3/4 of a frame period has passed since the last kept one; only kept frames
   are detected, cropped and encoded). A window has ``T_v`` ticks ``start_ms + k · 1000 / fps``;
   each tick takes the kept frame nearest to it within one frame period, if any, and only if the
   tick lies before the window's end (:func:`tick_frames`).
2. **Audio.** The audio encoder turns the window's log-mel into ``T_a`` steps; a common step holds
   audio only where voice activity found speech in it and the step lies inside the window
   (:func:`window_speech`).
3. **Steps.** Static maps take the ``T_a`` audio steps and the ``T_v`` ticks onto the ``T`` common
   steps (:func:`audio_step_index`, :func:`video_tick_index`), and :func:`align_encoded` applies
   them to encoder outputs, zeroing what is masked. Gaps are masked, never invented.
"""

from __future__ import annotations

import numpy as np

from ..config import PresetConfig
from ..errors import InputError

#: At the end of the input, data reaching less than this past the previous window gets no window.
MIN_TAIL_MS = 100.0


def data_end_ms(audio_end_ms: float | None, last_frame_ms: float | None, preset: PresetConfig) -> float | None:
    """Where an input's data ends: the end of its audio, or one model frame period after its last
    video frame, whichever is later (None: neither was given)."""
    ends = [audio_end_ms] if audio_end_ms is not None else []
    if last_frame_ms is not None:
        ends.append(last_frame_ms + frame_period_ms(preset))
    return max(ends) if ends else None


def has_next_window(start_ms: float, previous_end_ms: float | None, data_end_ms: float) -> bool:
    """Whether the input ending at ``data_end_ms`` gets a window starting at ``start_ms`` after one
    that ended at ``previous_end_ms`` (None: it is the first window, which every input gets)."""
    if previous_end_ms is None:
        return True
    return start_ms < data_end_ms and data_end_ms - max(start_ms, previous_end_ms) >= MIN_TAIL_MS


def window_starts_ms(duration_ms: float, window_ms: int, hop_ms: int) -> np.ndarray:
    """``(W,) int64``: the window starts (from the input's start) of an input of ``duration_ms``;
    at least one window, the last one possibly partial (see :func:`has_next_window`)."""
    starts = [0]
    while has_next_window(starts[-1] + hop_ms, starts[-1] + window_ms, duration_ms):
        starts.append(starts[-1] + hop_ms)
    return np.asarray(starts, np.int64)


def check_increasing(timestamps_ms: np.ndarray, what: str = "timestamps") -> None:
    """Raise :class:`InputError` unless ``timestamps_ms`` is strictly increasing (MediaPipe's rule)."""
    ts = np.asarray(timestamps_ms)
    if ts.ndim != 1:
        raise InputError(f"{what} must be one-dimensional, got shape {ts.shape}")
    if ts.size > 1 and not np.all(np.diff(ts) > 0):
        bad = int(np.argmax(np.diff(ts) <= 0))
        raise InputError(f"{what} must be strictly increasing: {ts[bad]} is followed by {ts[bad + 1]}")


def nearest_steps(source_ms: np.ndarray, centers_ms: np.ndarray, tolerance_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """For each centre, the index of the nearest source timestamp and whether it is close enough.

    ``source_ms`` ``(S,)`` strictly increasing; ``centers_ms`` ``(T,)``. Returns ``index`` ``(T,)
    int64`` (0 where masked) and ``mask`` ``(T,) bool``. Ties go to the earlier source item.
    """
    source = np.asarray(source_ms, dtype=np.float64)
    centers = np.asarray(centers_ms, dtype=np.float64)
    check_increasing(source, "source timestamps")
    if source.size == 0:
        return np.zeros(centers.shape, np.int64), np.zeros(centers.shape, bool)
    right = np.clip(np.searchsorted(source, centers, side="left"), 0, source.size - 1)
    left = np.clip(right - 1, 0, source.size - 1)
    take_left = np.abs(centers - source[left]) <= np.abs(source[right] - centers)
    index = np.where(take_left, left, right).astype(np.int64)
    mask = np.abs(source[index] - centers) <= tolerance_ms + 1e-6
    index[~mask] = 0
    return index, mask


def step_ms(preset: PresetConfig) -> float:
    """The length of one common step, in ms."""
    return preset.window_ms / preset.model.time_steps


def step_centers(preset: PresetConfig, start_ms: float = 0.0) -> np.ndarray:
    """``(T,) float64``: the centre of each common step of the window starting at ``start_ms``."""
    return start_ms + (np.arange(preset.model.time_steps) + 0.5) * step_ms(preset)


def frame_period_ms(preset: PresetConfig) -> float:
    """The model's frame period, ``1000 / visual.fps`` ms."""
    return 1000.0 / preset.visual.fps


def audio_step_times(preset: PresetConfig, window_start_ms: float = 0.0) -> np.ndarray:
    """``(T_a,) float64``: the centre time of each audio-encoder step of a window.

    Step ``j`` pools ``n_frames / T_a`` log-mel frames; frame ``i`` is centred at ``i · hop_ms``
    from the window start.
    """
    frames_per_step = preset.audio.n_frames / preset.audio_steps
    first_frames = np.arange(preset.audio_steps) * frames_per_step
    centre_frame = first_frames + (frames_per_step - 1) / 2
    return window_start_ms + centre_frame * preset.audio.hop_ms


def audio_step_index(preset: PresetConfig) -> np.ndarray:
    """``(T,) int64``: the audio-encoder step that feeds each common step (the audio steps tile the
    whole window, so every common step has one)."""
    step_period = preset.audio.hop_ms * preset.audio.n_frames / preset.audio_steps
    index, _ = nearest_steps(audio_step_times(preset), step_centers(preset), max(step_period, step_ms(preset)) / 2)
    return index


def video_tick_index(preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
    """The static map from a window's ``T_v`` ticks (``k · 1000 / fps`` ms from its start) to the
    common steps: ``(T,) int64`` tick indices and ``(T,) bool`` (False: no tick near that step)."""
    period = frame_period_ms(preset)
    ticks = np.arange(preset.video_frames) * period
    return nearest_steps(ticks, step_centers(preset), max(period, step_ms(preset)) / 2)


class FrameSubsampler:
    """Which frames of a video reach the model: the first one, then each frame that comes at least
    3/4 of a model frame period after the last kept one (so a 30 fps source gives every third frame
    at 10 fps, and a jittery clock does not drop frames). Feed every frame's timestamp in order."""

    def __init__(self, preset: PresetConfig):
        self._min_gap_ms = 0.75 * frame_period_ms(preset)
        self._last_kept_ms: float | None = None

    def keep(self, timestamp_ms: float) -> bool:
        """Whether the frame at ``timestamp_ms`` is kept (and, if so, remembered as the last kept)."""
        if self._last_kept_ms is not None and timestamp_ms - self._last_kept_ms < self._min_gap_ms:
            return False
        self._last_kept_ms = float(timestamp_ms)
        return True


def tick_frames(
    frame_ms: np.ndarray, start_ms: float, end_ms: float, preset: PresetConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The kept frame that each of a window's ``T_v`` ticks shows.

    ``frame_ms`` ``(F,)`` strictly increasing timestamps of the kept frames (any subset that holds
    every frame within one period of the window). Tick ``k`` is at ``start_ms + k · 1000 / fps``
    and takes the nearest frame within one frame period (ties: the earlier), if the tick lies
    before ``end_ms``. Returns ``(T_v,) int64`` indices into ``frame_ms`` and ``(T_v,) bool``.
    """
    period = frame_period_ms(preset)
    ticks = start_ms + np.arange(preset.video_frames) * period
    index, ok = nearest_steps(frame_ms, ticks, period)
    return index, ok & (ticks < end_ms)


def window_speech(pcm_window: np.ndarray, preset: PresetConfig, length_ms: float | None = None) -> np.ndarray:
    """``(window_samples,) float32`` at the model's rate -> ``(T,) bool``: the common steps that hold
    speech (voice activity pooled onto the steps) and lie inside the first ``length_ms`` of the
    window (``None``: all of it)."""
    from .features import window_speech_steps

    speech = window_speech_steps(pcm_window, preset)
    if length_ms is not None:
        speech = speech & (step_centers(preset) < length_ms)
    return speech


def align_encoded(
    preset: PresetConfig,
    audio_seq: np.ndarray,
    tick_embeddings: np.ndarray,
    tick_mask: np.ndarray,
    audio_mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encoder outputs of a batch of windows -> the fusion head's inputs (``EmotionModel.align`` is
    the same indexing in torch, from the same maps).

    ``audio_seq`` ``(N, T_a, D_a)``, ``tick_embeddings`` ``(N, T_v, D_v)``, ``tick_mask``
    ``(N, T_v)`` (1 where the tick has a usable face), ``audio_mask`` ``(N, T)`` (speech per common
    step) -> ``audio`` ``(N, T, D_a)``, ``visual`` ``(N, T, D_v)`` (both zero where masked),
    ``audio_mask`` and ``visual_mask`` ``(N, T) float32``.
    """
    audio_idx = audio_step_index(preset)
    tick_idx, tick_ok = video_tick_index(preset)
    a_mask = np.asarray(audio_mask, np.float32)
    v_mask = np.asarray(tick_mask, np.float32)[:, tick_idx] * tick_ok.astype(np.float32)
    audio = np.asarray(audio_seq, np.float32)[:, audio_idx] * a_mask[..., None]
    visual = np.asarray(tick_embeddings, np.float32)[:, tick_idx] * v_mask[..., None]
    return audio, visual, a_mask, v_mask


__all__ = [
    "MIN_TAIL_MS",
    "data_end_ms",
    "has_next_window",
    "window_starts_ms",
    "check_increasing",
    "nearest_steps",
    "step_ms",
    "step_centers",
    "frame_period_ms",
    "audio_step_times",
    "audio_step_index",
    "video_tick_index",
    "FrameSubsampler",
    "tick_frames",
    "window_speech",
    "align_encoded",
]
