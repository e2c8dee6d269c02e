"""Window-shift consistency: does a model give the same answer wherever its window falls?

For each clip, windows starting at ``0, 100, ..., 900`` ms (``offsets_ms``) are cut from the clip
with the SDK's own preprocessing (:func:`edge_emotion.frontend.preprocess.audio_windows`; a
window that runs past the clip's end is padded with silence, as the live recognizer pads), each
window is classified on its own (:func:`.evaluate.predict_clip`: audio, and the faces of the same
span when the clip has video), and the clip's **consistency** is the share of its windows whose
label equals the label of the window at 0 ms (that window included, so a clip scores between
``1 / len(offsets_ms)`` and 1). :func:`window_shift_consistency` averages it over clips; it also
reports the share over the shifted windows only (the window at 0 ms left out) and the pooled
share of windows.

No torch here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .datasets import Sample, features_of
from .evaluate import Predictor, predict_clip

log = logging.getLogger(__name__)

OFFSETS_MS: tuple[int, ...] = tuple(range(0, 1000, 100))


@dataclass(frozen=True)
class ClipShift:
    """One clip's window labels at each offset (``labels[i]`` for ``offsets_ms[i]``)."""

    key: str
    offsets_ms: tuple[int, ...]
    labels: tuple[str, ...]

    @property
    def consistency(self) -> float:
        """Share of windows (the one at 0 ms included) labelled like the window at 0 ms."""
        return float(np.mean([label == self.labels[0] for label in self.labels]))

    @property
    def consistency_shifted(self) -> float:
        """The same over the shifted windows only (nan with a single offset)."""
        rest = self.labels[1:]
        return float(np.mean([label == self.labels[0] for label in rest])) if rest else float("nan")


@dataclass(frozen=True)
class ShiftResult:
    """Consistency over clips (``mean`` of the per-clip shares) and the clips themselves."""

    offsets_ms: tuple[int, ...]
    clips: tuple[ClipShift, ...]
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.clips)

    @property
    def mean(self) -> float:
        return float(np.mean([c.consistency for c in self.clips])) if self.clips else float("nan")

    @property
    def mean_shifted(self) -> float:
        return float(np.mean([c.consistency_shifted for c in self.clips])) if self.clips else float("nan")

    @property
    def fully_consistent(self) -> float:
        """Share of clips whose every window agrees with the window at 0 ms."""
        return float(np.mean([c.consistency == 1.0 for c in self.clips])) if self.clips else float("nan")

    def to_dict(self, with_clips: bool = False) -> dict:
        out = {
            "offsets_ms": list(self.offsets_ms),
            "n_clips": self.n,
            "consistency": self.mean,
            "consistency_shifted_only": self.mean_shifted,
            "clips_fully_consistent": self.fully_consistent,
            "n_failed": len(self.failed),
            "definition": "per clip, the share of windows starting at offsets_ms whose label equals the label of "
            "the window at 0 ms (that window included); averaged over clips",
        }
        if with_clips:
            out["clips"] = {c.key: dict(zip(map(str, c.offsets_ms), c.labels, strict=True)) for c in self.clips}
        if self.failed:
            out["failed"] = dict(self.failed)
        return out


def shifted_windows(sample: Sample, predictor: Predictor, offsets_ms: Sequence[int] = OFFSETS_MS):
    """The clip ``sample`` preprocessed with one window per offset: a
    :class:`~edge_emotion.frontend.preprocess.ClipFeatures` whose ``window_start_ms`` is
    ``offsets_ms`` (faces as the clip has them)."""
    from edge_emotion.frontend.preprocess import audio_windows
    from edge_emotion.sources import read_audio

    preset = predictor.preset
    clip = features_of(sample, preset)  # faces of the whole clip (and whether it has audio)
    starts = np.asarray(offsets_ms, np.int64)
    if not clip.has_audio:
        return dataclasses.replace(
            clip,
            log_mel=np.zeros((len(starts), *clip.log_mel.shape[1:]), np.float32),
            speech=np.zeros((len(starts), clip.speech.shape[1]), bool),
            window_start_ms=starts,
        )
    source = sample.audio_path if sample.audio_path is not None else sample.video_path
    pcm, audio_start_ms = read_audio(str(source), preset.audio.sample_rate)
    origin_ms = 0.0 if sample.audio_path is not None else float(sample.start_ms)
    shift = int(round((audio_start_ms - origin_ms) * preset.audio.sample_rate / 1000.0))
    pcm = np.asarray(pcm, np.float32)
    pcm = np.concatenate([np.zeros(shift, np.float32), pcm]) if shift > 0 else pcm[-shift:]
    log_mel, speech = audio_windows(pcm, starts, preset)
    return dataclasses.replace(clip, log_mel=log_mel, speech=speech, window_start_ms=starts)


def window_shift_consistency(
    predictor: Predictor,
    samples: Iterable[Sample],
    offsets_ms: Sequence[int] = OFFSETS_MS,
    use_video: bool = True,
) -> ShiftResult:
    """Classify every clip of ``samples`` at each window offset and measure how often the label
    stays that of the window at 0 ms (see the module doc). Clips that fail to decode are counted
    in ``failed``."""
    if not offsets_ms or offsets_ms[0] != 0:
        raise ValueError("offsets_ms must start with 0 (the reference window)")
    labels = predictor.labels
    clips, failed = [], {}
    for sample in samples:
        try:
            windows = shifted_windows(sample, predictor, offsets_ms)
            probs = predict_clip(predictor, windows, use_video=use_video)
        except Exception as exc:  # a broken clip is reported, not fatal
            failed[sample.key] = f"{type(exc).__name__}: {exc}"
            continue
        window_labels = tuple(labels[i] for i in probs.argmax(1))
        clips.append(ClipShift(sample.key, tuple(int(o) for o in offsets_ms), window_labels))
    if failed:
        log.warning("%d clips could not be measured", len(failed))
    return ShiftResult(tuple(int(o) for o in offsets_ms), tuple(clips), failed)


__all__ = ["OFFSETS_MS", "ClipShift", "ShiftResult", "shifted_windows", "window_shift_consistency"]
