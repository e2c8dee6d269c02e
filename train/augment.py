"""Augmentation of appendix A.4, on batches in torch (on the training device), plus modality dropout.

Audio is augmented **on the cached log-mel windows**, not on the waveform. The cache stores each
window's normalised log-mel once (decoding and the STFT are not repeated every epoch), and each of
the three A.4 transforms has an exact or close log-mel counterpart, so no torchaudio/librosa and no
second STFT implementation is needed:

- pitch shift by ``s`` semitones scales every frequency by ``a = 2^(s/12)``: the new mel band at
  centre ``f`` takes the value of the old spectrum at ``f / a`` (linear interpolation between
  bands on the preset's own mel scale). Formants move with the pitch, as with resampling-based
  pitch shifting;
- time stretch by rate ``r``: frame ``t`` takes the (interpolated) frame ``t * r``; frames past the
  end are silence. The speech mask of the common steps is stretched the same way;
- background noise at an SNR in dB: the log-mel is mapped back to mel power
  (``exp(x * std + mean) - log_floor``), noise power with a white-to-pink spectral slope and
  per-frame fluctuation is added at the drawn SNR relative to the window's mean speech power, and
  the sum is logged and normalised again. Adding powers is exact in expectation for independent
  noise (the cross term averages out).

Faces (``(..., 3, S, S)`` normalised crops): horizontal flip, small rotation and a random crop
(zoom in to a random sub-square and resize back), combined into one affine resampling per sample;
all frames of one sample share one transform so that a window stays temporally consistent.

Modality dropout: a sample that has both modalities loses one of them (audio or video, 50/50)
with probability ``p``; the fusion head learns to work from either alone (docs/DESIGN.md, principle 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edge_emotion.config import AudioConfig


@dataclass(frozen=True)
class AudioAugmentConfig:
    """Probabilities and ranges of the log-mel augmentations."""

    pitch_prob: float = 0.5
    max_semitones: float = 2.0
    stretch_prob: float = 0.5
    stretch_range: tuple[float, float] = (0.85, 1.15)
    noise_prob: float = 0.5
    snr_db_range: tuple[float, float] = (5.0, 30.0)


@dataclass(frozen=True)
class FaceAugmentConfig:
    flip_prob: float = 0.5
    max_rotation_deg: float = 10.0
    min_crop_scale: float = 0.85  # side of the random crop as a fraction of the image side


def _mel_band_hz(config: AudioConfig) -> np.ndarray:
    """``(n_mels,) float64``: the centre frequency of each mel band (the preset's mel scale)."""
    from edge_emotion.frontend.features import _hz_to_mel, _mel_to_hz

    htk = config.mel_scale == "htk"
    mels = np.linspace(_hz_to_mel(config.f_min, htk), _hz_to_mel(config.f_max, htk), config.n_mels + 2)
    return _mel_to_hz(mels, htk)[1:-1]


class AudioAugment:
    """``__call__(log_mel (N, 1, M, F), speech (N, T)) -> (log_mel, speech)`` with random pitch
    shift, time stretch and background noise per sample."""

    def __init__(self, audio: AudioConfig, config: AudioAugmentConfig | None = None):
        self.audio = audio
        self.config = config or AudioAugmentConfig()
        hz = _mel_band_hz(audio)
        self.band_hz = torch.tensor(hz, dtype=torch.float32)
        self.silence = (math.log(audio.log_floor) - audio.mean) / audio.std

    def _band_position(self, hz: Tensor) -> Tensor:
        """Fractional band index of frequencies ``hz`` (interpolating between band centres)."""
        centres = self.band_hz.to(hz.device)
        idx = torch.searchsorted(centres, hz.contiguous()).clamp(1, centres.numel() - 1)
        lo, hi = centres[idx - 1], centres[idx]
        return (idx - 1).float() + (hz - lo) / (hi - lo)

    def pitch_shift(self, log_mel: Tensor, semitones: Tensor) -> Tensor:
        """``log_mel`` ``(N, 1, M, F)``, ``semitones`` ``(N,)`` -> shifted, same shape."""
        n, _, m, f = log_mel.shape
        factor = torch.pow(2.0, semitones / 12.0)  # (N,)
        source_hz = self.band_hz.to(log_mel.device)[None, :] / factor[:, None]  # (N, M)
        pos = self._band_position(source_hz)  # (N, M) fractional source band
        y = (2 * pos + 1) / m - 1  # grid_sample coordinates, align_corners=False
        x = (2 * torch.arange(f, device=log_mel.device, dtype=torch.float32) + 1) / f - 1
        grid = torch.stack(torch.broadcast_tensors(x[None, None, :], y[:, :, None]), dim=-1)  # (N, M, F, 2)
        shifted = F.grid_sample(
            log_mel - self.silence, grid.to(log_mel.dtype), align_corners=False, padding_mode="zeros"
        )
        return shifted + self.silence

    def time_stretch(self, log_mel: Tensor, speech: Tensor, rate: Tensor) -> tuple[Tensor, Tensor]:
        """Frame ``t`` <- frame ``t * rate``; ``rate`` ``(N,)`` (> 1 is faster speech)."""
        n, _, m, f = log_mel.shape
        t = torch.arange(f, device=log_mel.device, dtype=torch.float32)
        src = t[None, :] * rate[:, None]  # (N, F) source frame
        x = (2 * src + 1) / f - 1
        y = (2 * torch.arange(m, device=log_mel.device, dtype=torch.float32) + 1) / m - 1
        grid = torch.stack(torch.broadcast_tensors(x[:, None, :], y[None, :, None]), dim=-1)
        stretched = F.grid_sample(
            log_mel - self.silence, grid.to(log_mel.dtype), align_corners=False, padding_mode="zeros"
        )
        steps = speech.shape[1]
        src_step = torch.floor(torch.arange(steps, device=speech.device)[None, :] * rate[:, None]).long()
        inside = src_step < steps
        new_speech = torch.gather(speech, 1, src_step.clamp(max=steps - 1)) * inside.to(speech.dtype)
        return stretched + self.silence, new_speech

    def add_noise(
        self, log_mel: Tensor, speech: Tensor, snr_db: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Background noise at ``snr_db`` ``(N,)`` relative to the window's mean speech power."""
        cfg = self.audio
        n, _, m, f = log_mel.shape
        power = (torch.exp(log_mel.float() * cfg.std + cfg.mean) - cfg.log_floor).clamp_min(0.0)
        frames_speech = F.interpolate(speech[:, None, :].float(), size=f, mode="nearest")[:, 0]  # (N, F)
        weight = torch.where(frames_speech.sum(1, keepdim=True) > 0, frames_speech, torch.ones_like(frames_speech))
        signal = (power[:, 0].mean(1) * weight).sum(1) / weight.sum(1)  # (N,) mean band power over speech
        slope = torch.rand(n, 1, device=log_mel.device, generator=generator)  # 0 white .. 1 pink
        hz = self.band_hz.to(log_mel.device)[None, :]
        profile = torch.pow(hz / hz[:, :1], -slope)  # (N, M)
        profile = profile / profile.mean(1, keepdim=True)
        jitter = torch.exp(0.3 * torch.randn(n, m, f, device=log_mel.device, generator=generator))
        noise = profile[:, :, None] * jitter * (signal / torch.pow(10.0, snr_db / 10.0))[:, None, None]
        noisy = torch.log(power[:, 0] + noise + cfg.log_floor)
        return ((noisy - cfg.mean) / cfg.std)[:, None].to(log_mel.dtype)

    def __call__(self, log_mel: Tensor, speech: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        n, dev = log_mel.shape[0], log_mel.device
        out, sp = log_mel, speech
        pick = torch.rand(n, device=dev) < c.pitch_prob
        if pick.any():
            semis = (torch.rand(n, device=dev) * 2 - 1) * c.max_semitones
            out = torch.where(pick[:, None, None, None], self.pitch_shift(out, semis), out)
        pick = torch.rand(n, device=dev) < c.stretch_prob
        if pick.any():
            lo, hi = c.stretch_range
            rate = torch.where(pick, lo + torch.rand(n, device=dev) * (hi - lo), torch.ones(n, device=dev))
            out, sp = self.time_stretch(out, sp, rate)
        pick = torch.rand(n, device=dev) < c.noise_prob
        if pick.any():
            lo, hi = c.snr_db_range
            snr = lo + torch.rand(n, device=dev) * (hi - lo)
            out = torch.where(pick[:, None, None, None], self.add_noise(out, sp, snr), out)
        return out, sp


class FaceAugment:
    """``__call__(faces (N, ..., 3, S, S)) -> same shape``: flip, rotation and random crop, one
    random transform per sample shared by all its frames."""

    def __init__(self, config: FaceAugmentConfig | None = None):
        self.config = config or FaceAugmentConfig()

    def __call__(self, faces: Tensor) -> Tensor:
        c = self.config
        n = faces.shape[0]
        dev = faces.device
        flat = faces.reshape(n, -1, *faces.shape[-2:])  # (N, frames*3, S, S)
        angle = (torch.rand(n, device=dev) * 2 - 1) * math.radians(c.max_rotation_deg)
        scale = c.min_crop_scale + torch.rand(n, device=dev) * (1 - c.min_crop_scale)
        shift = (torch.rand(n, 2, device=dev) * 2 - 1) * (1 - scale)[:, None]
        flip = torch.where(torch.rand(n, device=dev) < c.flip_prob, -1.0, 1.0)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
        )  # (N, 2, 3): output coords -> input coords
        grid = F.affine_grid(theta.to(flat.dtype), list(flat.shape), align_corners=False)
        out = F.grid_sample(flat, grid, align_corners=False, padding_mode="border")
        return out.reshape(faces.shape)


def modality_dropout(
    audio_mask: Tensor, face_mask: Tensor, p: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``audio_mask`` ``(N, T)``, ``face_mask`` ``(N, T_v)`` -> masks where each sample that has
    both modalities loses one of them (50/50) with probability ``p``."""
    if p <= 0:
        return audio_mask, face_mask
    n, dev = audio_mask.shape[0], audio_mask.device
    both = (audio_mask.sum(1) > 0) & (face_mask.sum(1) > 0)
    drop = both & (torch.rand(n, device=dev, generator=generator) < p)
    drop_audio = drop & (torch.rand(n, device=dev, generator=generator) < 0.5)
    drop_video = drop & ~drop_audio
    return audio_mask * (~drop_audio)[:, None].to(audio_mask.dtype), face_mask * (~drop_video)[:, None].to(
        face_mask.dtype
    )


__all__ = ["AudioAugmentConfig", "FaceAugmentConfig", "AudioAugment", "FaceAugment", "modality_dropout"]
