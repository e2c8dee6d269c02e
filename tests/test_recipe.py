"""tools/train_default_model.py: the parts that run without training (the full recipe is the
script itself, run to produce the shipped bundle)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("train_default_model", REPO_ROOT / "tools" / "train_default_model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_default_model"] = module
    spec.loader.exec_module(module)
    return module


def test_parallel_steps_run_side_by_side_with_their_own_logs(recipe, tmp_path):
    recipe.edge_emotion_parallel([("a", ["info", "--json"]), ("b", ["info", "--json"])], 2, tmp_path)
    for name in ("a", "b"):
        text = (tmp_path / f"{name}.log").read_text()
        assert text.startswith("$ edge-emotion info --json\n")
        assert json.loads(text.split("\n", 1)[1])["version"]  # the command's own output follows


def test_a_failed_step_stops_the_recipe_and_starts_nothing_more(recipe, tmp_path):
    with pytest.raises(SystemExit, match="bad"):
        recipe.edge_emotion_parallel([("bad", ["no-such-command"]), ("after", ["info"])], 1, tmp_path)
    assert (tmp_path / "bad.log").exists()
    assert not (tmp_path / "after.log").exists()
