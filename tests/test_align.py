"""The one alignment onto the common T steps (edge_emotion.frontend.align), and the whole front end
end to end on real clips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_emotion.config import EDGE, PAPER
from edge_emotion.errors import InputError
from edge_emotion.frontend import features as F
from edge_emotion.frontend.align import (
    FrameSubsampler,
    align_encoded,
    audio_step_index,
    check_increasing,
    nearest_steps,
    step_centers,
    step_ms,
    tick_frames,
    video_tick_index,
    window_speech,
)
from edge_emotion.frontend.preprocess import preprocess_clip
from edge_emotion.sources import read_audio

# --- the alignment functions ---------------------------------------------------------------------


def test_nearest_steps_ties_tolerance_and_empty_sources():
    index, mask = nearest_steps(np.array([0.0, 10.0, 20.0]), np.array([5.0, 9.0, 26.0, 40.0]), 6.0)
    np.testing.assert_array_equal(index, [0, 1, 2, 0])  # 5 is a tie: the earlier item
    np.testing.assert_array_equal(mask, [True, True, True, False])
    index, mask = nearest_steps(np.array([]), np.array([1.0, 2.0]), 10.0)
    assert not mask.any() and index.tolist() == [0, 0]


def test_non_increasing_timestamps_raise_input_error():
    with pytest.raises(InputError, match="strictly increasing"):
        check_increasing(np.array([0, 10, 10]))
    with pytest.raises(InputError):
        nearest_steps(np.array([0.0, 20.0, 10.0]), np.array([5.0]), 5.0)
    with pytest.raises(InputError):
        tick_frames(np.array([100.0, 50.0]), 0, 3000, EDGE)


def test_frame_subsampler_keeps_the_models_frame_rate():
    keep = FrameSubsampler(EDGE)  # 10 fps: a frame once 75 ms have passed since the last kept one
    source = np.arange(0, 1000, 1000 / 29.97)
    kept = [t for t in source if keep.keep(t)]
    np.testing.assert_allclose(kept, source[::3])
    keep = FrameSubsampler(EDGE)
    jittery = [0, 98, 170, 240, 330, 400]
    assert [t for t in jittery if keep.keep(t)] == [0, 98, 240, 330]


def test_ticks_take_the_nearest_kept_frame_and_gaps_are_masked():
    frames = np.array([0, 100, 200, 620, 700, 2950], np.float64)
    index, ok = tick_frames(frames, 0, 3000, EDGE)
    assert index.shape == ok.shape == (EDGE.video_frames,)
    assert ok[:4].all() and index[:4].tolist() == [0, 1, 2, 2]  # 300 ms: 200 is one period away
    assert not ok[4:6].any()  # 400 and 500 ms: no frame within one period
    assert ok[6:9].all() and index[6:9].tolist() == [3, 4, 4]
    assert not ok[9:29].any() and ok[29] and index[29] == 5  # 2900 takes 2950
    # A window that ends early (the last, partial window) shows no tick at or past its end.
    _, ok = tick_frames(frames, 0, 650, EDGE)
    assert ok[:4].all() and ok[6] and not ok[7:].any()


@pytest.mark.parametrize("preset", [PAPER, EDGE], ids=["paper", "edge"])
def test_audio_steps_cover_every_common_step(preset):
    index = audio_step_index(preset)
    assert index.shape == (preset.model.time_steps,)
    assert np.all(np.diff(index) >= 0) and index[0] == 0 and index[-1] == preset.audio_steps - 1


@pytest.mark.parametrize("preset", [PAPER, EDGE], ids=["paper", "edge"])
def test_every_common_step_has_a_tick(preset):
    index, ok = video_tick_index(preset)
    assert ok.all() and np.all(np.diff(index) >= 0) and index[-1] <= preset.video_frames - 1


def test_align_encoded_builds_masked_windows():
    preset = EDGE
    t, t_a, t_v = preset.model.time_steps, preset.audio_steps, preset.video_frames
    audio_seq = np.tile(np.arange(t_a, dtype=np.float32)[:, None], (2, 1, 3)) + 1  # (2, T_a, 3)
    speech = np.zeros((2, t), np.float32)
    speech[0, : t // 2] = 1
    ticks = np.ones((2, t_v, 4), np.float32)
    tick_mask = np.ones((2, t_v), np.float32)
    tick_mask[0, 10:13] = 0  # 300 ms without a face
    audio, visual, a_mask, v_mask = align_encoded(preset, audio_seq, ticks, tick_mask, speech)
    assert audio.shape == (2, t, 3) and visual.shape == (2, t, 4) and a_mask.shape == v_mask.shape == (2, t)
    np.testing.assert_array_equal(a_mask, speech)
    assert np.all(audio[0, t // 2 :] == 0) and np.all(audio[0, : t // 2] > 0) and not audio[1].any()
    tick_of_step, _ = video_tick_index(preset)
    np.testing.assert_array_equal(v_mask[0], tick_mask[0, tick_of_step])
    assert np.all(visual[v_mask == 0] == 0) and np.all(visual[v_mask == 1] == 1)


def test_window_speech_masks_steps_past_the_window_length():
    rng = np.random.default_rng(0)
    t = np.arange(EDGE.audio.window_samples) / EDGE.audio.sample_rate
    loud = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.1 * rng.standard_normal(t.size))).astype(np.float32)
    full = window_speech(loud, EDGE)
    assert full.all()
    part = window_speech(loud, EDGE, length_ms=1000)
    np.testing.assert_array_equal(part, step_centers(EDGE) < 1000)


def test_torch_model_aligns_like_the_front_end():
    torch = pytest.importorskip("torch", reason="the training model needs torch (the train extra)")
    from edge_emotion.train.model import build_model

    preset = EDGE
    model = build_model(preset)
    rng = np.random.default_rng(3)
    n, t_v = 3, preset.video_frames
    audio_seq = rng.standard_normal((n, preset.audio_steps, preset.model.audio_dim)).astype(np.float32)
    frames = rng.standard_normal((n, t_v, preset.model.visual_dim)).astype(np.float32)
    face_mask = (rng.random((n, t_v)) > 0.3).astype(np.float32)
    audio_mask = (rng.random((n, preset.model.time_steps)) > 0.3).astype(np.float32)
    audio_t, visual_t, v_mask_t = model.align(*(torch.from_numpy(a) for a in (audio_seq, frames, face_mask)))
    audio, visual, a_mask, v_mask = align_encoded(preset, audio_seq, frames, face_mask, audio_mask)
    np.testing.assert_array_equal(audio_t.numpy() * audio_mask[..., None], audio)
    np.testing.assert_array_equal(visual_t.numpy(), visual)
    np.testing.assert_array_equal(v_mask_t.numpy(), v_mask)


# --- end to end on real clips --------------------------------------------------------------------


def check_clip(clip, preset, duration_ms):
    """Front-end invariants of a preprocessed real clip whose actor is in view and speaks."""
    assert clip.face_mask.mean() >= 0.9  # the face is found in most kept frames
    assert np.all(np.diff(clip.frame_ms) >= 0.75 * 1000 / preset.visual.fps - 1e-6)  # the model's rate
    for w in range(clip.n_windows):
        start = int(clip.window_start_ms[w])
        end = clip.window_end_ms(w, preset)
        _, ok = clip.window_frames(w, preset)
        ticks = start + np.arange(preset.video_frames) * 1000 / preset.visual.fps
        assert not ok[ticks >= end].any()  # nothing after the window's (or the clip's) end
        inside = (ticks > clip.frame_ms[0] + 100) & (ticks < min(end, clip.frame_ms[-1]) - 100)
        assert ok[inside].mean() >= 0.9
        centres = step_centers(preset, start)
        assert not clip.speech[w][centres > duration_ms + step_ms(preset)].any()  # no invented speech
    assert clip.speech.any()  # the actor speaks


def test_end_to_end_on_crema_d(shared_data):
    path = shared_data / "crema-d" / "video" / "1001_DFA_HAP_XX.flv"
    clip = preprocess_clip(EDGE, video_path=path, audio_in_video=True)
    check_clip(clip, EDGE, clip.duration_ms)
    # The last kept frame lies within a frame period (plus a source frame) of the clip's end.
    assert clip.duration_ms - 1000 / EDGE.visual.fps - 40 <= clip.frame_ms[-1] <= clip.duration_ms


@pytest.mark.parametrize("preset", [EDGE, PAPER], ids=["edge", "paper"])
def test_end_to_end_on_ravdess(shared_data, preset):
    path = shared_data / "ravdess" / "av" / "01-01-01-01-01-01-01.mp4"
    if preset is PAPER:  # the paper's 224 px colour crops, with faces at 10 fps to keep the test short
        preset = preset.replace(visual=replace(preset.visual, fps=10.0))
    clip = preprocess_clip(preset, video_path=path, audio_in_video=True)
    check_clip(clip, preset, clip.duration_ms)
    pcm, _ = read_audio(path, 16000)
    speech = F.speech_frames(pcm, preset.audio)
    assert 0.2 < speech.mean() < 0.9  # RAVDESS clips: silence, a sentence, silence
