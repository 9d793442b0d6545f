# SPDX-License-Identifier: Apache-2.0
"""Learning-rate burns on top of whatever schedule the trainer runs.

The scale multiplies the lr the trainer's own schedule sets and never compounds:
`param_group["lr"]` keeps holding the schedule's value at all times except inside
`optimizer.step()`, where it is multiplied by the scale for the duration of the
update and restored right after. Chainable schedulers (ExponentialLR, StepLR,
CosineAnnealingLR's recursive form, ReduceLROnPlateau, ...) therefore read and
write unscaled values and behave exactly as they would without Orbit.
"""
from __future__ import annotations

import math
import types
from typing import Callable, List, Optional

import torch

__all__ = ["LrScaler"]


class LrScaler:
    """Wraps `optimizer.step` so the update runs at `schedule lr x scale`."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.scale = 1.0
        self.last_lrs: Optional[List[float]] = None  # lrs the last update actually used
        self.last_schedule_lrs: Optional[List[float]] = None  # the schedule's lrs of that update
        # Called before every update (the adapter: the rollback ring's pending copies).
        self.before_step: Optional[Callable[[], None]] = None
        self._inner = optimizer.step
        scaler = self

        def step(opt, *args, **kwargs):
            return scaler._step(*args, **kwargs)

        # Look like torch's own counting wrapper, so lr schedulers neither warn that
        # the step was overridden nor wrap it again (and keep `_step_count` right).
        step._with_counter = True
        self._counts = not getattr(self._inner, "_with_counter", False)
        if self._counts and not hasattr(optimizer, "_step_count"):
            optimizer._step_count = 0
        self._wrapper = types.MethodType(step, optimizer)
        optimizer.step = self._wrapper

    def _step(self, *args, **kwargs):
        if self.before_step is not None:
            self.before_step()
        if self._counts:
            self.optimizer._step_count = getattr(self.optimizer, "_step_count", 0) + 1
        groups = self.optimizer.param_groups
        scale = self.scale
        self.last_schedule_lrs = [float(g["lr"]) for g in groups]
        if scale == 1.0:
            self.last_lrs = self.last_schedule_lrs  # the same values; both are only read
            return self._inner(*args, **kwargs)
        base = [g["lr"] for g in groups]
        for g, b in zip(groups, base):
            g["lr"] = b * scale
        self.last_lrs = [float(g["lr"]) for g in groups]
        try:
            return self._inner(*args, **kwargs)
        finally:
            # load_state_dict inside a closure could replace the groups; restore what we scaled.
            for g, b in zip(groups, base):
                g["lr"] = b

    def set_scale(self, scale: float) -> None:
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"lr scale must be finite and > 0, got {scale}")
        self.scale = float(scale)

    def lr_in_effect(self) -> List[float]:
        """The lrs the next update will use if the schedule does not move first."""
        return [float(g["lr"]) * self.scale for g in self.optimizer.param_groups]

    def detach(self) -> None:
        """Stops scaling. The wrapper is removed when nothing wrapped it since."""
        self.scale = 1.0
        if self.optimizer.__dict__.get("step") is self._wrapper:
            self.optimizer.step = self._inner
