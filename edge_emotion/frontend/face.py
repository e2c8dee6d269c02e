"""Face detection and tracking (MediaPipe's short-range BlazeFace), and the face crop the visual
encoder takes.

The detector is the short-range BlazeFace model carried in ``edge_emotion/assets`` (Apache-2.0, see
``LICENSE-mediapipe.txt``); nothing is downloaded. By default the SDK runs it itself
(:mod:`edge_emotion.frontend.blazeface`: OpenVINO or ONNX Runtime, with MediaPipe's pre- and
post-processing), at about 60 % of the CPU of MediaPipe's ``FaceDetector`` task, which stays available
as ``detector="mediapipe"`` (the ``mediapipe`` extra). MediaPipe is imported when a
:class:`FaceTracker` that needs it is built, OpenCV when a frame is first detected or cropped, not
when this module is imported; matplotlib, which MediaPipe imports for a plotting helper, is not
imported at all (:func:`~edge_emotion._offline.mediapipe_imported_quietly`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._offline import mediapipe_imported_quietly, mediapipe_upload_blocked
from .._quiet import native_stderr_silenced
from ..config import VisualConfig
from ..errors import InputError, MissingDependencyError

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "face_detection_short_range.tflite"

RUNNING_MODES = ("image", "video", "live_stream")
#: What runs the detector: the SDK's own BlazeFace (``"auto"``: OpenVINO when installed, else ONNX
#: Runtime; or either by name), or MediaPipe's ``FaceDetector`` task. Their boxes agree within a
#: pixel but for rare outliers (``tests/test_blazeface.py``); the SDK's costs about 60 % of the CPU
#: (BENCHMARKS.md §4).
DETECTORS = ("auto", "openvino", "onnxruntime", "mediapipe")
DEFAULT_DETECTOR = "auto"
SELECTIONS = ("largest", "stable")
#: ``FaceObservation.status`` values. Only "ok" is usable.
STATUSES = ("ok", "no_face", "too_small", "out_of_frame")
#: A face with less than this fraction of its box inside the frame is "out_of_frame".
MIN_INSIDE_FRACTION = 0.5
#: How long ``detect`` waits for MediaPipe's answer in live-stream mode.
LIVE_STREAM_TIMEOUT_S = 2.0
#: Frames whose longer side exceeds this many pixels are shrunk (keeping the aspect ratio) before
#: they reach the detector, and its boxes are scaled back: MediaPipe's task aborts the process on a
#: side of 32767 px or more, OpenCV's warp refuses such sides too, and the detector sees 128 x 128 px
#: whatever the frame's size.
MAX_DETECTOR_SIDE = 8192

#: A stream's face detector runs on one of the model's frames in this many while it finds faces
#: (``detect_every`` of :class:`FaceTracker`, ``RecognizerOptions``, ``run --detect-every``). 1, every
#: frame, as training preprocessed its clips: larger values save CPU on files but change face-only
#: labels (BENCHMARKS.md measures both), and live, detection at 10 fps costs a few % of one core.
DEFAULT_DETECT_EVERY = 1

Box = tuple[int, int, int, int]
Point = tuple[float, float]
#: The order of BlazeFace's six keypoints in ``FaceObservation.keypoints``.
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class FaceObservation:
    """What the tracker saw in one frame.

    ``status``: "ok" (a usable primary face; also when several faces are present, see
    ``n_faces``), "no_face", "too_small" (the longer side is under ``VisualConfig.min_face_px``)
    or "out_of_frame" (less than half of the face box lies inside the frame). ``bbox`` ``(x, y, w,
    h)`` is the primary face in source-frame pixels, clipped to the frame (None when no face);
    ``score`` its detection score (0 when none); ``at_border`` whether the unclipped box touches or
    crosses the frame's edge. ``keypoints``: the detector's six points (:data:`KEYPOINTS` order)
    as ``(x, y)`` in source-frame pixels, unclipped; empty when the detector gave none.
    ``detected_ms``: the timestamp of the frame the detector found this face in — earlier than
    ``timestamp_ms`` when the face was carried from an earlier detection (``FaceTracker``'s
    ``detect_every``); None means the same frame.
    """

    timestamp_ms: int
    status: str
    bbox: Box | None = None
    score: float = 0.0
    n_faces: int = 0
    at_border: bool = False
    keypoints: tuple[Point, ...] = ()
    detected_ms: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if (self.bbox is None) != (self.n_faces == 0):
            raise ValueError("bbox is None exactly when no face was found")

    @property
    def usable(self) -> bool:
        return self.status == "ok"

    @property
    def found_ms(self) -> int:
        """When the detector found this face: ``detected_ms``, or ``timestamp_ms`` when that is None."""
        return self.timestamp_ms if self.detected_ms is None else self.detected_ms

    def keypoint(self, name: str) -> Point | None:
        """The keypoint ``name`` (one of :data:`KEYPOINTS`) in source pixels, or None."""
        index = KEYPOINTS.index(name)
        return self.keypoints[index] if index < len(self.keypoints) else None


def _iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _converted(detections: list[Any], width: int, height: int) -> list[_Detection]:
    """MediaPipe detections on an image of ``width`` x ``height`` -> ``[(box, score, keypoints)]``
    in that image's pixels."""
    found: list[_Detection] = []
    for det in detections:
        b = det.bounding_box
        score = float(det.categories[0].score) if det.categories else 0.0
        points = tuple((float(k.x) * width, float(k.y) * height) for k in (det.keypoints or ()))
        found.append(((int(b.origin_x), int(b.origin_y), int(b.width), int(b.height)), score, points))
    return found


def _clip(box: Box, width: int, height: int) -> Box:
    x, y, w, h = box
    x0, y0 = min(max(0, x), width), min(max(0, y), height)
    x1, y1 = min(width, x + w), min(height, y + h)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def observe(
    timestamp_ms: int,
    raw_bbox: Box,
    score: float,
    n_faces: int,
    width: int,
    height: int,
    visual: VisualConfig,
    keypoints: tuple[Point, ...] = (),
    detected_ms: int | None = None,
) -> FaceObservation:
    """The observation of a primary face whose unclipped box is ``raw_bbox`` in a ``width`` x
    ``height`` frame: clipped box, ``at_border``, and status "out_of_frame" (under
    :data:`MIN_INSIDE_FRACTION` of the box inside), "too_small" (longer side under
    ``visual.min_face_px``) or "ok"."""
    clipped = _clip(raw_bbox, width, height)
    x, y, w, h = raw_bbox
    at_border = x <= 0 or y <= 0 or x + w >= width or y + h >= height
    inside = clipped[2] * clipped[3] / max(1, w * h)
    if inside < MIN_INSIDE_FRACTION or clipped[2] == 0 or clipped[3] == 0:
        status = "out_of_frame"
    elif max(w, h) < visual.min_face_px:
        status = "too_small"
    else:
        status = "ok"
    found = None if detected_ms is None or detected_ms == timestamp_ms else int(detected_ms)
    return FaceObservation(timestamp_ms, status, clipped, float(score), n_faces, at_border, tuple(keypoints), found)


def decode_image(data: bytes) -> np.ndarray | None:
    """Encoded image bytes (JPEG, PNG, ...) -> ``(H, W) uint8`` grey or ``(H, W, 3) uint8`` RGB, or
    None when they do not decode. Alpha is dropped."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is not None and image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    return image


#: Detector runs with stderr silenced: LiteRT logs its delegate on the first and, when a tensor it
#: allocated is not aligned as it wants (it varies from process to process), says so on the second.
QUIET_RUNS = 3


def _aligned(frame: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``frame`` whose buffer starts on an ``alignment``-byte boundary:
    LiteRT otherwise copies the frame again and logs that it did, from native code."""
    buffer = np.empty(frame.nbytes + alignment, np.uint8)
    offset = (-buffer.ctypes.data) % alignment
    out = buffer[offset : offset + frame.nbytes].view(frame.dtype).reshape(frame.shape)
    out[...] = frame
    return out


_Detection = tuple[Box, float, tuple[Point, ...]]  # unclipped box, score, keypoints in pixels


def check_detect_every(value) -> int:
    """``detect_every`` must be a whole number >= 1 (:class:`~edge_emotion.errors.InputError`)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"detect_every must be a whole number of at least 1, got {value!r}")
    return value


class FaceTracker:
    """Finds the primary face in each frame and follows it.

    ``running_mode``: "image" (frames are unrelated), "video" (decoded frames, synchronous) or
    "live_stream" (for MediaPipe's task, its asynchronous mode: ``detect`` submits the frame and
    waits for its result; the SDK's detector answers at once in every mode). In video and
    live-stream modes ``timestamp_ms`` must strictly increase, else
    :class:`~edge_emotion.errors.InputError` (a ``ValueError``, MediaPipe's convention). A frame
    without pixels (0 x N) is refused the same way, before the detector, which stays usable; a
    frame with a side over :data:`MAX_DETECTOR_SIDE` is shrunk for the detector. ``select``:
    "largest" face, or "stable" — the face overlapping most (IoU) with the previous primary face,
    else the largest. Detections under ``visual.min_detection_score`` are discarded.
    ``detector``: one of :data:`DETECTORS`. ``model_path`` defaults to the carried short-range
    BlazeFace model (ONNX for the SDK's detector, ``.tflite`` for MediaPipe's). No face, several faces, a
    face at the border and a tiny face are statuses of the returned :class:`FaceObservation`,
    never exceptions.

    ``detect_every`` N > 1 runs the detector on one frame in N while it finds faces: the N - 1
    frames after a detection get that detection's faces (boxes, scores, keypoints) again, under
    their own timestamps, so a face is followed with at most N - 1 frames of lag. A frame after a
    detection that found no face, or of another size, is always detected, so a face that comes into
    view is found on the next frame. The detector is the front end's largest cost per frame; at a
    stream's 10 fps, ``detect_every=3`` detects every 300 ms (see BENCHMARKS.md for what it changes).
    """

    def __init__(
        self,
        visual: VisualConfig,
        running_mode: str = "video",
        select: str = "largest",
        model_path: str | os.PathLike | None = None,
        detect_every: int = 1,
        detector: str = DEFAULT_DETECTOR,
    ):
        if running_mode not in RUNNING_MODES:
            raise ValueError(f"running_mode must be one of {RUNNING_MODES}, got {running_mode!r}")
        if select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        check_detect_every(detect_every)
        self.visual = visual
        self.running_mode = running_mode
        self.select = select
        self.detect_every = int(detect_every)
        self._carried: tuple[tuple[int, int], list[_Detection]] | None = None  # (frame size, faces) to reuse
        self._detected_ms: int | None = None  # the frame the detector last ran on
        self._carries = 0  # frames given the carried faces since the last detection
        self._previous: Box | None = None
        self._last_ms: int | None = None
        self._results: dict[int, Any] = {}
        self._result_ready = threading.Condition()
        self._quiet_runs = 0
        self._detector: Any = None  # a BlazeFaceDetector, or MediaPipe's task when detector == "mediapipe"
        if detector != "mediapipe":
            from .blazeface import BlazeFaceDetector

            self._detector = BlazeFaceDetector(visual.min_detection_score, runtime=detector, model_path=model_path)
            #: what runs the detector: "openvino", "onnxruntime" or "mediapipe"
            self.detector = self._detector.runtime
            return
        self.detector = "mediapipe"
        try:
            with mediapipe_imported_quietly():  # no PortAudio, no matplotlib caches (edge_emotion/_offline.py)
                from mediapipe.tasks.python.core.base_options import BaseOptions
                from mediapipe.tasks.python.vision import FaceDetector, FaceDetectorOptions, RunningMode
        except ImportError as exc:
            raise MissingDependencyError("mediapipe", "mediapipe", 'detector="mediapipe"') from exc

        path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        if not path.is_file():
            raise FileNotFoundError(f"face detection model not found: {path}")
        mode = {"image": RunningMode.IMAGE, "video": RunningMode.VIDEO, "live_stream": RunningMode.LIVE_STREAM}
        options = FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=mode[running_mode],
            min_detection_confidence=visual.min_detection_score,
            result_callback=self._on_result if running_mode == "live_stream" else None,
        )
        with native_stderr_silenced():
            self._detector = FaceDetector.create_from_options(options)
        self._quiet_runs = QUIET_RUNS

    def _on_result(self, result: Any, image: Any, timestamp_ms: int) -> None:
        with self._result_ready:
            self._results[int(timestamp_ms)] = result
            self._result_ready.notify_all()

    def _run(self, frame_rgb: np.ndarray, timestamp_ms: int) -> list[_Detection] | None:
        """The detector on one frame: its detections in the frame's pixels (None: no answer)."""
        if max(frame_rgb.shape[:2]) > MAX_DETECTOR_SIDE:
            return self._run_shrunk(frame_rgb, timestamp_ms)
        if self.detector != "mediapipe":
            return self._detector.detect(frame_rgb)
        import mediapipe as mp

        height, width = frame_rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=_aligned(frame_rgb))
        if self.running_mode == "image":
            return _converted(self._detector.detect(image).detections, width, height)
        if self.running_mode == "video":
            return _converted(self._detector.detect_for_video(image, timestamp_ms).detections, width, height)
        self._detector.detect_async(image, timestamp_ms)
        with self._result_ready:
            if not self._result_ready.wait_for(lambda: timestamp_ms in self._results, LIVE_STREAM_TIMEOUT_S):
                log.warning("face detector gave no result for the frame at %d ms", timestamp_ms)
                return None
            result = self._results.pop(timestamp_ms)
            self._results.clear()
            return _converted(result.detections, width, height)

    def _run_shrunk(self, frame_rgb: np.ndarray, timestamp_ms: int) -> list[_Detection] | None:
        """:meth:`_run` on the frame shrunk to a longer side of :data:`MAX_DETECTOR_SIDE`, with
        the boxes and keypoints scaled back to the frame's pixels."""
        import cv2

        height, width = frame_rgb.shape[:2]
        scale = MAX_DETECTOR_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(np.ascontiguousarray(frame_rgb), size, interpolation=cv2.INTER_AREA)
        detections = self._run(small, timestamp_ms)
        if detections is None:
            return None
        sx, sy = width / size[0], height / size[1]
        return [
            (
                (round(x * sx), round(y * sy), round(w * sx), round(h * sy)),
                score,
                tuple((px * sx, py * sy) for px, py in points),
            )
            for (x, y, w, h), score, points in detections
        ]

    def _detections(self, frame_rgb: np.ndarray, timestamp_ms: int) -> list[_Detection]:
        """Check the frame and the clock, run the detector: every detection above the score."""
        if self._detector is None:
            raise RuntimeError("the FaceTracker is closed")
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"frame_rgb must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise InputError(f"frame_rgb has no pixels: shape {frame.shape}")
        timestamp_ms = int(timestamp_ms)
        if self.running_mode != "image" and self._last_ms is not None and timestamp_ms <= self._last_ms:
            raise InputError(
                f"timestamp_ms must strictly increase in {self.running_mode} mode: {timestamp_ms} after {self._last_ms}"
            )
        self._last_ms = timestamp_ms
        size = (frame.shape[0], frame.shape[1])
        if self._carried is not None and self._carried[0] == size and self._carries < self.detect_every - 1:
            self._carries += 1
            return list(self._carried[1])
        detections = self._detect_now(frame, timestamp_ms)
        self._detected_ms = timestamp_ms
        self._carried = (size, detections) if detections and self.detect_every > 1 else None
        self._carries = 0
        return list(detections)

    def _detect_now(self, frame: np.ndarray, timestamp_ms: int) -> list[_Detection]:
        if self._quiet_runs > 0:  # LiteRT logs its delegate and memory alignment on its first runs
            with native_stderr_silenced():
                detections = self._run(frame, timestamp_ms) or []
            self._quiet_runs -= 1
        else:
            detections = self._run(frame, timestamp_ms) or []
        return list(detections)

    def detect(self, frame_rgb: np.ndarray, timestamp_ms: int) -> FaceObservation:
        """``frame_rgb`` ``(H, W, 3) uint8`` taken at ``timestamp_ms`` -> the primary face."""
        timestamp_ms = int(timestamp_ms)
        found = self._detections(frame_rgb, timestamp_ms)
        if not found:  # the previous primary face is kept: "stable" follows it after a miss
            return FaceObservation(timestamp_ms, "no_face")
        raw, score, points = self._choose(found)
        self._previous = raw
        height, width = np.asarray(frame_rgb).shape[:2]
        return observe(timestamp_ms, raw, score, len(found), width, height, self.visual, points, self._detected_ms)

    def detect_all(self, frame_rgb: np.ndarray, timestamp_ms: int) -> list[FaceObservation]:
        """``frame_rgb`` ``(H, W, 3) uint8`` taken at ``timestamp_ms`` -> every detected face,
        largest first, each with its own status (usable or not) and ``n_faces`` the number found.
        Frames and timestamps follow the rules of :meth:`detect`; the two may be mixed on one clock,
        but ``select="stable"`` follows only what :meth:`detect` chose."""
        timestamp_ms = int(timestamp_ms)
        found = self._detections(frame_rgb, timestamp_ms)
        height, width = np.asarray(frame_rgb).shape[:2]
        found.sort(key=lambda item: -item[0][2] * item[0][3])
        return [
            observe(timestamp_ms, raw, score, len(found), width, height, self.visual, points, self._detected_ms)
            for raw, score, points in found
        ]

    def _choose(self, boxes: list[_Detection]) -> _Detection:
        def area(item: _Detection) -> int:
            return item[0][2] * item[0][3]

        if self.select == "stable" and self._previous is not None:
            overlaps = [_iou(box, self._previous) for box, _, _ in boxes]
            best = int(np.argmax(overlaps))
            if overlaps[best] > 0:
                return boxes[best]
        return max(boxes, key=area)

    def close(self) -> None:
        if self._detector is not None and self.detector == "mediapipe":
            # MediaPipe uploads a usage record on close; it goes nowhere (edge_emotion/_offline.py)
            with native_stderr_silenced(), mediapipe_upload_blocked():
                self._detector.close()
        self._detector = None  # the SDK's detector shares its loaded network: nothing to close

    def __del__(self) -> None:
        if getattr(self, "_detector", None) is not None:  # closed here, not by MediaPipe's own __del__
            with contextlib.suppress(Exception):
                self.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _to_input(image_rgb_or_grey: np.ndarray, visual: VisualConfig) -> np.ndarray:
    """Resize a face image to ``crop_size`` (INTER_AREA shrinking, INTER_LINEAR enlarging), grey
    if asked (ITU-R 601 luma on 3 channels), scale to [0, 1], normalise, CHW float32."""
    import cv2

    image = np.ascontiguousarray(image_rgb_or_grey)
    size = visual.crop_size
    if image.shape[0] != size or image.shape[1] != size:
        shrinking = image.shape[0] > size or image.shape[1] > size
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    x = image.astype(np.float32) / np.float32(255.0)
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    elif visual.grayscale:
        luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x = np.repeat(luma[:, :, None], 3, axis=2)
    mean = np.asarray(visual.mean, np.float32)
    std = np.asarray(visual.std, np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1), dtype=np.float32)


def crop_box(bbox: Box, margin: float) -> Box:
    """The square crop for a face box: centred on the box, side ``max(w, h) * (1 + margin)``
    (at least 1 px), in source pixels; it may extend past the frame."""
    x, y, w, h = bbox
    side = max(1, int(round(max(w, h) * (1 + margin))))
    cx, cy = x + w / 2, y + h / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side, side


def crop_face(frame_rgb: np.ndarray, bbox: Box, visual: VisualConfig) -> np.ndarray:
    """The visual encoder's input for one face: ``(3, S, S) float32`` with ``S = crop_size``.

    ``frame_rgb`` ``(H, W, 3) uint8``; ``bbox`` ``(x, y, w, h)`` in its pixels. The square of
    :func:`crop_box` is cut out; its parts outside the frame are filled with the normalisation
    mean colour (``round(255 * visual.mean)``, so they are 0 after normalising). Then it is
    resized, made grey if ``visual.grayscale``, scaled to [0, 1] and normalised with
    ``visual.mean`` / ``visual.std`` like :func:`face_image_to_input`.
    """
    frame = np.asarray(frame_rgb)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame_rgb must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    height, width = frame.shape[:2]
    x0, y0, side, _ = crop_box(bbox, visual.margin)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(width, x0 + side), min(height, y0 + side)
    if fx0 == x0 and fy0 == y0 and fx1 == x0 + side and fy1 == y0 + side:
        square = frame[y0 : y0 + side, x0 : x0 + side]
    else:
        fill = np.round(255 * np.asarray(visual.mean)).astype(np.uint8)
        square = np.empty((side, side, 3), np.uint8)
        square[:] = fill
        if fx1 > fx0 and fy1 > fy0:
            square[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    return _to_input(square, visual)


def face_image_to_input(image: np.ndarray, visual: VisualConfig) -> np.ndarray:
    """An image that already is a face crop (FER2013's 48x48 grey faces) -> ``(3, S, S) float32``,
    with the same resize, grey conversion and normalisation as :func:`crop_face`.

    ``image``: ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8. A grey image is repeated on 3 channels.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"image must be (H, W) or (H, W, 3) uint8, got {img.shape} {img.dtype}")
    return _to_input(img, visual)


__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_MODEL_PATH",
    "DETECTORS",
    "KEYPOINTS",
    "STATUSES",
    "FaceObservation",
    "FaceTracker",
    "observe",
    "crop_box",
    "crop_face",
    "face_image_to_input",
]
