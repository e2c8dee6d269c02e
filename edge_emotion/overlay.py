"""The picture a kiosk shows: the camera frame with the face box, the current emotion in large type on
a dark banner, and every class's score as a bar. Pure drawing (numpy + OpenCV's raster functions), no
window: :func:`render` returns an image that :mod:`edge_emotion.display` (or any app) shows.

With several people in view, every face gets its own box and, on a tag beside it, its person id and
its own label; the tag of the face that speaks is drawn in :data:`SPEAKING_BGR`, the banner and
the score bars follow the speaker, and a voice that no visible face makes is noted as off-screen.
With one face the picture is that of one person (no tags).

Sizes scale with the output height (at least :data:`MIN_HEIGHT` px, smaller frames are enlarged) so
that the label stays about a tenth of the picture's height: readable from two metres on a laptop
screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .results import UNKNOWN_LABEL, EmotionResult, FaceInfo

#: Frames lower than this are enlarged before drawing, so the type is never small.
MIN_HEIGHT = 720
#: BGR colour of the face box (pure magenta: it stands out on skin and on a green screen, and a
#: screenshot test looks for it).
FACE_BOX_BGR = (255, 0, 255)
#: BGR colour of the label banner and of the score panel.
PANEL_BGR = (40, 40, 40)
TEXT_BGR = (255, 255, 255)
BAR_BGR = (200, 160, 60)
TOP_BAR_BGR = (60, 200, 255)
STATUS_BGR = (0, 215, 255)
#: BGR colour of the tag of the face that speaks (with several people in view).
SPEAKING_BGR = (60, 190, 60)

LISTENING = "listening"
NO_FACE = "no face"
OFF_SCREEN = "voice off-screen"


@dataclass(frozen=True)
class Layout:
    """Where :func:`render` put things, in output pixels: ``scale`` (output / source frame),
    ``banner`` and ``panel`` as ``(x, y, w, h)``; the frame occupies ``(0, 0, frame_w, height)``."""

    scale: float
    frame_w: int
    height: int
    banner: tuple[int, int, int, int]
    panel: tuple[int, int, int, int]


def layout_for(frame_shape: tuple[int, ...]) -> Layout:
    """The layout of :func:`render`'s output for a frame of ``frame_shape`` ``(H, W, ...)``."""
    h, w = int(frame_shape[0]), int(frame_shape[1])
    scale = max(1.0, MIN_HEIGHT / h)
    height, frame_w = round(h * scale), round(w * scale)
    banner_h = round(0.16 * height)
    panel_w = round(0.55 * height)
    return Layout(scale, frame_w, height, (0, 0, frame_w, banner_h), (frame_w, 0, panel_w, height))


def status_of(result: EmotionResult | None) -> str:
    """What the banner says: :data:`LISTENING` before the first result, ``"unknown"`` when the last
    window held neither face nor speech, else the label (:data:`NO_FACE` is a second line, see
    :func:`render`)."""
    if result is None:
        return LISTENING
    return UNKNOWN_LABEL if result.label == UNKNOWN_LABEL else result.label


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, color, thickness: int) -> None:
    import cv2

    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_DUPLEX, scale, color, thickness, cv2.LINE_AA)


def _fit(text: str, max_w: int, max_h: int, thickness: int) -> float:
    """The largest font scale at which ``text`` fits ``max_w`` x ``max_h`` pixels."""
    import cv2

    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, 1.0, thickness)
    return max(0.3, min(max_w / max(w, 1), max_h / max(h, 1)))


def _window_of(result: EmotionResult | None, results: Mapping[int | None, EmotionResult]) -> dict:
    """The results of the newest window (those sharing its start), by person."""
    starts = [r.t_start_ms for r in results.values()] + ([result.t_start_ms] if result is not None else [])
    if not starts:
        return {}
    newest = max(starts)
    return {person: r for person, r in results.items() if r.t_start_ms == newest}


def render(
    frame_rgb: np.ndarray,
    result: EmotionResult | None = None,
    face: FaceInfo | None = None,
    *,
    face_known: bool = True,
    faces: Mapping[int, FaceInfo] | None = None,
    results: Mapping[int | None, EmotionResult] | None = None,
) -> np.ndarray:
    """The overlay for one frame, as a BGR image ``(H', W' + panel, 3) uint8`` (see :func:`layout_for`).

    ``frame_rgb``: ``(H, W, 3) uint8`` RGB. ``face``: the face box to draw (the detector's box on
    this frame, in its pixels; None: no face); ``face_known=False`` when the detector has not run on
    a recent frame (no "no face" note then). ``result``: the last window's result (None before the
    first: the banner says "listening"); its scores fill the panel, its label the banner ("unknown"
    when it rested on nothing).

    Several people: ``faces`` (instead of ``face``) holds every face followed on this frame by
    track id, ``results`` the latest result of each person (as
    :attr:`edge_emotion.live.LiveSession.latest_results`; key None: a result without a face).
    With two or more faces, each box gets a tag with its person id and that person's label (the
    speaker's tag in :data:`SPEAKING_BGR`); the banner and the bars show the speaker of the newest
    window when a visible face speaks, else ``result``; a voice of the newest window that no
    visible face makes adds :data:`OFF_SCREEN` to the note under the banner.
    """
    import cv2

    frame = np.asarray(frame_rgb)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or 0 in frame.shape:
        raise InputError(f"frame_rgb must be (H, W, 3) uint8 with H, W > 0, got {frame.shape} {frame.dtype}")
    lay = layout_for(frame.shape)
    canvas = np.empty((lay.height, lay.frame_w + lay.panel[2], 3), np.uint8)
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if lay.scale != 1.0:
        bgr = cv2.resize(bgr, (lay.frame_w, lay.height), interpolation=cv2.INTER_LINEAR)
    canvas[:, : lay.frame_w] = bgr
    canvas[:, lay.frame_w :] = PANEL_BGR
    unit = lay.height / MIN_HEIGHT  # 1.0 at 720 px

    # the face boxes
    boxes: dict[int | None, FaceInfo] = dict(faces) if faces is not None else {}
    if faces is None and face is not None:
        boxes[None] = face
    people = dict(results) if results is not None else {}
    window = _window_of(result, people)
    speaker = next((r for p, r in window.items() if p is not None and p in boxes and r.speaking), None)
    if speaker is not None:
        result = speaker  # the banner and the bars follow the face that speaks
    off_screen = bool(boxes) and any(p is None and r.speaking and "audio" in r.modalities for p, r in window.items())
    box_thick = max(3, round(5 * unit))
    for box in boxes.values():
        x, y, w, h = (round(v * lay.scale) for v in box.bbox)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), FACE_BOX_BGR, box_thick)

    # the banner: label (or state) and confidence, in large type
    bx, by, bw, bh = lay.banner
    canvas[by : by + bh, bx : bx + bw] = PANEL_BGR
    state = status_of(result)
    pad = round(0.12 * bh)
    if result is not None and state != UNKNOWN_LABEL:
        title = f"{state}  {result.confidence:.0%}"
    elif state == UNKNOWN_LABEL:
        title = "unknown"
    else:
        title = "listening..."
    thick = max(2, round(4 * unit))
    size = _fit(title, bw - 2 * pad, bh - 2 * pad, thick)
    (_, th), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_DUPLEX, size, thick)
    _text(canvas, title, (bx + pad, by + (bh + th) // 2), size, TEXT_BGR if state != LISTENING else STATUS_BGR, thick)

    # the state line under the banner: what the answer rests on, or "no face"
    notes = []
    if result is not None and not result.modalities:
        notes.append("no face, no speech")
    else:
        if not boxes and face_known:
            notes.append(NO_FACE)
        if result is not None:
            notes.append("from " + " + ".join({"audio": "voice", "video": "face"}[m] for m in result.modalities))
    if off_screen:
        notes.append(OFF_SCREEN)
    if notes:
        line = "   ".join(notes)
        line_h = round(0.06 * lay.height)
        size = _fit(line, bw - 2 * pad, line_h, max(1, round(2 * unit)))
        (tw, lh), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_DUPLEX, size, max(1, round(2 * unit)))
        y0 = by + bh
        canvas[y0 : y0 + line_h + 2 * pad // 2, bx : bx + tw + 2 * pad] = PANEL_BGR
        _text(canvas, line, (bx + pad, y0 + (line_h + lh) // 2), size, STATUS_BGR, max(1, round(2 * unit)))

    # every person's tag, when several are in view: beside the box, above it unless the banner is there
    if len(boxes) > 1:
        tag_h = max(18, round(0.05 * lay.height))
        tag_thick = max(1, round(2 * unit))
        for person, box in boxes.items():
            x, y, w, h = (round(v * lay.scale) for v in box.bbox)
            mine = people.get(person) if person is not None else None
            who = "?" if person is None else str(person)
            text = f"#{who} {mine.label} {mine.confidence:.0%}" if mine is not None else f"#{who} ..."
            talking = mine is not None and mine is speaker
            size = _fit(text, 10 * tag_h, tag_h - 6, tag_thick)
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, size, tag_thick)
            top = y - box_thick - tag_h if y - box_thick - tag_h >= by + bh else y + h + box_thick
            top = min(max(top, 0), lay.height - tag_h)
            x0, x1 = max(x - box_thick // 2, 0), min(max(x + w, x + tw + 8) + box_thick // 2, lay.frame_w)
            canvas[top : top + tag_h, x0:x1] = SPEAKING_BGR if talking else PANEL_BGR
            _text(canvas, text, (x0 + 4, top + (tag_h + th) // 2), size, TEXT_BGR, tag_thick)

    # the panel: one bar per class
    px, py, pw, ph = lay.panel
    if result is None:
        hint = "scores after the first window"
        _text(
            canvas,
            hint,
            (px + pad, py + round(0.1 * ph)),
            _fit(hint, pw - 2 * pad, round(0.04 * ph), 1),
            (180, 180, 180),
            max(1, round(2 * unit)),
        )
    elif result.scores:
        labels = list(result.scores)
        row_h = ph // max(len(labels), 1)
        name_size = _fit("surprised", int(0.5 * pw), int(0.45 * row_h), max(1, round(2 * unit)))
        for i, label in enumerate(labels):
            score = float(result.scores[label])
            y = py + i * row_h
            top = label == result.label
            _text(canvas, label, (px + pad, y + int(0.42 * row_h)), name_size, TEXT_BGR, max(1, round(2 * unit)))
            bar_w = round((pw - 2 * pad) * min(max(score, 0.0), 1.0))
            y1, y2 = y + int(0.55 * row_h), y + int(0.9 * row_h)
            cv2.rectangle(canvas, (px + pad, y1), (px + pw - pad, y2), (70, 70, 70), -1)
            if bar_w > 0:
                cv2.rectangle(canvas, (px + pad, y1), (px + pad + bar_w, y2), TOP_BAR_BGR if top else BAR_BGR, -1)
            _text(
                canvas,
                f"{score:.2f}",
                (px + pw - pad - round(70 * unit), y + int(0.42 * row_h)),
                name_size * 0.8,
                TEXT_BGR,
                max(1, round(2 * unit)),
            )
    return canvas


def splash(text: str, frame_shape: tuple[int, ...] = (480, 640, 3)) -> np.ndarray:
    """A plain picture with ``text`` in the banner (e.g. "starting..." while the model loads), the
    size :func:`render` gives a frame of ``frame_shape``: BGR ``(H', W', 3) uint8``."""
    import cv2

    lay = layout_for(frame_shape)
    canvas = np.full((lay.height, lay.frame_w + lay.panel[2], 3), PANEL_BGR, np.uint8)
    bx, by, bw, bh = lay.banner
    pad = round(0.12 * bh)
    thick = max(2, round(4 * lay.height / MIN_HEIGHT))
    size = _fit(text, bw - 2 * pad, bh - 2 * pad, thick)
    (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, size, thick)
    _text(canvas, text, (bx + pad, by + (bh + th) // 2), size, STATUS_BGR, thick)
    return canvas
