"""The package's layers and its public face.

Imports read one way: runtimes -> front end -> model -> stream / recognizer / evaluation -> command
line, with ``train/`` and ``export/`` above the SDK (the front end runs its face detector through
``runtimes/``, as the model runs its graphs). The check reads every module's import statements (also the
ones inside functions), so an import added anywhere in the SDK that breaks the order fails here.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_emotion.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SDK = REPO / "edge_emotion"
MAPPED = {"runtimes", "train", "export"}  # top-level folders installed under edge_emotion

# What each part of the SDK may import from the package (by the first name under edge_emotion).
BASE = {"__init__", "config", "errors", "labels", "_quiet", "_offline", "results"}
FRONT_END = BASE | {"frontend", "sources", "runtimes"}
MODEL = FRONT_END | {"model"}
APP = MODEL | {"stream", "recognizer", "live", "eval", "info", "overlay", "steady", "display"}
ALLOWED = {
    "frontend": FRONT_END,
    "sources": FRONT_END,
    "model": MODEL,
    "eval": MODEL | {"eval"},
    "stream": APP,
    "recognizer": APP,
    "live": APP,
    "bench": APP | {"bench"},
    "cli": APP | {"bench", "cli"},
    "__main__": {"cli"},
}
# The command line's train and export commands drive train/ and export/; eval runs a training
# checkpoint (a .pt file) through train's predictor. Nothing else in the SDK imports them.
ABOVE_THE_SDK = {
    ("cli/train.py", "train"),
    ("cli/export.py", "export"),
    ("cli/export.py", "train"),
    ("cli/eval.py", "train"),
}


def imported_names(source: str, rel: str) -> set[str]:
    """The first name under ``edge_emotion`` of every module the module at ``rel`` (a path under
    edge_emotion/) imports, relative imports resolved from its place in the package; a package
    attribute (``from . import __version__``) counts as ``__init__``."""
    package = ["edge_emotion", *Path(rel).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(source, rel)):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
            else:
                targets = [node.module or ""]
        for target in targets:
            parts = target.split(".")
            if parts[0] == "edge_emotion" and len(parts) > 1:
                is_module = parts[1] in MAPPED or (SDK / parts[1]).is_dir() or (SDK / f"{parts[1]}.py").is_file()
                names.add(parts[1] if is_module else "__init__")
            elif parts[0] in ("train", "export"):
                names.add(parts[0])
    return names


def test_sdk_modules_import_only_the_layers_below_them():
    wrong = []
    for path in sorted(SDK.rglob("*.py")):
        rel = path.relative_to(SDK).as_posix()
        top = rel.split("/")[0].removesuffix(".py")
        allowed = ALLOWED.get(top, APP if top not in BASE else BASE)
        for name in imported_names(path.read_text(), rel):
            if (rel, name) in ABOVE_THE_SDK:
                continue
            if name in ("train", "export") or name not in allowed:
                wrong.append(f"{rel} imports edge_emotion.{name}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_check_sees_function_level_and_relative_imports():
    probe = "import numpy\nfrom ..config import EDGE\n\ndef f():\n    from ..train.model import build_model\n"
    assert imported_names(probe, "frontend/probe.py") == {"config", "train"}
    assert imported_names("from edge_emotion.export import exporter\n", "stream.py") == {"export"}
    assert imported_names("from . import __version__\n", "info.py") == {"__init__"}


def test_public_names_are_lazy():
    code = (
        "import sys, edge_emotion\n"
        "assert 'edge_emotion.recognizer' not in sys.modules, 'imported eagerly'\n"
        "from edge_emotion import Recognizer, EmotionResult, RecognizerOptions\n"
        "assert Recognizer.__module__ == 'edge_emotion.recognizer'\n"
        "assert EmotionResult.__module__ == 'edge_emotion.results'\n"
        "assert 'Recognizer' in dir(edge_emotion)\n"
        "try:\n    edge_emotion.NoSuchThing\nexcept AttributeError:\n    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_clones_root_imports_runtimes_train_and_export(tmp_path):
    """From the root of a checkout, without installing it, the top-level runtimes/, train/ and
    export/ folders import as edge_emotion.runtimes/.train/.export."""
    code = (
        "import edge_emotion.runtimes as r, edge_emotion.export as e, edge_emotion.train as t, os\n"
        "print(os.path.dirname(r.__file__), os.path.dirname(e.__file__), os.path.dirname(t.__file__))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(REPO)!r}] + {sys.path[1:]!r}; exec({code!r})"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(REPO / "runtimes"), str(REPO / "export"), str(REPO / "train")]


def test_recognizer_options_are_frozen_and_checked():
    from dataclasses import FrozenInstanceError

    from edge_emotion import RecognizerOptions

    options = RecognizerOptions(hop_ms=500, smoothing=0.5)
    with pytest.raises(FrozenInstanceError):
        options.hop_ms = 100
    for bad in (
        {"hop_ms": 0},
        {"hop_ms": 2.5},
        {"window_ms": -1},
        {"smoothing": 1.0},
        {"smoothing": "x"},
        {"face_select": "random"},
        {"hop_ms": True},
    ):
        with pytest.raises(InputError):
            RecognizerOptions(**bad)


def test_recognizer_closes_and_is_a_context_manager():
    from edge_emotion import Recognizer, RecognizerOptions

    with Recognizer.from_bundle(options=RecognizerOptions(hop_ms=500), smoothing=0.25) as rec:
        assert (rec.hop_ms, rec.smoothing) == (500, 0.25)
        stream = rec.create_stream(audio=False)
        stream.close()
    with pytest.raises(InputError, match="closed"):
        rec.create_stream()
    rec.close()  # idempotent


def test_eval_of_a_bundle_imports_neither_train_nor_export_nor_torch(shared_data, tmp_path):
    root = shared_data / "ravdess" / "audio16k"
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "edge_emotion",
        "eval",
        "--dataset",
        "ravdess-audio",
        "--root",
        str(root),
        "--limit",
        "2",
        "--no-progress",
        "--json",
        str(tmp_path / "r.json"),
    ]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "edge_emotion.eval.evaluate" in imported
    bad = sorted(m for m in imported if m.startswith(("edge_emotion.train", "edge_emotion.export", "torch")))
    assert not bad, f"eval imported {bad}"
