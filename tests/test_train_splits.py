"""Split protocols: speaker-independent folds with validation from the training speakers only."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from edge_emotion.errors import InputError
from edge_emotion.eval.datasets import Sample
from edge_emotion.eval.splits import Split, make_split


def _samples():
    out = [
        Sample(key=f"r/{a}-{i}", dataset="r", label="happy", speaker=f"actor{a:02d}", audio_path="x.wav")
        for a in range(1, 11)
        for i in range(3)
    ]
    out += [
        Sample(key=f"fer/{u}-{i}", dataset="fer", label="sad", image_path="f.zip", member=f"{i}", subset=u)
        for u in ("train", "test")
        for i in range(10)
    ]
    return out


def test_actor_kfold_is_speaker_independent_and_covers_every_actor_once(tmp_path):
    samples = _samples()
    speaker = {s.key: s.speaker for s in samples}
    seen_test = []
    for fold in range(5):
        split = make_split(samples, "actor-kfold", fold=fold, folds=5, seed=1, val_speakers=2)
        parts = {p: {speaker[k] for k in getattr(split, p) if speaker[k]} for p in ("train", "val", "test")}
        assert (
            not parts["train"] & parts["test"]
            and not parts["val"] & parts["test"]
            and not parts["train"] & parts["val"]
        )
        assert len(parts["test"]) == 2 and len(parts["val"]) == 2
        seen_test += sorted(parts["test"])
        # FER2013 keeps its own split: public test -> test, training -> train/val
        assert {k for k in split.test if k.startswith("fer/")} == {f"fer/test-{i}" for i in range(10)}
        assert len(set(split.train) | set(split.val) | set(split.test)) == len(samples)
    assert sorted(seen_test) == sorted({s.speaker for s in samples if s.speaker})

    path = split.save(tmp_path / "split.json")
    assert Split.load(path) == split


def test_random_split_is_80_20():
    split = make_split(_samples(), "random", seed=0)
    assert len(split.test) == 10 and len(split.val) == 4 and len(split.train) == 36


def test_bad_protocol_and_fold():
    with pytest.raises(InputError, match="protocol"):
        make_split(_samples(), "leave-one-out")
    with pytest.raises(InputError, match="fold"):
        make_split(_samples(), fold=5, folds=5)


def test_a_corpus_split_does_not_depend_on_the_corpora_mixed_with_it():
    """The audio stage splits RAVDESS alone and the fusion stage RAVDESS mixed with other corpora:
    the same fold must hold out the same actors, or the fusion stage's test actors were trained on."""
    samples = _samples()
    alone = [s for s in samples if s.dataset == "r"]
    other = [
        Sample(key=f"c/{a}-{i}", dataset="c", label="angry", speaker=f"c{a}", audio_path="y.wav")
        for a in range(3)
        for i in range(2)
    ]
    for fold in range(5):
        a = make_split(alone, "actor-kfold", fold=fold, folds=5, seed=0)
        b = make_split(other + samples, "actor-kfold", fold=fold, folds=5, seed=0)
        r_only = lambda keys: {k for k in keys if k.startswith("r/")}  # noqa: E731
        assert r_only(b.test) == set(a.test) and r_only(b.val) == set(a.val) and r_only(b.train) == set(a.train)


def _corpus(name: str, speakers: int, per_speaker: int = 2) -> list[Sample]:
    return [
        Sample(key=f"{name}/{a}-{i}", dataset=name, label="sad", speaker=f"{name}-{a:02d}", audio_path="x.wav")
        for a in range(speakers)
        for i in range(per_speaker)
    ]


def test_four_validation_speakers_by_default_and_at_most_a_quarter_of_a_small_corpus():
    samples = _corpus("ravdess", 20) + _corpus("emodb", 8) + _corpus("savee", 3)
    for fold in range(5):
        split = make_split(samples, "actor-kfold", fold=fold, folds=5, seed=0)
        val = {c: [s for s in split.val_speakers if s.startswith(c)] for c in ("ravdess", "emodb", "savee")}
        test = {c: [s for s in split.test_speakers if s.startswith(c)] for c in ("ravdess", "emodb", "savee")}
        assert len(test["ravdess"]) == 4 and len(val["ravdess"]) == 4
        assert len(val["emodb"]) == 1  # 6-7 non-test speakers: a quarter rounds down to 1
        assert len(val["savee"]) == 1  # at least one while two remain
        train = set(split.train_speakers)
        assert not train & set(split.val_speakers) and not train & set(split.test_speakers)
        assert len(train) + len(split.val_speakers) + len(split.test_speakers) == 31
        assert Split.load(split.save(Path(tempfile.mkdtemp()) / "s.json")).train_speakers == split.train_speakers


def test_a_corpus_with_fewer_speakers_than_folds_tests_each_speaker_once():
    samples = _corpus("savee", 3)
    tested = [s for fold in range(5) for s in make_split(samples, "actor-kfold", fold=fold, folds=5).test_speakers]
    assert sorted(tested) == ["savee-00", "savee-01", "savee-02"]


def test_variants_of_one_corpus_keep_each_speaker_in_one_part():
    av = [
        Sample(key=f"crema-d/{a}", dataset="crema-d", label="sad", speaker=f"crema-d-{a}", video_path="v.flv")
        for a in (1001,)
    ]
    audio = [
        Sample(
            key=f"crema-d-audio/{a}-{i}",
            dataset="crema-d-audio",
            label="sad",
            speaker=f"crema-d-{a}",
            audio_path="a.wav",
        )
        for a in (1001, 1002, 1003)
        for i in range(2)
    ]
    for fold in range(3):
        split = make_split(av + audio, "actor-kfold", fold=fold, folds=3, seed=0)
        part_of = {k: p for p in ("train", "val", "test") for k in getattr(split, p)}
        assert part_of["crema-d/1001"] == part_of["crema-d-audio/1001-0"] == part_of["crema-d-audio/1001-1"]
        assert make_split(audio, "actor-kfold", fold=fold, folds=3, seed=0).test_speakers == split.test_speakers


def test_no_validation_speakers_when_asked_for_none():
    """A refit: every non-test speaker trains; images keep their own validation part."""
    samples = _corpus("ravdess", 20) + _samples()[-20:]
    for fold in range(5):
        split = make_split(samples, "actor-kfold", fold=fold, folds=5, seed=0, val_speakers=0)
        assert not split.val_speakers and len(split.train_speakers) == 16 and len(split.test_speakers) == 4
        assert not [k for k in split.val if k.startswith("ravdess")]
        assert split.test_speakers == make_split(samples, "actor-kfold", fold=fold, folds=5, seed=0).test_speakers
