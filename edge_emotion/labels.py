"""Mapping a dataset's emotion names onto a model's labels, by name.

Corpora spell the same emotion differently (``fear`` / ``fearful`` / ``FEA`` / ``fea``,
``happiness`` / ``happy`` / ``HAP``). Every name is first reduced to a canonical emotion
(:data:`CANONICAL`), then looked up among the model's labels, which are canonicalised the same way.
A dataset label the model lacks (IEMOCAP's ``fru``, FER2013's ``contempt`` ...) is not an error:
:class:`LabelMapper` returns ``None`` and counts it, so evaluations and training runs report how
many samples they could not use instead of silently dropping them.

No torch here: the SDK's ``eval`` of a bundle uses this module too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Spelling (lower case) -> canonical emotion name. Canonical names are RAVDESS's label names.
CANONICAL: dict[str, str] = {
    # neutral
    "neutral": "neutral",
    "neu": "neutral",
    # calm (RAVDESS only)
    "calm": "calm",
    # happy (IEMOCAP's "excited" is merged into happy, the field's usual 4-class protocol)
    "happy": "happy",
    "happiness": "happy",
    "hap": "happy",
    "joy": "happy",
    "exc": "happy",
    "excited": "happy",
    # sad
    "sad": "sad",
    "sadness": "sad",
    # angry
    "angry": "angry",
    "anger": "angry",
    "ang": "angry",
    # fearful
    "fearful": "fearful",
    "fear": "fearful",
    "fea": "fearful",
    # disgust
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    # surprised
    "surprised": "surprised",
    "surprise": "surprised",
    "sur": "surprised",
    # labels no shipped model carries; listed so that they are reported under one name
    "frustrated": "frustrated",
    "frustration": "frustrated",
    "fru": "frustrated",
    "contempt": "contempt",
    "other": "other",
    "oth": "other",
    "xxx": "no-agreement",
}


def canonical(name: str) -> str:
    """The canonical emotion for a dataset's spelling; unknown names are returned lower-cased."""
    key = name.strip().lower()
    return CANONICAL.get(key, key)


@dataclass
class LabelMapper:
    """Maps dataset label names onto indices of ``labels`` (a model's label tuple) and counts the
    names it cannot map.

    >>> m = LabelMapper(("neutral", "happy", "fearful"))
    >>> m("FEA"), m("happiness"), m("fru")
    (2, 1, None)
    >>> dict(m.unmapped)
    {'fru': 1}
    """

    labels: Sequence[str]
    unmapped: Counter = field(default_factory=Counter)
    mapped: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        self._index: dict[str, int] = {}
        for i, label in enumerate(self.labels):
            key = canonical(label)
            if key in self._index:
                raise ValueError(f"labels {self.labels[self._index[key]]!r} and {label!r} name the same emotion")
            self._index[key] = i

    def index(self, name: str) -> int | None:
        """The model's label index for ``name``, or ``None`` (not counted)."""
        return self._index.get(canonical(name))

    def __call__(self, name: str) -> int | None:
        """Like :meth:`index`, and counts the name as mapped or unmapped."""
        idx = self.index(name)
        if idx is None:
            self.unmapped[name] += 1
        else:
            self.mapped[self.labels[idx]] += 1
        return idx

    def report(self) -> dict[str, int]:
        """``{dataset label: count}`` of the samples that were not mapped."""
        return dict(sorted(self.unmapped.items()))


def map_labels(names: Iterable[str], labels: Sequence[str]) -> tuple[list[int | None], dict[str, int]]:
    """Map many names at once: the model index per name (``None`` when unmapped) and the unmapped
    counts."""
    mapper = LabelMapper(labels)
    return [mapper(n) for n in names], mapper.report()


__all__ = ["CANONICAL", "canonical", "LabelMapper", "map_labels"]
