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
