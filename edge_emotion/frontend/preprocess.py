"""A whole clip -> the model's windows, with the SDK's own functions (DESIGN.md, principle 2).

Training, its preprocessing cache and ``edge-emotion eval`` all call this module, so a clip is
cut, framed, detected, cropped and normalised exactly as the live SDK does it:

- audio: :func:`edge_emotion.sources.read_audio` -> windows of ``preset.window_ms`` every
  ``preset.hop_ms`` (the recognizer's hop) -> :func:`edge_emotion.frontend.features.window_log_mel` and
  :func:`edge_emotion.frontend.features.window_speech_steps` per window;
- video: :class:`edge_emotion.sources.VideoFileSource` frames, one per ``1000 / visual.fps`` ms
  (the source frame nearest to each tick) -> :class:`edge_emotion.frontend.face.FaceTracker` ->
  :func:`edge_emotion.frontend.face.crop_face`. Frames are stored once per clip, not per window: window
  ``w`` uses frames ``round(start_ms[w] * fps / 1000) + j`` for ``j < T_v``.

Window placement: a clip of ``D`` ms gives ``max(1, floor((D - window_ms) / hop_ms + 0.5) + 1)``
windows starting at ``0, hop_ms, ...``: every clip has at least one window (a short clip is padded
with silence and masked frames), and a last window is added when more than half a hop of the
clip would otherwise be left out.

No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .align import Aligner
from ..config import PresetConfig


@dataclass(frozen=True)
class ClipFeatures:
    """One clip's model inputs (``W`` windows, ``F`` video frames at ``preset.visual.fps``).

    ``log_mel`` ``(W, n_mels, n_frames) float32`` normalised; ``speech`` ``(W, T) bool`` (the
    audio mask per common step); ``window_start_ms`` ``(W,) int64`` from the clip's start;
    ``faces`` ``(F, 3, S, S) float32`` normalised crops (zeros where no usable face) with
    ``face_mask`` ``(F,) bool``; frame ``k`` is at ``k * 1000 / fps`` ms. A ``still`` clip is one
    face image (``F == 1``) that every window shows in all of its frames. ``has_audio`` /
    ``has_video`` say which modalities the clip has at all.
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

    @property
    def n_windows(self) -> int:
        return int(self.window_start_ms.shape[0])

    def window_faces(self, w: int, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
        """Window ``w``'s frames: ``(T_v, 3, S, S) float32`` and ``(T_v,) bool``."""
        t_v = preset.video_frames
        if self.still:
            return np.repeat(self.faces[:1], t_v, axis=0), np.repeat(self.face_mask[:1], t_v)
        index = frame_indices(int(self.window_start_ms[w]), preset)
        ok = index < self.faces.shape[0]
        faces = np.zeros((t_v, *self.faces.shape[1:]), np.float32)
        faces[ok] = self.faces[index[ok]]
        mask = np.zeros(t_v, bool)
        mask[ok] = self.face_mask[index[ok]]
        return faces, mask


def window_starts_ms(duration_ms: float, preset: PresetConfig) -> np.ndarray:
    """``(W,) int64``: the start of each window of a clip of ``duration_ms`` (see the module doc)."""
    extra = (duration_ms - preset.window_ms) / preset.hop_ms
    count = 1 if extra <= 0 else int(math.floor(extra + 0.5)) + 1
    return np.arange(count, dtype=np.int64) * preset.hop_ms


def frame_indices(start_ms: int, preset: PresetConfig) -> np.ndarray:
    """``(T_v,) int64``: the clip frames (at ``visual.fps``) of the window starting at ``start_ms``."""
    first = int(round(start_ms * preset.visual.fps / 1000.0))
    return first + np.arange(preset.video_frames, dtype=np.int64)


def audio_windows(pcm: np.ndarray, starts_ms: np.ndarray, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(S,) float32`` mono at ``audio.sample_rate`` -> ``log_mel`` ``(W, n_mels, n_frames)
    float32`` and ``speech`` ``(W, T) bool``, one per window start."""
    from .features import window_log_mel, window_speech_steps

    cfg = preset.audio
    mels, speech = [], []
    for start_ms in starts_ms:
        first = int(round(int(start_ms) * cfg.sample_rate / 1000.0))
        chunk = pcm[first : first + cfg.window_samples]
        mels.append(window_log_mel(chunk, cfg))
        speech.append(window_speech_steps(chunk, preset))
    return np.stack(mels).astype(np.float32), np.stack(speech).astype(bool)


def silent_windows(n_windows: int, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
    """Placeholders for a clip without audio: zeros and an all-False speech mask."""
    cfg = preset.audio
    return (
        np.zeros((n_windows, cfg.n_mels, cfg.n_frames), np.float32),
        np.zeros((n_windows, preset.model.time_steps), bool),
    )


def sample_frames(frames, start_ms: float, n_frames: int, fps: float):
    """From an iterator of ``(image, timestamp_ms)`` (increasing), pick the frame nearest to each
    tick ``start_ms + k * 1000 / fps`` for ``k < n_frames``, if one lies within one tick period.

    Yields ``(k, image, timestamp_ms)`` in order of ``k``; ticks without a frame are not yielded.
    Frames are consumed lazily, so decoding stops at the last tick.
    """
    period = 1000.0 / fps
    k, previous = 0, None
    for image, ts in frames:
        if ts < start_ms - period:
            continue
        while k < n_frames:
            tick = start_ms + k * period
            if tick > ts:
                break
            best = previous if previous is not None and abs(tick - previous[1]) <= abs(ts - tick) else (image, ts)
            if abs(best[1] - tick) <= period:
                yield k, best[0], best[1]
            k += 1
        if k >= n_frames:
            return
        previous = (image, ts)
    while previous is not None and k < n_frames:
        tick = start_ms + k * period
        if abs(previous[1] - tick) > period / 2:
            return
        yield k, previous[0], previous[1]
        k += 1


def video_faces(
    video_path: str | Path, preset: PresetConfig, start_ms: float, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Face crops of ``n_frames`` frames from ``start_ms`` at ``visual.fps``: ``(F, 3, S, S)
    float32`` and ``(F,) bool`` (True where the tracker found a usable face)."""
    from .face import FaceTracker, crop_face
    from ..sources import VideoFileSource

    vis = preset.visual
    faces = np.zeros((n_frames, 3, vis.crop_size, vis.crop_size), np.float32)
    mask = np.zeros(n_frames, bool)
    source = VideoFileSource(str(video_path))
    frames = ((f.image, f.timestamp_ms) for f in source)
    last_ts, last = None, None
    with FaceTracker(vis, running_mode="video") as tracker:
        for k, image, ts in sample_frames(frames, start_ms, n_frames, vis.fps):
            if ts != last_ts:  # a frame picked for two ticks is detected once
                observation = tracker.detect(image, int(ts))
                last = crop_face(image, observation.bbox, vis) if observation.usable else None
                last_ts = ts
            if last is not None:
                faces[k], mask[k] = last, True
    close = getattr(source, "close", None)
    if close is not None:
        close()
    return faces, mask


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
    if pcm is not None and end_ms is not None:
        pcm = pcm[: int(round((end_ms - start_ms) * preset.audio.sample_rate / 1000.0))]
    if pcm is not None:
        duration_ms = 1000.0 * pcm.shape[0] / preset.audio.sample_rate
    elif end_ms is not None:
        duration_ms = float(end_ms - start_ms)
    else:
        duration_ms = _video_duration_ms(video_path) - start_ms
    starts = window_starts_ms(duration_ms, preset)
    log_mel, speech = audio_windows(pcm, starts, preset) if pcm is not None else silent_windows(len(starts), preset)
    if video_path is not None:
        n_frames = max(1, int(math.ceil(duration_ms * preset.visual.fps / 1000.0)))
        faces, face_mask = video_faces(video_path, preset, float(start_ms), n_frames)
    else:
        size = preset.visual.crop_size
        faces, face_mask = np.zeros((0, 3, size, size), np.float32), np.zeros(0, bool)
    return ClipFeatures(
        log_mel=log_mel,
        speech=speech,
        window_start_ms=starts,
        faces=faces,
        face_mask=face_mask,
        duration_ms=int(round(duration_ms)),
        has_audio=pcm is not None,
        has_video=video_path is not None,
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


def _video_index(preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
    """The static map from a window's frames to the common steps (:meth:`Aligner.video_index`)."""
    return Aligner.for_preset(preset).video_index(preset)


def align_encoded(
    preset: PresetConfig,
    audio_seq: np.ndarray,
    frame_embeddings: np.ndarray,
    face_mask: np.ndarray,
    audio_mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encoder outputs of a batch of windows -> the fusion head's inputs, as
    ``EmotionModel.forward_features`` does it in torch.

    ``audio_seq`` ``(N, T_a, D_a)``, ``frame_embeddings`` ``(N, T_v, D_v)``, ``face_mask``
    ``(N, T_v)``, ``audio_mask`` ``(N, T)`` -> ``audio`` ``(N, T, D_a)``, ``visual`` ``(N, T, D_v)``
    (both zero where masked), ``audio_mask`` and ``visual_mask`` ``(N, T) float32``.
    """
    audio_idx, _ = Aligner.for_preset(preset).audio_index(preset)
    frame_idx, frame_ok = _video_index(preset)
    a_mask = np.asarray(audio_mask, np.float32)
    v_mask = np.asarray(face_mask, np.float32)[:, frame_idx] * frame_ok.astype(np.float32)
    audio = np.asarray(audio_seq, np.float32)[:, audio_idx] * a_mask[..., None]
    visual = np.asarray(frame_embeddings, np.float32)[:, frame_idx] * v_mask[..., None]
    return audio, visual, a_mask, v_mask


__all__ = [
    "ClipFeatures",
    "window_starts_ms",
    "frame_indices",
    "audio_windows",
    "silent_windows",
    "sample_frames",
    "video_faces",
    "preprocess_clip",
    "preprocess_face_image",
    "align_encoded",
]
