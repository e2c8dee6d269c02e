"""An exponential moving average of a module's weights (``TrainConfig.ema_decay``).

After every optimiser step, :meth:`WeightAverage.update` moves each floating-point weight and buffer
of the average toward the module's by ``1 - d``, with ``d = min(decay, (1 + t) / (10 + t))`` at step
``t`` (so that the first steps do not keep the random initialisation); integer buffers (batch-norm
step counts) are copied. :meth:`WeightAverage.applied` swaps the average into the module for a
block (validation, the checkpoint that is kept) and puts the trained weights back after it, so that
training goes on from where it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightAverage:
    """The moving average of ``module``'s ``state_dict()`` (see the module docstring)."""

    def __init__(self, module: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.steps = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` applies."""
        t = self.steps + 1
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = self.current_decay()
        self.steps += 1
        for name, value in module.state_dict().items():
            average = self.shadow[name]
            if average.dtype.is_floating_point:
                average.lerp_(value.detach().to(average.dtype), 1.0 - d)
            else:
                average.copy_(value)

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """``module`` holds the average inside the block, its own weights again after it."""
        trained = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.shadow)
        try:
            yield
        finally:
            module.load_state_dict(trained)

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "steps": self.steps,
            "shadow": {k: v.detach().cpu() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


__all__ = ["WeightAverage"]
