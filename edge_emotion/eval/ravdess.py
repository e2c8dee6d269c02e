"""RAVDESS (Livingstone & Russo 2018): labels and actor from the file name.

``MM-VV-EE-II-SS-RR-AA.ext``: modality MM (01 audio-video, 02 video only, 03 audio only), vocal
channel VV (01 speech, 02 song), emotion EE (01 neutral ... 08 surprised), intensity II, statement
SS, repetition RR, actor AA (odd = male). The official release has ``Video_Speech_Actor_XX/Actor_XX/
*.mp4`` and ``Audio_Speech_Actors_01-24/Actor_XX/*.wav``; files are found by name under the root,
so re-encoded copies (``audio16k/Actor_XX/*.flac``) work too. Only speech (VV = 01) is used, as in
the paper; songs are counted as skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .datasets import DatasetIndex, Sample, find_files, require

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def parse_name(stem: str) -> dict[str, int] | None:
    """``"03-01-05-01-02-01-12"`` -> ``{"modality": 3, "channel": 1, "emotion": 5, ..., "actor": 12}``
    or None when the name is not a RAVDESS name."""
    m = _NAME.match(stem)
    if not m:
        return None
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, (int(g) for g in m.groups()), strict=True))


def _index(
    root: Path, name: str, suffixes: tuple[str, ...], modalities: tuple[int, ...], expected: str
) -> DatasetIndex:
    samples, skipped = [], Counter()
    for path in find_files(root, suffixes):
        fields = parse_name(path.stem)
        if fields is None:
            skipped["file name not MM-VV-EE-II-SS-RR-AA"] += 1
            continue
        if fields["modality"] not in modalities:
            skipped[f"modality {fields['modality']:02d}"] += 1
            continue
        if fields["channel"] != 1:
            skipped["song (vocal channel 02)"] += 1
            continue
        if not 1 <= fields["emotion"] <= len(EMOTIONS):
            skipped["unknown emotion code"] += 1
            continue
        is_video = path.suffix.lower() == ".mp4"
        samples.append(
            Sample(
                key=f"{name}/{path.stem}",
                dataset=name,
                label=EMOTIONS[fields["emotion"] - 1],
                speaker=f"ravdess-{fields['actor']:02d}",
                video_path=path if is_video else None,
                audio_path=None if is_video else path,
                audio_in_video=is_video,
            )
        )
    require(samples, name, root, expected)
    return DatasetIndex(name, root, tuple(samples), dict(skipped))


def ravdess_av(root: Path) -> DatasetIndex:
    """Audio-video speech clips (``01-01-*.mp4``; the audio is the mp4's own track)."""
    return _index(root, "ravdess", (".mp4",), (1,), "Video_Speech_Actor_XX/Actor_XX/01-01-EE-II-SS-RR-AA.mp4 files")


def ravdess_audio(root: Path) -> DatasetIndex:
    """Audio-only speech clips (``03-01-*.wav``, or ``.flac`` re-encodings)."""
    return _index(
        root,
        "ravdess-audio",
        (".wav", ".flac"),
        (3,),
        "Audio_Speech_Actors_01-24/Actor_XX/03-01-EE-II-SS-RR-AA.wav (or .flac) files",
    )
