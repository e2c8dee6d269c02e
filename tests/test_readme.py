"""The README's recipes run as written: the PyAV stream recipe on a real clip."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _block(marker: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- recipe: {re.escape(marker)}.*?-->\s*```python\n(.*?)```", text, flags=re.S)
    assert found, f"README.md has no recipe block {marker!r}"
    return found.group(1)


def test_the_pyav_stream_recipe_runs_on_a_real_clip(shared_data):
    pytest.importorskip("av", reason="the recipe decodes with PyAV")
    clip = shared_data / "crema-d" / "video" / "1001_DFA_ANG_XX.flv"
    if not clip.exists():
        pytest.skip(f"the real CREMA-D clip is absent: {clip}")
    code = _block("pyav-stream")
    assert code.count('"clip.mp4"') == 1
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace('"clip.mp4"', repr(str(clip))), "README.md:pyav-stream", "exec"), scope)
    results = scope["results"]
    assert results and len(out.getvalue().splitlines()) == len(results)
    # both modalities reached the model (audio pushed as (channels, samples) would not be speech)
    assert any(set(r.modalities) == {"audio", "video"} for r in results)
    assert results[-1].t_end_ms >= 2000  # the clip (2.3 s) is covered to its end by flush()

    from edge_emotion.recognizer import Recognizer

    # the same clip through the SDK's own file reader: the same windows
    expected = list(Recognizer.from_bundle().analyze(clip, hop_ms=500))
    assert [r.t_start_ms for r in results] == [r.t_start_ms for r in expected]


def _quickstart() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", text, flags=re.S)
    assert block, "README.md has no quickstart block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim():
    """The quickstart's second command (install the dev tools, lint, test) is what CI runs."""
    commands = _quickstart()
    assert len(commands) == 2, commands
    install_and_test = commands[1]
    assert "ruff check ." in install_and_test and "python -m pytest" in install_and_test
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith(install_and_test) for line in ci), install_and_test
    assert commands[0].startswith("pip install . && edge-emotion run --video edge_emotion/assets/")
