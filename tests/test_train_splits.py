"""Split protocols: speaker-independent folds with validation from the training speakers only."""

from __future__ import annotations

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
