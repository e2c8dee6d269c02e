"""Torch datasets over the preprocessing cache. Every item is a dict of tensors:

- clip windows (:class:`WindowDataset`): ``log_mel (1, n_mels, n_frames)``, ``audio_mask (T,)``,
  ``face_mask (T_v,)``, ``faces (T_v, 3, S, S)`` (only with ``with_faces``), ``label``, ``clip``;
- face images (:class:`FaceImageDataset`): ``face (3, S, S)``, ``label``, ``clip``;
- encoder outputs for the fusion stage (:class:`FusionMixDataset`): ``audio_seq (T_a, D_a)``,
  ``embeddings (T_v, D_v)``, ``face_mask (T_v,)``, ``audio_mask (T,)``, ``label``, ``clip``.

``label`` is the index into the model's labels; ``clip`` numbers the source clip so that window
predictions can be averaged per clip. Face images may carry a ``target (C,)`` distribution (FER+
soft targets).

Random window offsets (:class:`WindowDataset` with ``offset_ms``): a training window is moved by
a random offset in ``[-offset_ms, offset_ms]`` (drawn per item and epoch) and re-assembled from
the clip's cached windows (:func:`shifted_window`), so the model meets a clip at every placement,
as the live recognizer does, rather than only at the cached ones. With ``pairs`` an item also
carries a second placement of the same window, ``log_mel_b`` and ``audio_mask_b`` (its own offset),
for a loss that asks both placements for the same prediction (``TrainConfig.shift_consistency``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from edge_emotion.config import PresetConfig

from .cache import load_clip


@dataclass(frozen=True)
class WindowRef:
    """One window of a cached clip."""

    path: Path
    window: int
    label: int
    clip: int
    has_speech: bool
    has_face: bool


def window_refs(paths: list[Path], labels: list[int], preset: PresetConfig, first_clip: int = 0) -> list[WindowRef]:
    """Every window of the cached clips ``paths`` (``labels`` per clip)."""
    refs = []
    for i, (path, label) in enumerate(zip(paths, labels, strict=True)):
        clip = load_clip(path)
        for w in range(clip.n_windows):
            _, mask = clip.window_faces(w, preset)
            refs.append(WindowRef(path, w, label, first_clip + i, bool(clip.speech[w].any()), bool(mask.any())))
    return refs


def shifted_window(clip, w: int, offset_ms: float, preset: PresetConfig) -> tuple[np.ndarray, np.ndarray]:
    """Window ``w`` of a cached clip moved by ``offset_ms`` (negative: earlier), re-assembled from
    the clip's windows: ``(n_mels, n_frames) float32`` log-mel and ``(T,) bool`` speech steps.

    Each wanted log-mel frame (and speech step) is taken from the cached window in which its time
    lies nearest the middle (so no frame comes from a window's padded edge), at the nearest frame;
    times before the clip or past every window are silence without speech. The frames of
    neighbouring windows are not on one grid (the hop between windows need not be a multiple of
    the frame hop), so a frame may come from up to half a frame hop away.
    """
    cfg = preset.audio
    starts = clip.window_start_ms.astype(np.float64)
    n_frames, steps = clip.log_mel.shape[2], clip.speech.shape[1]
    frame_ms = 1000.0 * cfg.hop_length / cfg.sample_rate
    step_ms = preset.window_ms / steps
    hop = float(preset.hop_ms)
    middle = preset.window_ms / 2.0
    silence = np.float32((np.log(cfg.log_floor) - cfg.mean) / cfg.std)

    def source(t: np.ndarray, unit_ms: float, count: int, centre: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip(np.round((t - starts[0] - middle) / hop), 0, len(starts) - 1).astype(np.int64)
        idx = np.floor((t - starts[src]) / unit_ms + centre).astype(np.int64)
        ok = (t >= 0) & (idx >= 0) & (idx < count)
        return src, np.clip(idx, 0, count - 1), ok

    t = starts[w] + offset_ms + np.arange(n_frames) * frame_ms
    src, idx, ok = source(t, frame_ms, n_frames, 0.5)
    log_mel = np.where(ok[None, :], clip.log_mel[src, :, idx].T, silence).astype(np.float32)
    t = starts[w] + offset_ms + (np.arange(steps) + 0.5) * step_ms
    src, idx, ok = source(t, step_ms, steps, 0.0)
    speech = clip.speech[src, idx] & ok
    return log_mel, speech


class WindowDataset(Dataset):
    def __init__(
        self,
        refs: list[WindowRef],
        preset: PresetConfig,
        with_faces: bool,
        memory_clips: int = 256,
        offset_ms: int = 0,
        seed: int = 0,
        pairs: bool = False,
    ):
        self.refs = refs
        self.preset = preset
        self.with_faces = with_faces
        self._clips: OrderedDict[Path, object] = OrderedDict()
        self._memory = memory_clips
        self.offset_ms = 0 if with_faces else int(offset_ms)  # faces would have to move with the audio
        self.seed = seed
        self.pairs = bool(pairs) and self.offset_ms > 0
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.refs)

    def _clip(self, path: Path):
        clip = self._clips.get(path)
        if clip is None:
            clip = self._clips[path] = load_clip(path)
            if len(self._clips) > self._memory:
                self._clips.popitem(last=False)
        return clip

    def _audio(self, clip, ref: WindowRef, i: int, view: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Window ``ref`` of ``clip``, moved by this item's random offset (``view`` 1: the second
        placement's, drawn independently)."""
        log_mel, speech = clip.log_mel[ref.window], clip.speech[ref.window]
        if self.offset_ms > 0:
            rng = np.random.default_rng((self.seed, self.epoch, i) if view == 0 else (self.seed, self.epoch, i, view))
            offset = int(rng.integers(-self.offset_ms, self.offset_ms + 1))
            if offset == 0:
                return log_mel, speech
            moved, moved_speech = shifted_window(clip, ref.window, offset, self.preset)
            if moved_speech.any() or not speech.any():  # a window moved off all speech teaches nothing
                log_mel, speech = moved, moved_speech
        return log_mel, speech

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ref = self.refs[i]
        clip = self._clip(ref.path)
        log_mel, speech = self._audio(clip, ref, i)
        item = {
            "log_mel": torch.from_numpy(np.ascontiguousarray(log_mel))[None],
            "audio_mask": torch.from_numpy(speech.astype(np.float32)),
            "label": torch.tensor(ref.label, dtype=torch.long),
            "clip": torch.tensor(ref.clip, dtype=torch.long),
        }
        if self.pairs:
            log_mel_b, speech_b = self._audio(clip, ref, i, view=1)
            item["log_mel_b"] = torch.from_numpy(np.ascontiguousarray(log_mel_b))[None]
            item["audio_mask_b"] = torch.from_numpy(speech_b.astype(np.float32))
        faces, mask = clip.window_faces(ref.window, self.preset)
        item["face_mask"] = torch.from_numpy(mask.astype(np.float32))
        if self.with_faces:
            item["faces"] = torch.from_numpy(faces)
        return item


class FaceImageDataset(Dataset):
    """Face images from :func:`~.cache.build_image_cache` (``(N, C, S, S)`` float16, C = 1 or 3)."""

    def __init__(
        self,
        images: np.ndarray,
        indices: list[int],
        labels: list[int],
        first_clip: int = 0,
        targets: np.ndarray | None = None,
    ):
        self.images = images
        self.indices = indices
        self.labels = labels
        self.first_clip = first_clip
        self.targets = targets  # (len(indices), C) float32 distributions, or None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        face = torch.from_numpy(np.asarray(self.images[self.indices[i]], dtype=np.float32))
        if face.shape[0] == 1:
            face = face.expand(3, -1, -1).contiguous()
        item = {
            "face": face,
            "label": torch.tensor(self.labels[i], dtype=torch.long),
            "clip": torch.tensor(self.first_clip + i, dtype=torch.long),
        }
        if self.targets is not None:
            item["target"] = torch.from_numpy(np.asarray(self.targets[i], np.float32))
        return item


@dataclass(frozen=True)
class EncodedWindows:
    """Frozen encoders' outputs for clip windows: ``audio_seq (N, T_a, D_a)``, ``embeddings
    (N, T_v, D_v)``, ``face_mask (N, T_v)``, ``audio_mask (N, T)``, ``label (N,)``, ``clip (N,)``."""

    audio_seq: np.ndarray
    embeddings: np.ndarray
    face_mask: np.ndarray
    audio_mask: np.ndarray
    label: np.ndarray
    clip: np.ndarray

    def __len__(self) -> int:
        return int(self.label.shape[0])


class FusionMixDataset(Dataset):
    """The fusion stage's mix: every encoded clip window as it is (audio-only or real
    AV); for each audio-only window also a *label-paired* sample (that audio plus a face image of
    the same label from another corpus, repeated over the window's frames); and face-only samples
    (a face image repeated over the frames, audio masked), ``faces_per_window`` times as many as
    windows. Pairings and face draws change with :meth:`set_epoch`.

    ``audio_views``: more ``(audio_seq, audio_mask)`` encodings of the same windows (the fusion
    stage's ``fusion_audio_views``); each sample of an audio-only window (and its label-paired
    sample, drawn apart) takes the window as it is or one of its views. ``face_images``: how many
    distinct images ``face_embeddings`` hold when they are several views of each (caps the face-only
    samples per epoch at one per image).
    """

    def __init__(
        self,
        windows: EncodedWindows,
        face_embeddings: np.ndarray,
        face_labels: np.ndarray,
        preset: PresetConfig,
        faces_per_window: float = 1.0,
        pair: bool = True,
        seed: int = 0,
        first_face_clip: int = 1 << 30,
        audio_views: Sequence[tuple[np.ndarray, np.ndarray]] = (),
        face_images: int | None = None,
    ):
        self.w = windows
        self.audio_views = list(audio_views)  # more (audio_seq, audio_mask) of the same windows
        self.faces = np.asarray(face_embeddings, np.float32)
        self.face_labels = np.asarray(face_labels, np.int64)
        self.t_v = preset.video_frames
        self.t = preset.model.time_steps
        self.silent_audio = np.zeros((preset.audio_steps, preset.model.audio_dim), np.float32)
        self.seed = seed
        self.epoch = 0
        self.first_face_clip = first_face_clip
        self.by_label = {int(c): np.flatnonzero(self.face_labels == c) for c in np.unique(self.face_labels)}
        audio_only = windows.face_mask.sum(1) == 0
        self.audio_only = audio_only
        self.pairable = (
            [i for i in range(len(windows)) if audio_only[i] and int(windows.label[i]) in self.by_label] if pair else []
        )
        n_faces = len(self.faces)
        # at most one face-only sample per image and epoch, however many views of each there are
        cap = n_faces if face_images is None else min(n_faces, face_images)
        self.n_face_items = min(cap, int(round(faces_per_window * max(len(windows), 1)))) if n_faces else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.w) + len(self.pairable) + self.n_face_items

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, i))

    def _audio(self, j: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``j``'s audio for item ``i`` this epoch: one of its views when it is audio-only."""
        if self.audio_views and self.audio_only[j]:
            v = int(np.random.default_rng((self.seed, self.epoch, i, 1)).integers(len(self.audio_views) + 1))
            if v > 0:
                return self.audio_views[v - 1][0][j], self.audio_views[v - 1][1][j]
        return self.w.audio_seq[j], self.w.audio_mask[j]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        w = self.w
        n_w, n_p = len(w), len(self.pairable)
        if i < n_w:
            (audio_seq, amask), emb, fmask = self._audio(i, i), w.embeddings[i], w.face_mask[i]
            label, clip = int(w.label[i]), int(w.clip[i])
        elif i < n_w + n_p:
            j = self.pairable[i - n_w]
            candidates = self.by_label[int(w.label[j])]
            face = self.faces[candidates[self._rng(i).integers(len(candidates))]]
            audio_seq, amask = self._audio(j, i)
            emb, fmask = np.repeat(face[None], self.t_v, 0), np.ones(self.t_v, np.float32)
            label, clip = int(w.label[j]), int(w.clip[j])
        else:
            k = i - n_w - n_p
            if self.n_face_items < len(self.faces):
                k = int(self._rng(i).integers(len(self.faces)))
            audio_seq = self.silent_audio
            amask = np.zeros(self.t, np.float32)
            emb, fmask = np.repeat(self.faces[k][None], self.t_v, 0), np.ones(self.t_v, np.float32)
            label, clip = int(self.face_labels[k]), self.first_face_clip + k
        return {
            "audio_seq": torch.from_numpy(np.asarray(audio_seq, np.float32)),
            "embeddings": torch.from_numpy(np.asarray(emb, np.float32)),
            "face_mask": torch.from_numpy(np.asarray(fmask, np.float32)),
            "audio_mask": torch.from_numpy(np.asarray(amask, np.float32)),
            "label": torch.tensor(label, dtype=torch.long),
            "clip": torch.tensor(clip, dtype=torch.long),
        }


__all__ = [
    "WindowRef",
    "window_refs",
    "shifted_window",
    "WindowDataset",
    "FaceImageDataset",
    "EncodedWindows",
    "FusionMixDataset",
]
