"""Mapping corpora's emotion names onto a model's labels, and counting what does not map."""

from __future__ import annotations

import pytest

from edge_emotion.config import DEFAULT_LABELS
from edge_emotion.labels import LabelMapper, canonical, map_labels


@pytest.mark.parametrize(
    "name, expected",
    [
        ("fear", "fearful"),
        ("FEA", "fearful"),
        ("fea", "fearful"),
        ("Fearful", "fearful"),
        ("surprise", "surprised"),
        ("sur", "surprised"),
        ("anger", "angry"),
        ("ANG", "angry"),
        ("ang", "angry"),
        ("happiness", "happy"),
        ("HAP", "happy"),
        ("exc", "happy"),
        ("sadness", "sad"),
        ("SAD", "sad"),
        ("NEU", "neutral"),
        ("neu", "neutral"),
        ("DIS", "disgust"),
        ("dis", "disgust"),
        ("calm", "calm"),
    ],
)
def test_spellings_map_onto_ravdess_labels(name, expected):
    mapper = LabelMapper(DEFAULT_LABELS)
    assert mapper(name) == DEFAULT_LABELS.index(expected)
    assert canonical(name) == expected


def test_unmapped_labels_are_counted_not_dropped_silently():
    indices, unmapped = map_labels(["fru", "neu", "xxx", "fru", "oth", "hap", "contempt"], DEFAULT_LABELS)
    assert indices == [None, 0, None, None, None, 2, None]
    assert unmapped == {"contempt": 1, "fru": 2, "oth": 1, "xxx": 1}


def test_a_model_without_calm_reports_calm_as_unmapped():
    labels = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    mapper = LabelMapper(labels)
    assert mapper("calm") is None
    assert mapper("surprise") == 6
    assert mapper.report() == {"calm": 1}
    assert dict(mapper.mapped) == {"surprised": 1}


def test_labels_naming_one_emotion_twice_are_rejected():
    with pytest.raises(ValueError, match="same emotion"):
        LabelMapper(("fear", "fearful", "happy"))
