"""One DDP training step with two CPU processes (gloo), through torchrun and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs torch (the 'train' extra)")


@pytest.mark.slow
def test_two_process_gloo_run(shared_data, tmp_path):
    cli = shutil.which("edge-emotion", path=str(Path(sys.executable).parent))
    assert cli is not None, "the edge-emotion console script is not installed beside this python"
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        cli,
        "train",
        "--preset",
        "edge",
        "--stage",
        "audio",
        "--dataset",
        "ravdess-audio",
        "--root",
        str(shared_data / "ravdess"),
        "--limit",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and len(state["history"]) == 1
    assert json.loads(proc.stdout.strip().splitlines()[-1])["best_checkpoint"].endswith("best.pt")
