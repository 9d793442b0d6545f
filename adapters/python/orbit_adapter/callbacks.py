# SPDX-License-Identifier: Apache-2.0
"""Trainer-framework hooks that drive one `Orbit` object.

`OrbitHooks` is the framework-neutral logic (attach at train start, one
`orbit.step` per optimizer step with the latest loss, state in checkpoints, close
at the end). `OrbitTrainerCallback` (Hugging Face `transformers`) and
`OrbitLightningCallback` (Lightning) are thin shells around it, defined only when
their library can be imported:

    from orbit_adapter.callbacks import OrbitTrainerCallback
    trainer = Trainer(..., callbacks=[OrbitTrainerCallback(Orbit(endpoint=..., run=...))])

    from orbit_adapter.callbacks import OrbitLightningCallback
    pl.Trainer(callbacks=[OrbitLightningCallback(Orbit(endpoint=..., run=...))])
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

__all__ = ["OrbitHooks", "HAS_TRANSFORMERS", "HAS_LIGHTNING"]


class OrbitHooks:
    """What a trainer callback does, without the framework."""

    def __init__(self, orbit):
        self.orbit = orbit
        self.last_loss = math.nan
        self.last_grad_norm: Optional[float] = None

    def train_begin(self, model, optimizer, scheduler=None, sampler=None) -> None:
        if self.orbit.model is None:
            self.orbit.attach(model, optimizer, scheduler=scheduler, sampler=sampler)

    def log(self, logs: Optional[Mapping[str, Any]]) -> None:
        """Takes `loss` / `grad_norm` from a framework's log record."""
        if not logs:
            return
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
        if logs.get("grad_norm") is not None:
            self.last_grad_norm = float(logs["grad_norm"])

    def step_end(self, step: int, loss: Any = None, grad_norm: Optional[float] = None) -> Optional[int]:
        """After the optimizer (and scheduler) step of `step`; returns a restored step or None."""
        if loss is not None:
            self.last_loss = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        if self.orbit.model is None:
            return None
        return self.orbit.step(step, self.last_loss,
                               grad_norm=grad_norm if grad_norm is not None else self.last_grad_norm)

    def train_end(self) -> None:
        self.orbit.close()

    def state_dict(self) -> dict:
        return self.orbit.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.orbit.load_state_dict(state)


try:  # Hugging Face transformers
    from transformers import TrainerCallback as _HFCallback
    HAS_TRANSFORMERS = True
except Exception:  # not installed (or broken): no HF callback
    HAS_TRANSFORMERS = False

if HAS_TRANSFORMERS:
    class OrbitTrainerCallback(_HFCallback):
        """`transformers.Trainer` callback; set `logging_steps=1` for a per-step loss."""

        def __init__(self, orbit):
            self.hooks = OrbitHooks(orbit)

        def on_train_begin(self, args, state, control, model=None, optimizer=None,
                           lr_scheduler=None, **kwargs):
            self.hooks.train_begin(model, optimizer, lr_scheduler)

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.hooks.log(logs)

        def on_step_end(self, args, state, control, **kwargs):
            self.hooks.step_end(state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            self.hooks.train_end()

    __all__.append("OrbitTrainerCallback")

try:  # Lightning 2.x, then the older package name
    try:
        import lightning.pytorch as _pl
    except ImportError:
        import pytorch_lightning as _pl
    HAS_LIGHTNING = True
except Exception:
    HAS_LIGHTNING = False

if HAS_LIGHTNING:
    class OrbitLightningCallback(_pl.Callback):
        """Lightning callback (automatic optimization, one optimizer)."""

        def __init__(self, orbit, sampler=None):
            self.hooks = OrbitHooks(orbit)
            self.sampler = sampler

        def on_train_start(self, trainer, pl_module):
            scheds = [c.scheduler for c in getattr(trainer, "lr_scheduler_configs", [])]
            self.hooks.train_begin(pl_module, trainer.optimizers[0], scheds or None, self.sampler)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            self.hooks.step_end(trainer.global_step, loss)

        def on_train_end(self, trainer, pl_module):
            self.hooks.train_end()

        def state_dict(self):
            return self.hooks.state_dict()

        def load_state_dict(self, state_dict):
            self.hooks.load_state_dict(state_dict)

    __all__.append("OrbitLightningCallback")
