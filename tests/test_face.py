"""Face tracking with MediaPipe on real clips, odd cases as statuses, and the face crop."""

from __future__ import annotations

import os
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from clitools import fresh_python
from extras import needs_mediapipe

from edge_emotion.config import EDGE, PAPER
from edge_emotion.frontend.face import FaceObservation, FaceTracker, crop_box, crop_face, face_image_to_input, observe
from edge_emotion.sources import VideoFileSource

MIN_DETECTION_RATE = 0.9


@pytest.fixture(scope="module")
def frames(crema_flv):
    return list(VideoFileSource(crema_flv))


@pytest.fixture(scope="module")
def face_frame(frames):
    """A real frame and its face box."""
    frame = frames[len(frames) // 2]
    with FaceTracker(EDGE.visual, running_mode="image") as tracker:
        obs = tracker.detect(frame.image, 0)
    assert obs.usable
    return frame.image, obs.bbox


def detection_rate(path, max_fps=None) -> tuple[float, list[FaceObservation]]:
    with FaceTracker(EDGE.visual) as tracker:
        observations = [tracker.detect(f.image, f.timestamp_ms) for f in VideoFileSource(path, max_fps=max_fps)]
    return sum(o.usable for o in observations) / len(observations), observations


def test_finds_the_face_in_a_real_clip(crema_flv):
    rate, observations = detection_rate(crema_flv)
    assert rate >= MIN_DETECTION_RATE
    boxes = np.array([o.bbox for o in observations if o.usable])
    # One actor, sitting still: the box hardly moves and is a plausible face size.
    assert np.all(boxes.std(axis=0) < 10)
    assert 60 < np.median(boxes[:, 2]) < 200
    assert all(o.n_faces == 1 and not o.at_border and o.score > 0.5 for o in observations if o.usable)


@pytest.mark.parametrize(
    "clip",
    [
        "crema-d/video/1001_DFA_ANG_XX.flv",
        "crema-d/video/1001_DFA_HAP_XX.flv",
        "crema-d/video/1001_DFA_NEU_XX.flv",
        "ravdess/av/01-01-01-01-01-01-01.mp4",
    ],
)
def test_finds_the_face_in_most_frames_of_real_clips(shared_data, clip):
    rate, _ = detection_rate(shared_data / clip, max_fps=10)
    assert rate >= MIN_DETECTION_RATE


def test_no_face_is_a_status(frames):
    with FaceTracker(EDGE.visual) as tracker:
        obs = tracker.detect(np.full((360, 480, 3), 90, np.uint8), 0)
        assert obs == FaceObservation(0, "no_face")
        assert not obs.usable and obs.bbox is None and obs.n_faces == 0
        assert tracker.detect(frames[0].image, 33).usable


def two_faces(image: np.ndarray, box) -> tuple[np.ndarray, int]:
    """A 480x480 picture with the face (and some context) on the left and a 0.65-scaled copy on the
    right; returns it and the x where the right half starts."""
    import cv2

    x0, y0, side, _ = crop_box(box, 1.0)
    x0, y0 = max(0, x0), max(0, y0)
    head = image[y0 : y0 + side, x0 : x0 + side]
    small = cv2.resize(head, None, fx=0.65, fy=0.65, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 480, 3), 90, np.uint8)
    canvas[120 : 120 + head.shape[0], 10 : 10 + head.shape[1]] = head
    canvas[150 : 150 + small.shape[0], 250 : 250 + small.shape[1]] = small
    return canvas, 240


def test_several_faces_are_ok_with_a_count_and_the_largest_is_primary(face_frame):
    image, box = face_frame
    both, right = two_faces(image, box)
    with FaceTracker(EDGE.visual, select="largest") as tracker:
        obs = tracker.detect(both, 0)
    assert obs.status == "ok" and obs.n_faces == 2
    assert obs.bbox[0] < right  # the left, larger face
    assert obs.bbox[2] == pytest.approx(box[2], rel=0.15)


def test_stable_selection_follows_the_previous_face(face_frame):
    image, box = face_frame
    both, right = two_faces(image, box)
    only_small = both.copy()
    only_small[:, :right] = 90
    with FaceTracker(EDGE.visual, select="stable") as tracker:
        first = tracker.detect(only_small, 0)
        second = tracker.detect(both, 33)
    assert first.n_faces == 1 and second.n_faces == 2
    assert second.bbox[0] >= right  # still the small face on the right
    assert second.bbox == pytest.approx(first.bbox, abs=4)
    with FaceTracker(EDGE.visual, select="largest") as tracker:
        tracker.detect(only_small, 0)
        assert tracker.detect(both, 33).bbox[0] < right


def test_a_face_at_the_border_is_flagged_and_clipped(face_frame):
    image, (x, y, w, h) = face_frame
    shifted = np.full_like(image, 90)
    cut = x + int(0.15 * w)  # 15 % of the face leaves the frame on the left
    shifted[:, : image.shape[1] - cut] = image[:, cut:]
    with FaceTracker(EDGE.visual) as tracker:
        obs = tracker.detect(shifted, 0)
    assert obs.n_faces == 1 and obs.at_border
    assert obs.bbox[0] == 0 and obs.bbox[0] + obs.bbox[2] <= shifted.shape[1]
    assert obs.status == "ok"  # mostly inside: still usable, the crop pads the rest
    crop = crop_face(shifted, obs.bbox, EDGE.visual)
    assert crop.shape == (3, 64, 64) and np.isfinite(crop).all()


def test_a_tiny_face_is_reported_not_used(face_frame):
    image, box = face_frame
    with FaceTracker(replace(EDGE.visual, min_face_px=max(box[2:]) + 20)) as tracker:
        obs = tracker.detect(image, 0)
    assert obs.status == "too_small" and not obs.usable and obs.bbox is not None


def test_status_rules_for_boxes_partly_outside_or_small():
    visual = EDGE.visual  # min_face_px 24
    inside = observe(5, (10, 10, 50, 50), 0.9, 1, 100, 100, visual)
    assert inside == FaceObservation(5, "ok", (10, 10, 50, 50), 0.9, 1, False)
    edge = observe(5, (-10, 20, 50, 50), 0.9, 2, 100, 100, visual)
    assert edge.status == "ok" and edge.at_border and edge.bbox == (0, 20, 40, 50) and edge.n_faces == 2
    mostly_out = observe(5, (70, 70, 50, 50), 0.9, 1, 100, 100, visual)
    assert mostly_out.status == "out_of_frame" and mostly_out.bbox == (70, 70, 30, 30) and not mostly_out.usable
    gone = observe(5, (200, 200, 50, 50), 0.9, 1, 100, 100, visual)
    assert gone.status == "out_of_frame" and gone.bbox == (100, 100, 0, 0)
    tiny = observe(5, (40, 40, 20, 16), 0.9, 1, 100, 100, visual)
    assert tiny.status == "too_small" and tiny.bbox == (40, 40, 20, 16)
    with pytest.raises(ValueError):
        FaceObservation(0, "blurry")


def test_non_increasing_timestamps_raise_value_error(frames):
    with FaceTracker(EDGE.visual, running_mode="video") as tracker:
        tracker.detect(frames[0].image, 100)
        with pytest.raises(ValueError, match="strictly increase"):
            tracker.detect(frames[1].image, 100)
        with pytest.raises(ValueError):
            tracker.detect(frames[1].image, 50)
        assert tracker.detect(frames[1].image, 101).usable
    with FaceTracker(EDGE.visual, running_mode="image") as tracker:  # image mode: any order
        tracker.detect(frames[0].image, 100)
        assert tracker.detect(frames[0].image, 100).usable


@pytest.mark.parametrize("detector", ["auto", pytest.param("mediapipe", marks=needs_mediapipe)])
def test_live_stream_mode_returns_each_frames_result(frames, detector):
    # MediaPipe's task answers asynchronously in this mode; the SDK's detector synchronously
    with FaceTracker(EDGE.visual, running_mode="live_stream", detector=detector) as tracker:
        results = [tracker.detect(f.image, f.timestamp_ms) for f in frames[:5]]
        with pytest.raises(ValueError):
            tracker.detect(frames[0].image, frames[0].timestamp_ms)
    assert [r.timestamp_ms for r in results] == [f.timestamp_ms for f in frames[:5]]
    assert all(r.usable for r in results)


class _CountingTracker(FaceTracker):
    """A FaceTracker that counts the frames its detector really ran on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runs = 0

    def _detect_now(self, frame, timestamp_ms):
        self.runs += 1
        return super()._detect_now(frame, timestamp_ms)


def test_detect_every_runs_the_detector_on_one_frame_in_n_and_carries_the_faces_between(frames):
    kept = frames[::3][:12]  # about 10 fps, as a stream keeps them
    with _CountingTracker(EDGE.visual) as every:
        reference = [every.detect(f.image, f.timestamp_ms) for f in kept]
    with _CountingTracker(EDGE.visual, detect_every=3) as third:
        carried = [third.detect(f.image, f.timestamp_ms) for f in kept]
    assert every.runs == 12 and third.runs == 4
    for i, (ref, obs) in enumerate(zip(reference, carried, strict=True)):
        assert obs.timestamp_ms == kept[i].timestamp_ms  # each frame keeps its own time
        source = reference[i - i % 3]  # the frame the detector ran on
        assert (obs.bbox, obs.score, obs.keypoints, obs.status) == (
            source.bbox,
            source.score,
            source.keypoints,
            source.status,
        )
        if i % 3 == 0:
            assert obs == ref
    # the carried box is close to the true one on a seated speaker
    pairs = zip(carried, reference, strict=True)
    assert max(abs(a - b) for o, r in pairs for a, b in zip(o.bbox, r.bbox, strict=True)) < 12


def test_detect_every_detects_again_at_once_after_no_face_and_on_a_new_frame_size(frames):
    blank = np.full(frames[0].image.shape, 90, np.uint8)
    with _CountingTracker(EDGE.visual, detect_every=5) as tracker:
        assert tracker.detect(blank, 0).status == "no_face"
        full = tracker.detect(frames[0].image, 100)
        assert full.usable and tracker.runs == 2  # found on the next frame, not 5 later
        assert tracker.detect(blank, 200).bbox == full.bbox  # carried: the face left, the detector has not run
        assert tracker.runs == 2
        small = np.ascontiguousarray(frames[0].image[::2, ::2])
        half = tracker.detect_all(small, 300)
        assert tracker.runs == 3 and half[0].bbox[2] < 0.7 * full.bbox[2]  # another size: detected, its own box
        assert tracker.detect(frames[0].image, 400).bbox[2] > 0.9 * full.bbox[2]
        assert tracker.runs == 4  # and back: detected again
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(EDGE.visual, detect_every=0)
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(EDGE.visual, detect_every=True)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        FaceTracker(EDGE.visual, running_mode="batch")
    with pytest.raises(ValueError):
        FaceTracker(EDGE.visual, select="first")
    with FaceTracker(EDGE.visual) as tracker, pytest.raises(ValueError):
        tracker.detect(np.zeros((10, 10), np.uint8), 0)


# --- crops ---------------------------------------------------------------------------------------


def test_crop_face_matches_a_direct_computation(face_frame):
    import cv2

    image, box = face_frame
    x0, y0, side, _ = crop_box(box, PAPER.visual.margin)
    assert side == round(max(box[2:]) * 1.25)
    assert x0 >= 0 and y0 >= 0 and x0 + side <= image.shape[1] and y0 + side <= image.shape[0]
    square = image[y0 : y0 + side, x0 : x0 + side]
    resized = cv2.resize(square, (224, 224), interpolation=cv2.INTER_LINEAR if side < 224 else cv2.INTER_AREA)
    expected = ((resized / 255.0 - np.array(PAPER.visual.mean)) / np.array(PAPER.visual.std)).transpose(2, 0, 1)
    out = crop_face(image, box, PAPER.visual)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_grey_crop_is_itu601_luma_on_three_channels(face_frame):
    image, box = face_frame
    out = crop_face(image, box, EDGE.visual)
    assert out.shape == (3, 64, 64)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])
    colour = crop_face(image, box, replace(EDGE.visual, grayscale=False))
    luma = (colour * 0.25 + 0.5).transpose(1, 2, 0) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(out[0] * 0.25 + 0.5, luma, atol=1e-5)


def test_out_of_frame_parts_are_padded_with_the_mean_colour():
    image = np.full((100, 100, 3), 200, np.uint8)
    out = crop_face(image, (-40, -40, 60, 60), PAPER.visual)  # centred at (-10, -10): mostly outside
    assert out.shape == (3, 224, 224)
    np.testing.assert_allclose(out[:, :100, :100], 0.0, atol=0.02)  # padding: the mean colour -> ~0
    inside = (200 / 255 - np.array(PAPER.visual.mean)) / np.array(PAPER.visual.std)
    np.testing.assert_allclose(out[:, -5, -5], inside, atol=1e-5)
    far = crop_face(image, (500, 500, 10, 10), PAPER.visual)  # entirely outside: all padding
    np.testing.assert_allclose(far, 0.0, atol=0.02)


def test_face_image_to_input_on_a_fer2013_face(shared_data):
    import cv2

    with zipfile.ZipFile(shared_data / "fer2013" / "public_test.zip") as archive:
        name = next(n for n in archive.namelist() if n.endswith(".jpg"))
        grey = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert grey.shape == (48, 48)
    out = face_image_to_input(grey, EDGE.visual)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    resized = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out[1], (resized / 255.0 - 0.5) / 0.25, atol=1e-5)
    # The same as cropping a frame that holds only that face, with no margin.
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    np.testing.assert_allclose(crop_face(rgb, (0, 0, 48, 48), replace(EDGE.visual, margin=0.0)), out, atol=1e-5)
    with pytest.raises(ValueError):
        face_image_to_input(grey.astype(np.float32), EDGE.visual)


_WITHOUT_MATPLOTLIB = """
import sys, types
import numpy as np
from edge_emotion.config import EDGE
from edge_emotion.frontend.face import FaceTracker

with FaceTracker(EDGE.visual, running_mode="image", detector="mediapipe") as tracker:
    observation = tracker.detect(np.zeros((96, 128, 3), np.uint8), 0)
assert observation.status == "no_face", observation
assert "matplotlib" not in sys.modules and "matplotlib.pyplot" not in sys.modules, "matplotlib was imported"

# MediaPipe's plotting helper still reaches the real pyplot, imported when it is first used
from mediapipe.tasks.python.vision import drawing_utils
import matplotlib
matplotlib.use("Agg")
assert "matplotlib.pyplot" not in sys.modules
assert drawing_utils.plt.get_backend().lower() == "agg"
import matplotlib.pyplot as plt
assert type(plt) is types.ModuleType and plt.__file__.endswith("pyplot.py")
assert drawing_utils.plt.figure is plt.figure
print("ok")
"""


@needs_mediapipe
def test_the_face_detector_loads_without_importing_matplotlib():
    """MediaPipe's vision package imports matplotlib.pyplot for a plotting helper; a FaceTracker is
    built without it (a fresh interpreter, so nothing imported it before), and the helper still
    works, importing the real pyplot when it is used."""
    pytest.importorskip("matplotlib")
    done = fresh_python(_WITHOUT_MATPLOTLIB)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


@needs_mediapipe
def test_the_detectors_first_runs_write_nothing_on_stderr(face_frame, capfd, monkeypatch):
    # MediaPipe's task: LiteRT logs from native code on a detector's first runs (its delegate on the first; on the
    # second, in some processes, that it re-aligned a tensor): stand-ins write to fd 2 like it
    import edge_emotion.frontend.face as face_module

    real_run = FaceTracker._run
    calls = []

    def chatty_run(self, frame, timestamp_ms):
        calls.append(timestamp_ms)
        os.write(2, f"W0000 native chatter on run {len(calls)}\n".encode())
        return real_run(self, frame, timestamp_ms)

    monkeypatch.setattr(FaceTracker, "_run", chatty_run)
    tracker = FaceTracker(EDGE.visual, running_mode="video", detector="mediapipe")
    try:
        for i in range(face_module.QUIET_RUNS + 1):
            tracker.detect(face_frame[0], 100 * i)
    finally:
        tracker.close()
    err = capfd.readouterr().err
    assert len(calls) == face_module.QUIET_RUNS + 1
    assert face_module.QUIET_RUNS >= 2  # the second run is where the alignment note came from
    assert err.count("native chatter") == 1 and f"run {len(calls)}" in err  # later runs are not muted
