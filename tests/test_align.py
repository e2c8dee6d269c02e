"""Alignment onto the common T steps, and the whole front end end to end on real clips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_emotion.config import EDGE, PAPER
from edge_emotion.frontend import features as F
from edge_emotion.frontend.align import Aligner, check_increasing, nearest_steps
from edge_emotion.frontend.face import FaceTracker, crop_face
from edge_emotion.sources import open_media, read_audio

# --- the alignment functions ---------------------------------------------------------------------


def test_nearest_steps_ties_tolerance_and_empty_sources():
    index, mask = nearest_steps(np.array([0.0, 10.0, 20.0]), np.array([5.0, 9.0, 26.0, 40.0]), 6.0)
    np.testing.assert_array_equal(index, [0, 1, 2, 0])  # 5 is a tie: the earlier item
    np.testing.assert_array_equal(mask, [True, True, True, False])
    index, mask = nearest_steps(np.array([]), np.array([1.0, 2.0]), 10.0)
    assert not mask.any() and index.tolist() == [0, 0]


def test_non_increasing_timestamps_raise_value_error():
    with pytest.raises(ValueError, match="strictly increasing"):
        check_increasing(np.array([0, 10, 10]))
    with pytest.raises(ValueError):
        nearest_steps(np.array([0.0, 20.0, 10.0]), np.array([5.0]), 5.0)
    aligner = Aligner.for_preset(EDGE)
    with pytest.raises(ValueError):
        aligner.place(np.array([100, 50]), np.zeros((2, 4)), 0, 100)
    with pytest.raises(ValueError):
        aligner.align(EDGE, 0, None, None, np.array([0, 0]), np.zeros((2, 4)))


def test_gaps_are_masked_not_invented():
    aligner = Aligner(time_steps=10, window_ms=1000)  # 100 ms steps, centres at 50, 150, ...
    ts = np.array([40, 160, 250, 640, 760])  # nothing near 350, 450, 550, 850, 950
    values = np.arange(5, dtype=np.float32)[:, None] + 1
    out, mask = aligner.place(ts, values, start_ms=0, source_period_ms=100)
    np.testing.assert_array_equal(mask, [True, True, True, False, False, False, True, True, False, False])
    np.testing.assert_array_equal(out[:, 0], [1, 2, 3, 0, 0, 0, 4, 5, 0, 0])
    valid = np.array([True, False, True, True, True])  # a frame without a face
    _, mask = aligner.place(ts, values, 0, 100, valid=valid)
    assert not mask[1] and mask[0] and mask[2]


@pytest.mark.parametrize("preset", [PAPER, EDGE], ids=["paper", "edge"])
def test_audio_steps_cover_every_common_step(preset):
    aligner = Aligner.for_preset(preset)
    index, mask = aligner.audio_index(preset)
    assert mask.all() and index.shape == (preset.model.time_steps,)
    assert np.all(np.diff(index) >= 0) and index[0] == 0 and index[-1] == preset.audio_steps - 1


def test_align_builds_a_masked_window():
    preset = EDGE
    aligner = Aligner.for_preset(preset)
    t, t_a = preset.model.time_steps, preset.audio_steps
    audio_seq = np.tile(np.arange(t_a, dtype=np.float32)[:, None], (1, 3)) + 1
    speech = np.arange(t) < t // 2
    frame_ms = 5000 + np.arange(0, 3000, 100)  # 10 fps over the window starting at 5000 ms
    frame_ms = np.delete(frame_ms, [10, 11, 12])  # 300 ms without frames
    values = np.ones((frame_ms.size, 4), np.float32)
    valid = np.ones(frame_ms.size, bool)
    valid[0] = False
    w = aligner.align(preset, 5000, audio_seq, speech, frame_ms, values, valid)
    assert (w.start_ms, w.end_ms) == (5000, 5000 + preset.window_ms)
    assert w.audio.shape == (t, 3) and w.visual.shape == (t, 4)
    np.testing.assert_array_equal(w.audio_mask, speech)
    assert np.all(w.audio[~speech] == 0) and np.all(w.audio[speech] > 0)
    # Step 12 (centre 5000 + 1250) takes the frame at 5000 + 1300, half a period away.
    assert not w.visual_mask[0] and not w.visual_mask[10:12].any() and w.visual_mask[12:].all()
    assert np.all(w.visual[~w.visual_mask] == 0)
    silent = aligner.align(preset, 5000, None, None, frame_ms, values)
    assert silent.audio.shape == (t, preset.model.audio_dim) and not silent.audio_mask.any()
    with pytest.raises(ValueError):
        aligner.align(PAPER, 0, None, None, frame_ms, values)
    with pytest.raises(ValueError):
        aligner.align(preset, 0, np.zeros((t_a + 1, 3)), None, frame_ms, values)


# --- end to end on real clips --------------------------------------------------------------------


def pooled_log_mel(window: np.ndarray, preset) -> np.ndarray:
    """A stand-in for the audio encoder: ``(T_a, n_mels)``, the log-mel averaged over each
    encoder step's frames (the same time grid as the real encoder's output)."""
    t_a = preset.audio_steps
    return window.reshape(window.shape[0], t_a, -1).mean(axis=2).T


def run_front_end(path, preset):
    """Decode a clip, track faces, cut windows every ``preset.hop_ms`` and align them."""
    media = open_media(path, max_fps=preset.visual.fps, sample_rate=preset.audio.sample_rate)
    frame_ms, embeddings, valid = [], [], []
    with FaceTracker(preset.visual) as tracker:
        for frame in media.video:
            obs = tracker.detect(frame.image, frame.timestamp_ms)
            frame_ms.append(frame.timestamp_ms)
            valid.append(obs.usable)
            crop = crop_face(frame.image, obs.bbox, preset.visual) if obs.usable else None
            # A stand-in for the visual encoder: the crop's mean per channel.
            embeddings.append(crop.mean(axis=(1, 2)) if crop is not None else np.zeros(3, np.float32))
    pcm, audio_start_ms = read_audio(path, preset.audio.sample_rate)
    aligner = Aligner.for_preset(preset)
    windows = []
    for start_ms in range(0, media.duration_ms, preset.hop_ms):
        first = int(round((start_ms - audio_start_ms) * preset.audio.sample_rate / 1000))
        piece = pcm[max(0, first) : max(0, first + preset.audio.window_samples)]
        if first < 0:  # the window starts before the audio track: silence, not invented sound
            piece = np.concatenate([np.zeros(min(-first, preset.audio.window_samples), np.float32), piece])
        log_mel = F.window_log_mel(piece, preset.audio)
        speech = F.window_speech_steps(piece, preset)
        windows.append(
            aligner.align(
                preset,
                start_ms,
                pooled_log_mel(log_mel, preset),
                speech,
                np.array(frame_ms),
                np.array(embeddings),
                np.array(valid),
            )
        )
    return media, np.array(frame_ms), np.array(valid), windows


def check_windows(media, frame_ms, valid, windows, preset):
    aligner = Aligner.for_preset(preset)
    step_ms = aligner.step_ms
    assert valid.mean() >= 0.9  # the face is found in most frames
    assert len(windows) == int(np.ceil(media.duration_ms / preset.hop_ms))
    for w in windows:
        centres = aligner.centers(w.start_ms)
        assert w.end_ms - w.start_ms == preset.window_ms
        # Nothing after the file's end: neither a face nor speech is invented there.
        after = centres > media.duration_ms + step_ms
        assert not w.visual_mask[after].any() and not w.audio_mask[after].any()
        # Inside the clip every step has a frame with a face (the actor is always in view).
        during = (centres > frame_ms[0] + step_ms) & (centres < frame_ms[-1] - step_ms)
        assert w.visual_mask[during].mean() >= 0.9
        assert np.all(w.visual[~w.visual_mask] == 0) and np.all(w.audio[~w.audio_mask] == 0)
    speech_steps = np.concatenate([w.audio_mask for w in windows])
    assert speech_steps.any()  # the actor speaks


def test_end_to_end_on_a_real_clip(crema_flv):
    media, frame_ms, valid, windows = run_front_end(crema_flv, EDGE)
    check_windows(media, frame_ms, valid, windows, EDGE)
    # The last frame lies within one frame period of the file's end.
    assert media.duration_ms - 1000 / EDGE.visual.fps - 40 <= frame_ms[-1] <= media.duration_ms


def test_end_to_end_with_late_audio_and_dropped_frames(vfr_offset_mp4):
    media, frame_ms, valid, windows = run_front_end(vfr_offset_mp4, EDGE)
    check_windows(media, frame_ms, valid, windows, EDGE)
    first = Aligner.for_preset(EDGE).centers(windows[0].start_ms)
    # Audio starts at ~450 ms: no speech can be found before it.
    assert not windows[0].audio_mask[first < 440].any()


@pytest.mark.parametrize("preset", [EDGE, PAPER], ids=["edge", "paper"])
def test_end_to_end_on_ravdess(shared_data, preset):
    path = shared_data / "ravdess" / "av" / "01-01-01-01-01-01-01.mp4"
    if preset is PAPER:  # the paper's 224 px colour crops, with faces at 10 fps to keep the test short
        preset = preset.replace(visual=replace(preset.visual, fps=10.0))
    media, frame_ms, valid, windows = run_front_end(path, preset)
    check_windows(media, frame_ms, valid, windows, preset)
    pcm, _ = read_audio(path, 16000)
    speech = F.speech_frames(pcm, preset.audio)
    assert 0.2 < speech.mean() < 0.9  # RAVDESS clips: silence, a sentence, silence
