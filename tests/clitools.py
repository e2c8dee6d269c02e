"""Running the command line in a subprocess, and its one-line errors (shared by the CLI tests)."""

from __future__ import annotations

import subprocess
import sys


def cli(*args: str, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    """``python -m edge_emotion ARGS`` with text output; stdout and stderr captured unless given."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "edge_emotion", *args], text=True, timeout=timeout, **kwargs)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 with exactly one line on stderr, no traceback, holding every one of ``words``."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
