"""Honest evaluation: what trained a bundle (its manifest, or derived from an older manifest's
prose), how many evaluated samples overlap it, FER+ majority-vote accuracy, and window-shift
consistency. The shipped bundle is only read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edge_emotion.cli import main
from edge_emotion.eval.datasets import Sample, get_dataset
from edge_emotion.eval.ferplus import CLASSES, VoteRow, majority_accuracy
from edge_emotion.eval.provenance import training_ids, training_ids_from_splits, training_overlap
from edge_emotion.eval.window_shift import ClipShift

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = REPO_ROOT / "edge_emotion" / "models" / "default"
LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def _shipped_manifest() -> dict:
    path = SHIPPED / "manifest.json"
    if not path.is_file():
        pytest.skip("this checkout ships no default bundle")
    return json.loads(path.read_text())


def _ravdess(actor: int, key: str = "x") -> Sample:
    return Sample(
        key=f"ravdess-audio/{key}{actor}",
        dataset="ravdess-audio",
        label="sad",
        speaker=f"ravdess-{actor:02d}",
        audio_path=Path("a.flac"),
    )


def test_training_speakers_of_an_older_manifest_are_derived_from_its_split_protocol():
    manifest = _shipped_manifest()
    provenance = manifest["provenance"]
    if "training_speakers" in provenance:
        pytest.skip("the shipped manifest lists its training speakers itself")
    ids = training_ids(manifest)
    assert ids.source == "derived from provenance.split_protocol"
    test_actors = {"ravdess-06", "ravdess-11", "ravdess-16", "ravdess-18"}
    assert all(f"'{a}'" in provenance["split_protocol"]["ravdess"] for a in test_actors)
    assert ids.speakers["ravdess"] == {f"ravdess-{a:02d}" for a in range(1, 21)} - test_actors
    assert ids.image_subsets == {"fer2013": frozenset({"train"})}
    overlap = training_overlap([_ravdess(a) for a in range(1, 21)], ids)
    assert (overlap.n, overlap.n_seen) == (20, 16)
    assert overlap.warning().startswith("warning: 16 of 20 evaluated samples were seen in training")


def test_the_manifest_field_wins_and_a_manifest_saying_nothing_gives_none():
    manifest = {
        "provenance": {
            "training_speakers": {"ravdess": ["ravdess-02"], "savee": ["savee-JE"]},
            "training_images": {"fer2013": {"subsets": ["train"]}},
            "split_protocol": {"ravdess": "test actors ['ravdess-01']"},
            "training_data": {"speech": "RAVDESS speech actors 1-20"},
        }
    }
    ids = training_ids(manifest)
    assert ids.source == "manifest" and ids.all_speakers() == {"ravdess-02", "savee-JE"}
    faces = [
        Sample(key=f"fer2013/{z}/sad/1.jpg", dataset="fer2013", label="sad", image_path=Path(z), member="m", subset=s)
        for z, s in (("train.zip", "train"), ("public_test.zip", "test"))
    ]
    samples = [_ravdess(1), _ravdess(2), *faces]
    overlap = training_overlap(samples, ids)
    assert overlap.n_seen == 2 and overlap.speakers == ("ravdess-02",)
    assert training_ids({"provenance": {"training_data": None, "split_protocol": None}}) is None
    assert training_overlap([_ravdess(1)], ids).warning() is None


def test_training_ids_from_saved_splits_cover_train_and_validation():
    splits = [
        {
            "train": ["ravdess-audio/a"],
            "val": ["ravdess-audio/b"],
            "test": ["ravdess-audio/c"],
            "train_speakers": ["ravdess-01"],
            "val_speakers": ["ravdess-02"],
            "test_speakers": ["ravdess-03"],
        },
        {"train": ["fer2013/train.zip/sad/Training_1.jpg"], "val": [], "test": ["fer2013/public_test.zip/sad/1.jpg"]},
        {"train": ["crema-d/1002_X"], "val": [], "test": []},  # an old split: speakers through the index
    ]
    crema = Sample(
        key="crema-d/1002_X", dataset="crema-d", label="sad", speaker="crema-d-1002", video_path=Path("v.flv")
    )
    ids = training_ids_from_splits(splits, [crema])
    assert ids.to_provenance() == {
        "training_speakers": {"crema-d": ["crema-d-1002"], "ravdess": ["ravdess-01", "ravdess-02"]},
        "training_images": {"fer2013": {"subsets": ["train"]}},
    }
    assert not ids.seen(_ravdess(3)) and ids.seen(_ravdess(1))


def _votes(**counts) -> VoteRow:
    return VoteRow(tuple(counts.get(c, 0) for c in CLASSES), counts.get("rmse", 1.8), 40.0)


def test_ferplus_majority_accuracy_counts_what_it_leaves_out():
    votes = {
        "a": _votes(happiness=7, neutral=3),  # happy
        "b": _votes(sadness=5, neutral=5),  # tie
        "c": _votes(NF=6, anger=4),  # not a face
        "d": _votes(anger=9, rmse=20.0),  # doubtful join
        "e": _votes(contempt=8, neutral=2),  # contempt: not one of ours
        "f": _votes(fear=6, surprise=4),  # fearful
    }
    predictions = {"a": LABELS.index("happy"), "b": 0, "c": 4, "d": 4, "e": 0, "f": LABELS.index("surprised"), "g": 0}
    report = majority_accuracy(predictions, LABELS, votes)
    assert report["n"] == 2 and report["accuracy"] == 0.5
    assert report["excluded"] == {
        "FER+ unknown / not a face": 1,
        "doubtful join": 1,
        "majority contempt not in the model's labels": 1,
        "no FER+ row": 1,
        "tie": 1,
    }
    assert _votes(fear=6, surprise=4).soft_target(LABELS)[LABELS.index("fearful")] == pytest.approx(0.6)


def test_clip_consistency_is_the_share_labelled_like_the_first_window():
    clip = ClipShift("k", (0, 100, 200, 300, 400), ("sad", "sad", "angry", "sad", "calm"))
    assert clip.consistency == pytest.approx(3 / 5) and clip.consistency_shifted == pytest.approx(2 / 4)


def _eval(argv: list[str]) -> int:
    try:
        main(["eval", "--no-progress", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_eval_of_the_shipped_bundle_warns_about_actors_it_trained_on(shared_data, tmp_path, capsys):
    _shipped_manifest()
    root = tmp_path / "ravdess"
    for name in ("Actor_01/03-01-05-01-01-01-01.flac", "Actor_06/03-01-05-01-01-01-06.flac"):
        (root / name).parent.mkdir(parents=True)
        os.symlink(shared_data / "ravdess/audio16k" / name, root / name)
    report = tmp_path / "r.json"
    code = _eval(["--dataset", "ravdess-audio", "--root", str(root), "--json", str(report)])
    assert code == 0
    overlap = json.loads(report.read_text())["training_overlap"]
    assert overlap["n"] == 2 and overlap["n_seen_in_training"] == 1 and overlap["speakers"] == ["ravdess-01"]
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        "warning: 1 of 2 evaluated samples were seen in training (1 speakers it trained or validated on: "
        "ravdess-01): not a held-out result"
    ]


def test_fer2013_eval_adds_the_ferplus_majority_vote(shared_data, tmp_path, capsys):
    _shipped_manifest()
    report = tmp_path / "r.json"
    code = _eval(
        ["--dataset", "fer2013", "--root", str(shared_data / "fer2013"), "--limit", "12", "--json", str(report)]
    )
    assert code == 0
    data = json.loads(report.read_text())
    ferplus = data["ferplus"]
    assert ferplus["n"] + sum(ferplus["excluded"].values()) == data["n"] == 12
    assert 0.0 <= ferplus["accuracy"] <= 1.0
    assert "FER+ majority vote" in capsys.readouterr().out
    assert (
        _eval(
            [
                "--dataset",
                "fer2013",
                "--root",
                str(shared_data / "fer2013"),
                "--limit",
                "2",
                "--ferplus",
                str(tmp_path / "absent.csv"),
            ]
        )
        == 2
    )


def test_shifted_windows_at_whole_hops_are_the_clips_own_windows(shared_data):
    _shipped_manifest()
    from edge_emotion.eval.evaluate import load_predictor, predict_clip
    from edge_emotion.eval.window_shift import shifted_windows, window_shift_consistency
    from edge_emotion.frontend.preprocess import preprocess_clip

    predictor = load_predictor(SHIPPED)
    index = get_dataset("ravdess-audio", shared_data / "ravdess/audio16k/Actor_06")
    sample = next(s for s in index.samples if s.key.endswith("03-01-05-02-01-01-06"))
    clip = preprocess_clip(predictor.preset, audio_path=sample.audio_path)
    assert clip.n_windows >= 2  # a 4.1 s clip: windows at 0 and 1000 ms at least
    moved = shifted_windows(sample, predictor, (0, 1000))
    assert np.array_equal(moved.log_mel, clip.log_mel[:2]) and np.array_equal(moved.speech, clip.speech[:2])
    result = window_shift_consistency(predictor, [sample])
    assert result.n == 1 and len(result.clips[0].labels) == 10
    first = predictor.labels[int(predict_clip(predictor, clip)[0].argmax())]
    assert result.clips[0].labels[0] == first
    assert 0.1 <= result.mean <= 1.0
