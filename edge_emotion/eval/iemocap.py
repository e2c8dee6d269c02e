"""IEMOCAP (Busso et al. 2008): utterances of dyadic sessions, labelled in ``EmoEvaluation`` files.

Official layout::

    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt   "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]"
    Session1/dialog/avi/DivX/Ses01F_impro01.avi        the dialog's video (both actors)
    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav   the utterance's audio

An utterance's speaker is the session plus the letter after the turn's underscore-separated
dialog name (``Ses01F_impro01_M003`` -> ``Ses01M``). The AV sample is the dialog video cut from
the utterance's start to end with the sentence WAV as its audio. Utterances without a sentence
WAV (or, for AV, without the dialog video) are counted as skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .datasets import DatasetIndex, DatasetLayoutError, Sample, require

_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\]\s+(\S+)\s+(\S+)")
_EXPECTED = "Session*/dialog/EmoEvaluation/*.txt with Session*/sentences/wav/<dialog>/<utterance>.wav"


def parse_evaluation(path: Path) -> list[tuple[str, float, float, str]]:
    """``(utterance, start_s, end_s, label)`` for each summary line of one EmoEvaluation file."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line.strip())
        if m:
            rows.append((m.group(3), float(m.group(1)), float(m.group(2)), m.group(4)))
    return rows


def speaker_of(utterance: str) -> str:
    """``"Ses01F_impro01_M003"`` -> ``"Ses01M"``."""
    session = utterance[:5]
    gender = utterance.rsplit("_", 1)[-1][:1]
    return f"{session}{gender}"


def _index(root: Path, name: str, with_video: bool) -> DatasetIndex:
    evaluations = sorted(p for p in root.glob("**/dialog/EmoEvaluation/*.txt") if p.is_file())
    if not evaluations:
        raise DatasetLayoutError(f"{name}: no EmoEvaluation files under {root}; expected {_EXPECTED}")
    wavs = {p.stem: p for p in root.glob("**/sentences/wav/*/*.wav")}
    videos = {p.stem: p for p in root.glob("**/dialog/avi/**/*.avi")}
    samples, skipped = [], Counter()
    for evaluation in evaluations:
        dialog = evaluation.stem
        for utterance, start_s, end_s, label in parse_evaluation(evaluation):
            audio = wavs.get(utterance)
            if audio is None:
                skipped["no sentence wav"] += 1
                continue
            video = videos.get(dialog) if with_video else None
            if with_video and video is None:
                skipped["no dialog avi"] += 1
                continue
            samples.append(
                Sample(
                    key=f"{name}/{utterance}",
                    dataset=name,
                    label=label,
                    speaker=speaker_of(utterance),
                    video_path=video,
                    audio_path=audio,
                    start_ms=round(start_s * 1000) if with_video else 0,
                    end_ms=round(end_s * 1000) if with_video else None,
                )
            )
    require(samples, name, root, _EXPECTED + (" and Session*/dialog/avi/**/<dialog>.avi" if with_video else ""))
    return DatasetIndex(name, root, tuple(samples), dict(skipped))


def iemocap_av(root: Path) -> DatasetIndex:
    return _index(root, "iemocap", with_video=True)


def iemocap_audio(root: Path) -> DatasetIndex:
    return _index(root, "iemocap-audio", with_video=False)
