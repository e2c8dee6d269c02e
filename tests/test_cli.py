"""The command line as a user runs it: `edge-emotion info` and `edge-emotion run` in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clitools import assert_one_line_error, cli
from media import SAMPLE_CLIP

SAMPLE = SAMPLE_CLIP


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    pytest.importorskip("onnx", reason="the fake bundle is written with onnx (export extra)")
    from fakes import make_onnx_bundle

    return make_onnx_bundle(tmp_path_factory.mktemp("cli"), preset="edge", seed=5)


def test_info_lists_runtimes_and_the_python():
    proc = cli("info", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["runtimes"]) == {"onnxruntime", "openvino", "tensorrt", "torch"}
    assert report["runtimes"]["onnxruntime"]["available"] is True
    assert "CPUExecutionProvider" in report["runtimes"]["onnxruntime"]["devices"]
    wanted = "openvino" if report["runtimes"]["openvino"]["available"] else "onnxruntime"
    assert report["face_detector"]["runtime"] == wanted
    assert report["face_detector"]["model"] == "face_detection_short_range.onnx"
    human = cli("info")
    assert human.returncode == 0 and "onnxruntime" in human.stdout and "python" in human.stdout
    assert "face detector: MediaPipe's short-range BlazeFace" in human.stdout


def test_run_video_jsonl_lines_follow_the_schema(bundle):
    proc = cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--output", "jsonl", "--hop-ms", "500")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines
    labels = None
    for line in lines:
        obj = json.loads(line)
        assert set(obj) == {"t_start_ms", "t_end_ms", "label", "scores", "modalities", "face", "person", "speaking"}
        assert isinstance(obj["speaking"], bool)
        assert (obj["person"] is None) == (obj["face"] is None) and obj["person"] in (None, 0)  # one actor
        assert isinstance(obj["t_start_ms"], int) and isinstance(obj["t_end_ms"], int)
        assert obj["t_end_ms"] > obj["t_start_ms"] >= 0
        labels = labels or set(obj["scores"])
        assert set(obj["scores"]) == labels and obj["label"] in labels
        assert abs(sum(obj["scores"].values()) - 1) < 1e-4
        assert set(obj["modalities"]) <= {"audio", "video"}
        if obj["face"] is not None:
            assert len(obj["face"]["bbox"]) == 4 and all(isinstance(v, int) for v in obj["face"]["bbox"])
            assert 0 <= obj["face"]["score"] <= 1
    assert json.loads(lines[0])["modalities"] == ["audio", "video"]


def test_run_format_forces_one_format_of_the_bundle(bundle):
    forced = cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--format", "onnx", "--output", "jsonl")
    assert forced.returncode == 0, forced.stderr
    default = cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--output", "jsonl")
    assert forced.stdout == default.stdout  # the fake bundle's only format is also the best one
    assert_one_line_error(
        cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--format", "onnx-int8"), "no format", "onnx-int8"
    )


def test_run_detect_every_follows_the_face_between_detections(bundle):
    every = cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--output", "jsonl", "--detect-every", "1")
    third = cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--output", "jsonl", "--detect-every", "3")
    default = cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--output", "jsonl")
    assert every.returncode == third.returncode == default.returncode == 0, third.stderr
    assert default.stdout == every.stdout  # every frame is the default
    a, b = ([json.loads(line) for line in p.stdout.splitlines()] for p in (every, third))
    assert [r["t_start_ms"] for r in a] == [r["t_start_ms"] for r in b]
    assert all(r["face"] is not None and r["modalities"] == ["audio", "video"] for r in a + b)
    # the astronaut sits still: carried boxes stay within a few pixels of the detected ones
    pairs = zip(a, b, strict=True)
    assert all(abs(u - v) <= 6 for x, y in pairs for u, v in zip(x["face"]["bbox"], y["face"]["bbox"], strict=True))
    assert_one_line_error(
        cli("run", "--video", str(SAMPLE), "--model", str(bundle), "--detect-every", "0"), "detect_every"
    )


def test_run_text_output(bundle):
    proc = cli("run", "--video", str(SAMPLE), "--model", str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert "audio+video" in proc.stdout


@pytest.mark.parametrize(
    "content", [None, b"", b"\x1a\x45\xdf\xa3 not really a video" * 50], ids=["missing", "empty", "corrupt"]
)
def test_run_bad_file_is_one_line_and_exit_2(bundle, tmp_path, content):
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    assert_one_line_error(cli("run", "--video", str(path), "--model", str(bundle)), "clip.mp4")


def test_run_file_with_neither_audio_nor_video(bundle, tmp_path):
    path = tmp_path / "subtitles.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    assert_one_line_error(cli("run", "--video", str(path), "--model", str(bundle)), "neither audio nor video")


def test_run_refuses_an_altered_bundle_naming_the_file(bundle, tmp_path):
    import shutil

    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    graph = next(altered.rglob("fusion_head.onnx"))
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    assert_one_line_error(cli("run", "--video", str(SAMPLE), "--model", str(altered)), "fusion_head.onnx")


def test_run_usage_errors(bundle):
    assert_one_line_error(cli("run", "--camera", "0", "--video", str(SAMPLE), "--model", str(bundle)), "either")
    assert_one_line_error(cli("run", "--model", str(bundle)), "nothing to run on")


def test_run_missing_camera_is_one_line_and_exit_2(bundle):
    assert_one_line_error(cli("run", "--camera", "7", "--model", str(bundle), "--no-display"), "camera")


def test_run_without_model_uses_the_shipped_default_bundle():
    from edge_emotion.info import default_bundle_path
    from edge_emotion.model.bundle import Bundle

    path = default_bundle_path()
    assert path is not None, "the package ships a default bundle (edge_emotion/models/default)"
    bundle = Bundle.load(path)  # verifies every file's sha256
    assert {"onnx", "onnx-int8"} <= set(bundle.formats)
    sample = Path(__file__).resolve().parents[1] / "edge_emotion" / "assets" / "sample_astronaut.mp4"
    proc = cli("run", "--video", str(sample), "--output", "jsonl")
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert results and results[0]["modalities"] == ["audio", "video"] and results[0]["face"] is not None
    assert set(results[0]["scores"]) == set(bundle.labels)
    assert "default model:" in cli("info").stdout and str(path) in cli("info").stdout


_BLAS_THREADS = """
import os, sys
import edge_emotion.cli  # the command's modules, as the edge-emotion entry point loads them
import numpy as np

assert "numpy" in sys.modules
np.ones((256, 256), np.float32) @ np.ones((256, 256), np.float32)  # BLAS has started its threads
print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
def test_the_command_runs_numpys_blas_on_one_thread():
    """The command line sets OPENBLAS_NUM_THREADS=1 before numpy is first imported, so no BLAS
    thread spins between windows (a second one cost a 60-s file 4-6 CPU s, BENCHMARKS.md)."""
    import os
    import subprocess
    import sys

    def threads_after_import(**extra) -> tuple[str, int]:
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | extra
        done = subprocess.run(
            [sys.executable, "-c", _BLAS_THREADS], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        value, threads = done.stdout.split()
        return value, int(threads)

    value, threads = threads_after_import()
    assert value == "1"
    # as many threads as when the variable is set before Python starts (OpenBLAS starts its threads
    # when numpy loads it, so a variable set too late leaves them running)
    assert threads == threads_after_import(OPENBLAS_NUM_THREADS="1")[1]
