"""A training checkpoint run with torch behind the evaluation layer's predictor protocol
(:class:`edge_emotion.eval.evaluate.Predictor`), so ``edge-emotion eval`` can score a checkpoint
with the same loop as a bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_emotion.config import PresetConfig


class TorchPredictor:
    """A training checkpoint run with torch, behind the :class:`Predictor` protocol."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu"):
        import torch

        from .checkpoint import load_model

        self._torch = torch
        self.device = torch.device(device)
        self.model = load_model(checkpoint, map_location=self.device).to(self.device)

    @property
    def preset(self) -> PresetConfig:
        return self.model.preset

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.preset.labels

    def _run(self, fn, *arrays: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            out = fn(*(torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device) for a in arrays))
        return out.float().cpu().numpy()

    def encode_faces(self, faces: np.ndarray) -> np.ndarray:
        return self._run(self.model.visual, faces)

    def encode_audio(self, log_mel: np.ndarray) -> np.ndarray:
        return self._run(self.model.audio, log_mel)

    def fuse(self, audio, visual, audio_mask, visual_mask) -> np.ndarray:
        return self._run(self.model.fusion, audio, visual, audio_mask, visual_mask)


__all__ = ["TorchPredictor"]
