"""``edge-emotion eval`` of the shipped bundle on real speech, as the device install (no torch) runs
it: the evaluation layer imports neither torch nor ``edge_emotion.train`` / ``edge_emotion.export``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge_emotion.info import default_bundle_path
from edge_emotion.model.bundle import Bundle

# Runs the CLI in a fresh interpreter, then reports its exit code and which heavy modules it imported.
_SCRIPT = """
import json, sys
from edge_emotion.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
heavy = sorted(
    m for m in sys.modules
    if m in ("torch", "tqdm") or m.startswith(("edge_emotion.train", "edge_emotion.export"))
)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_eval_of_the_shipped_bundle_on_real_speech_imports_no_torch(shared_data, tmp_path):
    root = shared_data / "ravdess" / "audio16k"
    report_path = tmp_path / "eval.json"
    argv = ["eval", "--no-progress", "--dataset", "ravdess-audio", "--root", str(root), "--limit", "8"]
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *argv, "--json", str(report_path)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": 0, "heavy": []}, proc.stderr[-2000:]

    report = json.loads(report_path.read_text())
    bundle = Bundle.load(default_bundle_path())
    assert report["dataset"] == "ravdess-audio" and report["n"] == 8 and report["n_failed"] == 0
    assert report["labels"] == list(bundle.labels)
    assert report["format"] in bundle.formats and report["runtime"] in ("onnxruntime", "openvino")
    assert sum(map(sum, report["confusion"])) == 8
    correct = sum(report["confusion"][i][i] for i in range(len(report["labels"])))
    assert report["weighted_accuracy"] == pytest.approx(correct / 8)
    assert report_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
