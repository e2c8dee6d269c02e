"""MediaPipe's short-range BlazeFace detector, run by the SDK's own runtimes.

MediaPipe's ``FaceDetector`` task spends more than the network's own compute on its graph around it
(2.8-3.8 ms a frame against 1.2 ms for the network on OpenVINO; BENCHMARKS.md, §4). This module
runs the same network (``face_detection_short_range.onnx``, converted from the carried ``.tflite``
by ``tools/convert_face_detector.py``) through OpenVINO or ONNX Runtime, and re-implements the
task's steps around it so that its detections are MediaPipe's:

1. the frame is letterboxed into the 128 x 128 input (the square of its longer side, centred, zero
   border) by a bilinear perspective warp of the uint8 pixels, scaled to [-1, 1];
2. the 896 SSD anchors (strides 8, 16, 16, 16; fixed size) decode the regressors into boxes and six
   keypoints; scores are the sigmoid of the logits clipped to +-100, kept from ``min_score`` on;
   boxes with a negative (or not finite) size are dropped;
3. weighted non-maximum suppression: the best remaining box takes every box overlapping it by an
   IoU over ``min_suppression`` and becomes their score-weighted mean (box and keypoints), with
   the best box's score;
4. boxes and keypoints are mapped from the letterbox back to the frame; a box becomes pixels by
   truncating ``relative * size`` and bounding it to ``[0, size]``, as MediaPipe does.

``tests/test_blazeface.py`` checks on real clips that the boxes are MediaPipe's within a pixel (98 %
of them at least; none more than 4 px off), and on the packaged sample clip against MediaPipe's boxes.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

ONNX_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "face_detection_short_range.onnx"
#: Which runtime runs the network: "auto" (OpenVINO when installed, else ONNX Runtime).
RUNTIMES = ("auto", "openvino", "onnxruntime")
INPUT_SIZE = 128
#: MediaPipe's defaults for the face detector task.
MIN_SUPPRESSION_THRESHOLD = 0.3
SCORE_CLIPPING = 100.0
NUM_KEYPOINTS = 6

Detection = tuple[tuple[int, int, int, int], float, tuple[tuple[float, float], ...]]


def ssd_anchors() -> np.ndarray:
    """The detector's 896 anchor centres ``(x, y)`` in [0, 1]: 2 per cell of the 16 x 16 map
    (stride 8), then 6 per cell of the 8 x 8 map (three layers of stride 16, 2 anchors each), row by
    row; every anchor is 1 x 1 (fixed size)."""
    found = []
    for cells, per_cell in ((INPUT_SIZE // 8, 2), (INPUT_SIZE // 16, 6)):
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        found.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(found).astype(np.float32)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression. ``boxes`` ``(N, 4)`` as ``(x0, y0, x1, y1)``,
    ``keypoints`` ``(N, K, 2)``, ``scores`` ``(N,)`` -> ``[(box, score, keypoints)]``, best first:
    each is the score-weighted mean of the boxes whose IoU with the best remaining one exceeds
    ``threshold`` (that box included), with the best box's score. As in MediaPipe, a best box
    without area (which overlaps nothing) is kept as it is and ends the search."""
    remaining = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    found = []
    while remaining.size:
        top = remaining[0]
        x0 = np.maximum(boxes[remaining, 0], boxes[top, 0])
        y0 = np.maximum(boxes[remaining, 1], boxes[top, 1])
        x1 = np.minimum(boxes[remaining, 2], boxes[top, 2])
        y1 = np.minimum(boxes[remaining, 3], boxes[top, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = areas[remaining] + areas[top] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        merged = iou > threshold
        members = remaining[merged]
        if members.size == 0:  # a best box without area overlaps nothing, itself included: MediaPipe
            found.append((boxes[top], float(scores[top]), keypoints[top]))  # keeps it and stops there
            break
        weights = scores[members]
        total = weights.sum()
        box = (boxes[members] * weights[:, None]).sum(axis=0) / total
        points = (keypoints[members] * weights[:, None, None]).sum(axis=0) / total
        found.append((box, float(scores[top]), points))
        remaining = remaining[~merged]
    return found


class BlazeFaceDetector:
    """The short-range BlazeFace network with MediaPipe's pre- and post-processing (module
    docstring). ``runtime``: one of :data:`RUNTIMES`; the network runs on one CPU thread, in FP32
    (OpenVINO is told so: it would otherwise compute in bf16 on CPUs that have it). ``model_path``:
    the network as ONNX (NCHW input) or, with OpenVINO, the ``.tflite`` (NHWC input).

    :meth:`detect` takes an ``(H, W, 3) uint8`` RGB frame and returns every face with a score of
    at least ``min_score``: ``((x, y, w, h), score, keypoints)``, the box in frame pixels as
    MediaPipe reports it (origin and size truncated to whole pixels, bounded to the frame) and the
    six keypoints in frame pixels, unbounded.
    """

    def __init__(
        self,
        min_score: float = 0.5,
        runtime: str = "auto",
        model_path: str | os.PathLike | None = None,
        min_suppression: float = MIN_SUPPRESSION_THRESHOLD,
    ):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        path = Path(model_path) if model_path is not None else ONNX_MODEL_PATH
        if not path.is_file():
            raise FileNotFoundError(f"face detection model not found: {path}")
        self.min_score = float(min_score)
        self.min_suppression = float(min_suppression)
        self.backend = self._load(path, runtime)
        self.runtime = self.backend.name
        spec = self.backend.input_specs[0]
        self._input = spec.name
        self._nchw = tuple(spec.shape[1:]) == (3, INPUT_SIZE, INPUT_SIZE)
        if not self._nchw and tuple(spec.shape[1:]) != (INPUT_SIZE, INPUT_SIZE, 3):
            raise InputError(f"{path.name}: expected a 1 x 128 x 128 x 3 input (either layout), got {spec.shape}")
        names = [o.name for o in self.backend.output_specs]
        # the regressors (896 x 16) and the scores (896 x 1), told apart by their last axis
        shapes = {o.name: o.shape for o in self.backend.output_specs}
        self._regressors = next(n for n in names if shapes[n][-1] == 4 + 2 * NUM_KEYPOINTS)
        self._scores = next(n for n in names if shapes[n][-1] == 1)
        self._anchors = ssd_anchors()
        self._warps: dict[tuple[int, int], tuple[np.ndarray, float, float, float]] = {}

    @staticmethod
    def _load(path: Path, runtime: str):
        """The network loaded on ``runtime``, once per process: every detector shares it, so a new
        stream's detector costs nothing to make (compiling took 0.1-0.2 s, a thirtieth of a 6-s
        clip's run). Both backends take calls from several threads at once (ONNX Runtime runs them
        in parallel; OpenVINO's calls take turns on the plugin's inference thread whether or not the
        threads share a compiled graph, letting Python's GIL go meanwhile: BENCHMARKS.md §4). One
        copy per thread was tried:
        the full test suite's process then died (exit status 127, twice, in the same live-session
        test, which passes alone), so the copies stay shared."""
        key = (str(path.resolve()), runtime)
        with _LOADED_LOCK:
            if key not in _LOADED:
                _LOADED[key] = _load_backend(path, runtime)
            return _LOADED[key]

    def _warp(self, height: int, width: int) -> tuple[np.ndarray, float, float, float]:
        """The letterbox of a ``width`` x ``height`` frame: the perspective matrix from the frame to
        the input, and the square's centre and side in frame pixels."""
        key = (height, width)
        if key not in self._warps:
            import cv2

            if len(self._warps) >= 16:  # image mode on frames of many sizes: keep the cache small
                self._warps.clear()

            side = float(max(width, height))
            cx, cy = width / 2.0, height / 2.0
            half = side / 2.0
            # the square's corners: bottom-left, top-left, top-right, bottom-right (OpenCV's boxPoints)
            left, right, top, bottom = cx - half, cx + half, cy - half, cy + half
            src = np.float32([[left, bottom], [left, top], [right, top], [right, bottom]])
            dst = np.float32([[0, INPUT_SIZE], [0, 0], [INPUT_SIZE, 0], [INPUT_SIZE, INPUT_SIZE]])
            self._warps[key] = (cv2.getPerspectiveTransform(src, dst), cx, cy, side)
        return self._warps[key]

    def input_tensor(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The network's input for a frame: ``(1, 3, 128, 128)`` or ``(1, 128, 128, 3)`` float32."""
        import cv2

        height, width = frame_rgb.shape[:2]
        matrix = self._warp(height, width)[0]
        pixels = cv2.warpPerspective(
            np.ascontiguousarray(frame_rgb),
            matrix,
            (INPUT_SIZE, INPUT_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        x = pixels.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None] if self._nchw else x[None])

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """Every face in ``frame_rgb`` (see the class docstring), best score first."""
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or 0 in frame.shape[:2]:
            raise InputError(f"frame_rgb must be (H, W, 3) uint8 with pixels, got {frame.shape} {frame.dtype}")
        out = self.backend.run({self._input: self.input_tensor(frame)})
        raw = out[self._regressors].reshape(-1, 4 + 2 * NUM_KEYPOINTS)
        logits = np.clip(out[self._scores].reshape(-1), -SCORE_CLIPPING, SCORE_CLIPPING)
        with np.errstate(over="ignore"):
            scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        r = raw[keep] / np.float32(INPUT_SIZE)
        valid = np.isfinite(r).all(axis=1) & (r[:, 2] >= 0) & (r[:, 3] >= 0)  # MediaPipe drops the others
        keep, r = keep[valid], r[valid]
        if keep.size == 0:
            return []
        anchors = self._anchors[keep]
        xc, yc = r[:, 0] + anchors[:, 0], r[:, 1] + anchors[:, 1]
        boxes = np.stack([xc - r[:, 2] / 2, yc - r[:, 3] / 2, xc + r[:, 2] / 2, yc + r[:, 3] / 2], axis=1)
        keypoints = r[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :]
        height, width = frame.shape[:2]
        _, cx, cy, side = self._warp(height, width)
        found: list[Detection] = []
        for (x0, y0, x1, y1), score, points in weighted_nms(boxes, keypoints, scores[keep], self.min_suppression):
            # letterbox -> frame, in pixels
            fx0, fx1 = cx + (x0 - 0.5) * side, cx + (x1 - 0.5) * side
            fy0, fy1 = cy + (y0 - 0.5) * side, cy + (y1 - 0.5) * side
            box = (_bounded(fx0, width), _bounded(fy0, height), _bounded(fx1 - fx0, width), _bounded(fy1 - fy0, height))
            pts = tuple((float(cx + (px - 0.5) * side), float(cy + (py - 0.5) * side)) for px, py in points)
            found.append((box, score, pts))
        return found


_LOADED: dict[tuple[str, str], object] = {}  # (model path, runtime) -> the loaded network
_LOADED_LOCK = threading.Lock()


def _load_backend(path: Path, runtime: str):
    from ..errors import BackendError
    from ..runtimes.onnxruntime_backend import OnnxRuntimeBackend

    if runtime in ("auto", "openvino"):
        try:
            from ..runtimes.openvino_backend import OpenVinoBackend

            return OpenVinoBackend(path, device="CPU", threads=1, precision="fp32")
        except (ImportError, BackendError) as exc:  # MissingDependencyError is both
            if runtime == "openvino":
                raise
            if not isinstance(exc, ImportError):
                log.warning("face detector: OpenVINO could not load %s (%s); using ONNX Runtime", path.name, exc)
    return OnnxRuntimeBackend(path, device="cpu", threads=1)


def _bounded(value: float, upper: int) -> int:
    """MediaPipe's relative-to-pixel step: truncate toward zero, then bound to ``[0, upper]``."""
    return max(0, min(int(value), upper))


__all__ = ["ONNX_MODEL_PATH", "RUNTIMES", "BlazeFaceDetector", "ssd_anchors", "weighted_nms"]
