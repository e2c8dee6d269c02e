"""Log-mel and face augmentation, and modality dropout."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="augmentation runs in torch (the 'train' extra)")

from edge_emotion.train.augment import AudioAugment, FaceAugment, modality_dropout  # noqa: E402

from edge_emotion.config import EDGE  # noqa: E402
from edge_emotion.frontend.features import window_log_mel  # noqa: E402


def _tone_window(hz: float) -> torch.Tensor:
    t = np.arange(EDGE.audio.window_samples) / EDGE.audio.sample_rate
    pcm = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return torch.from_numpy(window_log_mel(pcm, EDGE.audio))[None, None]


def test_identity_settings_leave_the_log_mel_unchanged():
    aug = AudioAugment(EDGE.audio)
    x = _tone_window(440.0)
    speech = torch.ones(1, EDGE.model.time_steps)
    assert torch.allclose(aug.pitch_shift(x, torch.zeros(1)), x, atol=1e-4)
    y, s = aug.time_stretch(x, speech, torch.ones(1))
    assert torch.allclose(y, x, atol=1e-4) and torch.equal(s, speech)


def test_pitch_shift_moves_a_tone_like_a_tone_of_the_shifted_frequency():
    aug = AudioAugment(EDGE.audio)
    shifted = aug.pitch_shift(_tone_window(1000.0), torch.tensor([12.0]))  # one octave up
    peak = lambda x: int(x[0, 0, :, 10:-10].mean(-1).argmax())  # noqa: E731
    assert abs(peak(shifted) - peak(_tone_window(2000.0))) <= 1


def test_time_stretch_shortens_speech_and_pads_with_silence():
    aug = AudioAugment(EDGE.audio)
    x = _tone_window(440.0)
    speech = torch.ones(1, EDGE.model.time_steps)
    y, s = aug.time_stretch(x, speech, torch.tensor([1.25]))
    assert s.sum() < speech.sum() and s[0, 0] == 1 and s[0, -1] == 0
    assert torch.allclose(y[..., -5:], torch.full_like(y[..., -5:], aug.silence), atol=1e-3)


def test_noise_raises_quiet_bands_and_depends_on_snr():
    aug = AudioAugment(EDGE.audio)
    x = _tone_window(440.0)
    speech = torch.ones(1, EDGE.model.time_steps)
    loud = aug.add_noise(x, speech, torch.tensor([0.0]))
    soft = aug.add_noise(x, speech, torch.tensor([40.0]))
    assert loud.mean() > soft.mean() > x.mean()
    assert loud.shape == x.shape


def test_face_augment_keeps_shape_and_shares_one_transform_per_sample():
    torch.manual_seed(0)
    faces = torch.randn(3, 1, 3, 64, 64).expand(3, 4, 3, 64, 64).contiguous()  # 4 equal frames
    out = FaceAugment()(faces)
    assert out.shape == faces.shape and not torch.allclose(out, faces)
    assert torch.allclose(out[:, 0], out[:, 3])


def test_modality_dropout_only_touches_samples_with_both_modalities():
    torch.manual_seed(0)
    audio = torch.ones(200, 30)
    faces = torch.ones(200, 30)
    faces[:100] = 0  # audio-only samples
    a, f = modality_dropout(audio, faces, 0.5)
    assert torch.equal(a[:100], audio[:100])
    both_kept = (a[100:].sum(1) > 0) & (f[100:].sum(1) > 0)
    assert 25 < int((~both_kept).sum()) < 75
    assert bool(((a[100:].sum(1) > 0) | (f[100:].sum(1) > 0)).all())  # never both dropped
