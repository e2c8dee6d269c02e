"""The whole model: visual encoder, audio encoder and fusion head, composed for training.

The three modules are the three exported graphs and the SDK's streaming boundaries (docs/DESIGN.md,
principle 1). For training, :class:`EmotionModel` composes them with the SDK's own alignment:
the static maps from audio-encoder steps and from video frames to the common T steps come from
:mod:`edge_emotion.frontend.align`, computed once per preset.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from edge_emotion.config import PresetConfig, get_preset
from edge_emotion.frontend.align import audio_step_index, video_tick_index

from .audio_cnn import AudioCNN
from .fusion import FusionHead
from .resnet import ResNet18


class EmotionModel(nn.Module):
    """``visual`` (ResNet-18), ``audio`` (2-D CNN) and ``fusion`` (cross-modal attention + Tucker +
    GRU) for one :class:`~edge_emotion.config.PresetConfig`."""

    def __init__(self, preset: PresetConfig):
        super().__init__()
        self.preset = preset
        cfg = preset.model
        self.visual = ResNet18(width=cfg.visual_width, stem_pool=cfg.visual_stem_pool)
        self.audio = AudioCNN(cfg.audio_channels, cfg.audio_time_pool)
        self.fusion = FusionHead(cfg, cfg.audio_dim, cfg.visual_dim, len(preset.labels))
        audio_idx = audio_step_index(preset)
        frame_idx, frame_ok = video_tick_index(preset)
        self.register_buffer("audio_index", torch.from_numpy(audio_idx), persistent=False)
        self.register_buffer("video_index", torch.from_numpy(frame_idx), persistent=False)
        self.register_buffer("video_index_ok", torch.from_numpy(frame_ok.astype(np.float32)), persistent=False)

    def align(self, audio_seq: Tensor, frame_embeddings: Tensor, face_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Audio steps ``(N, T_a, D_a)`` and frame embeddings ``(N, T_v, D_v)`` with ``face_mask``
        ``(N, T_v)`` -> ``(N, T, D_a)``, ``(N, T, D_v)`` and the visual mask ``(N, T)``: the indexing of
        :func:`edge_emotion.frontend.align.align_encoded`, in torch (a test holds them equal)."""
        audio = audio_seq[:, self.audio_index]
        visual = frame_embeddings[:, self.video_index]
        visual_mask = face_mask[:, self.video_index] * self.video_index_ok
        return audio, visual * visual_mask.unsqueeze(-1), visual_mask

    def forward_features(
        self, audio_seq: Tensor, frame_embeddings: Tensor, face_mask: Tensor, audio_mask: Tensor
    ) -> Tensor:
        """The fusion path from encoder outputs (used when the encoders are frozen and cached)."""
        audio, visual, visual_mask = self.align(audio_seq, frame_embeddings, face_mask)
        return self.fusion(audio * audio_mask.unsqueeze(-1), visual, audio_mask, visual_mask)

    def forward(self, log_mel: Tensor, faces: Tensor, face_mask: Tensor, audio_mask: Tensor) -> Tensor:
        """``log_mel`` ``(N, 1, n_mels, n_frames)``, ``faces`` ``(N, T_v, 3, S, S)``, ``face_mask``
        ``(N, T_v)``, ``audio_mask`` ``(N, T)`` (speech present per common step) -> logits ``(N, C)``."""
        n, t_v = faces.shape[:2]
        embeddings = self.visual(faces.flatten(0, 1)).reshape(n, t_v, -1)
        return self.forward_features(self.audio(log_mel), embeddings, face_mask, audio_mask)


def build_model(preset: str | PresetConfig = "edge", **changes) -> EmotionModel:
    """``build_model("paper")`` / ``build_model("edge", labels=(...))``: a fresh model for a preset."""
    config = get_preset(preset) if isinstance(preset, str) else preset
    if changes:
        config = config.replace(**changes)
    return EmotionModel(config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
