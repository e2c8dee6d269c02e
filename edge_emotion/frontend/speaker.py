"""Who speaks: audio-visual synchrony between each face's mouth and the voice.

- **Mouth motion** per followed face (:class:`MouthMotion`), frame by frame: a patch around the
  detector's mouth keypoint (``SpeakerConfig.mouth_width`` x ``mouth_height`` of the face box) is
  cut from this frame and from the face's previous frame *at the same place*, both resized to
  ``patch_size`` (so the measure does not depend on the face's size in pixels) and made grey; the
  motion is their mean absolute difference in grey levels, per 1/30 s. A frame whose face box is
  the same picture as before (a duplicated frame) gives no value and is skipped.
- **The voice's level** over the same moments: the mean of
  :func:`~edge_emotion.frontend.features.frame_energy_db` over the log-mel frames centred in the
  interval between the two frames, moved ``visual_lead_ms`` later (the mouth moves slightly before
  the sound it makes), floored at ``AudioConfig.vad_floor_db``.

:func:`synchrony` scores one face for one window: the Pearson correlation of ``log(1 + motion)``
with the level over the window's motion samples, motion and level first averaged over
``smooth_samples`` consecutive samples. The average matters in coded video: a repeated frame that
the encoder re-coded is no longer the same picture, so it gives a motion near zero followed by a
double one; averaged over two samples, the pair moves with the voice again. A talking mouth moves
while the voice sounds and rests in its pauses; a silent face, or one that talks but is not the
voice heard, does not follow the voice. :func:`decide_speaker` picks the face with the highest
score when the window holds speech (``min_speech_steps`` steps of the voice-activity detector) and
that score reaches ``min_synchrony`` (``keep_synchrony`` for the previous window's speaker);
otherwise nobody visible speaks (an off-screen voice, or silence).
:class:`ActiveSpeaker` keeps the motion samples of a stream and answers per window.

The constants were set on composites of real clips (``tools/make_composite.py``, every layout, 3 s
windows every 1 s and every 0.5 s, faces detected at 10 fps in 30 fps video), both on the frames as
composed and on the same composites coded as H.264 MP4 and decoded again: the face whose clip owns
the voice scored 0.57-0.83 (82 window scores), other visible faces (muted, several of them talking)
at most 0.55 (134), and faces under an off-screen voice at most 0.54 (52); hence ``min_synchrony``
0.56. The previous window's speaker keeps the turn down to ``keep_synchrony`` 0.45: a speaker's
score dips near the threshold in some windows (down to 0.53 in re-coded runs of the same layout,
whose encoder is not deterministic), while faces never chosen stay where they are. The margins are
thin, and they were measured on three actors only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import PresetConfig
from .face import FaceObservation
from .features import fit_window, frame_energy_db

#: Motion values are grey levels per this period (one frame at 30 fps).
MOTION_PERIOD_MS = 1000.0 / 30
#: A face whose whole box changed by less than this (mean grey levels) is a repeated frame.
DUPLICATE_FRAME_LEVEL = 0.2
#: The duplicate test looks at about this many pixels per side of the face box.
_FACE_SAMPLES = 16


@dataclass(frozen=True)
class SpeakerConfig:
    """``mouth_width`` / ``mouth_height``: the mouth patch in face-box widths / heights, centred on
    the mouth keypoint; ``patch_size`` ``(width, height)`` pixels it is resized to;
    ``max_frame_gap_ms``: a face's previous frame must be at most this much older for a motion
    value; ``visual_lead_ms``: how much later the voice is compared; ``min_speech_steps``: a window
    with fewer speech steps has no speaker; ``min_samples``: a face with fewer motion values in the
    window cannot be the speaker; ``min_synchrony``: the lowest score that makes a face the speaker;
    ``keep_synchrony``: the lowest that keeps the previous window's speaker speaking;
    ``evidence_ms``: how far back from a window's end :class:`ActiveSpeaker` scores a face."""

    mouth_width: float = 0.6
    mouth_height: float = 0.35
    patch_size: tuple[int, int] = (32, 16)
    max_frame_gap_ms: int = 250
    visual_lead_ms: float = 67.0
    smooth_samples: int = 2
    min_speech_steps: int = 3
    min_samples: int = 8
    min_synchrony: float = 0.56
    keep_synchrony: float = 0.45
    evidence_ms: int = 3000

    def __post_init__(self) -> None:
        if not (self.mouth_width > 0 and self.mouth_height > 0):
            raise ValueError("mouth_width and mouth_height must be positive")
        if min(self.patch_size) < 2:
            raise ValueError(f"patch_size must be at least 2x2, got {self.patch_size}")
        if self.max_frame_gap_ms <= 0:
            raise ValueError("max_frame_gap_ms must be positive")
        if self.min_speech_steps < 1 or self.min_samples < 3:
            raise ValueError("min_speech_steps must be at least 1 and min_samples at least 3")
        if not 1 <= self.smooth_samples <= self.min_samples - 2:
            raise ValueError("smooth_samples must be at least 1 and leave at least 3 averages of min_samples")
        if not -1.0 <= self.keep_synchrony <= self.min_synchrony <= 1.0:
            raise ValueError("need -1 <= keep_synchrony <= min_synchrony <= 1")
        if self.evidence_ms <= 0:
            raise ValueError("evidence_ms must be positive")


def _grey(frame: np.ndarray) -> np.ndarray:
    """An RGB frame -> its ITU-R 601 luma; a luma ``(H, W)`` frame as it is."""
    import cv2

    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def mouth_region(face: FaceObservation, config: SpeakerConfig) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` in source pixels of the mouth patch of a face (unclipped), or None when the
    face has no box or no mouth keypoint."""
    mouth = face.keypoint("mouth")
    if face.bbox is None or mouth is None:
        return None
    _, _, fw, fh = face.bbox
    w = max(2, int(round(config.mouth_width * fw)))
    h = max(2, int(round(config.mouth_height * fh)))
    return int(round(mouth[0] - w / 2)), int(round(mouth[1] - h / 2)), w, h


def _patch(grey: np.ndarray, region: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray | None:
    import cv2

    x, y, w, h = region
    height, width = grey.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 - x0 < w / 2 or y1 - y0 < h / 2:  # mostly outside the frame
        return None
    return cv2.resize(grey[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA).astype(np.float32)


def _same_picture(grey: np.ndarray, before: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the face box shows the same picture in both frames (a sparse grid of its pixels
    changed by less than :data:`DUPLICATE_FRAME_LEVEL` on average)."""
    x, y, w, h = box
    step = max(1, min(w, h) // _FACE_SAMPLES)
    now = grey[y : y + h : step, x : x + w : step].astype(np.float32)
    if now.size == 0:
        return False
    return float(np.abs(now - before[y : y + h : step, x : x + w : step]).mean()) < DUPLICATE_FRAME_LEVEL


class MouthMotion:
    """Mouth motion of every followed face, frame by frame (see the module docstring).

    :meth:`update` takes a frame and its faces ``{track_id: observation}`` and returns
    ``{track_id: (start_ms, motion)}`` for the faces that have a value: the motion between the
    face's previous frame (at ``start_ms``) and this one. Keeps one grey frame per face.
    """

    def __init__(self, config: SpeakerConfig | None = None):
        self.config = config or SpeakerConfig()
        self._refs: dict[int, tuple[np.ndarray, int]] = {}

    def update(
        self, frame: np.ndarray, faces: dict[int, FaceObservation], timestamp_ms: int
    ) -> dict[int, tuple[int, float]]:
        """``frame`` ``(H, W, 3) uint8`` RGB, or its ``(H, W) uint8`` luma (``VideoFrame.luma``), at
        ``timestamp_ms`` -> ``{track_id: (start_ms, motion)}``. Give one kind of frame per stream:
        the motion compares each frame with an earlier one (its scale does not matter: the speaker
        is told by synchrony, a correlation)."""
        cfg = self.config
        timestamp_ms = int(timestamp_ms)
        self._refs = {tid: ref for tid, ref in self._refs.items() if tid in faces}
        if not faces:
            return {}
        grey = _grey(frame)
        motion = {}
        for track_id, face in faces.items():
            ref = self._refs.get(track_id)
            region = mouth_region(face, cfg)
            if region is None:
                self._refs.pop(track_id, None)
                continue
            if ref is None or ref[0].shape != grey.shape or not 0 < timestamp_ms - ref[1] <= cfg.max_frame_gap_ms:
                self._refs[track_id] = (grey, timestamp_ms)
                continue
            now, before = _patch(grey, region, cfg.patch_size), _patch(ref[0], region, cfg.patch_size)
            if now is None or before is None:
                self._refs[track_id] = (grey, timestamp_ms)
                continue
            if _same_picture(grey, ref[0], face.bbox):
                continue  # the same picture of this face again: wait for a new one
            difference = float(np.abs(now - before).mean())
            motion[track_id] = (ref[1], difference * MOTION_PERIOD_MS / (timestamp_ms - ref[1]))
            self._refs[track_id] = (grey, timestamp_ms)
        return motion


def voice_levels(
    pcm_window: np.ndarray, window_start_ms: float, intervals_ms: np.ndarray, preset: PresetConfig, lead_ms: float
) -> np.ndarray:
    """The voice's level in dBFS over each interval: ``intervals_ms`` ``(N, 2)`` (start, end) on the
    stream's clock, moved ``lead_ms`` later, against one window's audio ``(S,) float32`` at the
    model's rate starting at ``window_start_ms``. Returns ``(N,) float64``: the mean level of the
    log-mel frames centred in each interval (the nearest frame when none is), floored at
    ``vad_floor_db``; NaN where the moved interval is not inside the window."""
    audio = preset.audio
    level = frame_energy_db(fit_window(pcm_window, audio), audio)[: audio.n_frames].astype(np.float64)
    level = np.maximum(level, audio.vad_floor_db)
    intervals = np.asarray(intervals_ms, np.float64).reshape(-1, 2) + lead_ms - window_start_ms
    out = np.full(len(intervals), np.nan)
    window_ms = audio.n_frames * audio.hop_ms
    for i, (a, b) in enumerate(intervals):
        if a < 0 or b > window_ms:
            continue
        first, last = int(np.ceil(a / audio.hop_ms - 1e-9)), int(np.ceil(b / audio.hop_ms - 1e-9))
        if last > first:
            out[i] = level[first:last].mean()
        else:
            out[i] = level[min(level.size - 1, int(round((a + b) / 2 / audio.hop_ms)))]
    return out


def synchrony(motion: np.ndarray, levels_db: np.ndarray, config: SpeakerConfig) -> float | None:
    """Pearson correlation of ``log(1 + motion)`` ``(N,)`` with the voice's levels ``(N,)`` over the
    samples where both are finite, each first averaged over ``config.smooth_samples`` consecutive ones;
    None when fewer than ``config.min_samples`` are finite, or either signal is constant there."""
    m = np.asarray(motion, np.float64)
    e = np.asarray(levels_db, np.float64)
    valid = np.isfinite(m) & np.isfinite(e)
    if valid.sum() < config.min_samples:
        return None
    m, e = np.maximum(m[valid], 0.0), e[valid]
    if config.smooth_samples > 1:
        kernel = np.full(config.smooth_samples, 1.0 / config.smooth_samples)
        m, e = np.convolve(m, kernel, "valid"), np.convolve(e, kernel, "valid")
    m = np.log1p(m)
    m, e = m - m.mean(), e - e.mean()
    norm = float(np.sqrt((m * m).sum() * (e * e).sum()))
    if norm <= 1e-12:
        return None
    return float((m * e).sum() / norm)


@dataclass(frozen=True)
class SpeakerDecision:
    """Who speaks in one window: ``speaker`` the track id (None: nobody visible, or no speech);
    ``scores`` each face's synchrony (None where it could not be scored); ``speech_steps`` how many
    of the window's steps held speech."""

    speaker: int | None
    scores: dict[int, float | None]
    speech_steps: int


def decide_speaker(
    scores: dict[int, float | None], speech_steps: int, config: SpeakerConfig, current: int | None = None
) -> SpeakerDecision:
    """The face with the highest score, if the window holds speech and the score is high enough:
    ``min_synchrony``, or ``keep_synchrony`` for ``current`` (the previous window's speaker)."""
    scored = [(s, tid) for tid, s in scores.items() if s is not None]
    speaker = None
    if speech_steps >= config.min_speech_steps and scored:
        best, tid = max(scored)
        needed = config.keep_synchrony if tid == current else config.min_synchrony
        speaker = tid if best >= needed else None
    return SpeakerDecision(speaker, dict(scores), int(speech_steps))


class ActiveSpeaker:
    """The speaker decision for a stream: push every frame with the faces followed in it, then ask
    per window.

    :meth:`push_frame` (timestamps strictly increasing) records each face's mouth motion; ``faces``
    None reuses the faces of the last frame that had them (frames between two detections), which
    keeps the motion at the video's full frame rate while faces are detected less often.
    :meth:`decide` first gives the motion samples inside the window the voice's level from that
    window's audio (a sample keeps the level of the first window that gave it one), then scores
    every face on its samples of the last ``config.evidence_ms`` before the window's end, so a
    short last window is judged on as much evidence as a full one. Samples older than that are
    dropped then, or by :meth:`forget_before`.
    """

    def __init__(self, preset: PresetConfig, config: SpeakerConfig | None = None):
        self.preset = preset
        self.config = config or SpeakerConfig()
        self._motion = MouthMotion(self.config)
        self._faces: dict[int, FaceObservation] = {}
        self._current: int | None = None  # the last window's speaker
        # track -> rows of (start_ms, end_ms, motion, level_db or NaN)
        self._samples: dict[int, list[list[float]]] = {}

    def push_frame(self, frame: np.ndarray, timestamp_ms: int, faces: dict[int, FaceObservation] | None = None) -> None:
        if faces is not None:
            self._faces = dict(faces)
        for tid, (start_ms, value) in self._motion.update(frame, self._faces, timestamp_ms).items():
            self._samples.setdefault(tid, []).append([float(start_ms), float(timestamp_ms), value, np.nan])

    def decide(self, pcm_window: np.ndarray, start_ms: int, length_ms: int, speech_steps: int) -> SpeakerDecision:
        """``pcm_window`` ``(window_samples,) float32`` at the model's rate from ``start_ms`` (zero
        after ``length_ms``); ``speech_steps`` the number of the window's steps that hold speech.
        Only faces with motion inside ``[start_ms, start_ms + length_ms)`` are scored."""
        end_ms = start_ms + length_ms
        cfg = self.config
        scores: dict[int, float | None] = {}
        for tid, samples in self._samples.items():
            rows = np.asarray(samples, np.float64)
            inside = (rows[:, 0] >= start_ms) & (rows[:, 1] <= end_ms)
            if not inside.any():
                continue
            todo = np.flatnonzero(inside & np.isnan(rows[:, 3]))
            if todo.size:
                levels = voice_levels(pcm_window, start_ms, rows[todo, :2], self.preset, cfg.visual_lead_ms)
                for i, level in zip(todo, levels, strict=True):
                    samples[i][3] = level
                    rows[i, 3] = level
            recent = (rows[:, 1] <= end_ms) & (rows[:, 0] >= end_ms - cfg.evidence_ms)
            scores[tid] = synchrony(rows[recent, 2], rows[recent, 3], cfg)
        self.forget_before(end_ms - cfg.evidence_ms)
        decision = decide_speaker(scores, speech_steps, cfg, self._current)
        self._current = decision.speaker
        return decision

    def forget_before(self, timestamp_ms: float) -> None:
        """Drop the motion samples that start before ``timestamp_ms``."""
        for tid in list(self._samples):
            kept = [s for s in self._samples[tid] if s[0] >= timestamp_ms]
            if kept:
                self._samples[tid] = kept
            else:
                del self._samples[tid]


__all__ = [
    "SpeakerConfig",
    "SpeakerDecision",
    "MouthMotion",
    "ActiveSpeaker",
    "mouth_region",
    "voice_levels",
    "synchrony",
    "decide_speaker",
]
