"""Several faces at once: every usable face of a frame, each with a track id that stays the same
while that face stays in view.

:class:`FaceTracks` is the bookkeeping (pure Python, no detector): it takes the faces a detector
found in one frame and matches them to the tracks of the previous frames, by box overlap (IoU)
first and by the distance of the box centres second. A face that matches no track starts a new
one with the next id; a track unseen for longer than ``TrackConfig.max_gap_ms`` ends, and the face
gets a new id if it comes back. :class:`MultiFaceTracker` runs a
:class:`~edge_emotion.frontend.face.FaceTracker` and a :class:`FaceTracks` together.

With ``max_faces=1`` the face followed is exactly the primary face of
:meth:`FaceTracker.detect <edge_emotion.frontend.face.FaceTracker.detect>` (largest, or
``select="stable"``), so one-person behaviour does not change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..config import VisualConfig
from .face import DEFAULT_DETECTOR, Box, FaceObservation, FaceTracker, _iou

#: A face whose box overlaps a track's last box by at least this IoU is that track's face.
MIN_IOU = 0.3
#: Failing that, a face whose centre lies within this many face sizes (the longer side of the
#: track's last box) of the track's last centre is that track's face — per :data:`SHIFT_STEP_MS`
#: between the two detections compared (a stream's frames at 10 fps), up to :data:`MAX_SHIFT_STEPS`
#: steps: a face detected again 300 ms after its last detection (``detect_every=3``) may have moved
#: three times as far as one detected 100 ms after.
MAX_CENTRE_SHIFT = 0.5
SHIFT_STEP_MS = 100
MAX_SHIFT_STEPS = 5


@dataclass(frozen=True)
class TrackConfig:
    """``max_faces``: at most this many faces are followed per frame (the faces already followed
    first, then the largest). ``max_gap_ms``: a track unseen for longer than this ends; the model's
    window (3 s for both presets) is a natural choice, so a face that leaves for less than a window
    keeps its id. ``min_iou`` / ``max_centre_shift``: the matching rules (see the module)."""

    max_faces: int = 1
    max_gap_ms: int = 3000
    min_iou: float = MIN_IOU
    max_centre_shift: float = MAX_CENTRE_SHIFT

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")
        if self.max_gap_ms < 0:
            raise ValueError(f"max_gap_ms must not be negative, got {self.max_gap_ms}")
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {self.min_iou}")
        if self.max_centre_shift < 0:
            raise ValueError(f"max_centre_shift must not be negative, got {self.max_centre_shift}")


@dataclass(frozen=True)
class TrackedFace:
    """One followed face in one frame: ``track_id`` (an int, unique within a :class:`FaceTracks`,
    counting from 0 in order of appearance) and the detector's ``observation`` (usable, with its
    box and keypoints)."""

    track_id: int
    observation: FaceObservation

    @property
    def bbox(self) -> Box:
        return self.observation.bbox

    @property
    def timestamp_ms(self) -> int:
        return self.observation.timestamp_ms


@dataclass
class _Track:
    track_id: int
    bbox: Box
    last_ms: int
    found_ms: int  # when the detector last found its face (earlier than last_ms on carried frames)


def _centre_distance(a: Box, b: Box) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


class FaceTracks:
    """Track ids for the usable faces of successive frames (timestamps must strictly increase).

    :meth:`update` takes every face found in a frame (unusable ones are ignored) and returns the
    followed ones, at most ``config.max_faces``, each with its track id, largest first.
    """

    def __init__(self, config: TrackConfig | None = None):
        self.config = config or TrackConfig()
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_ms: int | None = None

    @property
    def active_ids(self) -> list[int]:
        """The ids of the tracks not yet ended (seen within ``max_gap_ms`` of the last frame)."""
        return [t.track_id for t in self._tracks]

    def update(self, faces: list[FaceObservation], timestamp_ms: int) -> list[TrackedFace]:
        timestamp_ms = int(timestamp_ms)
        if self._last_ms is not None and timestamp_ms <= self._last_ms:
            raise ValueError(f"timestamp_ms must strictly increase: {timestamp_ms} after {self._last_ms}")
        self._last_ms = timestamp_ms
        cfg = self.config
        self._tracks = [t for t in self._tracks if timestamp_ms - t.last_ms <= cfg.max_gap_ms]
        usable = [f for f in faces if f.usable]

        # Match greedily: the most overlapping (track, face) pairs first, then the nearest centres.
        pairs: dict[int, _Track] = {}  # face index -> track
        taken: set[int] = set()
        candidates = []
        for ti, track in enumerate(self._tracks):
            size = max(track.bbox[2], track.bbox[3], 1)
            for fi, face in enumerate(usable):
                iou = _iou(face.bbox, track.bbox)
                shift = _centre_distance(face.bbox, track.bbox) / size
                steps = min(MAX_SHIFT_STEPS, max(1.0, (face.found_ms - track.found_ms) / SHIFT_STEP_MS))
                if iou >= cfg.min_iou:
                    candidates.append((0, -iou, ti, fi))
                elif shift <= cfg.max_centre_shift * steps:
                    candidates.append((1, shift / steps, ti, fi))
        for _, _, ti, fi in sorted(candidates):
            if ti in taken or fi in pairs:
                continue
            taken.add(ti)
            pairs[fi] = self._tracks[ti]

        def area(fi: int) -> int:
            return usable[fi].bbox[2] * usable[fi].bbox[3]

        order = sorted(range(len(usable)), key=lambda fi: (fi not in pairs, -area(fi)))[: cfg.max_faces]
        followed = []
        for fi in order:
            face = usable[fi]
            track = pairs.get(fi)
            if track is None:
                track = _Track(self._next_id, face.bbox, timestamp_ms, face.found_ms)
                self._next_id += 1
                self._tracks.append(track)
            track.bbox, track.last_ms, track.found_ms = face.bbox, timestamp_ms, face.found_ms
            followed.append(TrackedFace(track.track_id, face))
        followed.sort(key=lambda tf: -tf.bbox[2] * tf.bbox[3])
        return followed


class MultiFaceTracker:
    """A :class:`~edge_emotion.frontend.face.FaceTracker` plus :class:`FaceTracks`: frames in,
    followed faces with track ids out.

    ``track`` returns ``(faces, primary)``: the followed usable faces (at most ``max_faces``,
    largest first) and a primary observation with its status, for callers that report why no face
    was usable. With ``max_faces=1`` the primary is what :meth:`FaceTracker.detect` returns
    (largest, or ``select="stable"``) and the followed face is that primary face when it is usable,
    else none; with more, the primary is the largest face found. ``detect_every`` and ``detector``: as for
    :class:`~edge_emotion.frontend.face.FaceTracker` (faces carried between detections keep their tracks).
    """

    def __init__(
        self,
        visual: VisualConfig,
        config: TrackConfig | None = None,
        running_mode: str = "video",
        select: str = "largest",
        model_path: str | os.PathLike | None = None,
        detect_every: int = 1,
        detector: str = DEFAULT_DETECTOR,
    ):
        self.config = config or TrackConfig()
        self.detector = FaceTracker(
            visual,
            running_mode=running_mode,
            select=select,
            model_path=model_path,
            detect_every=detect_every,
            detector=detector,
        )
        self.tracks = FaceTracks(self.config)

    def track(self, frame_rgb: np.ndarray, timestamp_ms: int) -> tuple[list[TrackedFace], FaceObservation]:
        """``frame_rgb`` ``(H, W, 3) uint8`` at ``timestamp_ms`` -> ``(followed faces, primary)``."""
        timestamp_ms = int(timestamp_ms)
        if self.config.max_faces == 1:
            primary = self.detector.detect(frame_rgb, timestamp_ms)
            return self.tracks.update([primary], timestamp_ms), primary
        faces = self.detector.detect_all(frame_rgb, timestamp_ms)
        primary = faces[0] if faces else FaceObservation(timestamp_ms, "no_face")
        return self.tracks.update(faces, timestamp_ms), primary

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> MultiFaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = [
    "MIN_IOU",
    "MAX_CENTRE_SHIFT",
    "SHIFT_STEP_MS",
    "MAX_SHIFT_STEPS",
    "TrackConfig",
    "TrackedFace",
    "FaceTracks",
    "MultiFaceTracker",
]
