"""Train / validation / test splits, saved as JSON next to the results.

- ``actor-kfold`` (the default): speaker-independent. The speakers of each corpus (corpora whose
  speaker ids share a prefix, such as ``crema-d`` and ``crema-d-audio``, count as one) are sorted,
  shuffled with the seed and dealt into ``folds`` folds; fold ``K`` is the test set. The validation
  set (for best-epoch selection) is carved from the *training* speakers, never from the test fold:
  per corpus ``val_speakers`` of them (4 by default, so that the epoch choice rests on more than
  two voices), but at most a ``max_val_share`` of the corpus's non-test speakers (rounded down) and
  at least one while two or more remain. RAVDESS's 20 actors in 5 folds: 4 test, 4 validation,
  12 training actors per fold; EmoDB's 8 speakers: 1-2 test, 1 validation; SAVEE's 3 (in 3 or
  more folds): 1 test in its folds, 1 validation, 1 training. A corpus with fewer speakers than
  folds has no test speaker in the remaining folds. ``val_speakers=0`` holds none out: every
  non-test speaker trains (a refit, for a schedule chosen by runs that had validation speakers).
- ``random``: the paper's random 80:20 split of samples (speakers mixed; for comparison with its
  table only); the validation set is a random ``val_fraction`` of the 80.

Samples without a speaker (FER2013 images) follow their corpus's own split when it has one
(``subset == "test"`` -> test, ``"private-test"`` -> validation), else a random
``val_fraction`` / ``test_fraction`` by sample.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_emotion.errors import InputError

from .datasets import Sample

PROTOCOLS = ("actor-kfold", "random")


def speaker_group(speaker: str) -> str:
    """The corpus family a speaker id names: ``"ravdess-06"`` -> ``"ravdess"``, ``"crema-d-1001"``
    -> ``"crema-d"`` (the part before the last ``-``; the adapters name speakers so; an id without
    one, such as IEMOCAP's ``"Ses01F"``, is its own family here and its corpus groups it in splits)."""
    return speaker.rsplit("-", 1)[0] if "-" in speaker else speaker


@dataclass(frozen=True)
class Split:
    """Sample keys per part, and how they were drawn."""

    protocol: str
    fold: int
    folds: int
    seed: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    test_speakers: tuple[str, ...] = ()
    val_speakers: tuple[str, ...] = ()
    train_speakers: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "fold": self.fold,
            "folds": self.folds,
            "seed": self.seed,
            "test_speakers": list(self.test_speakers),
            "val_speakers": list(self.val_speakers),
            "train_speakers": list(self.train_speakers),
            "counts": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        d = json.loads(Path(path).read_text())
        return cls(
            protocol=d["protocol"],
            fold=d["fold"],
            folds=d["folds"],
            seed=d["seed"],
            train=tuple(d["train"]),
            val=tuple(d["val"]),
            test=tuple(d["test"]),
            test_speakers=tuple(d.get("test_speakers", ())),
            val_speakers=tuple(d.get("val_speakers", ())),
            train_speakers=tuple(d.get("train_speakers", ())),
        )

    def part(self, samples: Sequence[Sample], name: str) -> list[Sample]:
        """The samples of one part (``"train"``, ``"val"``, ``"test"``), in the given order."""
        keys = set(getattr(self, name))
        return [s for s in samples if s.key in keys]


def _by_subset_or_random(
    samples: list[Sample], rng: random.Random, val_fraction: float, test_fraction: float
) -> tuple[list[str], list[str], list[str]]:
    train, val, test = [], [], []
    predefined = any(s.subset for s in samples)
    pool = []
    for s in samples:
        if predefined and s.subset == "test":
            test.append(s.key)
        elif predefined and s.subset == "private-test":
            val.append(s.key)
        else:
            pool.append(s.key)
    rng.shuffle(pool)
    n_test = 0 if predefined else round(test_fraction * len(pool))
    test += pool[:n_test]
    pool = pool[n_test:]
    n_val = 0 if val else max(1 if len(pool) > 1 else 0, round(val_fraction * len(pool)))
    val += pool[:n_val]
    train += pool[n_val:]
    return train, val, test


def make_split(
    samples: Sequence[Sample],
    protocol: str = "actor-kfold",
    fold: int = 0,
    folds: int = 5,
    seed: int = 0,
    val_speakers: int = 4,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    max_val_share: float = 0.25,
) -> Split:
    """Split ``samples`` (possibly from several corpora) by ``protocol`` (see the module doc)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if folds < 2 or not 0 <= fold < folds:
        raise InputError(f"fold must be in 0..{folds - 1} with folds >= 2, got fold {fold} of {folds}")
    rng = random.Random(seed)
    train: list[str] = []
    val: list[str] = []
    test: list[str] = []
    test_spk: list[str] = []
    val_spk: list[str] = []
    train_spk: list[str] = []
    if protocol == "random":
        keys = sorted(s.key for s in samples)
        rng.shuffle(keys)
        n_test = round(test_fraction * len(keys))
        test, rest = keys[:n_test], keys[n_test:]
        n_val = round(val_fraction * len(rest))
        val, train = rest[:n_val], rest[n_val:]
        return Split(protocol, fold, folds, seed, tuple(train), tuple(val), tuple(test))
    by_corpus: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_corpus[speaker_group(s.speaker) if s.speaker and "-" in s.speaker else s.dataset].append(s)
    for corpus in sorted(by_corpus):
        # A fresh generator per corpus: a corpus's split must not depend on which other corpora
        # are mixed in (the audio stage sees RAVDESS alone, the fusion stage RAVDESS + FER2013 +
        # CREMA-D; with one shared generator their test actors would differ and leak). Variants of
        # one corpus (``crema-d`` AV and ``crema-d-audio``, ``ravdess`` and ``ravdess-audio``) are
        # one group, by their speakers' ids, so that one person's clips never straddle two parts.
        rng = random.Random(seed)
        members = by_corpus[corpus]
        with_speaker = [s for s in members if s.speaker is not None]
        tr, va, te = _by_subset_or_random([s for s in members if s.speaker is None], rng, val_fraction, test_fraction)
        train += tr
        val += va
        test += te
        speakers = sorted({s.speaker for s in with_speaker})
        if not speakers:
            continue
        rng.shuffle(speakers)
        fold_of = {spk: i % folds for i, spk in enumerate(speakers)}
        test_here = sorted(s for s in speakers if fold_of[s] == fold)
        rest = [s for s in speakers if fold_of[s] != fold]
        n_val = max(1, min(val_speakers, int(max_val_share * len(rest)))) if len(rest) > 1 and val_speakers else 0
        val_here = sorted(rest[:n_val])
        test_spk += test_here
        val_spk += val_here
        train_spk += sorted(rest[n_val:])
        for s in with_speaker:
            if s.speaker in test_here:
                test.append(s.key)
            elif s.speaker in val_here:
                val.append(s.key)
            else:
                train.append(s.key)
    return Split(
        protocol,
        fold,
        folds,
        seed,
        tuple(train),
        tuple(val),
        tuple(test),
        tuple(test_spk),
        tuple(val_spk),
        tuple(train_spk),
    )


__all__ = ["PROTOCOLS", "Split", "make_split", "speaker_group"]
