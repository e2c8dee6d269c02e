"""Devices from the command line: `edge-emotion devices`, what --camera accepts, a quiet microphone
path, the rate-limited "ring buffer full" warning, --video with --mic ending with the video, and the
shipped model's licence in `info`."""

from __future__ import annotations

import json
import logging
import sys
import threading

import numpy as np
import pytest
from clitools import assert_one_line_error, cli
from media import SAMPLE_CLIP
from typer.testing import CliRunner

from edge_emotion.cli import app
from edge_emotion.errors import MissingDependencyError
from edge_emotion.sources import AudioChunk
from edge_emotion.sources import camera as camera_mod
from edge_emotion.sources import microphone as mic_mod

SAMPLE = SAMPLE_CLIP  # the package's sample clip (a face and speech), made by the project


# -- edge-emotion devices ----------------------------------------------------------------------------
def test_devices_lists_what_is_there_with_the_names_run_accepts(monkeypatch):
    monkeypatch.setattr(
        camera_mod, "list_cameras", lambda: [camera_mod.CameraInfo(0, "Integrated Camera", "/dev/video0")]
    )
    monkeypatch.setattr(
        mic_mod, "list_microphones", lambda: [mic_mod.MicrophoneInfo(3, "USB Audio: Mic (hw:1,0)", 1, 48000, True)]
    )
    result = CliRunner().invoke(app, ["devices"])
    assert result.exit_code == 0, result.output
    assert "0   Integrated Camera  (/dev/video0)" in result.output
    assert "3   USB Audio: Mic (hw:1,0)" in result.output and "[default]" in result.output
    as_json = json.loads(CliRunner().invoke(app, ["devices", "--json"]).output)
    assert as_json["cameras"] == [{"index": 0, "name": "Integrated Camera", "path": "/dev/video0"}]
    assert as_json["microphones"][0]["name"] == "USB Audio: Mic (hw:1,0)"


def test_devices_says_none_found_and_exits_0(monkeypatch):
    monkeypatch.setattr(camera_mod, "list_cameras", lambda: [])
    monkeypatch.setattr(mic_mod, "list_microphones", lambda: [])
    result = CliRunner().invoke(app, ["devices"])
    assert result.exit_code == 0
    assert result.output.count("none found") == 2

    def no_pyaudio():
        raise MissingDependencyError("pyaudio", "mic", "the microphone")

    monkeypatch.setattr(mic_mod, "list_microphones", no_pyaudio)
    result = CliRunner().invoke(app, ["devices"])
    assert result.exit_code == 0 and "edge-emotion[mic]" in result.output


def test_devices_on_this_machine_is_clean():
    """The real listing: exit 0, and none of PortAudio's ALSA / JACK chatter on stderr."""
    proc = cli("devices")
    assert proc.returncode == 0, proc.stderr
    assert "cameras" in proc.stdout and "microphones" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr[:2000]
    listed = json.loads(cli("devices", "--json").stdout)
    assert [c["index"] for c in listed["cameras"]] == [c.index for c in camera_mod.list_cameras()]


def test_list_cameras_keeps_the_v4l2_capture_nodes_only(monkeypatch):
    """A USB camera makes two nodes (video capture + metadata): only the capture node is listed,
    under the index --camera takes."""
    if not sys.platform.startswith("linux"):
        pytest.skip("V4L2 nodes exist on Linux only")
    nodes = {
        "/dev/video0": (True, "HD Webcam"),
        "/dev/video1": (False, "HD Webcam"),
        "/dev/video10": (True, None),
        "/dev/video-codec": (True, "x"),
    }
    monkeypatch.setattr(camera_mod.glob, "glob", lambda pattern: sorted(nodes))
    monkeypatch.setattr(camera_mod, "_v4l2_capture", lambda path: nodes[path])
    cameras = camera_mod.list_cameras()
    assert [(c.index, c.path) for c in cameras] == [(0, "/dev/video0"), (10, "/dev/video10")]
    assert cameras[0].name == "HD Webcam" and cameras[1].name == "video10"  # no sysfs name here: the node's


# -- --camera: an index, a URL or a path --------------------------------------------------------------
@pytest.mark.parametrize("value", ["-1", "2147483648", "no-such-camera"])
def test_run_camera_refuses_what_is_not_an_index_url_or_path(value):
    assert_one_line_error(cli("run", f"--camera={value}", "--no-display"), "--camera")


def test_run_camera_takes_a_video_file_path():
    proc = cli("run", "--camera", str(SAMPLE), "--no-display", "--output", "jsonl")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert lines and all("video" in r["modalities"] or not r["modalities"] for r in lines)


def test_run_camera_takes_a_url_and_says_when_it_does_not_open():
    assert_one_line_error(cli("run", "--camera", "rtsp://127.0.0.1:9/none", "--no-display"), "rtsp://127.0.0.1:9/none")


# -- the microphone path -----------------------------------------------------------------------------
def test_a_missing_microphone_is_one_line_without_portaudio_noise():
    try:
        microphones = mic_mod.list_microphones()
    except MissingDependencyError:  # no PyAudio (the device install): that too is one line
        microphones = []
    if any(m.default for m in microphones):
        pytest.skip("this machine has a default microphone")
    assert_one_line_error(cli("run", "--mic", "default"), "microphone")


def _fake_microphone() -> mic_mod.MicrophoneSource:
    """A MicrophoneSource with no PortAudio behind it: its callback is fed by hand."""
    source = mic_mod.MicrophoneSource.__new__(mic_mod.MicrophoneSource)
    source.device, source.channels, source.sample_rate, source.capture_rate = "fake", 1, 16000, 16000
    source.clock = mic_mod.CaptureClock(None)
    source._ring = mic_mod._RingBuffer(1600)  # 100 ms: full after one block
    source._next_ms, source._started_ms = None, 0.0
    source._unreported_drops, source._last_drop_warning_s = 0, None
    return source


def test_ring_buffer_full_is_warned_once_per_interval_with_the_total(caplog):
    source = _fake_microphone()
    block = np.zeros(1600, np.int16).tobytes()
    with caplog.at_level(logging.WARNING, logger="edge_emotion.sources.microphone"):
        for _ in range(50):  # one block fills the buffer; the 49 after it are dropped
            source._callback(block, 1600, {}, 0)
    full = [r.getMessage() for r in caplog.records if "ring buffer full" in r.getMessage()]
    assert len(full) == 1, full
    assert source.dropped_samples == 49 * 1600
    caplog.clear()
    source._last_drop_warning_s -= mic_mod.DROP_WARNING_INTERVAL_S  # the interval has passed
    with caplog.at_level(logging.WARNING, logger="edge_emotion.sources.microphone"):
        source._callback(block, 1600, {}, 0)
    full = [r.getMessage() for r in caplog.records if "ring buffer full" in r.getMessage()]
    assert len(full) == 1 and f"{48 * 1600 + 1600} samples dropped" in full[0], full


class _EndlessMicrophone:
    """Silence for ever at the real rate, as a microphone delivers it; wake() ends it."""

    made: list[_EndlessMicrophone] = []

    def __init__(self, device, sample_rate=16000, origin_s=None):
        self.sample_rate = sample_rate
        self.stopped = threading.Event()
        self.closed = False
        _EndlessMicrophone.made.append(self)

    def wake(self):
        self.stopped.set()

    def close(self):
        self.stopped.set()
        self.closed = True

    def __iter__(self):
        k = 0
        while not self.stopped.wait(0.1):
            yield AudioChunk(np.zeros(self.sample_rate // 10, np.float32), self.sample_rate, 100 * k)
            k += 1


def test_run_video_with_mic_ends_when_the_video_ends(monkeypatch):
    import edge_emotion.sources as sources

    monkeypatch.setattr(sources, "MicrophoneSource", _EndlessMicrophone)
    _EndlessMicrophone.made.clear()
    outcome: dict = {}

    def invoke():
        outcome["result"] = CliRunner().invoke(app, ["run", "--video", str(SAMPLE), "--mic", "fake", "--no-display"])

    thread = threading.Thread(target=invoke, daemon=True)
    thread.start()
    thread.join(180)
    assert not thread.is_alive(), "run --video --mic did not end with the video"
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    assert result.output.strip()  # the results were printed
    assert _EndlessMicrophone.made and all(m.closed for m in _EndlessMicrophone.made)


# -- the shipped model's licence ----------------------------------------------------------------------
def test_info_shows_the_shipped_model_licence():
    from edge_emotion.info import default_bundle_path

    bundle = default_bundle_path()
    if bundle is None:
        pytest.skip("this install ships no default model")
    licence = json.loads((bundle / "manifest.json").read_text())["provenance"]["licence"]
    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    assert licence in proc.stdout
    assert json.loads(cli("info", "--json").stdout)["default_bundle_licence"] == licence
