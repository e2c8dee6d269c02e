"""The SDK's own BlazeFace detector: its parts, and its detections against MediaPipe's
``FaceDetector`` task on real clips."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest
from clitools import fresh_python
from extras import HAS_MEDIAPIPE, needs_mediapipe
from media import SAMPLE_CLIP

from edge_emotion.config import EDGE
from edge_emotion.errors import InputError, MissingDependencyError
from edge_emotion.frontend.blazeface import ONNX_MODEL_PATH, BlazeFaceDetector, ssd_anchors, weighted_nms
from edge_emotion.frontend.face import DEFAULT_MODEL_PATH, DETECTORS, FaceTracker
from edge_emotion.sources import VideoFileSource

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
RUNTIMES = ["onnxruntime"] + (["openvino"] if HAS_OPENVINO else [])
CLIPS = (
    "crema-d/video/1001_DFA_ANG_XX.flv",
    "crema-d/video/1001_DFA_HAP_XX.flv",
    "crema-d/video/1001_DFA_NEU_XX.flv",
    "ravdess/av/01-01-01-01-01-01-01.mp4",
)


def test_anchors_are_the_ssd_grid():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # two per cell of the 16 x 16 map first, then six per cell of the 8 x 8 map
    assert np.allclose(anchors[0], [1 / 32, 1 / 32]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], [3 / 32, 1 / 32])
    assert np.allclose(anchors[512], [1 / 16, 1 / 16]) and np.allclose(anchors[517], anchors[512])
    assert np.allclose(anchors[-1], [15 / 16, 15 / 16])
    assert anchors.min() > 0 and anchors.max() < 1


def test_weighted_nms_merges_overlapping_boxes_by_score():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5.0, 5.0, 6.0, 6.0]], np.float32)
    keypoints = np.arange(3 * 6 * 2, dtype=np.float32).reshape(3, 6, 2)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    found = weighted_nms(boxes, keypoints, scores, 0.3)
    assert [round(s, 2) for _, s, _ in found] == [0.9, 0.7]  # best first, the best box's score
    merged_box, _, merged_points = found[0]
    expected = (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5
    assert np.allclose(merged_box, expected)
    assert np.allclose(merged_points, (keypoints[0] * 0.6 + keypoints[1] * 0.9) / 1.5)
    assert np.allclose(found[1][0], boxes[2])  # alone: unchanged


def test_weighted_nms_stops_at_a_best_box_without_area_as_mediapipe_does():
    boxes = np.array([[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.3, 0.3]], np.float32)  # the best has no area
    found = weighted_nms(boxes, np.zeros((2, 6, 2), np.float32), np.array([0.8, 0.7], np.float32), 0.3)
    assert len(found) == 1 and np.allclose(found[0][0], boxes[0])


class _FixedOutputs:
    """Stands in for the network: the same raw outputs whatever the input."""

    name = "fixed"

    def __init__(self, detector: BlazeFaceDetector, regressors: np.ndarray, logits: np.ndarray):
        self.input_specs, self.output_specs = detector.backend.input_specs, detector.backend.output_specs
        self._out = {detector._regressors: regressors[None], detector._scores: logits[None, :, None]}

    def run(self, inputs):
        return self._out


def test_boxes_of_negative_or_unknown_size_are_dropped():
    """MediaPipe drops decoded boxes with a negative (or NaN) width or height before suppression."""
    detector = BlazeFaceDetector(runtime="onnxruntime")
    regressors = np.zeros((896, 16), np.float32)
    logits = np.full(896, -50.0, np.float32)
    regressors[100, :4] = [0, 0, 20, 20]  # a good 20 x 20 px box (of the 128 px input) at anchor 100
    regressors[300, :4] = [0, 0, -20, 20]  # negative width
    regressors[700, :4] = [0, 0, 20, np.nan]  # unknown height
    logits[[100, 300, 700]] = 5.0
    detector.backend = _FixedOutputs(detector, regressors, logits)
    found = detector.detect(np.zeros((128, 128, 3), np.uint8))
    assert len(found) == 1
    (x, y, w, h), score, points = found[0]
    centre = ssd_anchors()[100] * 128
    assert (w, h) == (20, 20) and abs(x + w / 2 - centre[0]) <= 1 and abs(y + h / 2 - centre[1]) <= 1
    assert score == pytest.approx(1 / (1 + np.exp(-5.0)))


def test_detectors_share_one_network_across_threads():
    a, b = BlazeFaceDetector(runtime="onnxruntime"), BlazeFaceDetector(runtime="onnxruntime")
    assert a.backend is b.backend
    other = []
    worker = threading.Thread(target=lambda: other.append(BlazeFaceDetector(runtime="onnxruntime").backend))
    worker.start()
    worker.join()
    assert other and other[0] is a.backend
    frame = np.zeros((96, 128, 3), np.uint8)
    results = []
    workers = [threading.Thread(target=lambda: results.append(a.detect(frame))) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == [[]] * 4


# MediaPipe 1.2.3's FaceDetector task on every 10th frame of the packaged sample clip (0, 400, ...,
# 2800 ms): the primary face's box and score. The SDK's detector must find the same.
SAMPLE_BOXES = [
    (109, 55, 102, 102),
    (109, 53, 103, 103),
    (107, 52, 105, 105),
    (105, 52, 103, 103),
    (99, 46, 108, 108),
    (93, 43, 110, 110),
    (89, 41, 112, 112),
    (86, 40, 114, 114),
]
SAMPLE_SCORES = [0.9636, 0.9599, 0.9544, 0.9542, 0.9363, 0.9817, 0.9825, 0.9876]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_sample_clips_faces_are_where_mediapipe_finds_them(runtime):
    """Needs neither the shared data nor MediaPipe: the packaged clip against MediaPipe's boxes."""
    frames = list(VideoFileSource(SAMPLE_CLIP))[::10]
    with FaceTracker(EDGE.visual, running_mode="image", detector=runtime) as tracker:
        found = [tracker.detect(frame.image, 0) for frame in frames]
    assert [o.n_faces for o in found] == [1] * len(SAMPLE_BOXES)
    gaps = np.abs(np.subtract([o.bbox for o in found], SAMPLE_BOXES))
    assert gaps.max() <= 1, gaps
    assert np.abs(np.subtract([o.score for o in found], SAMPLE_SCORES)).max() < 0.002


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_face_in_flat_or_noisy_frames(runtime):
    detector = BlazeFaceDetector(runtime=runtime)
    assert detector.runtime == runtime
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []
    with pytest.raises(InputError):
        detector.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(InputError):
        detector.detect(np.zeros((10, 10), np.uint8))


def test_choices_and_refusals():
    assert DETECTORS[0] == "auto"
    with pytest.raises(ValueError, match="runtime"):
        BlazeFaceDetector(runtime="mediapipe")
    with pytest.raises(ValueError, match="detector"):
        FaceTracker(EDGE.visual, detector="tflite")
    with FaceTracker(EDGE.visual) as tracker:
        assert tracker.detector == ("openvino" if HAS_OPENVINO else "onnxruntime")
    with FaceTracker(EDGE.visual, detector="onnxruntime") as tracker:
        assert tracker.detector == "onnxruntime"


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (it reads the .tflite original itself)")
def test_the_onnx_network_is_the_tflite_network():
    """The carried ONNX file (``tools/convert_face_detector.py``) computes what the ``.tflite``
    MediaPipe runs computes, both read by OpenVINO."""
    nhwc = BlazeFaceDetector(runtime="openvino", model_path=DEFAULT_MODEL_PATH)
    nchw = BlazeFaceDetector(runtime="openvino", model_path=ONNX_MODEL_PATH)
    rng = np.random.default_rng(1)
    for _ in range(4):
        frame = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        a = nhwc.backend.run({nhwc._input: nhwc.input_tensor(frame)})
        b = nchw.backend.run({nchw._input: nchw.input_tensor(frame)})
        for name, value in a.items():
            assert np.abs(value - b[name]).max() < 1e-4


_WITHOUT_MEDIAPIPE = """
import sys
import numpy as np
from edge_emotion.config import EDGE
from edge_emotion.frontend.face import FaceTracker

with FaceTracker(EDGE.visual, running_mode="video") as tracker:
    observation = tracker.detect(np.zeros((96, 128, 3), np.uint8), 0)
assert observation.status == "no_face", observation
loaded = sorted(m for m in ("mediapipe", "matplotlib", "sounddevice") if m in sys.modules)
assert not loaded, loaded
print("ok")
"""


def test_the_default_detector_needs_no_mediapipe():
    """The SDK's detector loads and runs without importing MediaPipe (nor what MediaPipe pulls in)."""
    done = fresh_python(_WITHOUT_MEDIAPIPE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def _real_frames(shared_data) -> list[np.ndarray]:
    """Every other frame of the real clips, then variants: a quarter turn, a third of the size, a
    narrow strip, and two clips side by side (two faces)."""
    frames, firsts = [], []
    for name in CLIPS:
        path = shared_data / name
        if not path.is_file():
            pytest.skip(f"real clip not found: {path}")
        clip = [f.image for i, f in enumerate(VideoFileSource(path)) if i % 2 == 0]
        frames += clip
        firsts.append(clip[len(clip) // 2])
    import cv2

    variants = []
    for frame in frames[::10]:
        variants.append(np.ascontiguousarray(np.rot90(frame)))
        variants.append(cv2.resize(frame, (frame.shape[1] // 3, frame.shape[0] // 3), interpolation=cv2.INTER_AREA))
        variants.append(np.ascontiguousarray(frame[:, : frame.shape[1] // 2]))
    a, b = firsts[0], firsts[-1]
    height = min(a.shape[0], b.shape[0])
    variants.append(np.ascontiguousarray(np.hstack([a[:height], b[:height]])))
    return frames + variants


@pytest.mark.skipif(HAS_MEDIAPIPE, reason="mediapipe is installed here")
def test_mediapipes_task_without_mediapipe_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"edge-emotion\[mediapipe\]"):
        FaceTracker(EDGE.visual, detector="mediapipe")


@needs_mediapipe
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detections_are_mediapipes(shared_data, runtime):
    """On real frames the SDK's detector finds the faces MediaPipe's task finds, with the same
    boxes within a pixel (a few pixels at most, on a few), scores and keypoints."""
    frames = _real_frames(shared_data)
    ours = FaceTracker(EDGE.visual, running_mode="image", detector=runtime)
    theirs = FaceTracker(EDGE.visual, running_mode="image", detector="mediapipe")
    box_gaps, score_gaps, point_gaps, faces = [], [], [], 0
    with ours, theirs:
        for frame in frames:
            a = theirs.detect_all(frame, 0)
            b = ours.detect_all(frame, 0)
            assert len(a) == len(b)
            for face in a:
                match = min(b, key=lambda o: sum(abs(p - q) for p, q in zip(o.bbox, face.bbox, strict=True)))
                box_gaps.append(max(abs(p - q) for p, q in zip(match.bbox, face.bbox, strict=True)))
                score_gaps.append(abs(match.score - face.score))
                point_gaps.append(float(np.abs(np.subtract(match.keypoints, face.keypoints)).max()))
                faces += 1
    assert faces >= 150
    box_gaps = np.array(box_gaps)
    assert np.mean(box_gaps <= 1) >= 0.98, np.bincount(box_gaps)
    assert box_gaps.max() <= 4
    assert max(score_gaps) < 0.01
    assert max(point_gaps) < 5.0
