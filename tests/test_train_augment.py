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


def test_face_erasing_blanks_one_rectangle_of_the_drawn_size_in_every_frame_of_a_picked_sample():
    from edge_emotion.train.augment import FaceAugmentConfig

    torch.manual_seed(0)
    aug = FaceAugment(FaceAugmentConfig(erase_prob=0.5))
    masks = aug.erase_mask(400, 64, 64, "cpu")
    erased = masks.flatten(1).sum(1).float()
    picked = erased > 0
    assert 150 < int(picked.sum()) < 250  # about half of the samples
    share = erased[picked] / (64 * 64)
    assert float(share.min()) >= 0.015 and float(share.max()) <= 0.21  # 2-20 % of the area, up to rounding
    for m in masks[picked][:20]:  # one solid rectangle: its bounding box is all erased
        rows, cols = torch.nonzero(m, as_tuple=True)
        box = m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert bool(box.all())
    # applied: every frame of an erased sample has the same zeroed rectangle
    only_erase = FaceAugment(FaceAugmentConfig(flip_prob=0.0, max_rotation_deg=0.0, min_crop_scale=1.0, erase_prob=1.0))
    faces = (torch.rand(2, 1, 3, 64, 64) + 1).expand(2, 4, 3, 64, 64).contiguous()
    out = only_erase(faces)
    zero = out == 0
    assert bool(zero.any(dim=(1, 2, 3, 4)).all())
    assert torch.equal(zero[:, 0], zero[:, 3]) and torch.equal(zero[:, :, 0], zero[:, :, 2])
    assert torch.allclose(out[~zero], faces[~zero], atol=1e-5)


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


def test_speed_perturbation_is_a_stretch_and_a_pitch_shift_together():
    aug = AudioAugment(EDGE.audio)
    x = _tone_window(1000.0)
    speech = torch.ones(1, EDGE.model.time_steps)
    y, s = aug.speed(x, speech, torch.tensor([2.0]))  # twice as fast: an octave up, half as long
    peak = lambda v: int(v[0, 0, :, 5:30].mean(-1).argmax())  # noqa: E731
    assert abs(peak(y) - peak(_tone_window(2000.0))) <= 1
    assert s[0, : s.shape[1] // 2].all() and not s[0, s.shape[1] // 2 + 1 :].any()
    same, s1 = aug.speed(x, speech, torch.ones(1))
    assert torch.allclose(same, x, atol=1e-4) and torch.equal(s1, speech)


def test_gain_scales_the_power_and_keeps_silence_near_silence():
    aug = AudioAugment(EDGE.audio)
    x = _tone_window(440.0)
    louder = aug.gain(x, torch.tensor([10.0]))
    band = int(x[0, 0].mean(-1).argmax())
    step = (louder - x)[0, 0, band].mean() * EDGE.audio.std  # natural-log power change in the peak band
    assert float(step) == pytest.approx(np.log(10.0), rel=0.01)
    assert torch.allclose(aug.gain(x, torch.zeros(1)), x, atol=1e-4)


def test_spec_augment_masks_set_whole_spans_and_bands_to_silence():
    from edge_emotion.train.augment import AudioAugmentConfig

    cfg = AudioAugmentConfig(time_masks=1, max_time_mask_frames=20, freq_masks=1, max_freq_mask_bands=16)
    aug = AudioAugment(EDGE.audio, cfg)
    x = _tone_window(440.0).repeat(64, 1, 1, 1) + 1.0  # nowhere silent
    out = aug.masks(x, torch.Generator().manual_seed(0))
    silent = torch.isclose(out, torch.full_like(out, aug.silence))
    frames = silent.all(dim=2)[:, 0]  # (N, F) whole frames masked
    bands = silent.all(dim=3)[:, 0]  # (N, M) whole bands masked
    assert (silent == (frames[:, None, None, :] | bands[:, None, :, None])).all()  # nothing else touched
    assert 0 < int(frames.sum(1).max()) <= 20 and 0 < int(bands.sum(1).max()) <= 16
    assert torch.equal(out[~silent], x[~silent])


def test_strong_augmentation_changes_windows_and_keeps_shapes():
    from edge_emotion.train.augment import AudioAugmentConfig

    torch.manual_seed(0)
    aug = AudioAugment(EDGE.audio, AudioAugmentConfig.strong())
    x = _tone_window(440.0).repeat(8, 1, 1, 1)
    speech = torch.ones(8, EDGE.model.time_steps)
    y, s = aug(x, speech)
    assert y.shape == x.shape and s.shape == speech.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x)


def test_mixup_blends_inputs_and_targets_alike_and_unites_masks():
    from edge_emotion.train.augment import mixup

    torch.manual_seed(0)
    n = 16
    batch = {
        "log_mel": torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).clone(),
        "audio_mask": (torch.arange(n) % 2).float()[:, None].expand(n, 5).clone(),
        "target": torch.nn.functional.one_hot(torch.arange(n) % 4, 4).float(),
        "label": torch.arange(n) % 4,
    }
    out = mixup(batch, alpha=0.4)
    lam = out["target"].max(1).values  # the sample's own share
    assert torch.allclose(out["target"].sum(1), torch.ones(n)) and (lam >= 0.5).all()
    assert (out["audio_mask"] >= batch["audio_mask"]).all()
    assert torch.equal(out["label"], batch["label"])
    assert mixup(batch, alpha=0.0) is batch
