"""Training configuration: :class:`TrainConfig`, read from a TOML file (``configs/*.toml``).

A file holds the keys of :class:`TrainConfig` at the top level, and optionally one table per stage
(``[stages.audio]``, ...) whose keys override the top level for that stage::

    epochs = 100
    batch_size = 128
    [stages.visual]
    batch_size = 256

Command-line options (``--epochs``) override the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_emotion.errors import InputError

STAGES = ("visual", "audio", "fusion", "full")
AUDIO_AUGMENTS = ("default", "strong")
FERPLUS_MODES = ("off", "filter", "soft")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the preset and the data.

    Optimiser: Adam with ``learning_rate`` decayed by a cosine to ``min_learning_rate`` over the
    run (the appendix's range 1e-3 .. 1e-4), L2 ``weight_decay``; cross-entropy with optional
    ``label_smoothing``; gradient norm clipped to ``grad_clip_norm`` (0 = off). ``amp``: mixed
    precision on CUDA (fp16 + a gradient scaler). ``cpu_amp``: on a CPU, convolutions in channels-last
    memory and, where the CPU computes bf16 natively (AVX-512 BF16 or AMX), the training forward pass
    under bf16 autocast (validation and test stay fp32); elsewhere fp32. The edge audio stage's epochs
    ran 3x faster so on a CPU with AMX, the edge face encoder's training steps 2x. A model trained so
    depends on the CPU it trained on (``results.json`` records ``training_precision``).
    ``modality_dropout``: probability that a sample having both modalities loses one of them
    (chosen at random) for the fusion head. ``val_speakers``: per
    corpus, training speakers held out for validation; 0 holds none out and keeps the *last* epoch
    instead of the best one on validation (a refit on every non-test speaker, for a schedule that
    runs with validation speakers chose; images keep their validation part, which is still
    scored). ``limit``: use at most this many samples
    per corpus (0 = all; for smoke tests). ``fusion_faces_per_audio``: in the fusion stage, face-only
    samples per epoch as a multiple of the audio windows; ``fusion_face_views``: the fusion stage
    draws its training faces from this many views of each image (the image, then views through
    the visual stage's augmentation; 1 = the images as they are); ``fusion_audio_views``: likewise
    for its audio-only windows (the window as it is, then views moved by up to
    ``window_offset_ms`` and through the audio augmentation; one drawn per sample and epoch).

    ``shift_consistency``: the weight of a consistency loss between two placements of one training
    window (audio stage; needs ``window_offset_ms``): each window is drawn at two random offsets,
    both are trained on, and this weight times the symmetric Kullback-Leibler divergence between
    their predicted distributions is added (0 = off; a step then computes twice the windows).
    ``ema_decay``: the weights the run validates, keeps (``best.pt``) and tests are an exponential
    moving average of the trained ones, updated after every step with this decay (warmed up as
    ``min(decay, (1 + t) / (10 + t))`` at step ``t``; 0 = off, the trained weights themselves).

    ``audio_augment``: ``"default"`` (A.4's pitch shift, time stretch, noise) or ``"strong"`` (also
    speed perturbation, gain and SpecAugment masks; :meth:`.augment.AudioAugmentConfig.strong`).
    ``mixup_alpha``: mixup of training samples with ``Beta(alpha, alpha)`` weights (0 = off).
    ``window_offset_ms``: training clip windows start up to this far before or after their cached
    place (drawn per item and epoch), so that a label does not depend on where the window falls
    (audio stage; 0 = off). ``ferplus``: FER2013 training/validation images with FER+ votes
    (``ferplus_votes``, default ``<fer2013 root>/ferplus_votes.csv``): ``"filter"`` drops the
    images FER+ calls unknown / not a face, ``"soft"`` does that and trains on soft targets:
    ``ferplus_soft_weight`` of the FER+ vote shares plus the rest on FER2013's own label (1 = the
    votes alone; at 0.5 FER2013's label, which is what the peers are measured on, keeps at least
    half of every target); joins with ``match_rmse >
    ferplus_max_match_rmse`` or a second-best image within ``ferplus_min_rmse_gap`` are doubtful
    and keep their FER2013 label. Test images are never touched; accuracy is always measured on
    the FER2013 labels.
    """

    stage: str = "full"
    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    grad_clip_norm: float = 5.0
    amp: bool = True
    cpu_amp: bool = False
    augment: bool = True
    modality_dropout: float = 0.3
    folds: int = 5
    val_speakers: int = 4
    seed: int = 0
    workers: int = 2
    cache_workers: int = 2
    limit: int = 0
    fusion_faces_per_audio: float = 1.0
    fusion_face_views: int = 1
    fusion_audio_views: int = 1
    audio_augment: str = "default"
    mixup_alpha: float = 0.0
    window_offset_ms: int = 0
    ferplus: str = "off"
    ferplus_votes: str = ""
    ferplus_soft_weight: float = 1.0
    ferplus_max_match_rmse: float = 5.0
    ferplus_min_rmse_gap: float = 0.0
    shift_consistency: float = 0.0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"unknown stage {self.stage!r}; choose one of: {', '.join(STAGES)}")
        for name in ("epochs", "batch_size", "folds", "fusion_face_views", "fusion_audio_views"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.min_learning_rate <= self.learning_rate:
            raise InputError("need 0 < min_learning_rate <= learning_rate")
        if not 0 <= self.modality_dropout < 1:
            raise InputError("modality_dropout must be in [0, 1)")
        if self.weight_decay < 0 or self.grad_clip_norm < 0 or self.limit < 0:
            raise InputError("weight_decay, grad_clip_norm and limit must be >= 0")
        if self.audio_augment not in AUDIO_AUGMENTS:
            raise InputError(f"audio_augment must be one of {', '.join(AUDIO_AUGMENTS)}, got {self.audio_augment!r}")
        if self.ferplus not in FERPLUS_MODES:
            raise InputError(f"ferplus must be one of {', '.join(FERPLUS_MODES)}, got {self.ferplus!r}")
        if not 0 <= self.ferplus_soft_weight <= 1:
            raise InputError(f"ferplus_soft_weight must be in [0, 1], got {self.ferplus_soft_weight}")
        if self.mixup_alpha < 0 or self.window_offset_ms < 0 or self.val_speakers < 0:
            raise InputError("mixup_alpha, window_offset_ms and val_speakers must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.shift_consistency < 0:
            raise InputError(f"shift_consistency must be >= 0, got {self.shift_consistency}")
        if self.shift_consistency > 0 and self.window_offset_ms == 0:
            raise InputError("shift_consistency compares two placements of a window: it needs window_offset_ms > 0")
        if self.shift_consistency > 0 and self.mixup_alpha > 0:
            raise InputError("shift_consistency and mixup_alpha do not go together (mixup pairs other windows)")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise InputError(f"unknown training config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


def load_train_config(path: str | Path | None, stage: str, **overrides: Any) -> TrainConfig:
    """The config for ``stage`` from a TOML file (or the defaults when ``path`` is None), with
    ``overrides`` (None values ignored) applied last."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        path = Path(path)
        if not path.is_file():
            raise InputError(f"training config {path} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"training config {path} is not valid TOML: {exc}") from None
    stages = data.pop("stages", {})
    data.update(stages.get(stage, {}))
    data["stage"] = stage
    config = TrainConfig.from_dict(data)
    return config.replace(**overrides)


__all__ = ["STAGES", "AUDIO_AUGMENTS", "FERPLUS_MODES", "TrainConfig", "load_train_config"]
