"""The training stages as first-class options: what is trained, on what, and how a batch becomes
logits. The default model is trained in stages; the paper's recipe is ``full``.

=======  ======================================  =============================================
stage    trains                                  data
=======  ======================================  =============================================
visual   visual encoder + a linear head          face images (FER2013), mapped onto the labels
audio    audio encoder + fusion head             clip windows, video masked
fusion   fusion head (encoders frozen, their     clip windows (audio-only and AV), face-only
         outputs computed once)                  images, label-paired audio + face, modality
                                                 dropout
full     everything, end to end                  audio-video clip windows (the paper; GPU)
=======  ======================================  =============================================

Each stage is a small ``nn.Module`` (:class:`StageNet`) whose parameters are exactly the trained
ones (so DDP and the optimiser see only those) and whose ``forward(batch) -> logits``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .data import EncodedWindows, FaceImageDataset, WindowDataset, WindowRef
from .model import EmotionModel

log = logging.getLogger(__name__)


class _Borrowed:
    """Holds the whole model without registering it as a submodule of a stage net."""

    def __init__(self, model: EmotionModel):
        self.model = model


class VisualNet(nn.Module):
    """Visual encoder + dropout + linear head over the model's labels; batch ``face (N, 3, S, S)``."""

    def __init__(self, model: EmotionModel):
        super().__init__()
        self.visual = model.visual
        self.dropout = nn.Dropout(model.preset.model.dropout)
        self.head = nn.Linear(model.preset.model.visual_dim, len(model.preset.labels))

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.head(self.dropout(self.visual(batch["face"])))


class AudioNet(nn.Module):
    """Audio encoder + fusion head; the visual stream is all masked."""

    def __init__(self, model: EmotionModel):
        super().__init__()
        self.audio = model.audio
        self.fusion = model.fusion
        self._m = _Borrowed(model)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        m = self._m.model
        log_mel = batch["log_mel"]
        n, t_v = log_mel.shape[0], m.preset.video_frames
        frames = log_mel.new_zeros(n, t_v, m.preset.model.visual_dim)
        return m.forward_features(self.audio(log_mel), frames, batch["face_mask"] * 0, batch["audio_mask"])


class FusionNet(nn.Module):
    """Fusion head only, on cached encoder outputs."""

    def __init__(self, model: EmotionModel):
        super().__init__()
        self.fusion = model.fusion
        self._m = _Borrowed(model)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self._m.model.forward_features(
            batch["audio_seq"], batch["embeddings"], batch["face_mask"], batch["audio_mask"]
        )


class FullNet(nn.Module):
    """The whole model, end to end."""

    def __init__(self, model: EmotionModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.model(batch["log_mel"], batch["faces"], batch["face_mask"], batch["audio_mask"])


NETS = {"visual": VisualNet, "audio": AudioNet, "fusion": FusionNet, "full": FullNet}


@dataclass
class StageData:
    """The datasets of one stage: ``train``/``val``/``test`` (``test`` may be empty)."""

    train: Dataset
    val: Dataset
    test: Dataset
    notes: dict[str, int] = field(default_factory=dict)


@torch.no_grad()
def encode_windows(
    model: EmotionModel,
    dataset: WindowDataset,
    device: torch.device,
    batch_size: int = 64,
    augment_audio: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
) -> EncodedWindows:
    """Run the frozen encoders once over every window (faces only where present); with
    ``augment_audio`` (e.g. :class:`.augment.AudioAugment`) each window's log-mel and speech mask
    are transformed first."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("audio_seq", "embeddings", "face_mask", "audio_mask", "label", "clip")
    }
    d_v = model.preset.model.visual_dim
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        log_mel, audio_mask = batch["log_mel"].to(device), batch["audio_mask"]
        if augment_audio is not None:
            log_mel, audio_mask = augment_audio(log_mel, audio_mask.to(device))
            audio_mask = audio_mask.cpu()
        audio_seq = model.audio(log_mel)
        face_mask = batch["face_mask"]
        n, t_v = face_mask.shape
        emb = torch.zeros(n, t_v, d_v)
        if "faces" in batch and face_mask.any():
            flat = batch["faces"].flatten(0, 1)
            keep = face_mask.flatten() > 0
            out = torch.zeros(n * t_v, d_v)
            out[keep] = model.visual(flat[keep].to(device)).cpu()
            emb = out.reshape(n, t_v, d_v)
        parts["audio_seq"].append(audio_seq.cpu().numpy())
        parts["embeddings"].append(emb.numpy())
        parts["face_mask"].append(face_mask.numpy())
        parts["audio_mask"].append(audio_mask.numpy())
        parts["label"].append(batch["label"].numpy())
        parts["clip"].append(batch["clip"].numpy())
    empty = {
        "audio_seq": (0, model.preset.audio_steps, model.preset.model.audio_dim),
        "embeddings": (0, model.preset.video_frames, d_v),
        "face_mask": (0, model.preset.video_frames),
        "audio_mask": (0, model.preset.model.time_steps),
        "label": (0,),
        "clip": (0,),
    }
    return EncodedWindows(
        **{
            k: np.concatenate(v) if v else np.zeros(empty[k], np.int64 if k in ("label", "clip") else np.float32)
            for k, v in parts.items()
        }
    )


@torch.no_grad()
def encode_faces(
    model: EmotionModel,
    dataset: FaceImageDataset,
    device: torch.device,
    batch_size: int = 256,
    augment: Callable[[Tensor], Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen visual encoder over face images -> ``(N, D_v)`` embeddings and ``(N,)`` labels;
    with ``augment`` (e.g. :class:`.augment.FaceAugment`) each face is transformed first."""
    model.eval()
    embs, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        face = batch["face"].to(device)
        embs.append(model.visual(augment(face) if augment is not None else face).cpu().numpy())
        labels.append(batch["label"].numpy())
    if not embs:
        return np.zeros((0, model.preset.model.visual_dim), np.float32), np.zeros(0, np.int64)
    return np.concatenate(embs), np.concatenate(labels)


def drop_empty(refs: list[WindowRef], need_face: bool = False) -> tuple[list[WindowRef], int]:
    """Training windows with something to learn from: speech (or, with ``need_face``, a face too
    may stand in). Windows with neither carry no evidence for their label."""
    kept = [r for r in refs if r.has_speech or (need_face and r.has_face)]
    return kept, len(refs) - len(kept)


__all__ = [
    "NETS",
    "VisualNet",
    "AudioNet",
    "FusionNet",
    "FullNet",
    "StageData",
    "encode_windows",
    "encode_faces",
    "drop_empty",
]
