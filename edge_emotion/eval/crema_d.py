"""CREMA-D (Cao et al. 2014): ``ActorID_Sentence_Emotion_Level`` file names.

The official release has ``VideoFlash/1001_DFA_ANG_XX.flv`` and ``AudioWAV/1001_DFA_ANG_XX.wav``.
Files are found by name under the root (so ``video/*.flv`` and ``audio16k/*.wav`` work too). An AV
sample takes its audio from the WAV of the same name when there is one (the release's clean
audio), else from the flv's own track. Emotion codes: ANG, DIS, FEA, HAP, NEU, SAD.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .datasets import DatasetIndex, Sample, find_files, require

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")  # preferred in this order for the same clip


def parse_name(stem: str) -> tuple[str, str, str, str] | None:
    """``"1001_DFA_ANG_XX"`` -> ``("1001", "DFA", "ANG", "XX")`` or None."""
    m = _NAME.match(stem)
    return m.groups() if m else None  # type: ignore[return-value]


def _audio_files(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in find_files(root, AUDIO_SUFFIXES):
        current = found.get(path.stem)
        if current is None or AUDIO_SUFFIXES.index(path.suffix.lower()) < AUDIO_SUFFIXES.index(current.suffix.lower()):
            found[path.stem] = path
    return found


def _sample(name: str, stem: str, fields, skipped: Counter, **files) -> Sample | None:
    if fields is None:
        skipped["file name not ActorID_Sentence_Emotion_Level"] += 1
        return None
    actor, _, emotion, _ = fields
    if emotion not in EMOTIONS:
        skipped[f"unknown emotion code {emotion}"] += 1
        return None
    return Sample(key=f"{name}/{stem}", dataset=name, label=EMOTIONS[emotion], speaker=f"crema-d-{actor}", **files)


def crema_d_av(root: Path) -> DatasetIndex:
    audio = _audio_files(root)
    samples, skipped = [], Counter()
    for path in find_files(root, (".flv",)):
        sample = _sample(
            "crema-d",
            path.stem,
            parse_name(path.stem),
            skipped,
            video_path=path,
            audio_path=audio.get(path.stem),
            audio_in_video=path.stem not in audio,
        )
        if sample:
            samples.append(sample)
    require(samples, "crema-d", root, "VideoFlash/AAAA_SSS_EEE_LL.flv files (+ AudioWAV/*.wav)")
    return DatasetIndex("crema-d", root, tuple(samples), dict(skipped))


def crema_d_audio(root: Path) -> DatasetIndex:
    samples, skipped = [], Counter()
    for stem, path in sorted(_audio_files(root).items()):
        sample = _sample("crema-d-audio", stem, parse_name(stem), skipped, audio_path=path)
        if sample:
            samples.append(sample)
    require(samples, "crema-d-audio", root, "AudioWAV/AAAA_SSS_EEE_LL.wav files")
    return DatasetIndex("crema-d-audio", root, tuple(samples), dict(skipped))
