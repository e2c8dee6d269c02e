"""Dataset adapters: a corpus on disk -> a list of :class:`Sample` (what to read, its label, its
speaker). No torch and no decoding here; :mod:`edge_emotion.frontend.preprocess` turns a sample into model
inputs and :mod:`.cache` stores them.

Each adapter accepts the official release's layout *and* any layout that keeps the official file
names (it finds files by name pattern under the root), e.g. ``../shared/data/ravdess/audio16k``.
When nothing under the root matches, it raises :class:`DatasetLayoutError` saying what it expected.

Adapters (``get_dataset(name, root)``):

============== ========================================================== ==================
name           files                                                      modality
============== ========================================================== ==================
ravdess        ``01-01-EE-II-SS-RR-AA.mp4`` (Video_Speech_Actor_XX)        audio + video
ravdess-audio  ``03-01-EE-II-SS-RR-AA.wav|flac`` (Audio_Speech_Actors_01-24) audio
crema-d        ``VideoFlash/AAAA_SSS_EEE_LL.flv`` (+ ``AudioWAV`` same stem) audio + video
crema-d-audio  ``AudioWAV/AAAA_SSS_EEE_LL.wav`` (or .flac/.mp3)              audio
iemocap        ``Session*/dialog/EmoEvaluation/*.txt`` + ``dialog/avi`` +  audio + video
               ``sentences/wav``
iemocap-audio  the same without the videos                                audio
fer2013        ``<emotion>/*.jpg|png`` folders, or zips of them             face image
============== ========================================================== ==================
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_emotion.errors import InputError

if TYPE_CHECKING:
    from edge_emotion.config import PresetConfig
    from edge_emotion.frontend.preprocess import ClipFeatures


class DatasetLayoutError(InputError):
    """A dataset root that does not hold the files an adapter expects."""


@dataclass(frozen=True)
class Sample:
    """One labelled clip (or face image) of a corpus.

    ``key`` is unique across corpora (``"<dataset>/<id>"``) and names the sample in caches and
    split files. ``label`` is the corpus's own emotion name (mapped onto a model's labels with
    :class:`edge_emotion.labels.LabelMapper`). ``speaker`` is the actor, for speaker-independent
    splits (None when unknown, as in FER2013). ``start_ms``/``end_ms`` cut a segment out of
    ``video_path`` (IEMOCAP's dialog videos); the audio file, when given, starts at ``start_ms``.
    ``image_path`` + ``member`` is a face image (``member`` names it inside a zip archive).
    ``subset`` is a split the corpus itself defines (FER2013: ``train``/``test``/``private-test``).
    """

    key: str
    dataset: str
    label: str
    speaker: str | None = None
    video_path: Path | None = None
    audio_path: Path | None = None
    image_path: Path | None = None
    member: str | None = None
    start_ms: int = 0
    end_ms: int | None = None
    subset: str | None = None
    audio_in_video: bool = False  # the audio track of video_path is the sample's audio

    def __post_init__(self) -> None:
        if self.video_path is None and self.audio_path is None and self.image_path is None:
            raise ValueError(f"sample {self.key} has no file")

    @property
    def modality(self) -> str:
        """``"av"``, ``"audio"``, ``"video"`` or ``"image"``."""
        if self.image_path is not None:
            return "image"
        if self.video_path is not None:
            return "av" if self.audio_path is not None or self.audio_in_video else "video"
        return "audio"

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class DatasetIndex:
    """The samples an adapter found, and what it skipped (``{reason: count}``)."""

    name: str
    root: Path
    samples: tuple[Sample, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(s.label for s in self.samples).items()))


# name -> (module under edge_emotion.eval, function)
ADAPTERS: dict[str, tuple[str, str]] = {
    "ravdess": ("ravdess", "ravdess_av"),
    "ravdess-audio": ("ravdess", "ravdess_audio"),
    "crema-d": ("crema_d", "crema_d_av"),
    "crema-d-audio": ("crema_d", "crema_d_audio"),
    "iemocap": ("iemocap", "iemocap_av"),
    "iemocap-audio": ("iemocap", "iemocap_audio"),
    "fer2013": ("fer2013", "fer2013"),
}

#: The datasets ``edge-emotion eval`` accepts (the docs/DESIGN.md contract) plus the audio-only variants.
DATASET_NAMES: tuple[str, ...] = tuple(ADAPTERS)


def get_dataset(name: str, root: str | Path) -> DatasetIndex:
    """Index the corpus ``name`` under ``root``; raises :class:`DatasetLayoutError` for a root that
    does not hold it and :class:`InputError` for an unknown name."""
    if name not in ADAPTERS:
        raise InputError(f"unknown dataset {name!r}; choose one of: {', '.join(ADAPTERS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{name}: dataset root {root} is not a directory")
    module_name, function = ADAPTERS[name]
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, function)(root)


def find_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Every file under ``root`` (recursively, following the official folders or any other) whose
    suffix is one of ``suffixes`` (lower case, with the dot), sorted."""
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file())


def require(samples: list[Sample], name: str, root: Path, expected: str) -> None:
    if not samples:
        raise DatasetLayoutError(f"{name}: no samples under {root}; expected {expected}")


def features_of(sample: Sample, preset: PresetConfig) -> ClipFeatures:
    """Preprocess one (clip) sample with the front end's functions (training's cache and
    evaluation both call this)."""
    from edge_emotion.frontend.preprocess import preprocess_clip

    return preprocess_clip(
        preset,
        video_path=sample.video_path,
        audio_path=sample.audio_path,
        audio_in_video=sample.audio_in_video,
        start_ms=sample.start_ms,
        end_ms=sample.end_ms,
    )


def limit_samples(samples: list[Sample], limit: int) -> list[Sample]:
    """At most ``limit`` samples, spread evenly over the (sorted) list so that labels and speakers
    stay mixed; ``limit <= 0``: all of them (the training config's "no limit")."""
    import numpy as np

    if limit <= 0 or len(samples) <= limit:
        return list(samples)
    picks = np.linspace(0, len(samples) - 1, limit).round().astype(int)
    return [samples[i] for i in sorted(set(picks.tolist()))]


__all__ = [
    "Sample",
    "DatasetIndex",
    "DatasetLayoutError",
    "ADAPTERS",
    "DATASET_NAMES",
    "get_dataset",
    "find_files",
    "features_of",
    "limit_samples",
]
