"""Checkpoints: state dicts + the preset + the training config + progress, in one ``.pt`` file.

Everything in a checkpoint is a tensor or a plain Python value (dict, list, str, int, float, bool,
None), so it loads with ``torch.load(path, weights_only=True)``: no pickled classes, no code runs
on load. Layout (``format`` = ``"edge-emotion-checkpoint"``, ``version`` = 1)::

    preset        PresetConfig.to_dict()
    train_config  TrainConfig.to_dict()
    stage         "visual" | "audio" | "fusion" | "full"
    epoch         last finished epoch (0-based)
    model         EmotionModel.state_dict()
    heads         {name: state_dict} of stage-only modules (the visual stage's linear head)
    optimizer, scheduler, scaler   their state dicts (None where unused) for resuming
    best          {"val_ua": float, "epoch": int}
    metrics       this epoch's metrics (floats)
    history       [metrics per epoch]
    rng           torch's CPU RNG state (a uint8 tensor)
    ema           the moving average of the weights (``last.pt`` of a run with ``ema_decay``:
                  {"decay", "steps", "shadow": state_dict}; its ``model`` holds the trained weights,
                  ``best.pt``'s the average)

A run writes ``last.pt`` after every epoch (resume) and ``best.pt`` whenever validation unweighted
accuracy improves (the model to export).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from edge_emotion.config import PresetConfig
from edge_emotion.errors import InputError

from .model import EmotionModel

FORMAT = "edge-emotion-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: EmotionModel,
    *,
    train_config: dict[str, Any],
    stage: str,
    epoch: int,
    metrics: dict[str, float] | None = None,
    history: list[dict[str, float]] | None = None,
    best: dict[str, float] | None = None,
    heads: dict[str, dict[str, torch.Tensor]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    ema: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "preset": model.preset.to_dict(),
        "train_config": dict(train_config),
        "stage": stage,
        "epoch": int(epoch),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "heads": {name: {k: v.detach().cpu() for k, v in sd.items()} for name, sd in (heads or {}).items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "best": {k: float(v) for k, v in (best or {}).items()},
        "metrics": _plain(metrics or {}),
        "history": [_plain(h) for h in (history or [])],
        "rng": torch.get_rng_state(),
    }
    if ema is not None:
        state["ema"] = ema
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Numbers as Python floats/ints (numpy scalars would not load with weights_only); nested dicts
    (a row's per-corpus validation figures) alike."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, bool | int | str) or v is None:
            out[k] = v
        elif isinstance(v, dict):
            out[k] = _plain(v)
        else:
            out[k] = float(v)
    return out


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; raises :class:`InputError` for a missing file or
    one that is not an edge-emotion checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {first_line})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path} is not an edge-emotion checkpoint")
    if state.get("version") != VERSION:
        raise InputError(f"{path}: checkpoint version {state.get('version')} is not supported (need {VERSION})")
    return state


def preset_of(state: dict[str, Any]) -> PresetConfig:
    return PresetConfig.from_dict(state["preset"])


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> EmotionModel:
    """The :class:`EmotionModel` of a checkpoint, its preset rebuilt from the file, in eval mode."""
    state = load_checkpoint(path, map_location)
    model = EmotionModel(preset_of(state))
    model.load_state_dict(state["model"])
    return model.eval()


__all__ = ["FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "load_model", "preset_of"]
