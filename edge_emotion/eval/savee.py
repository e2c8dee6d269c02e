"""SAVEE (Haq & Jackson 2009): Surrey Audio-Visual Expressed Emotion, four male British speakers.

The official release has ``AudioData/<speaker>/<code><nn>.wav`` (speaker ``DC``, ``JE``, ``JK``,
``KL``; code ``a`` anger, ``d`` disgust, ``f`` fear, ``h`` happiness, ``n`` neutral, ``sa``
sadness, ``su`` surprise; ``nn`` the sentence). Re-encoded flat copies name the speaker in the
file name instead: ``<speaker>_<code><nn>.flac`` (e.g. ``DC_a01.flac``). Both are found by name under
the root; a file whose name has no speaker takes it from its folder. Note ``a`` is *anger*.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .datasets import DatasetIndex, Sample, find_files, require

EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}
_NAME = re.compile(r"^(?:([A-Z]{2})_)?(sa|su|a|d|f|h|n)(\d{2})$")
_SPEAKER = re.compile(r"^[A-Z]{2}$")
AUDIO_SUFFIXES = (".wav", ".flac")


def parse_name(path: Path) -> tuple[str, str, str] | None:
    """``DC_sa03.flac`` or ``AudioData/DC/sa03.wav`` -> ``("DC", "sa", "03")``; None when the name
    is not a SAVEE name or names no speaker."""
    m = _NAME.match(path.stem)
    if not m:
        return None
    speaker = m.group(1) or (path.parent.name if _SPEAKER.match(path.parent.name) else None)
    if speaker is None:
        return None
    return speaker, m.group(2), m.group(3)


def savee(root: Path) -> DatasetIndex:
    """Audio clips of SAVEE (the release's ``AudioData`` or flat ``SS_eNN`` copies)."""
    samples, skipped, seen = [], Counter(), set()
    for path in find_files(root, AUDIO_SUFFIXES):
        fields = parse_name(path)
        if fields is None:
            skipped["file name not [SPEAKER_]<code><nn> under a speaker folder"] += 1
            continue
        speaker, code, number = fields
        stem = f"{speaker}_{code}{number}"
        if stem in seen:  # the same clip twice (e.g. .wav beside a .flac copy)
            skipped["duplicate clip"] += 1
            continue
        seen.add(stem)
        samples.append(
            Sample(
                key=f"savee/{stem}",
                dataset="savee",
                label=EMOTIONS[code],
                speaker=f"savee-{speaker}",
                audio_path=path,
            )
        )
    require(samples, "savee", root, "AudioData/<speaker>/<code><nn>.wav files (or flat SS_<code><nn>.flac copies)")
    return DatasetIndex("savee", root, tuple(samples), dict(skipped))
