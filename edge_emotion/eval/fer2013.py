"""FER2013 (Goodfellow et al. 2013) as image folders: ``<emotion>/<name>.jpg``, loose or in zips.

Accepted: ``train/<emotion>/*.jpg`` + ``test/<emotion>/*.jpg`` (the common image release), any
``*.zip`` whose members are ``<emotion>/<name>.jpg`` (``../shared/data/fer2013/train.zip``), or
plain ``<emotion>/`` folders. The subset comes from the image name's usage prefix
(``Training_``, ``PublicTest_``, ``PrivateTest_``), else from a ``train``/``test`` folder or zip
name. Emotions: angry, disgust, fear, happy, neutral, sad, surprise (and contempt in FER+ layouts).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np

from edge_emotion.errors import InputError

from .datasets import DatasetIndex, Sample, find_files, require

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_USAGE = {"training": "train", "publictest": "test", "privatetest": "private-test"}


def subset_of(parts: tuple[str, ...]) -> str | None:
    """The split from an image's usage prefix, else from an enclosing ``train``/``test`` name."""
    prefix = parts[-1].split("_", 1)[0].lower()
    if prefix in _USAGE:
        return _USAGE[prefix]
    for part in reversed(parts[:-1]):
        stem = part.lower().rsplit(".", 1)[0]
        if stem in ("train", "training"):
            return "train"
        if stem in ("test", "public_test", "publictest", "val", "validation"):
            return "test"
    return None


def _sample(source: Path, member: str | None, parts: tuple[str, ...]) -> Sample | None:
    if len(parts) < 2 or parts[-2].lower() not in EMOTIONS:
        return None
    relative = "/".join(parts)
    return Sample(
        key=f"fer2013/{relative}",
        dataset="fer2013",
        label=parts[-2].lower(),
        image_path=source,
        member=member,
        subset=subset_of(parts),
    )


def fer2013(root: Path) -> DatasetIndex:
    samples, skipped = [], Counter()
    for archive in find_files(root, (".zip",)):
        try:
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
        except zipfile.BadZipFile as exc:
            raise InputError(f"fer2013: {archive} is not a readable zip: {exc}") from None
        for name in names:
            sample = _sample(archive, name, (archive.name, *PurePosixPath(name).parts))
            if sample is None:
                skipped["image not in an <emotion>/ folder"] += 1
            else:
                samples.append(sample)
    for path in find_files(root, IMAGE_SUFFIXES):
        sample = _sample(path, None, path.relative_to(root).parts)
        if sample is None:
            skipped["image not in an <emotion>/ folder"] += 1
        else:
            samples.append(sample)
    require(samples, "fer2013", root, "<emotion>/*.jpg image folders (train/, test/) or zips of them")
    return DatasetIndex("fer2013", root, tuple(samples), dict(skipped))


def read_image(sample: Sample, archive: zipfile.ZipFile | None = None) -> np.ndarray:
    """The sample's face image: ``(H, W) uint8`` grey or ``(H, W, 3) uint8`` RGB."""
    from edge_emotion.frontend.face import decode_image

    if sample.image_path is None:
        raise InputError(f"{sample.key} is not an image sample")
    if sample.member is not None:
        if archive is not None:
            data = archive.read(sample.member)
        else:
            with zipfile.ZipFile(sample.image_path) as zf:
                data = zf.read(sample.member)
    else:
        data = Path(sample.image_path).read_bytes()
    image = decode_image(data)
    if image is None:
        raise InputError(f"{sample.key}: cannot decode the image")
    return image
