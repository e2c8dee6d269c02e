"""The trainer's clip-level validation figures: per corpus when the validation set mixes corpora."""

from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch", reason="training needs torch (the 'train' extra)")

from edge_emotion.train.trainer import _Logger, clip_metrics  # noqa: E402

LABELS = ("neutral", "calm", "happy")


class _Windows(torch.utils.data.Dataset):
    """Windows (clip, label, the class a fake network predicts for it)."""

    def __init__(self, rows, groups=None):
        self.rows = rows
        if groups is not None:
            self.clip_groups = groups

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        clip, label, predicted = self.rows[i]
        return {"clip": torch.tensor(clip), "label": torch.tensor(label), "predicted": torch.tensor(predicted)}


class _Echo(torch.nn.Module):
    def forward(self, batch):
        return torch.nn.functional.one_hot(batch["predicted"], len(LABELS)).float() * 5


ROWS = [  # corpus a: clip 0 right, clip 1 wrong (two windows each); corpus b: clips 2 and 3 right
    (0, 0, 0),
    (0, 0, 0),
    (1, 1, 0),
    (1, 1, 0),
    (2, 2, 2),
    (3, 2, 2),
]


def test_a_validation_set_of_several_corpora_is_scored_per_corpus_too():
    ds = _Windows(ROWS, groups={0: "a", 1: "a", 2: "b", 3: "b"})
    m = clip_metrics(_Echo(), ds, torch.device("cpu"), 4, LABELS)
    assert m["n"] == 4 and m["wa"] == pytest.approx(0.75)
    assert m["by_corpus"]["a"] == {"n": 2, "wa": pytest.approx(0.5), "ua": pytest.approx(0.5)}
    assert m["by_corpus"]["b"] == {"n": 2, "wa": pytest.approx(1.0), "ua": pytest.approx(1.0)}


def test_one_corpus_or_none_known_gives_no_per_corpus_figures():
    assert "by_corpus" not in clip_metrics(
        _Echo(), _Windows(ROWS, groups=dict.fromkeys(range(4), "a")), "cpu", 4, LABELS
    )
    assert "by_corpus" not in clip_metrics(_Echo(), _Windows(ROWS), torch.device("cpu"), 4, LABELS)


def _row(epoch, by_corpus=None):
    row = dict(epoch=epoch, lr=1e-3, train_loss=1.0, val_loss=1.0, val_wa=0.5, val_ua=0.5, seconds=1.0)
    return {**row, "val_by_corpus": by_corpus} if by_corpus else row


def test_the_logger_writes_per_corpus_rows_beside_metrics_csv(tmp_path):
    logger = _Logger(tmp_path, resume=False)
    logger(_row(0, {"a": {"n": 2, "wa": 0.5, "ua": 0.25}, "b": {"n": 3, "wa": 1.0, "ua": 1.0}}))
    logger.close()
    rows = list(csv.DictReader((tmp_path / "metrics_by_corpus.csv").open()))
    assert [(r["epoch"], r["corpus"], r["val_n"], r["val_ua"]) for r in rows] == [
        ("0", "a", "2", "0.25"),
        ("0", "b", "3", "1.0"),
    ]
    resumed = _Logger(tmp_path, resume=True)  # a resumed run appends
    resumed(_row(1, {"a": {"n": 2, "wa": 1.0, "ua": 1.0}}))
    resumed.close()
    assert [r["epoch"] for r in csv.DictReader((tmp_path / "metrics_by_corpus.csv").open())] == ["0", "0", "1"]
    fresh = _Logger(tmp_path, resume=False)  # a fresh run starts both files anew
    fresh(_row(0))
    fresh.close()
    assert not (tmp_path / "metrics_by_corpus.csv").exists()
    assert len(list(csv.DictReader((tmp_path / "metrics.csv").open()))) == 1
