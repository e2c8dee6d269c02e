"""``edge-emotion export``: bad input exits 2 with one line on stderr; a real export writes a bundle
that loads. The CLI's ``main`` runs in-process (stderr captured), as the console script calls it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="export needs the 'export' extra (torch)")

from edge_emotion.runtimes import is_available  # noqa: E402
from edge_emotion.train.checkpoint import save_checkpoint  # noqa: E402
from edge_emotion.train.model import build_model  # noqa: E402

from edge_emotion.model.bundle import Bundle  # noqa: E402


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys):
    from edge_emotion.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(["export", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "edge.pt"
    return save_checkpoint(path, build_model("edge"), train_config={}, stage="full", epoch=0)


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-emotion: error:") and fragment in lines[0], lines[0]


def test_missing_checkpoint(run_cli, tmp_path):
    assert_one_line_error(
        run_cli("--checkpoint", str(tmp_path / "none.pt"), "--format", "onnx", "--out", str(tmp_path / "b")),
        "does not exist",
    )


def test_unknown_format(run_cli, checkpoint, tmp_path):
    assert_one_line_error(
        run_cli("--checkpoint", str(checkpoint), "--format", "caffe", "--out", str(tmp_path / "b")),
        "unknown format 'caffe'",
    )


def test_int8_without_calib(run_cli, checkpoint, tmp_path):
    assert_one_line_error(
        run_cli("--checkpoint", str(checkpoint), "--format", "onnx", "--int8", "--out", str(tmp_path / "b")), "--calib"
    )
    assert not (tmp_path / "b").exists()


def test_precision_a_format_lacks(run_cli, checkpoint, tmp_path):
    assert_one_line_error(
        run_cli("--checkpoint", str(checkpoint), "--format", "onnx", "--fp16", "--out", str(tmp_path / "b")),
        "no fp16 variant",
    )


def test_calib_that_is_not_a_directory(run_cli, checkpoint, tmp_path):
    result = run_cli(
        "--checkpoint",
        str(checkpoint),
        "--format",
        "onnx",
        "--int8",
        "--calib",
        str(tmp_path / "nope"),
        "--out",
        str(tmp_path / "b"),
    )
    assert_one_line_error(result, "is not a directory")


def test_corrupt_checkpoint(run_cli, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert_one_line_error(
        run_cli("--checkpoint", str(bad), "--format", "onnx", "--out", str(tmp_path / "b")), "checkpoint"
    )


@pytest.mark.skipif(is_available("tensorrt"), reason="tensorrt is installed here: the export would run")
def test_tensorrt_without_tensorrt(run_cli, checkpoint, tmp_path):
    result = run_cli("--checkpoint", str(checkpoint), "--format", "tensorrt", "--out", str(tmp_path / "b"))
    assert_one_line_error(result, "edge-emotion[tensorrt]")


def test_export_writes_a_bundle_that_loads(run_cli, checkpoint, shared_data, tmp_path):
    from test_export_formats import make_calib_dir

    calib = make_calib_dir(shared_data, tmp_path / "calib", n_audio=6, n_faces=6)
    out = tmp_path / "bundle"
    result = run_cli(
        "--checkpoint", str(checkpoint), "--format", "onnx", "--int8", "--calib", str(calib), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    bundle = Bundle.load(out)
    assert bundle.formats == ("onnx", "onnx-int8")
    assert bundle.format_info("onnx-int8")["parity"]["inputs"].startswith(
        "real windows: 6 log-mel windows, 6 face crops"
    )
    assert bundle.provenance["checkpoint"] == "edge.pt"
    again = run_cli("--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out))
    assert_one_line_error(again, "not empty")
