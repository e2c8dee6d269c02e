"""The kiosk display: the overlay's pixels (no display needed), the display checks, and
`edge-emotion run --video CLIP --display` under a virtual X server (Xvfb), checked by a screenshot
and stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_emotion import overlay
from edge_emotion.errors import InputError
from edge_emotion.results import UNKNOWN_LABEL, EmotionResult, FaceInfo

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def _result(label="angry", modalities=("audio", "video"), face=None) -> EmotionResult:
    scores = dict.fromkeys(LABELS, 0.04)
    scores[label] = 1.0 - 0.04 * (len(LABELS) - 1)
    return EmotionResult(0, 3000, label, scores, modalities, face)


def _frame(h=360, w=480) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 200, (h, w, 3), dtype=np.uint8)  # no pure magenta anywhere


def _is(image: np.ndarray, bgr) -> np.ndarray:
    return np.all(image == np.array(bgr, np.uint8), axis=-1)


# -- the overlay, without a display --------------------------------------------------------------
def test_the_face_box_is_drawn_where_the_bbox_says():
    frame = _frame()
    face = FaceInfo((164, 100, 105, 105), 0.95)
    image = overlay.render(frame, _result(face=face), face)
    lay = overlay.layout_for(frame.shape)
    assert image.shape == (lay.height, lay.frame_w + lay.panel[2], 3) and image.dtype == np.uint8
    x, y, w, h = (round(v * lay.scale) for v in face.bbox)
    box = _is(image, overlay.FACE_BOX_BGR)
    # all four sides carry the box colour along most of their length, and nothing far from them does
    mid_x, mid_y = slice(x + w // 4, x + 3 * w // 4), slice(y + h // 4, y + 3 * h // 4)
    assert box[y, mid_x].mean() > 0.9 and box[y + h, mid_x].mean() > 0.9
    assert box[mid_y, x].mean() > 0.9 and box[mid_y, x + w].mean() > 0.9
    assert not box[y + 10 : y + h - 10, x + 10 : x + w - 10].any()  # inside the box: the frame
    outside = box.copy()
    outside[max(0, y - 10) : y + h + 10, max(0, x - 10) : x + w + 10] = False
    assert not outside.any()
    # no face: no box at all
    assert not _is(overlay.render(frame, _result(), None), overlay.FACE_BOX_BGR).any()


def _box_drawn(box: np.ndarray, face: FaceInfo, scale: float) -> bool:
    """All four sides of ``face``'s box carry the box colour along most of their length."""
    x, y, w, h = (round(v * scale) for v in face.bbox)
    mid_x, mid_y = slice(x + w // 4, x + 3 * w // 4), slice(y + h // 4, y + 3 * h // 4)
    sides = (box[y, mid_x], box[y + h, mid_x], box[mid_y, x], box[mid_y, x + w])
    return all(side.mean() > 0.9 for side in sides)


def _person(label, person, face, speaking, modalities=("video",)) -> EmotionResult:
    r = _result(label, modalities, face)
    return EmotionResult(
        r.t_start_ms, r.t_end_ms, r.label, r.scores, r.modalities, face, person=person, speaking=speaking
    )


def test_every_face_gets_its_box_and_tag_and_the_speaker_is_marked():
    frame = _frame()
    lay = overlay.layout_for(frame.shape)
    left, right = FaceInfo((40, 150, 100, 100), 0.95), FaceInfo((300, 140, 110, 110), 0.93)
    results = {3: _person("angry", 3, left, False), 7: _person("happy", 7, right, True, ("audio", "video"))}
    image = overlay.render(frame, results[3], None, faces={3: left, 7: right}, results=results)
    box = _is(image, overlay.FACE_BOX_BGR)
    assert _box_drawn(box, left, lay.scale) and _box_drawn(box, right, lay.scale)
    assert not box[: lay.banner[3]].any()  # both boxes lie below the banner: no stray box colour there

    def near(face: FaceInfo) -> tuple[slice, slice]:  # the band above and below a box, its width
        x, y, w, h = (round(v * lay.scale) for v in face.bbox)
        return slice(max(y - 60, 0), y + h + 60), slice(max(x - 10, 0), x + w + 10)

    speaking, plain = _is(image, overlay.SPEAKING_BGR), _is(image, overlay.PANEL_BGR)
    assert speaking[near(right)].sum() > 1000 and not speaking[near(left)].any()  # the speaker's tag
    assert plain[near(left)].sum() > 1000  # the other face's tag
    for face in (left, right):  # white text on each tag
        assert (image[near(face)].min(axis=-1) > 240).sum() > 50
    # the bars follow the speaker (happy), not the result passed in (angry)
    px, py, pw, ph = lay.panel
    top = _is(image[py : py + ph, px : px + pw], overlay.TOP_BAR_BGR)
    row_h = ph // len(LABELS)
    assert top[LABELS.index("happy") * row_h : (LABELS.index("happy") + 1) * row_h].any()
    assert not top[LABELS.index("angry") * row_h : (LABELS.index("angry") + 1) * row_h].any()


def test_one_face_looks_as_before_and_an_off_screen_voice_is_noted():
    frame = _frame()
    face = FaceInfo((164, 100, 105, 105), 0.95)
    one = _person("angry", 0, face, True, ("audio", "video"))
    np.testing.assert_array_equal(
        overlay.render(frame, one, face), overlay.render(frame, one, None, faces={0: face}, results={0: one})
    )
    # two faces in view, neither speaks, a voice is heard: noted under the banner
    other = FaceInfo((330, 120, 100, 100), 0.9)
    quiet = {0: _person("angry", 0, face, False), 1: _person("sad", 1, other, False)}
    voice = _person("fearful", None, None, True, ("audio",))
    lay = overlay.layout_for(frame.shape)
    below = (slice(lay.banner[3], lay.banner[3] + round(0.07 * lay.height)), slice(0, lay.frame_w))
    faces = {0: face, 1: other}
    heard = overlay.render(frame, voice, None, faces=faces, results={**quiet, None: voice})
    silent = overlay.render(frame, quiet[1], None, faces=faces, results=quiet)
    assert _is(heard[below], overlay.STATUS_BGR).sum() > _is(silent[below], overlay.STATUS_BGR).sum() + 200
    assert not _is(heard, overlay.SPEAKING_BGR).any()  # nobody visible is marked as speaking


def test_the_label_banner_and_the_score_bars():
    frame = _frame()
    lay = overlay.layout_for(frame.shape)
    image = overlay.render(frame, _result("happy"), None)
    bx, by, bw, bh = lay.banner
    banner = image[by : by + bh, bx : bx + bw]
    assert lay.banner[3] >= 0.15 * lay.height  # large type: the banner is a sixth of the picture
    assert _is(banner, overlay.PANEL_BGR).mean() > 0.5  # a dark, plain background
    assert (banner.min(axis=-1) > 200).sum() > 500  # with white text on it
    px, py, pw, ph = lay.panel
    panel = image[py : py + ph, px : px + pw]
    top = _is(panel, overlay.TOP_BAR_BGR)
    other = _is(panel, overlay.BAR_BGR)
    row_h = ph // len(LABELS)
    happy_row = LABELS.index("happy")
    assert top[happy_row * row_h : (happy_row + 1) * row_h].sum() > 10 * other.sum() / (len(LABELS) - 1)
    assert not top[: happy_row * row_h].any() and not top[(happy_row + 1) * row_h :].any()


def test_states_listening_no_face_and_unknown_differ_on_screen():
    frame = _frame()
    listening = overlay.render(frame, None, None)
    unknown = overlay.render(frame, EmotionResult(0, 3000, UNKNOWN_LABEL, dict.fromkeys(LABELS, 1 / 8)), None)
    seen = overlay.render(frame, _result(face=FaceInfo((10, 10, 50, 50), 0.9)), FaceInfo((10, 10, 50, 50), 0.9))
    no_face = overlay.render(frame, _result(), None)
    assert overlay.status_of(None) == overlay.LISTENING
    assert overlay.status_of(EmotionResult(0, 1, UNKNOWN_LABEL, {})) == UNKNOWN_LABEL
    assert overlay.status_of(_result("sad")) == "sad"
    lay = overlay.layout_for(frame.shape)
    banner = (slice(0, lay.banner[3]), slice(0, lay.frame_w))
    assert _is(listening[banner], overlay.STATUS_BGR).sum() > 500  # "listening..." in the status colour
    assert not np.array_equal(unknown[banner], listening[banner])
    below = (slice(lay.banner[3], lay.banner[3] + round(0.07 * lay.height)), slice(0, lay.frame_w))
    # "no face" is written under the banner when the detector saw none; with a face it is not
    assert _is(no_face[below], overlay.STATUS_BGR).sum() > _is(seen[below], overlay.STATUS_BGR).sum()


def test_the_splash_has_the_overlay_size_and_its_text():
    frame = _frame()
    image = overlay.splash("starting...", frame.shape)
    assert image.shape == overlay.render(frame).shape
    assert _is(image, overlay.STATUS_BGR).sum() > 500 and _is(image, overlay.PANEL_BGR).mean() > 0.8


def test_small_frames_are_enlarged_and_bad_frames_refused():
    lay = overlay.layout_for((120, 160, 3))
    assert lay.height == overlay.MIN_HEIGHT and lay.scale == pytest.approx(6.0)
    with pytest.raises(InputError):
        overlay.render(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(InputError):
        overlay.render(np.zeros((10, 10), np.uint8))


# -- which displays can be used ---------------------------------------------------------------------
def test_display_problem_without_a_display_or_with_one_that_does_not_exist(monkeypatch):
    from edge_emotion import display

    if sys.platform in ("win32", "darwin"):
        pytest.skip("X displays are checked on Linux only")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "DISPLAY" in display.display_problem()
    monkeypatch.setenv("DISPLAY", ":4321")
    if ctypes.util.find_library("xcb") is None:
        pytest.skip("libxcb is not installed")
    assert "cannot connect" in display.display_problem()


CLI = [sys.executable, "-m", "edge_emotion", "run"]


def _sample(shared_data: Path) -> Path:
    clip = shared_data / "crema-d" / "video" / "1001_DFA_ANG_XX.flv"
    if not clip.exists():
        pytest.skip(f"the real CREMA-D clip is absent: {clip}")
    return clip


def test_run_display_with_a_display_that_does_not_exist_warns_and_goes_on(shared_data):
    clip = _sample(shared_data)
    env = {**os.environ, "DISPLAY": ":4321"}
    proc = subprocess.run(
        [*CLI, "--video", str(clip), "--display"], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "no window" in proc.stderr and "Traceback" not in proc.stderr
    assert re.search(r"^\s*0\.00-\s*\d+\.\d\ds\s+\w+", proc.stdout, flags=re.M), proc.stdout  # the results come


# -- under Xvfb: the window shows the overlay, Ctrl-C ends it -----------------------------------------
class _Screen:
    """Screenshots of an X display's root window through libX11 (ctypes, no extra package)."""

    class _XImage(ctypes.Structure):
        _fields_ = (
            [(n, ctypes.c_int) for n in ("width", "height", "xoffset", "format")]
            + [("data", ctypes.c_void_p)]
            + [
                (n, ctypes.c_int)
                for n in (
                    "byte_order",
                    "bitmap_unit",
                    "bitmap_bit_order",
                    "bitmap_pad",
                    "depth",
                    "bytes_per_line",
                    "bits_per_pixel",
                )
            ]
        )

    def __init__(self, display: str):
        name = ctypes.util.find_library("X11")
        if name is None:
            pytest.skip("libX11 is not installed (screenshots are taken with it)")
        x = self.x = ctypes.CDLL(name)
        x.XOpenDisplay.restype, x.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
        x.XDefaultRootWindow.restype, x.XDefaultRootWindow.argtypes = ctypes.c_ulong, [ctypes.c_void_p]
        x.XGetImage.restype = ctypes.c_void_p
        x.XGetImage.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_ulong,
            ctypes.c_int,
        ]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.display = x.XOpenDisplay(display.encode())
        assert self.display, f"cannot open {display}"

    def grab(self, width: int, height: int) -> np.ndarray:
        """The screen as ``(height, width, 3) uint8`` BGR."""
        root = self.x.XDefaultRootWindow(self.display)
        pointer = self.x.XGetImage(self.display, root, 0, 0, width, height, 0xFFFFFFFF, 2)  # ZPixmap
        image = self._XImage.from_address(pointer)
        assert image.bits_per_pixel == 32, image.bits_per_pixel
        data = ctypes.string_at(image.data, image.bytes_per_line * image.height)
        pixels = np.frombuffer(data, np.uint8).reshape(image.height, image.bytes_per_line // 4, 4)
        return pixels[:, : image.width, :3].copy()

    def close(self) -> None:
        self.x.XCloseDisplay(self.display)


@pytest.fixture
def xvfb():
    """A private Xvfb display (the server picks a free number); skips when Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def test_run_display_under_xvfb_shows_the_face_box_and_ctrl_c_ends_it(xvfb, shared_data, tmp_path):
    """The window appears (with PyAV loaded, OpenCV's window used to hang here for ever), its pixels
    show the face box, and SIGINT ends the run early, cleanly, with the results so far."""
    from clips import concat_clips

    clip = tmp_path / "long.mp4"
    starts = concat_clips([_sample(shared_data)] * 5, clip)  # ~11.6 s, played at its own rate
    duration_s = starts[-1] + (starts[1] - starts[0])
    screen = _Screen(xvfb)
    env = {**os.environ, "DISPLAY": xvfb}
    proc = subprocess.Popen(
        [*CLI, "--video", str(clip), "--display", "--output", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a job started in the background of a non-interactive shell (a CI
        # script run with `&`) inherits SIGINT ignored, and Python then leaves it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        box_pixels = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            shot = screen.grab(1600, 1000)
            box_pixels = int(_is(shot, overlay.FACE_BOX_BGR).sum())
            if box_pixels > 200:  # a ~105 px box drawn 5 px wide, enlarged to 720 px high
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert box_pixels > 200, "the face box never appeared on the screen"
        assert int(_is(shot, overlay.PANEL_BGR).sum()) > 10000  # the banner and the score panel
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        screen.close()
    assert proc.returncode in (0, 130), err[-2000:]
    assert "Traceback" not in err
    import json

    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    # stopped early: the results end well before the clip would have
    assert not results or results[-1]["t_end_ms"] < 1000 * duration_s - 1000
