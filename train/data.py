"""Torch datasets over the preprocessing cache. Every item is a dict of tensors:

- clip windows (:class:`WindowDataset`): ``log_mel (1, n_mels, n_frames)``, ``audio_mask (T,)``,
  ``face_mask (T_v,)``, ``faces (T_v, 3, S, S)`` (only with ``with_faces``), ``label``, ``clip``;
- face images (:class:`FaceImageDataset`): ``face (3, S, S)``, ``label``, ``clip``;
- encoder outputs for the fusion stage (:class:`FusionMixDataset`): ``audio_seq (T_a, D_a)``,
  ``embeddings (T_v, D_v)``, ``face_mask (T_v,)``, ``audio_mask (T,)``, ``label``, ``clip``.

``label`` is the index into the model's labels; ``clip`` numbers the source clip so that window
predictions can be averaged per clip.
"""

from __future__ import annotations

from collections import OrderedDict
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


class WindowDataset(Dataset):
    def __init__(self, refs: list[WindowRef], preset: PresetConfig, with_faces: bool, memory_clips: int = 256):
        self.refs = refs
        self.preset = preset
        self.with_faces = with_faces
        self._clips: OrderedDict[Path, object] = OrderedDict()
        self._memory = memory_clips

    def __len__(self) -> int:
        return len(self.refs)

    def _clip(self, path: Path):
        clip = self._clips.get(path)
        if clip is None:
            clip = self._clips[path] = load_clip(path)
            if len(self._clips) > self._memory:
                self._clips.popitem(last=False)
        return clip

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ref = self.refs[i]
        clip = self._clip(ref.path)
        item = {
            "log_mel": torch.from_numpy(np.ascontiguousarray(clip.log_mel[ref.window]))[None],
            "audio_mask": torch.from_numpy(clip.speech[ref.window].astype(np.float32)),
            "label": torch.tensor(ref.label, dtype=torch.long),
            "clip": torch.tensor(ref.clip, dtype=torch.long),
        }
        faces, mask = clip.window_faces(ref.window, self.preset)
        item["face_mask"] = torch.from_numpy(mask.astype(np.float32))
        if self.with_faces:
            item["faces"] = torch.from_numpy(faces)
        return item


class FaceImageDataset(Dataset):
    """Face images from :func:`~.cache.build_image_cache` (``(N, C, S, S)`` float16, C = 1 or 3)."""

    def __init__(self, images: np.ndarray, indices: list[int], labels: list[int], first_clip: int = 0):
        self.images = images
        self.indices = indices
        self.labels = labels
        self.first_clip = first_clip

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        face = torch.from_numpy(np.asarray(self.images[self.indices[i]], dtype=np.float32))
        if face.shape[0] == 1:
            face = face.expand(3, -1, -1).contiguous()
        return {
            "face": face,
            "label": torch.tensor(self.labels[i], dtype=torch.long),
            "clip": torch.tensor(self.first_clip + i, dtype=torch.long),
        }


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
    ):
        self.w = windows
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
        self.pairable = (
            [i for i in range(len(windows)) if audio_only[i] and int(windows.label[i]) in self.by_label] if pair else []
        )
        n_faces = len(self.faces)
        self.n_face_items = min(n_faces, int(round(faces_per_window * max(len(windows), 1)))) if n_faces else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.w) + len(self.pairable) + self.n_face_items

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, i))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        w = self.w
        n_w, n_p = len(w), len(self.pairable)
        if i < n_w:
            audio_seq, emb, fmask, amask = w.audio_seq[i], w.embeddings[i], w.face_mask[i], w.audio_mask[i]
            label, clip = int(w.label[i]), int(w.clip[i])
        elif i < n_w + n_p:
            j = self.pairable[i - n_w]
            candidates = self.by_label[int(w.label[j])]
            face = self.faces[candidates[self._rng(i).integers(len(candidates))]]
            audio_seq, amask = w.audio_seq[j], w.audio_mask[j]
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
    "WindowDataset",
    "FaceImageDataset",
    "EncodedWindows",
    "FusionMixDataset",
]
