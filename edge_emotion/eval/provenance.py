"""Which speakers and images trained a model, and how many evaluated samples overlap them.

A bundle's manifest records them in ``provenance.training_speakers`` (``{corpus: [speaker id,
...]}``, the speaker ids of :class:`.datasets.Sample`, e.g. ``"ravdess-03"``; the training *and*
validation speakers, since the validation speakers chose the epoch) and
``provenance.training_images`` (``{corpus: {"subsets": [...]}}``: the corpus subsets whose images
were trained or validated on, e.g. FER2013's ``train``). Bundles written before these fields
existed carry only prose (``provenance.training_data``, ``provenance.split_protocol``);
:func:`training_ids` derives the same from it where the prose says it unambiguously (the RAVDESS
actor range trained on minus the fold's test actors; FER2013's ``train.zip`` for training).

A training checkpoint's run directory holds its ``split.json``: :func:`training_ids_from_split`
reads the speakers (and image subsets) of its train and validation parts.

No torch here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .datasets import Sample
from .fer2013 import subset_of
from .splits import speaker_group


@dataclass(frozen=True)
class TrainingIds:
    """Speaker ids per corpus and image subsets per corpus that a model saw in training (or
    validation); ``source`` says where they come from."""

    speakers: dict[str, frozenset[str]] = field(default_factory=dict)
    image_subsets: dict[str, frozenset[str]] = field(default_factory=dict)
    keys: frozenset[str] = frozenset()
    source: str = "manifest"

    def all_speakers(self) -> frozenset[str]:
        return frozenset().union(*self.speakers.values()) if self.speakers else frozenset()

    def seen(self, sample: Sample) -> bool:
        """Whether ``sample`` (its speaker, its image subset or the sample itself) was in training."""
        if sample.key in self.keys:
            return True
        if sample.speaker is not None and sample.speaker in self.all_speakers():
            return True
        if sample.image_path is not None and sample.subset is not None:
            return sample.subset in self.image_subsets.get(sample.dataset, frozenset())
        return False

    def to_provenance(self) -> dict[str, Any]:
        """The manifest fields (``training_speakers``, ``training_images``)."""
        return {
            "training_speakers": {corpus: sorted(s) for corpus, s in sorted(self.speakers.items())},
            "training_images": {corpus: {"subsets": sorted(s)} for corpus, s in sorted(self.image_subsets.items())},
        }


def _group(speakers: Iterable[str]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for s in speakers:
        out.setdefault(speaker_group(s), set()).add(s)
    return {k: frozenset(v) for k, v in out.items()}


def training_ids_from_splits(splits: Sequence[Mapping[str, Any]], samples: Sequence[Sample] = ()) -> TrainingIds:
    """The speakers and image subsets of the train + validation parts of one or more saved splits
    (``split.json`` contents: each stage of a staged model has its own). ``train_speakers`` is
    read when the split has it; otherwise the speakers are looked up through ``samples`` (an
    index holding the split's keys), and the keys themselves are kept."""
    speakers: set[str] = set()
    keys: set[str] = set()
    image_subsets: dict[str, set[str]] = {}
    by_key = {s.key: s for s in samples}
    for split in splits:
        speakers.update(split.get("train_speakers", ()))
        speakers.update(split.get("val_speakers", ()))
        for key in (*split.get("train", ()), *split.get("val", ())):
            keys.add(key)
            sample = by_key.get(key)
            if sample is not None and sample.speaker is not None:
                speakers.add(sample.speaker)
            elif sample is not None and sample.image_path is not None and sample.subset is not None:
                image_subsets.setdefault(sample.dataset, set()).add(sample.subset)
            elif sample is None and key.startswith("fer2013/"):  # an image key names its subset
                subset = subset_of(tuple(key.split("/")[1:]))
                if subset is not None:
                    image_subsets.setdefault("fer2013", set()).add(subset)
    return TrainingIds(
        speakers=_group(speakers),
        image_subsets={k: frozenset(v) for k, v in image_subsets.items()},
        keys=frozenset(keys),
        source="split",
    )


_RANGE = re.compile(r"RAVDESS speech actors (\d+)\s*[-\u2013]\s*(\d+)")
_TEST = re.compile(r"test actors (\[[^\]]*\])")


def _derived(provenance: Mapping[str, Any]) -> TrainingIds | None:
    """Training ids from the prose of a manifest written before ``training_speakers`` existed."""
    data = provenance.get("training_data") or {}
    protocol = provenance.get("split_protocol") or {}
    if not isinstance(data, Mapping) or not isinstance(protocol, Mapping):
        return None
    speakers: dict[str, frozenset[str]] = {}
    images: dict[str, frozenset[str]] = {}
    speech, ravdess = str(data.get("speech") or ""), str(protocol.get("ravdess") or "")
    actors, tested = _RANGE.search(speech), _TEST.search(ravdess)
    if actors and tested:
        try:
            test = set(ast.literal_eval(tested.group(1)))
        except (ValueError, SyntaxError):
            test = None
        if test is not None:
            first, last = int(actors.group(1)), int(actors.group(2))
            speakers["ravdess"] = frozenset(
                f"ravdess-{a:02d}" for a in range(first, last + 1) if f"ravdess-{a:02d}" not in test
            )
    if "train.zip for training" in str(protocol.get("fer2013") or ""):
        images["fer2013"] = frozenset({"train"})
    if not speakers and not images:
        return None
    return TrainingIds(speakers=speakers, image_subsets=images, source="derived from provenance.split_protocol")


def training_ids(manifest: Mapping[str, Any]) -> TrainingIds | None:
    """What trained a bundle, from its manifest: the ``training_speakers``/``training_images``
    fields, else derived from the older prose fields; None when neither says."""
    provenance = manifest.get("provenance") or {}
    listed = provenance.get("training_speakers")
    if isinstance(listed, Mapping):
        images = provenance.get("training_images") or {}
        return TrainingIds(
            speakers={str(c): frozenset(map(str, s)) for c, s in listed.items()},
            image_subsets={
                str(c): frozenset(map(str, v.get("subsets", ()))) for c, v in images.items() if isinstance(v, Mapping)
            },
            source="manifest",
        )
    return _derived(provenance)


@dataclass(frozen=True)
class Overlap:
    """How many of ``n`` evaluated samples were seen in training (``n_seen``), from which speakers."""

    n: int
    n_seen: int
    speakers: tuple[str, ...]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "n_seen_in_training": self.n_seen, "speakers": list(self.speakers), "source": self.source}

    def warning(self) -> str | None:
        """One line for the user, or None when nothing overlaps."""
        if not self.n_seen:
            return None
        shown = ", ".join(self.speakers[:4]) + (f" and {len(self.speakers) - 4} more" if len(self.speakers) > 4 else "")
        who = f" ({len(self.speakers)} speakers it trained or validated on: {shown})" if self.speakers else ""
        return f"warning: {self.n_seen} of {self.n} evaluated samples were seen in training{who}: not a held-out result"


def training_overlap(samples: Iterable[Sample], ids: TrainingIds) -> Overlap:
    """Count ``samples`` (the evaluated ones) that ``ids`` says were seen in training."""
    chosen = list(samples)
    seen = [s for s in chosen if ids.seen(s)]
    speakers = tuple(sorted({s.speaker for s in seen if s.speaker is not None}))
    return Overlap(len(chosen), len(seen), speakers, ids.source)


__all__ = [
    "TrainingIds",
    "Overlap",
    "training_ids",
    "training_ids_from_splits",
    "training_overlap",
]
