"""Classification metrics as the field reports them, in numpy (no torch: bundle evaluation uses it).

- weighted accuracy (WA): correct / all samples;
- unweighted accuracy (UA): the mean of the per-class recalls, over the classes that occur in the
  ground truth (a class the test set lacks, e.g. RAVDESS's calm in CREMA-D, has no recall);
- per class: precision, recall, F1, support; the confusion matrix ``[true, predicted]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ClassificationResult:
    labels: tuple[str, ...]
    n: int
    weighted_accuracy: float
    unweighted_accuracy: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "labels": list(self.labels),
            "weighted_accuracy": self.weighted_accuracy,
            "unweighted_accuracy": self.unweighted_accuracy,
            "per_class": self.per_class,
            "confusion": self.confusion,
        }


def classification_result(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> ClassificationResult:
    """``y_true``, ``y_pred``: label indices into ``labels``."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    c = len(labels)
    confusion = np.zeros((c, c), np.int64)
    if t.size:
        np.add.at(confusion, (t, p), 1)
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    tp = np.diag(confusion)
    per_class = {}
    for i, name in enumerate(labels):
        precision = tp[i] / predicted[i] if predicted[i] else 0.0
        recall = tp[i] / support[i] if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(support[i]),
        }
    present = support > 0
    wa = float(tp.sum() / t.size) if t.size else 0.0
    ua = float(np.mean(tp[present] / support[present])) if present.any() else 0.0
    return ClassificationResult(tuple(labels), int(t.size), wa, ua, per_class, confusion.tolist())


def plot_confusion(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Write the confusion matrix (rows: true, columns: predicted; cells: counts, colour: row share)
    as a PNG with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(confusion, dtype=np.float64)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def clip_probabilities(window_probs: np.ndarray, clip_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Clip-level prediction: the mean of the softmax over each clip's windows.

    ``window_probs`` ``(N, C)``, ``clip_ids`` ``(N,)`` -> ``(unique clip ids (K,), probs (K, C))``.
    """
    ids = np.asarray(clip_ids)
    unique, inverse = np.unique(ids, return_inverse=True)
    sums = np.zeros((unique.size, window_probs.shape[1]), np.float64)
    np.add.at(sums, inverse, window_probs)
    counts = np.bincount(inverse, minlength=unique.size)[:, None]
    return unique, sums / counts


__all__ = ["ClassificationResult", "classification_result", "plot_confusion", "clip_probabilities"]
