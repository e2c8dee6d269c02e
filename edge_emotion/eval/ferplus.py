"""FER+ (Barsoum et al. 2016, MIT): ten annotators' votes for FER2013's images.

The votes file (``ferplus_votes.csv``) has one row per image of ``train.zip`` and
``public_test.zip``: ``zip``, ``member`` (the image inside it), ``fer2013_row``, ``match_rmse``,
``second_rmse`` and the vote counts of the ten FER+ classes (:data:`CLASSES`). The join of the
FER+ rows to the images was made by pixel match: ``match_rmse`` is its error (about 1-3 for a true
match, JPEG noise), ``second_rmse`` the next-best image's. A join is *doubtful* when
``match_rmse`` exceeds ``max_match_rmse`` or the second-best image is within ``min_rmse_gap`` of
it (off by default: a near-duplicate is in FER2013 mostly the same picture twice, whose votes apply
to both).

What this module offers, without torch:

- :func:`read_votes`: the file -> ``{sample key: VoteRow}`` (sample keys of
  :mod:`.fer2013`: ``fer2013/<zip>/<emotion>/<name>.jpg``);
- :meth:`VoteRow.not_a_face`: FER+'s ``unknown`` or ``NF`` (not a face) got the most votes (the
  FER+ paper drops those images);
- :meth:`VoteRow.majority`: the emotion with the most votes (None on a tie or when unknown/NF wins);
- :meth:`VoteRow.soft_target`: the votes over a model's labels as a distribution (soft targets;
  ``contempt`` and the non-emotion votes are left out when the model lacks them);
- :func:`majority_accuracy`: a model's predictions scored against the FER+ majority vote.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_emotion.errors import InputError
from edge_emotion.labels import LabelMapper, canonical

#: The FER+ classes, in the file's column order.
CLASSES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
EMOTION_CLASSES = CLASSES[:8]
VOTES_FILE = "ferplus_votes.csv"


@dataclass(frozen=True)
class VoteRow:
    """One image's FER+ votes ``(10,) int`` (in :data:`CLASSES` order) and its join errors."""

    votes: tuple[int, ...]
    match_rmse: float
    second_rmse: float

    def trusted(self, max_match_rmse: float = 5.0, min_rmse_gap: float = 0.0) -> bool:
        """The join is not doubtful (see the module doc)."""
        return self.match_rmse <= max_match_rmse and self.second_rmse - self.match_rmse >= min_rmse_gap

    def not_a_face(self) -> bool:
        """``unknown`` or ``NF`` has the most votes (ties included)."""
        top = max(self.votes)
        return top > 0 and max(self.votes[8:]) == top

    def majority(self) -> str | None:
        """The canonical emotion (:mod:`edge_emotion.labels`) with the most votes; None on a tie
        between emotions, when no emotion was voted or when unknown/NF wins."""
        if self.not_a_face():
            return None
        emotion = self.votes[:8]
        top = max(emotion)
        if top == 0 or emotion.count(top) > 1:
            return None
        return canonical(EMOTION_CLASSES[emotion.index(top)])

    def soft_target(self, labels: Sequence[str]) -> np.ndarray | None:
        """``(len(labels),) float32`` summing to 1: the emotion votes on ``labels``; None when no
        vote falls on them."""
        mapper = LabelMapper(labels)
        target = np.zeros(len(labels), np.float32)
        for name, count in zip(EMOTION_CLASSES, self.votes[:8], strict=True):
            idx = mapper.index(name)
            if idx is not None:
                target[idx] += count
        total = float(target.sum())
        return target / total if total > 0 else None


def default_votes_path(root: str | Path) -> Path | None:
    """``root/ferplus_votes.csv`` when it is there (the FER2013 folder of ``../shared/data``)."""
    path = Path(root) / VOTES_FILE
    return path if path.is_file() else None


def read_votes(path: str | Path) -> dict[str, VoteRow]:
    """The votes file -> ``{"fer2013/<zip>/<member>": VoteRow}``; raises :class:`InputError` for
    a file that is missing or lacks the FER+ columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"FER+ votes file {path} does not exist")
    out: dict[str, VoteRow] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"zip", "member", "match_rmse", "second_rmse", *CLASSES} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path} is not a FER+ votes file (no column {', '.join(sorted(missing))})")
        for row in reader:
            try:
                out[f"fer2013/{row['zip']}/{row['member']}"] = VoteRow(
                    votes=tuple(int(row[c]) for c in CLASSES),
                    match_rmse=float(row["match_rmse"]),
                    second_rmse=float(row["second_rmse"]),
                )
            except ValueError as exc:
                raise InputError(f"{path}: bad row {reader.line_num}: {exc}") from None
    return out


def majority_accuracy(
    predictions: Mapping[str, int],
    labels: Sequence[str],
    votes: Mapping[str, VoteRow],
    max_match_rmse: float = 5.0,
    min_rmse_gap: float = 0.0,
) -> dict:
    """Score ``predictions`` (``{sample key: predicted label index}``) against the FER+ majority
    vote. Images are left out, and counted by reason, when they have no FER+ row, a doubtful join,
    unknown/NF as the winner, a tie, or a majority emotion the model lacks."""
    mapper = LabelMapper(labels)
    excluded: Counter = Counter()
    correct = n = 0
    per_label: dict[str, list[int]] = {}
    for key, predicted in predictions.items():
        row = votes.get(key)
        if row is None:
            excluded["no FER+ row"] += 1
            continue
        if not row.trusted(max_match_rmse, min_rmse_gap):
            excluded["doubtful join"] += 1
            continue
        if row.not_a_face():
            excluded["FER+ unknown / not a face"] += 1
            continue
        majority = row.majority()
        if majority is None:
            excluded["tie"] += 1
            continue
        idx = mapper.index(majority)
        if idx is None:
            excluded[f"majority {majority} not in the model's labels"] += 1
            continue
        n += 1
        hit = int(predicted) == idx
        correct += hit
        counts = per_label.setdefault(labels[idx], [0, 0])
        counts[0] += hit
        counts[1] += 1
    recalls = [c / t for c, t in per_label.values() if t]
    return {
        "n": n,
        "accuracy": correct / n if n else float("nan"),
        "unweighted_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "excluded": dict(sorted(excluded.items())),
        "max_match_rmse": max_match_rmse,
        "min_rmse_gap": min_rmse_gap,
        "truth": "FER+ majority vote of ten annotators",
    }


__all__ = [
    "CLASSES",
    "VOTES_FILE",
    "VoteRow",
    "default_votes_path",
    "read_votes",
    "majority_accuracy",
]
