"""``edge-emotion eval`` on small real sets: the JSON report, the PNG, label mapping, and a
bundle (no torch in the loop) agreeing with the checkpoint of the same weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="building a checkpoint needs torch (the 'train' extra)")

from edge_emotion.train.checkpoint import save_checkpoint  # noqa: E402
from edge_emotion.train.model import build_model  # noqa: E402

from edge_emotion.cli import main  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
KEYS = {"dataset", "n", "labels", "weighted_accuracy", "unweighted_accuracy", "per_class", "confusion"}


def _checkpoint(path: Path, model) -> Path:
    return save_checkpoint(path, model, train_config={}, stage="full", epoch=0)


def _eval(argv: list[str]) -> int:
    try:
        main(["eval", "--no-progress", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", build_model("edge").eval())


@pytest.mark.parametrize(
    "dataset, sub, limit, n",
    [
        ("crema-d", "crema-d", 0, 3),
        ("ravdess-audio", "ravdess", 6, 6),
        ("fer2013", "fer2013", 7, 7),
        ("ravdess", "ravdess", 0, 1),
    ],
)
def test_eval_json_and_png_on_real_clips(shared_data, checkpoint, tmp_path, dataset, sub, limit, n):
    report_path = tmp_path / "report.json"
    argv = [
        "--model",
        str(checkpoint),
        "--dataset",
        dataset,
        "--root",
        str(shared_data / sub),
        "--json",
        str(report_path),
    ]
    assert _eval(argv + (["--limit", str(limit)] if limit else [])) == 0
    report = json.loads(report_path.read_text())
    assert KEYS <= set(report)
    assert report["dataset"] == dataset and report["n"] == n and report["n_failed"] == 0
    assert sum(map(sum, report["confusion"])) == n
    assert report["labels"] == list(build_model("edge").preset.labels)
    assert sum(row["support"] for row in report["per_class"].values()) == n
    correct = sum(report["confusion"][i][i] for i in range(len(report["labels"])))
    assert report["weighted_accuracy"] == pytest.approx(correct / n)
    assert Path(report["confusion_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_the_model_lacks_are_counted(shared_data, tmp_path):
    labels = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")  # no calm
    ckpt = _checkpoint(tmp_path / "m.pt", build_model("edge", labels=labels).eval())
    report_path = tmp_path / "r.json"
    argv = [
        "--model",
        str(ckpt),
        "--dataset",
        "ravdess-audio",
        "--root",
        str(shared_data / "ravdess"),
        "--limit",
        "12",
        "--json",
        str(report_path),
    ]
    assert _eval(argv) == 0
    report = json.loads(report_path.read_text())
    assert report["unmapped"] == {"calm": report["n_unmapped"]} and report["n_unmapped"] > 0
    assert report["n_unmapped"] == 2 and report["n"] == 10


@pytest.mark.slow
def test_a_bundle_agrees_with_the_checkpoint_of_its_weights(shared_data, tmp_path):
    pytest.importorskip("onnx", reason="building a bundle needs onnx (the 'export' extra)")
    from fakes import fresh_model, make_bundle

    bundle = make_bundle(tmp_path, "edge", seed=0)
    ckpt = _checkpoint(tmp_path / "same.pt", fresh_model("edge", seed=0))
    reports = []
    for model in (bundle, ckpt):
        path = tmp_path / f"{Path(model).name}.json"
        argv = [
            "--model",
            str(model),
            "--dataset",
            "crema-d-audio",
            "--root",
            str(shared_data / "crema-d"),
            "--json",
            str(path),
        ]
        assert _eval(argv) == 0
        reports.append(json.loads(path.read_text()))
    assert reports[0]["n"] == reports[1]["n"] == 9
    assert reports[0]["confusion"] == reports[1]["confusion"]
    assert (reports[0]["format"], reports[0]["runtime"]) == ("onnx", "onnxruntime")  # what produced the numbers
    assert (reports[1]["format"], reports[1]["runtime"]) == ("checkpoint", "torch")


def test_bad_input_is_one_line_and_exit_2(shared_data, tmp_path, capsys):
    assert (
        _eval(["--model", str(tmp_path / "absent.pt"), "--dataset", "crema-d", "--root", str(shared_data / "crema-d")])
        == 2
    )
    assert _eval(["--model", str(tmp_path), "--dataset", "crema-d", "--root", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert (
        _eval(["--model", str(tmp_path / "junk.pt"), "--dataset", "crema-d", "--root", str(shared_data / "crema-d")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("edge-emotion: error:") for line in err)
    assert "Traceback" not in "".join(err)


def _crema_d_root(tmp_path: Path) -> Path:
    """A one-clip folder laid out like CREMA-D: the package's sample clip remuxed into FLV under a
    CREMA-D file name (actor 1001, happy)."""
    from media import SAMPLE_CLIP, remux

    root = tmp_path / "crema-d"
    root.mkdir()
    remux(SAMPLE_CLIP, root / "1001_DFA_HAP_XX.flv")
    return root


def _err_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()


def test_a_bad_split_file_is_one_line_and_exit_2(checkpoint, tmp_path, capsys):
    root = _crema_d_root(tmp_path)
    bad = {
        "not-json.json": "{not json",
        "no-keys.json": json.dumps({"protocol": "actor-kfold", "fold": 0}),
        "a-list.json": "[1, 2, 3]",
        "not-utf8.json": b"\xff\xfe\x00garbage",
    }
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        argv = [
            "--model",
            str(checkpoint),
            "--dataset",
            "crema-d",
            "--root",
            str(root),
            "--split",
            str(path),
            "--json",
            str(tmp_path / "report.json"),
        ]
        assert _eval(argv) == 2, name
        lines = _err_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("edge-emotion: error: split file"), (name, lines)
    assert not (tmp_path / "report.json").exists()


def test_a_split_selects_its_test_part(checkpoint, tmp_path):
    from edge_emotion.eval.splits import Split

    root = _crema_d_root(tmp_path)
    split = Split("actor-kfold", 0, 5, 0, train=(), val=(), test=("crema-d/1001_DFA_HAP_XX",)).save(tmp_path / "s.json")
    report_path = tmp_path / "report.json"
    argv = [
        "--model",
        str(checkpoint),
        "--dataset",
        "crema-d",
        "--root",
        str(root),
        "--split",
        str(split),
        "--json",
        str(report_path),
    ]
    assert _eval(argv) == 0
    assert json.loads(report_path.read_text())["n"] == 1


def test_an_unwritable_report_path_is_one_line_and_exit_2(checkpoint, tmp_path, capsys):
    root = _crema_d_root(tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        (["--json", str(tmp_path)], "--json"),  # a directory
        (["--json", str(tmp_path / "r.json"), "--png", str(tmp_path)], "--png"),
        (["--json", str(a_file / "r.json")], "--json"),  # under a file
        (["--png", str(a_file / "sub" / "c.png")], "--png"),
    ]
    for extra, option in cases:
        assert _eval(["--model", str(checkpoint), "--dataset", "crema-d", "--root", str(root), *extra]) == 2, extra
        lines = _err_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith(f"edge-emotion: error: {option} "), (extra, lines)
    assert not (tmp_path / "r.json").exists()


def test_a_checkpoint_run_split_tells_which_speakers_it_trained_on(shared_data, checkpoint, tmp_path, capsys):
    import os
    import shutil

    root = tmp_path / "ravdess"
    names = (
        "Actor_01/03-01-05-01-01-01-01.flac",
        "Actor_01/03-01-03-01-01-01-01.flac",
        "Actor_06/03-01-05-01-01-01-06.flac",
    )
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(shared_data / "ravdess/audio16k" / name, root / name)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "best.pt")
    # a split.json as older runs wrote it (no train_speakers): speakers found through the index
    split = {
        "protocol": "actor-kfold",
        "fold": 0,
        "folds": 5,
        "seed": 0,
        "val": [],
        "test": [],
        "train": ["ravdess-audio/03-01-03-01-01-01-01"],
        "test_speakers": ["ravdess-06"],
    }
    (run / "split.json").write_text(json.dumps(split))
    report_path = tmp_path / "r.json"
    argv = [
        "--model",
        str(run / "best.pt"),
        "--dataset",
        "ravdess-audio",
        "--root",
        str(root),
        "--json",
        str(report_path),
    ]
    assert _eval(argv) == 0
    overlap = json.loads(report_path.read_text())["training_overlap"]
    assert overlap == {"n": 3, "n_seen_in_training": 2, "speakers": ["ravdess-01"], "source": "split"}
    assert capsys.readouterr().err.count("warning: 2 of 3 evaluated samples were seen in training") == 1


def test_format_picks_the_bundle_format_that_is_evaluated(shared_data, tmp_path, capsys):
    pytest.importorskip("onnx", reason="building a bundle needs onnx (the 'export' extra)")
    from fakes import make_bundle

    bundle = make_bundle(tmp_path, "edge", seed=0)
    corpus = ["--dataset", "crema-d-audio", "--root", str(shared_data / "crema-d"), "--limit", "2"]
    report = tmp_path / "onnx.json"
    assert _eval(["--model", str(bundle), "--format", "onnx", *corpus, "--json", str(report)]) == 0
    assert json.loads(report.read_text())["format"] == "onnx"
    capsys.readouterr()
    assert _eval(["--model", str(bundle), "--format", "openvino-int8", *corpus]) == 2
    ckpt = _checkpoint(tmp_path / "m.pt", build_model("edge"))
    assert _eval(["--model", str(ckpt), "--format", "onnx", *corpus]) == 2
    err = _err_lines(capsys)
    assert len(err) == 2 and all(line.startswith("edge-emotion: error:") for line in err), err
    assert "openvino-int8" in err[0] and "checkpoint" in err[1]
