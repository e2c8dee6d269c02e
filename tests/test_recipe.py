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


class _FakeSteps:
    """Stands in for the recipe's ``edge-emotion`` steps: writes what each step leaves behind (the
    run files a training step writes, a report for an eval, a manifest for an export) and can cut
    one training step off after its first epoch, as an interruption would."""

    def __init__(self, interrupt: str | None = None):
        self.calls: list[list[str]] = []
        self.interrupt = interrupt

    def __call__(self, *args, log=None):
        args = [str(a) for a in args]
        self.calls.append(args)
        out = Path(args[args.index("--out") + 1]) if "--out" in args else None
        if args[0] == "train":
            out.mkdir(parents=True, exist_ok=True)
            fold = int(args[args.index("--fold") + 1]) if "--fold" in args else 0
            split = {
                "train": {
                    "visual": ["fer2013/train.zip/angry/Training_1.jpg"],
                    "audio": [f"ravdess-audio/a{fold}"],
                    "fusion": [f"ravdess-audio/a{fold}", "fer2013/train.zip/angry/Training_1.jpg"],
                }[args[args.index("--stage") + 1]],
                "val": [],
                "test": [],
                "train_speakers": [] if "visual" in args else [f"ravdess-{fold + 1:02d}", "savee-JE"],
                "val_speakers": [] if "visual" in args else ["ravdess-20"],
                "test_speakers": [] if "visual" in args else [f"ravdess-{fold + 10:02d}", "savee-DC"],
            }
            (out / "split.json").write_text(json.dumps(split))
            (out / "last.pt").write_text("epoch 0")
            (out / "metrics.csv").write_text("epoch,seconds\n0,1.5\n")
            if self.interrupt is not None and str(out).endswith(self.interrupt):
                self.interrupt = None
                raise SystemExit("interrupted")
            (out / "best.pt").write_text("weights")
            (out / "results.json").write_text("{}")
        elif args[0] == "eval":
            report = {
                "dataset": args[args.index("--dataset") + 1],
                "n": 4,
                "weighted_accuracy": 0.5,
                "unweighted_accuracy": 0.25,
            }
            Path(args[args.index("--json") + 1]).write_text(json.dumps(report))
        elif args[0] == "export":
            out.mkdir(parents=True, exist_ok=True)
            (out / "manifest.json").write_text(json.dumps({"provenance": {"checkpoint": "best.pt"}}))


def _run_recipe(recipe, monkeypatch, tmp_path, steps: _FakeSteps, *more: str, merged: list | None = None) -> None:
    monkeypatch.setattr(recipe, "edge_emotion", steps)

    def merge_encoders(visual, audio, out, visual_width=None):
        if merged is not None:
            merged.append((visual, audio) if visual_width is None else (visual, audio, visual_width))
        return out

    monkeypatch.setattr(recipe, "merge_encoders", merge_encoders)
    monkeypatch.setattr(recipe, "calibration_dir", lambda data, split, out: out / "calib")

    def measure_window_shift(bundle, data, report, log) -> None:
        # it scores only the actors that did not train the bundle: its manifest must name them already
        provenance = json.loads((bundle / "manifest.json").read_text())["provenance"]
        assert provenance["training_speakers"]["ravdess"]
        report.write_text(json.dumps({"sets": {"av-clips": {"consistency": 0.5}}}))

    monkeypatch.setattr(recipe, "measure_window_shift", measure_window_shift)
    data = tmp_path / "data"
    for sub in ("ravdess", "savee", "emodb", "crema-d", "fer2013"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    recipe.main(["--data", str(data), "--out", str(tmp_path / "out"), "--folds", "2", *more])


ALL_CORPORA = ("--audio-corpora", "ravdess-audio", "savee", "emodb", "crema-d-audio")


def test_an_interrupted_recipe_resumes_where_it_stopped(recipe, monkeypatch, tmp_path):
    first = _FakeSteps(interrupt="fold1/audio")
    with pytest.raises(SystemExit, match="interrupted"):
        _run_recipe(recipe, monkeypatch, tmp_path, first, *ALL_CORPORA)
    assert all("--resume" in call for call in first.calls if call[0] == "train")
    audio = [c for c in first.calls if c[0] == "train" and "audio" in c]
    corpora = [audio[0][i + 1] for i, a in enumerate(audio[0]) if a == "--dataset"]
    assert corpora == ["ravdess-audio", "savee", "emodb", "crema-d-audio"]

    second = _FakeSteps()
    _run_recipe(recipe, monkeypatch, tmp_path, second, *ALL_CORPORA)
    trained = [c[c.index("--out") + 1] for c in second.calls if c[0] == "train"]
    out = tmp_path / "out"
    # finished steps are not repeated; the cut-off one runs again with --resume (it continues its last.pt)
    assert trained == [str(out / "fold1/audio")]
    assert [c[c.index("--out") + 1] for c in first.calls if c[0] == "train"] == [
        str(out / "visual"),
        str(out / "fold0/audio"),
        str(out / "fold0/fusion"),
        str(out / "fold1/audio"),
    ]
    assert (out / "export.done").exists()
    held_out = [c[c.index("--model") + 1] for c in first.calls + second.calls if c[0] == "eval" and "savee" in c]
    assert held_out == [str(out / "fold0/audio/best.pt"), str(out / "fold1/audio/best.pt")]  # leave-speakers-out

    manifest = json.loads((out / "bundle/manifest.json").read_text())
    provenance = manifest["provenance"]
    assert provenance["training_speakers"] == {"ravdess": ["ravdess-01", "ravdess-20"], "savee": ["savee-JE"]}
    assert provenance["training_images"] == {"fer2013": {"subsets": ["train"]}}
    assert provenance["metrics"]["window_shift_consistency"] == {"av-clips": {"consistency": 0.5}}
    assert provenance["metrics"]["savee_leave_speakers_out"]["unweighted_accuracy_mean"] == 0.25
    assert "SAVEE" in provenance["licence"]

    (out / "export.done").unlink()  # an export cut off before it finished is redone, nothing else
    third = _FakeSteps()
    _run_recipe(recipe, monkeypatch, tmp_path, third, *ALL_CORPORA)
    assert [c[0] for c in third.calls] == ["export"]


def test_corpora_left_out_of_training_are_scored_cross_corpus_on_the_shipped_fold(recipe, monkeypatch, tmp_path):
    steps = _FakeSteps()
    _run_recipe(recipe, monkeypatch, tmp_path, steps)  # the default: RAVDESS speech alone
    audio = [c for c in steps.calls if c[0] == "train" and "audio" in c]
    assert [a for c in audio for i, a in enumerate(c) if i and c[i - 1] == "--dataset"] == ["ravdess-audio"] * 2
    out = tmp_path / "out"
    cross = [c for c in steps.calls if c[0] == "eval" and ("savee" in c or "emodb" in c)]
    # the shipped fold's audio stage on every speaker (no --split), once per corpus
    assert [(c[c.index("--dataset") + 1], c[c.index("--model") + 1]) for c in cross] == [
        ("savee", str(out / "fold0/audio/best.pt")),
        ("emodb", str(out / "fold0/audio/best.pt")),
    ]
    assert all("--split" not in c for c in cross)
    metrics = json.loads((out / "bundle/manifest.json").read_text())["provenance"]["metrics"]
    assert metrics["savee_cross_corpus"]["unweighted_accuracy"] == 0.25 and "emodb_cross_corpus" in metrics
    assert "savee_leave_speakers_out" not in metrics
    kfold = metrics["ravdess_audio_only_actor_kfold"]
    assert kfold["folds_run"] == 2 and len(kfold["folds"]) == 2


def _stage_checkpoint(path: Path, stage: str, model: dict, **model_changes) -> Path:
    torch = pytest.importorskip("torch", reason="checkpoints need the 'train' extra (torch)")
    from edge_emotion.train.checkpoint import FORMAT, VERSION

    from edge_emotion.config import EDGE

    preset = EDGE.to_dict()
    for key, value in model_changes.items():
        if value is None:
            del preset["model"][key]
        else:
            preset["model"][key] = value
    torch.save({"format": FORMAT, "version": VERSION, "stage": stage, "preset": preset, "model": model}, path)
    return path


def test_stages_merge_when_what_each_trained_matches_the_preset(recipe, tmp_path):
    torch = pytest.importorskip("torch", reason="checkpoints need the 'train' extra (torch)")
    weights = {"visual.conv1.weight": torch.zeros(1), "audio.w": torch.zeros(1), "fusion.w": torch.zeros(1)}
    visual = _stage_checkpoint(tmp_path / "v.pt", "visual", {**weights, "visual.conv1.weight": torch.ones(1)})
    # an audio stage trained before the face encoder's stem changed: its weights do not depend on it
    audio = _stage_checkpoint(tmp_path / "a.pt", "audio", {**weights, "audio.w": torch.ones(1)}, visual_stem_pool=None)
    merged = torch.load(recipe.merge_encoders(visual, audio, tmp_path / "m.pt"), weights_only=True)
    assert all(float(merged["model"][k]) == 1.0 for k in ("visual.conv1.weight", "audio.w"))
    assert float(merged["model"]["fusion.w"]) == 0.0

    # a face encoder trained with the other stem, or a fusion head for another embedding size: refused
    other_stem = _stage_checkpoint(tmp_path / "v2.pt", "visual", weights, visual_stem_pool=True)
    with pytest.raises(SystemExit, match="visual checkpoint"):
        recipe.merge_encoders(other_stem, audio, tmp_path / "m2.pt")
    other_width = _stage_checkpoint(tmp_path / "a2.pt", "audio", weights, visual_width=32)
    with pytest.raises(SystemExit, match="audio checkpoint"):
        recipe.merge_encoders(visual, other_width, tmp_path / "m3.pt")

    # a recipe with a wider face encoder merges stages of that width, and only those
    wide_visual = _stage_checkpoint(tmp_path / "v32.pt", "visual", weights, visual_width=32)
    merged = torch.load(recipe.merge_encoders(wide_visual, other_width, tmp_path / "m4.pt", 32), weights_only=True)
    assert merged["preset"]["model"]["visual_width"] == 32
    with pytest.raises(SystemExit, match="visual checkpoint"):
        recipe.merge_encoders(visual, other_width, tmp_path / "m5.pt", 32)


def test_a_wider_face_encoder_reaches_every_stage(recipe, monkeypatch, tmp_path):
    steps, merged = _FakeSteps(), []
    _run_recipe(recipe, monkeypatch, tmp_path, steps, "--visual-width", "24", merged=merged)
    trained = [c for c in steps.calls if c[0] == "train"]
    assert trained and all(c[c.index("--visual-width") + 1] == "24" for c in trained)
    assert merged and all(m[-1] == 24 for m in merged)


def test_the_fusion_stage_must_split_the_face_images_as_the_visual_stage_did(recipe):
    visual = {"train": ["fer2013/a.jpg", "fer2013/b.jpg"], "val": ["fer2013/c.jpg"]}
    fusion = {
        "train": ["ravdess-audio/x", "fer2013/b.jpg", "fer2013/a.jpg"],
        "val": ["ravdess-audio/y", "fer2013/c.jpg"],
    }
    assert recipe.image_split_mismatch(visual, fusion) is None
    # a fusion stage that trains on an image the face stage validated on
    swapped = {"train": ["fer2013/a.jpg", "fer2013/c.jpg"], "val": ["fer2013/b.jpg"]}
    assert "1 fer2013/* images" in recipe.image_split_mismatch(visual, swapped)


def test_the_recipe_stops_when_the_fusion_stage_split_the_faces_otherwise(recipe, monkeypatch, tmp_path):
    steps = _FakeSteps()

    def fusion_with_other_faces(*args, log=None):
        steps(*args, log=log)
        args = [str(a) for a in args]
        if args[0] == "train" and "fusion" in args:
            out = Path(args[args.index("--out") + 1])
            split = json.loads((out / "split.json").read_text())
            split["train"] = ["fer2013/train.zip/angry/Training_2.jpg"]
            (out / "split.json").write_text(json.dumps(split))

    with pytest.raises(SystemExit, match="split unlike"):
        _run_recipe(recipe, monkeypatch, tmp_path, fusion_with_other_faces)


def test_the_edge_config_filters_face_images_alike_in_the_visual_and_fusion_stages():
    """The split of an image corpus is made after FER+ filtering, so stages that filter differently
    validate on different images: the fusion head would train on the face stage's validation images."""
    pytest.importorskip("torch", reason="the training config lives in the 'train' extra's package")
    from train.config import load_train_config

    keys = ("ferplus", "ferplus_votes", "ferplus_max_match_rmse", "ferplus_min_rmse_gap", "limit", "seed")
    visual, fusion = (load_train_config(REPO_ROOT / "configs" / "edge.toml", stage) for stage in ("visual", "fusion"))
    assert {k: getattr(visual, k) for k in keys} == {k: getattr(fusion, k) for k in keys}


def test_a_refit_with_a_refined_face_stage(recipe, monkeypatch, tmp_path):
    steps, merged = _FakeSteps(), []
    _run_recipe(recipe, monkeypatch, tmp_path, steps, "--visual-refine-epochs", "3", merged=merged)
    out = tmp_path / "out"
    train = {c[c.index("--out") + 1]: c for c in steps.calls if c[0] == "train"}
    refine = train[str(out / "visual-refine")]
    assert refine[refine.index("--init") + 1] == str(out / "visual" / "best.pt")
    assert [refine[refine.index(o) + 1] for o in ("--epochs", "--learning-rate", "--min-learning-rate")] == [
        "3",
        "0.0003",
        "1e-05",
    ]
    # the refined face stage is the one merged and tested; only the speech stages lose their validation actors
    assert merged == [(out / "visual-refine" / "best.pt", out / "fold0" / "audio" / "best.pt")]
    fer_eval = [c for c in steps.calls if c[0] == "eval" and "fer2013" in c][0]
    assert fer_eval[fer_eval.index("--split") + 1] == str(out / "visual-refine" / "split.json")
    for path, call in train.items():
        refit = "--val-speakers" in call and call[call.index("--val-speakers") + 1] == "0"
        assert refit == ("audio" in path or "fusion" in path), path
    manifest = json.loads((out / "bundle/manifest.json").read_text())
    assert "visual_stage_refined_from" in manifest["provenance"]["metrics"]


def test_no_refit_keeps_validation_actors(recipe, monkeypatch, tmp_path):
    steps = _FakeSteps()
    _run_recipe(recipe, monkeypatch, tmp_path, steps, "--no-refit")
    assert not [c for c in steps.calls if "--val-speakers" in c]


def test_audio_stages_only_trains_and_scores_the_folds_audio_stages_alone(recipe, monkeypatch, tmp_path):
    steps = _FakeSteps()
    _run_recipe(recipe, monkeypatch, tmp_path, steps, *ALL_CORPORA, "--audio-stages-only")
    out = tmp_path / "out"
    trained = [c[c.index("--out") + 1] for c in steps.calls if c[0] == "train"]
    assert sorted(trained) == [str(out / "fold0/audio"), str(out / "fold1/audio")]  # no face or fusion stage
    assert all(c[0] in ("train", "eval") for c in steps.calls)  # no export
    assert not (out / "bundle").exists()
    evals = sorted((c[c.index("--dataset") + 1], c[c.index("--model") + 1]) for c in steps.calls if c[0] == "eval")
    assert evals == sorted(
        (corpus, str(out / f"fold{k}/audio/best.pt")) for k in (0, 1) for corpus in ("ravdess-audio", "savee")
    )  # the fake folds hold out a SAVEE speaker and no EmoDB one
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["audio_corpora"] == list(ALL_CORPORA[1:])
    assert metrics["ravdess_audio_only_actor_kfold"]["folds_run"] == 2
    assert metrics["ravdess_audio_only_actor_kfold"]["unweighted_accuracy_mean"] == 0.25
    assert metrics["savee_leave_speakers_out"]["n"] == 8 and "emodb_leave_speakers_out" not in metrics
