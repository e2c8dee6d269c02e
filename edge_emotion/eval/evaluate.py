"""``edge-emotion eval``: a model on a corpus, as the field measures it and as a user meets it.

One loop for both kinds of model, through a small predictor protocol (:class:`Predictor`):
``encode_faces``, ``encode_audio`` and ``fuse`` — the three graphs of docs/DESIGN.md, principle 1. A
bundle is run by :class:`edge_emotion.model.engine.BundleModel` (no torch); a checkpoint by
``edge_emotion.train.predictor.TorchPredictor`` (torch; this layer never imports it). Encoder
outputs are aligned onto the common steps by :func:`edge_emotion.frontend.align.align_encoded`, the numpy twin of
``EmotionModel.forward_features``.

Each clip is preprocessed with the SDK's functions (:mod:`edge_emotion.frontend.preprocess`) into windows;
**the clip's prediction is the mean of the softmax over its windows** (argmax of the mean). Modes:

- AV corpora (``ravdess``, ``crema-d``, ``iemocap``): audio and video as the clip has them;
- audio-only corpora (``ravdess-audio``, ...): the video is masked;
- ``fer2013``: each face image is one window showing that face in every frame, the audio masked.

Samples whose label the model lacks are counted (``unmapped``), clips that fail to decode are
counted (``failed``) — neither is silently dropped from the report.

This module does not import torch.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edge_emotion.config import PresetConfig
from edge_emotion.frontend.align import align_encoded
from edge_emotion.frontend.preprocess import ClipFeatures, preprocess_face_image
from edge_emotion.labels import LabelMapper

from .datasets import DatasetIndex, Sample, features_of
from .metrics import classification_result, plot_confusion

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """The three graphs of a model, numpy in and out (``BundleModel`` satisfies it as is)."""

    @property
    def preset(self) -> PresetConfig: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    def encode_faces(self, faces: np.ndarray) -> np.ndarray:
        """``(N, 3, S, S) float32`` -> ``(N, D_v) float32``."""

    def encode_audio(self, log_mel: np.ndarray) -> np.ndarray:
        """``(N, 1, n_mels, n_frames) float32`` -> ``(N, T_a, D_a) float32``."""

    def fuse(
        self, audio: np.ndarray, visual: np.ndarray, audio_mask: np.ndarray, visual_mask: np.ndarray
    ) -> np.ndarray:
        """Aligned ``(N, T, D_a)``, ``(N, T, D_v)``, masks ``(N, T)`` -> logits ``(N, C)``."""


def load_predictor(model: str | Path, backend: str = "auto", format_key: str | None = None) -> Predictor:
    """A bundle directory -> :class:`edge_emotion.model.engine.BundleModel` running ``format_key``
    (default: the format ``backend`` picks). (A training checkpoint is run by
    ``edge_emotion.train.predictor.TorchPredictor``, which needs torch.)"""
    from edge_emotion.errors import InputError

    path = Path(model)
    if path.is_dir():
        from edge_emotion.model.engine import BundleModel

        return BundleModel.from_bundle(path, backend=backend, format=format_key)
    raise InputError(f"model {path} is not a bundle directory")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_clip(
    predictor: Predictor, clip: ClipFeatures, use_audio: bool = True, use_video: bool = True
) -> np.ndarray:
    """``(W, C)`` softmax per window of one clip (masks per the mode)."""
    preset = predictor.preset
    w = clip.n_windows
    t_v, d_v = preset.video_frames, preset.model.visual_dim
    audio_mask = (
        clip.speech.astype(np.float32) if (use_audio and clip.has_audio) else np.zeros_like(clip.speech, np.float32)
    )
    if audio_mask.any():
        audio_seq = predictor.encode_audio(clip.log_mel[:, None].astype(np.float32))
    else:
        audio_seq = np.zeros((w, preset.audio_steps, preset.model.audio_dim), np.float32)
    embeddings = np.zeros((w, t_v, d_v), np.float32)
    face_mask = np.zeros((w, t_v), np.float32)
    if use_video and clip.has_video and clip.face_mask.any():
        present = np.flatnonzero(clip.face_mask)
        encoded = np.zeros((clip.faces.shape[0], d_v), np.float32)
        encoded[present] = predictor.encode_faces(clip.faces[present].astype(np.float32))
        for i in range(w):
            idx, ok = clip.window_frames(i, preset)
            embeddings[i, ok] = encoded[idx[ok]]
            face_mask[i, ok] = 1.0
    fused = align_encoded(preset, audio_seq, embeddings, face_mask, audio_mask)
    return _softmax(predictor.fuse(*fused).astype(np.float64))


@dataclass(frozen=True)
class EvalResult:
    """What ``edge-emotion eval`` reports (``to_dict`` is the ``--json`` file)."""

    dataset: str
    n: int
    labels: tuple[str, ...]
    weighted_accuracy: float
    unweighted_accuracy: float
    per_class: dict
    confusion: list
    unmapped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    clip_prediction: str = "mean of the softmax over the clip's windows"
    #: sample key -> predicted label index, for every evaluated sample (not in ``to_dict``)
    predictions: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "n": self.n,
            "labels": list(self.labels),
            "weighted_accuracy": self.weighted_accuracy,
            "unweighted_accuracy": self.unweighted_accuracy,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "unmapped": self.unmapped,
            "n_unmapped": int(sum(self.unmapped.values())),
            "failed": self.failed,
            "n_failed": len(self.failed),
            "skipped_by_adapter": self.skipped,
            "clip_prediction": self.clip_prediction,
        }


def evaluate(
    predictor: Predictor,
    index: DatasetIndex,
    samples: Iterable[Sample] | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate ``predictor`` on the corpus ``index`` (or a subset of its ``samples``)."""
    from .fer2013 import read_image

    preset = predictor.preset
    mapper = LabelMapper(predictor.labels)
    chosen = list(index.samples if samples is None else samples)
    y_true, y_pred, failed, predictions = [], [], {}, {}
    archives: dict[Path, zipfile.ZipFile] = {}
    try:
        with _progress(progress, len(chosen), f"eval {index.name}") as advance:
            for sample in chosen:
                advance()
                label = mapper(sample.label)
                if label is None:
                    continue
                try:
                    if sample.image_path is not None:
                        archive = None
                        if sample.member is not None:
                            archive = archives.get(sample.image_path) or archives.setdefault(
                                sample.image_path, zipfile.ZipFile(sample.image_path)
                            )
                        clip = preprocess_face_image(read_image(sample, archive), preset)
                    else:
                        clip = features_of(sample, preset)
                    probs = predict_clip(predictor, clip)
                except Exception as exc:  # a broken clip is reported, not fatal
                    failed[sample.key] = f"{type(exc).__name__}: {exc}"
                    continue
                y_true.append(label)
                y_pred.append(int(probs.mean(axis=0).argmax()))
                predictions[sample.key] = y_pred[-1]
    finally:
        for archive in archives.values():
            archive.close()
    if failed:
        log.warning("%d of %d samples could not be evaluated", len(failed), len(chosen))
    result = classification_result(y_true, y_pred, predictor.labels)
    return EvalResult(
        dataset=index.name,
        n=result.n,
        labels=result.labels,
        weighted_accuracy=result.weighted_accuracy,
        unweighted_accuracy=result.unweighted_accuracy,
        per_class=result.per_class,
        confusion=result.confusion,
        unmapped=mapper.report(),
        failed=failed,
        skipped=dict(index.skipped),
        predictions=predictions,
    )


class _progress:
    """A Rich progress bar over ``total`` items (nothing shown when ``show`` is False); the context
    value is a callable that advances it by one."""

    def __init__(self, show: bool, total: int, description: str):
        self._bar = None
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self):
        if self._bar is None:
            return lambda: None
        self._bar.start()
        return lambda: self._bar.advance(self._task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def write_confusion_png(result: EvalResult, path: str | Path) -> Path:
    title = f"{result.dataset}: WA {result.weighted_accuracy:.3f}, UA {result.unweighted_accuracy:.3f}, n={result.n}"
    return plot_confusion(result.confusion, result.labels, path, title)


__all__ = [
    "Predictor",
    "load_predictor",
    "predict_clip",
    "EvalResult",
    "evaluate",
    "write_confusion_png",
]
