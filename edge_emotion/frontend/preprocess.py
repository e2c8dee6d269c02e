"""A whole clip -> the model's windows, with the SDK's own functions (docs/DESIGN.md, principle 2).

Training, its preprocessing cache and ``edge-emotion eval`` all call this module, so a clip is
cut, framed, detected, cropped and normalised exactly as the live SDK does it:

- audio: :func:`edge_emotion.sources.read_audio` -> windows of ``preset.window_ms`` every
  ``preset.hop_ms`` (the recognizer's hop) -> :func:`edge_emotion.frontend.features.window_log_mel` and
  :func:`edge_emotion.frontend.features.window_speech_steps` per window;
- video: :class:`edge_emotion.sources.VideoFileSource` frames, subsampled to the model's frame rate
  by :class:`edge_emotion.frontend.align.FrameSubsampler` (the stream's rule) ->
  :class:`edge_emotion.frontend.face.FaceTracker` -> :func:`edge_emotion.frontend.face.crop_face`.
  Kept frames are stored once per clip with their timestamps, not per window; a window's ticks take
  their frames by :func:`edge_emotion.frontend.align.tick_frames`, exactly as the stream does.

Window placement is the stream's (:func:`edge_emotion.frontend.align.window_starts_ms` over the
clip's data end, :func:`edge_emotion.frontend.align.data_end_ms`): windows start every
``preset.hop_ms`` (the recognizer's hop); every clip has at least one window (a short clip is padded
with silence and masked frames), the last one may be partial.

No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PresetConfig
from .align import FrameSubsampler, data_end_ms, tick_frames, window_starts_ms


@dataclass(frozen=True)
class ClipFeatures:
    """One clip's model inputs (``W`` windows, ``F`` video frames at ``preset.visual.fps``).

    ``log_mel`` ``(W, n_mels, n_frames) float32`` normalised; ``speech`` ``(W, T) bool`` (the
    audio mask per common step); ``window_start_ms`` ``(W,) int64`` from the clip's start;
    ``faces`` ``(F, 3, S, S) float32`` normalised crops of the kept frames (zeros where no usable
    face) with ``face_mask`` ``(F,) bool`` and ``frame_ms`` ``(F,) float64``, each frame's time from
    the clip's start. A ``still`` clip is one face image (``F == 1``) that every window shows in
    all of its frames. ``has_audio`` / ``has_video`` say which modalities the clip has at all.
    """

    log_mel: np.ndarray
    speech: np.ndarray
    window_start_ms: np.ndarray
    faces: np.ndarray
    face_mask: np.ndarray
    duration_ms: int
    has_audio: bool
    has_video: bool
    still: bool = False
    frame_ms: np.ndarray | None = None

    @property
    def n_windows(self) -> int:
        return int(self.window_start_ms.shape[0])

    def window_end_ms(self, w: int, preset: PresetConfig) -> int:
        """Where window ``w`` ends: its full length, or the clip's end for a last, partial window."""
        return int(min(int(self.window_start_ms[w]) + preset.window_ms, max(self.duration_ms, 1)))

    def window_frames(self, w: int, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
        """Which stored frame each of window ``w``'s ``T_v`` ticks shows: ``(T_v,) int64`` indices
        into :attr:`faces` and ``(T_v,) bool`` (False: no frame near the tick, or no usable face)."""
        t_v = preset.video_frames
        if self.still:
            return np.zeros(t_v, np.int64), np.repeat(self.face_mask[:1], t_v)
        if self.frame_ms is None or self.faces.shape[0] == 0:
            return np.zeros(t_v, np.int64), np.zeros(t_v, bool)
        index, ok = tick_frames(self.frame_ms, int(self.window_start_ms[w]), self.window_end_ms(w, preset), preset)
        return index, ok & self.face_mask[index]

    def window_faces(self, w: int, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
        """Window ``w``'s face crops per tick: ``(T_v, 3, S, S) float32`` (zeros where masked) and
        ``(T_v,) bool``."""
        index, ok = self.window_frames(w, preset)
        faces = np.zeros((preset.video_frames, *self.faces.shape[1:]), np.float32)
        faces[ok] = self.faces[index[ok]]
        return faces, ok


def audio_windows(
    pcm: np.ndarray, starts_ms: np.ndarray, preset: PresetConfig, duration_ms: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(S,) float32`` mono at ``audio.sample_rate`` -> ``log_mel`` ``(W, n_mels, n_frames)
    float32`` and ``speech`` ``(W, T) bool``, one per window start; a window reaching past
    ``duration_ms`` (default: the end of ``pcm``) holds speech only before it, as in the stream."""
    from .align import window_speech
    from .features import window_log_mel

    cfg = preset.audio
    if duration_ms is None:
        duration_ms = 1000.0 * pcm.shape[0] / cfg.sample_rate
    mels, speech = [], []
    for start_ms in starts_ms:
        first = int(round(int(start_ms) * cfg.sample_rate / 1000.0))
        chunk = pcm[first : first + cfg.window_samples]
        length_ms = min(preset.window_ms, max(math.ceil(duration_ms) - int(start_ms), 0))
        mels.append(window_log_mel(chunk, cfg))
        speech.append(window_speech(chunk, preset, length_ms))
    return np.stack(mels).astype(np.float32), np.stack(speech).astype(bool)


def silent_windows(n_windows: int, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
    """Placeholders for a clip without audio: zeros and an all-False speech mask."""
    cfg = preset.audio
    return (
        np.zeros((n_windows, cfg.n_mels, cfg.n_frames), np.float32),
        np.zeros((n_windows, preset.model.time_steps), bool),
    )


def video_faces(
    video_path: str | Path, preset: PresetConfig, start_ms: float = 0.0, end_ms: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """Face crops of the frames the model sees between ``start_ms`` and ``end_ms`` (None: the end)
    of the video's timeline: ``(F, 3, S, S) float32``, ``(F,) bool`` (True where the tracker found a
    usable face), ``(F,) float64`` each frame's time from ``start_ms``, and the time of the last
    frame read (kept or not; None: no frame). Frames are subsampled
    with the stream's rule (:class:`~edge_emotion.frontend.align.FrameSubsampler`) and detected in
    order, so the tracker sees exactly what a stream fed the same frames sees."""
    from ..sources import VideoFileSource
    from .face import FaceTracker, crop_face

    vis = preset.visual
    crops, mask, times = [], [], []
    last_ms = None
    keep = FrameSubsampler(preset)
    source = VideoFileSource(str(video_path))
    try:
        with FaceTracker(vis, running_mode="video") as tracker:
            for frame in source:
                ts = frame.timestamp_ms
                if ts < start_ms:
                    continue
                if end_ms is not None and ts >= end_ms:
                    break
                last_ms = float(ts) - start_ms
                if not keep.keep(ts):
                    continue
                observation = tracker.detect(frame.image, int(ts))
                usable = observation.usable
                crop = crop_face(frame.image, observation.bbox, vis) if usable else None
                crops.append(crop if crop is not None else np.zeros((3, vis.crop_size, vis.crop_size), np.float32))
                mask.append(crop is not None)
                times.append(float(ts) - start_ms)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    size = vis.crop_size
    faces = np.stack(crops).astype(np.float32) if crops else np.zeros((0, 3, size, size), np.float32)
    return faces, np.asarray(mask, bool), np.asarray(times, np.float64), last_ms


def _read_audio(path: str | Path, preset: PresetConfig, origin_ms: float) -> np.ndarray:
    """The file's audio as ``(S,) float32`` at the preset's rate, starting at ``origin_ms`` of the
    file's timeline (padded with zeros when the track starts later)."""
    from ..sources import read_audio

    pcm, audio_start_ms = read_audio(str(path), preset.audio.sample_rate)
    offset = int(round((audio_start_ms - origin_ms) * preset.audio.sample_rate / 1000.0))
    pcm = np.asarray(pcm, np.float32)
    if offset > 0:
        pcm = np.concatenate([np.zeros(offset, np.float32), pcm])
    elif offset < 0:
        pcm = pcm[-offset:]
    return pcm


def _video_duration_ms(video_path: str | Path) -> float:
    from ..sources import open_media

    return float(open_media(str(video_path)).duration_ms)


def preprocess_clip(
    preset: PresetConfig,
    video_path: str | Path | None = None,
    audio_path: str | Path | None = None,
    audio_in_video: bool = False,
    start_ms: int = 0,
    end_ms: int | None = None,
) -> ClipFeatures:
    """A clip -> :class:`ClipFeatures`.

    ``video_path``: faces come from it (``audio_in_video``: and the audio). ``audio_path``: a
    separate audio file whose first sample is the clip's start. ``start_ms``/``end_ms`` cut a
    segment out of the video's timeline (IEMOCAP dialogs). At least one source is needed.
    """
    if video_path is None and audio_path is None:
        raise ValueError("preprocess_clip needs a video_path or an audio_path")
    pcm = None
    if audio_path is not None:
        pcm = _read_audio(audio_path, preset, 0.0)
    elif audio_in_video:
        pcm = _read_audio(video_path, preset, float(start_ms))
    segment_ms = None if end_ms is None else float(end_ms - start_ms)
    if pcm is not None and segment_ms is not None:
        pcm = pcm[: int(round(segment_ms * preset.audio.sample_rate / 1000.0))]
    size = preset.visual.crop_size
    faces, face_mask = np.zeros((0, 3, size, size), np.float32), np.zeros(0, bool)
    frame_ms, last_frame_ms = np.zeros(0, np.float64), None
    if video_path is not None:
        video_end = None if end_ms is None else float(end_ms)
        faces, face_mask, frame_ms, last_frame_ms = video_faces(video_path, preset, float(start_ms), video_end)
    # The clip ends where its data ends, as a stream fed the same media decides it.
    audio_end = None if pcm is None else 1000.0 * pcm.shape[0] / preset.audio.sample_rate
    duration_ms = data_end_ms(audio_end, last_frame_ms, preset)
    if duration_ms is None:  # a video without frames
        duration_ms = segment_ms if segment_ms is not None else _video_duration_ms(video_path) - start_ms
    if segment_ms is not None:
        duration_ms = min(duration_ms, segment_ms)
    starts = window_starts_ms(duration_ms, preset.window_ms, preset.hop_ms)
    if pcm is not None:
        log_mel, speech = audio_windows(pcm, starts, preset, duration_ms)
    else:
        log_mel, speech = silent_windows(len(starts), preset)
    return ClipFeatures(
        log_mel=log_mel,
        speech=speech,
        window_start_ms=starts,
        faces=faces,
        face_mask=face_mask,
        duration_ms=int(math.ceil(duration_ms)),
        has_audio=pcm is not None,
        has_video=video_path is not None,
        frame_ms=frame_ms,
    )


def preprocess_face_image(image: np.ndarray, preset: PresetConfig) -> ClipFeatures:
    """A face image (``(H, W)`` or ``(H, W, 3)`` uint8, already a face crop as in FER2013) -> a
    still clip of one window: the face in every frame, no audio."""
    from .face import face_image_to_input

    face = face_image_to_input(image, preset.visual)[None].astype(np.float32)
    log_mel, speech = silent_windows(1, preset)
    return ClipFeatures(
        log_mel=log_mel,
        speech=speech,
        window_start_ms=np.zeros(1, np.int64),
        faces=face,
        face_mask=np.ones(1, bool),
        duration_ms=preset.window_ms,
        has_audio=False,
        has_video=True,
        still=True,
    )


__all__ = [
    "ClipFeatures",
    "audio_windows",
    "silent_windows",
    "video_faces",
    "preprocess_clip",
    "preprocess_face_image",
]
