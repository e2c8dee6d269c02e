"""Running the command line in a subprocess, and its one-line errors (shared by the CLI tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(*args: str, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    """``python -m edge_emotion ARGS`` with text output; stdout and stderr captured unless given."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "edge_emotion", *args], text=True, timeout=timeout, **kwargs)


def fresh_python(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a fresh interpreter with this checkout first on ``PYTHONPATH``, text
    output captured (for what must hold in a process where nothing was imported before)."""
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 with exactly one line on stderr, no traceback, holding every one of ``words``."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
