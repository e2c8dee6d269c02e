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


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the preset and the data.

    Optimiser: Adam with ``learning_rate`` decayed by a cosine to ``min_learning_rate`` over the
    run (the appendix's range 1e-3 .. 1e-4), L2 ``weight_decay``; cross-entropy with optional
    ``label_smoothing``; gradient norm clipped to ``grad_clip_norm`` (0 = off). ``amp``: mixed
    precision, used only on CUDA. ``modality_dropout``: probability that a sample having both
    modalities loses one of them (chosen at random) for the fusion head. ``val_speakers``: per
    corpus, training speakers held out for validation. ``limit``: use at most this many samples
    per corpus (0 = all; for smoke tests). ``fusion_faces_per_audio``: in the fusion stage, face-only
    samples per epoch as a multiple of the audio windows.
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
    augment: bool = True
    modality_dropout: float = 0.3
    folds: int = 5
    val_speakers: int = 2
    seed: int = 0
    workers: int = 2
    cache_workers: int = 2
    limit: int = 0
    fusion_faces_per_audio: float = 1.0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"unknown stage {self.stage!r}; choose one of: {', '.join(STAGES)}")
        for name in ("epochs", "batch_size", "folds"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.min_learning_rate <= self.learning_rate:
            raise InputError("need 0 < min_learning_rate <= learning_rate")
        if not 0 <= self.modality_dropout < 1:
            raise InputError("modality_dropout must be in [0, 1)")
        if self.weight_decay < 0 or self.grad_clip_norm < 0 or self.limit < 0:
            raise InputError("weight_decay, grad_clip_norm and limit must be >= 0")

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


__all__ = ["STAGES", "TrainConfig", "load_train_config"]
