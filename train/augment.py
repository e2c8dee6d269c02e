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

- speed perturbation by factor ``k`` (resampling: tempo *and* pitch change together): a time
  stretch by rate ``k`` combined with a pitch shift of ``12 log2 k`` semitones;
- gain by ``g`` dB: mel power times ``10^(g/10)`` (exact on the power, through the same
  ``log_floor`` as the front end); a clip's loudness then no longer tells its label;
- SpecAugment-style masks (Park et al. 2019): up to ``time_masks`` spans of at most
  ``max_time_mask_frames`` frames and ``freq_masks`` bands of at most ``max_freq_mask_bands``
  mel bands are set to silence.

Mixup (Zhang et al. 2018, :func:`mixup`): two samples' inputs are blended with a weight drawn from
``Beta(alpha, alpha)`` and their target distributions likewise; masks become the union.

Faces (``(..., 3, S, S)`` normalised crops): horizontal flip, small rotation and a random crop
(zoom in to a random sub-square and resize back), combined into one affine resampling per sample,
then random erasing (Zhong et al. 2020: a rectangle of 2–20 % of the crop, any aspect ratio between
1:3 and 3:1, set to the normalised mean, 0), so that no single region (an eye, the mouth) decides a
label alone; all frames of one sample share one transform so that a window stays temporally
consistent.

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
    speed_prob: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)
    gain_prob: float = 0.0
    gain_db_range: tuple[float, float] = (-12.0, 12.0)
    mask_prob: float = 0.0
    time_masks: int = 2
    max_time_mask_frames: int = 20
    freq_masks: int = 2
    max_freq_mask_bands: int = 16

    @classmethod
    def strong(cls) -> AudioAugmentConfig:
        """Every transform on: the multi-corpus audio recipe's setting (``audio_augment = "strong"``)."""
        return cls(speed_prob=0.5, gain_prob=0.5, mask_prob=0.8)


@dataclass(frozen=True)
class FaceAugmentConfig:
    flip_prob: float = 0.5
    max_rotation_deg: float = 10.0
    min_crop_scale: float = 0.85  # side of the random crop as a fraction of the image side
    erase_prob: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.2)  # of the crop's area
    erase_aspect: tuple[float, float] = (1 / 3, 3.0)


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

    def speed(self, log_mel: Tensor, speech: Tensor, factor: Tensor) -> tuple[Tensor, Tensor]:
        """Speed perturbation by ``factor`` ``(N,)`` (> 1 faster and higher): stretch + pitch."""
        out, sp = self.time_stretch(log_mel, speech, factor)
        return self.pitch_shift(out, 12.0 * torch.log2(factor)), sp

    def gain(self, log_mel: Tensor, gain_db: Tensor) -> Tensor:
        """Scale the mel power by ``gain_db`` ``(N,)`` dB."""
        cfg = self.audio
        power = (torch.exp(log_mel.float() * cfg.std + cfg.mean) - cfg.log_floor).clamp_min(0.0)
        scaled = power * torch.pow(10.0, gain_db / 10.0)[:, None, None, None]
        return ((torch.log(scaled + cfg.log_floor) - cfg.mean) / cfg.std).to(log_mel.dtype)

    def masks(self, log_mel: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """SpecAugment: random time spans and mel bands of each sample set to silence."""
        c = self.config
        n, _, m, f = log_mel.shape
        dev = log_mel.device
        keep = torch.ones(n, 1, m, f, dtype=torch.bool, device=dev)
        for size, count, axis, in_time in (
            (c.max_time_mask_frames, c.time_masks, f, True),
            (c.max_freq_mask_bands, c.freq_masks, m, False),
        ):
            if size <= 0:
                continue
            positions = torch.arange(axis, device=dev)[None, :]
            for _ in range(count):
                width = torch.randint(0, min(size, axis) + 1, (n, 1), device=dev, generator=generator)
                start = (torch.rand(n, 1, device=dev, generator=generator) * (axis - width + 1)).floor()
                hit = (positions >= start) & (positions < start + width)  # (N, axis)
                keep &= ~(hit[:, None, None, :] if in_time else hit[:, None, :, None])
        return torch.where(keep, log_mel, torch.full_like(log_mel, self.silence))

    def __call__(self, log_mel: Tensor, speech: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        n, dev = log_mel.shape[0], log_mel.device
        out, sp = log_mel, speech
        pick = torch.rand(n, device=dev) < c.speed_prob
        if pick.any():
            lo, hi = c.speed_range
            factor = torch.where(pick, lo + torch.rand(n, device=dev) * (hi - lo), torch.ones(n, device=dev))
            out, sp = self.speed(out, sp, factor)
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
        pick = torch.rand(n, device=dev) < c.gain_prob
        if pick.any():
            lo, hi = c.gain_db_range
            gain_db = lo + torch.rand(n, device=dev) * (hi - lo)
            out = torch.where(pick[:, None, None, None], self.gain(out, gain_db), out)
        pick = torch.rand(n, device=dev) < c.mask_prob
        if pick.any():
            out = torch.where(pick[:, None, None, None], self.masks(out), out)
        return out, sp


class FaceAugment:
    """``__call__(faces (N, ..., 3, S, S)) -> same shape``: flip, rotation, random crop and random
    erasing, one random transform per sample shared by all its frames."""

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
        if c.erase_prob > 0:
            out = out * ~self.erase_mask(n, out.shape[-2], out.shape[-1], dev)[:, None]
        return out.reshape(faces.shape)

    def erase_mask(self, n: int, height: int, width: int, device) -> Tensor:
        """``(N, H, W) bool``: for each sample picked with ``erase_prob``, one rectangle of a random
        share of the area (``erase_area``) and aspect ratio (``erase_aspect``, drawn log-uniform)
        at a random place; all False for the others."""
        c = self.config
        area = (c.erase_area[0] + torch.rand(n, device=device) * (c.erase_area[1] - c.erase_area[0])) * height * width
        lo, hi = math.log(c.erase_aspect[0]), math.log(c.erase_aspect[1])
        aspect = torch.exp(lo + torch.rand(n, device=device) * (hi - lo))
        h = torch.sqrt(area * aspect).round().clamp(1, height)
        w = torch.sqrt(area / aspect).round().clamp(1, width)
        top = (torch.rand(n, device=device) * (height - h + 1)).floor()
        left = (torch.rand(n, device=device) * (width - w + 1)).floor()
        rows = torch.arange(height, device=device, dtype=torch.float32)[None, :, None]
        cols = torch.arange(width, device=device, dtype=torch.float32)[None, None, :]
        inside = (
            (rows >= top[:, None, None])
            & (rows < (top + h)[:, None, None])
            & (cols >= left[:, None, None])
            & (cols < (left + w)[:, None, None])
        )
        picked = torch.rand(n, device=device) < c.erase_prob
        return inside & picked[:, None, None]


MIX_INPUTS = ("log_mel", "face", "faces")
MIX_MASKS = ("audio_mask", "face_mask")


def mixup(batch: dict[str, Tensor], alpha: float, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Blend each sample with a random partner of the batch: inputs (:data:`MIX_INPUTS`) and the
    ``target`` distributions ``(N, C)`` by ``lam ~ Beta(alpha, alpha)`` per sample (``lam`` kept
    ``>= 0.5`` so that the sample stays the larger part), masks (:data:`MIX_MASKS`) by union.
    ``alpha <= 0``: the batch unchanged."""
    if alpha <= 0 or "target" not in batch:
        return batch
    target = batch["target"]
    n = target.shape[0]
    if n < 2:
        return batch
    perm = torch.randperm(n, device=target.device, generator=generator)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((n,)).to(target.device)
    lam = torch.maximum(lam, 1 - lam)
    out = dict(batch)
    for key in MIX_INPUTS:
        if key in batch:
            x = batch[key]
            w = lam.reshape(n, *([1] * (x.dim() - 1))).to(x.dtype)
            out[key] = w * x + (1 - w) * x[perm]
    for key in MIX_MASKS:
        if key in batch:
            out[key] = torch.maximum(batch[key], batch[key][perm])
    out["target"] = lam[:, None] * target + (1 - lam[:, None]) * target[perm]
    return out


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


__all__ = ["AudioAugmentConfig", "FaceAugmentConfig", "AudioAugment", "FaceAugment", "mixup", "modality_dropout"]
