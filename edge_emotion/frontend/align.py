"""Temporal alignment of audio and video onto the common T steps of a window (appendix A.4).

A window ``[start_ms, start_ms + window_ms)`` is cut into ``T`` equal steps. Each step takes the
source item (a video frame's embedding, an audio-encoder step) whose timestamp is nearest to the
step's centre, if one lies within ``tolerance_ms``; otherwise the step is masked. Gaps are masked,
never invented. The SDK aligns by the sources' real timestamps; the training pipeline calls the
same :func:`nearest_steps` on the timestamps of its preprocessed windows, so both see one
implementation (DESIGN.md, principle 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import PresetConfig


def check_increasing(timestamps_ms: np.ndarray, what: str = "timestamps") -> None:
    """Raise ``ValueError`` unless ``timestamps_ms`` is strictly increasing (MediaPipe's rule)."""
    ts = np.asarray(timestamps_ms)
    if ts.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {ts.shape}")
    if ts.size > 1 and not np.all(np.diff(ts) > 0):
        bad = int(np.argmax(np.diff(ts) <= 0))
        raise ValueError(f"{what} must be strictly increasing: {ts[bad]} is followed by {ts[bad + 1]}")


def nearest_steps(source_ms: np.ndarray, centers_ms: np.ndarray, tolerance_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """For each step centre, the index of the nearest source timestamp and whether it is close enough.

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


@dataclass(frozen=True)
class AlignedWindow:
    """One window's model inputs on the common steps.

    ``audio`` ``(T, D_a) float32``, ``visual`` ``(T, D_v) float32``, masks ``(T,) bool``;
    masked steps hold zeros.
    """

    start_ms: int
    end_ms: int
    audio: np.ndarray
    visual: np.ndarray
    audio_mask: np.ndarray
    visual_mask: np.ndarray


class Aligner:
    """Places timestamped sequences on the ``T`` common steps of a window.

    ``time_steps`` T, ``window_ms`` the window length. Step ``k`` of a window starting at ``s``
    covers ``[s + k·w/T, s + (k+1)·w/T)`` and its centre is where sources are matched.
    """

    def __init__(self, time_steps: int, window_ms: float):
        if time_steps <= 0 or window_ms <= 0:
            raise ValueError("time_steps and window_ms must be positive")
        self.time_steps = int(time_steps)
        self.window_ms = float(window_ms)
        self.step_ms = self.window_ms / self.time_steps

    @classmethod
    def for_preset(cls, preset: PresetConfig) -> Aligner:
        return cls(preset.model.time_steps, preset.window_ms)

    def centers(self, start_ms: float = 0.0) -> np.ndarray:
        """``(T,) float64``: the centre of each step, in ms."""
        return start_ms + (np.arange(self.time_steps) + 0.5) * self.step_ms

    def place(
        self,
        timestamps_ms: np.ndarray,
        values: np.ndarray,
        start_ms: float,
        source_period_ms: float,
        valid: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Place ``values`` ``(S, D)`` stamped ``timestamps_ms`` ``(S,)`` on the window's steps.

        ``source_period_ms`` is the nominal spacing of the source; a step matches an item within
        half of ``max(source_period_ms, step_ms)``. ``valid`` ``(S,) bool`` marks items that exist
        but carry nothing (no face in that frame): steps matched to them are masked too.
        Returns ``(T, D) float32`` and a ``(T,) bool`` mask.
        """
        values = np.asarray(values, dtype=np.float32)
        ts = np.asarray(timestamps_ms, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != ts.shape[0]:
            raise ValueError(f"values must be (S, D) with S = len(timestamps); got {values.shape} and {ts.shape}")
        tolerance = max(source_period_ms, self.step_ms) / 2
        index, mask = nearest_steps(ts, self.centers(start_ms), tolerance)
        if valid is not None and ts.size:
            mask &= np.asarray(valid, dtype=bool)[index]
        out = np.zeros((self.time_steps, values.shape[1]), np.float32)
        if ts.size:
            out[mask] = values[index[mask]]
        return out, mask

    def audio_step_times(self, preset: PresetConfig, window_start_ms: float = 0.0) -> np.ndarray:
        """``(T_a,) float64``: the centre time of each audio-encoder step of a window.

        Step ``j`` pools ``n_frames / T_a`` log-mel frames; frame ``i`` is centred at
        ``i · hop_ms`` from the window start.
        """
        frames_per_step = preset.audio.n_frames / preset.audio_steps
        first_frames = np.arange(preset.audio_steps) * frames_per_step
        centre_frame = first_frames + (frames_per_step - 1) / 2
        return window_start_ms + centre_frame * preset.audio.hop_ms

    def video_index(self, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
        """The static map from a window's ``T_v`` video ticks (``k · 1000 / fps`` ms from its start)
        to the common steps: ``(T,) int64`` tick indices and ``(T,) bool`` mask."""
        period = 1000.0 / preset.visual.fps
        ticks = np.arange(preset.video_frames) * period
        return nearest_steps(ticks, self.centers(0.0), max(period, self.step_ms) / 2)

    def audio_index(self, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
        """The static map from audio-encoder steps to common steps for one window: ``(T,) int64``
        indices and ``(T,) bool`` mask (all True: the audio steps tile the whole window)."""
        step_period = preset.audio.hop_ms * preset.audio.n_frames / preset.audio_steps
        return nearest_steps(self.audio_step_times(preset), self.centers(0.0), max(step_period, self.step_ms) / 2)

    def align(
        self,
        preset: PresetConfig,
        start_ms: int,
        audio_seq: np.ndarray | None,
        speech: np.ndarray | None,
        frame_ms: np.ndarray,
        frame_values: np.ndarray,
        frame_valid: np.ndarray | None = None,
        frame_period_ms: float | None = None,
    ) -> AlignedWindow:
        """One window's fusion inputs from the audio encoder's output and timestamped frame embeddings.

        ``audio_seq`` ``(T_a, D_a)``: the audio encoder's steps for the window starting at
        ``start_ms`` (None: no audio, all audio steps masked, ``D_a = preset.model.audio_dim``);
        ``speech`` ``(T,) bool`` which common steps hold speech (e.g.
        :func:`edge_emotion.frontend.features.speech_steps`; None: all). ``frame_ms`` ``(S,)`` strictly
        increasing timestamps of the frame embeddings ``frame_values`` ``(S, D_v)``, ``frame_valid``
        ``(S,) bool`` (False: no usable face in that frame); frames outside the window are simply
        not matched. ``frame_period_ms`` defaults to ``1000 / visual.fps``. Steps with no frame
        within half a period, or whose frame has no face, are masked; nothing is interpolated.
        """
        if self.time_steps != preset.model.time_steps or abs(self.window_ms - preset.window_ms) > 1e-6:
            raise ValueError("this Aligner was not built for the given preset")
        t = self.time_steps
        if audio_seq is None:
            audio = np.zeros((t, preset.model.audio_dim), np.float32)
            audio_mask = np.zeros(t, bool)
        else:
            seq = np.asarray(audio_seq, dtype=np.float32)
            if seq.ndim != 2 or seq.shape[0] != preset.audio_steps:
                raise ValueError(f"audio_seq must be (T_a={preset.audio_steps}, D_a), got {seq.shape}")
            index, audio_mask = self.audio_index(preset)
            if speech is not None:
                flags = np.asarray(speech, dtype=bool)
                if flags.shape != (t,):
                    raise ValueError(f"speech must be (T={t},), got {flags.shape}")
                audio_mask = audio_mask & flags
            audio = np.where(audio_mask[:, None], seq[index], np.float32(0)).astype(np.float32)
        period = frame_period_ms if frame_period_ms is not None else 1000.0 / preset.visual.fps
        visual, visual_mask = self.place(frame_ms, frame_values, start_ms, period, frame_valid)
        return AlignedWindow(
            start_ms=int(start_ms),
            end_ms=int(round(start_ms + self.window_ms)),
            audio=audio,
            visual=visual,
            audio_mask=audio_mask,
            visual_mask=visual_mask,
        )


__all__ = ["Aligner", "AlignedWindow", "nearest_steps", "check_increasing"]
