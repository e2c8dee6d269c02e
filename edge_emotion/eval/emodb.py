"""Berlin EmoDB (Burkhardt et al. 2005): ten German actors, ``SSTTTEV`` file names.

The official release has ``wav/03a01Fa.wav``: speaker ``SS`` (03, 08-16), text ``TTT``
(``a01`` ... ``b10``), emotion ``E`` (German initials: ``W`` Wut = anger, ``L`` Langeweile =
boredom, ``E`` Ekel = disgust, ``A`` Angst = fear, ``F`` Freude = happiness, ``T`` Trauer =
sadness, ``N`` neutral) and version ``V``. Files are found by name under the root, so re-encoded
copies (``flac16k/*.flac``) work too. Boredom keeps its own label ``boredom``: no model of this
project has it, so evaluation and training count those clips as unmapped (reported, not dropped
silently).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .datasets import DatasetIndex, Sample, find_files, require

EMOTIONS = {
    "W": "angry",
    "L": "boredom",
    "E": "disgust",
    "A": "fearful",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}
_NAME = re.compile(r"^(\d{2})([a-b]\d{2})([A-Z])([a-z])$")
AUDIO_SUFFIXES = (".wav", ".flac")


def parse_name(stem: str) -> tuple[str, str, str, str] | None:
    """``"03a01Fa"`` -> ``("03", "a01", "F", "a")`` or None."""
    m = _NAME.match(stem)
    return m.groups() if m else None  # type: ignore[return-value]


def emodb(root: Path) -> DatasetIndex:
    """Audio clips of EmoDB (the release's ``wav/`` or re-encoded copies with the same names)."""
    samples, skipped, seen = [], Counter(), set()
    for path in find_files(root, AUDIO_SUFFIXES):
        fields = parse_name(path.stem)
        if fields is None:
            skipped["file name not SSTTTEV"] += 1
            continue
        speaker, _, emotion, _ = fields
        if emotion not in EMOTIONS:
            skipped[f"unknown emotion code {emotion}"] += 1
            continue
        if path.stem in seen:
            skipped["duplicate clip"] += 1
            continue
        seen.add(path.stem)
        samples.append(
            Sample(
                key=f"emodb/{path.stem}",
                dataset="emodb",
                label=EMOTIONS[emotion],
                speaker=f"emodb-{speaker}",
                audio_path=path,
            )
        )
    require(samples, "emodb", root, "wav/SSTTTEV.wav files (e.g. wav/03a01Fa.wav)")
    return DatasetIndex("emodb", root, tuple(samples), dict(skipped))
