# SPDX-License-Identifier: Apache-2.0
"""Trainer-framework callbacks that drive one `Orbit` object.

    from orbit_adapter.callbacks import OrbitTrainerCallback, OrbitTrainerMixin
    class MyTrainer(OrbitTrainerMixin, Trainer): ...        # optional, see below
    trainer = MyTrainer(..., callbacks=[OrbitTrainerCallback(Orbit(run="exp-42"))])

    from orbit_adapter.callbacks import OrbitLightningCallback
    pl.Trainer(callbacks=[OrbitLightningCallback(Orbit(run="exp-42"))])

`OrbitHooks` is the framework-neutral part: it collects the per-micro-batch losses
of one optimizer step on the device (no host sync until the step is reported), the
gradient norm while the gradients still exist, and sends one snapshot per optimizer
step with the step's full loss. The two callback classes are always importable;
they derive from the framework's callback base class when that library is
installed (HAS_TRANSFORMERS / HAS_LIGHTNING).

Hugging Face call order (transformers `Trainer._inner_training_loop`, v4.41-4.46):
on_step_begin, then per micro-batch training_step (forward, backward), gradient
clipping, on_pre_optimizer_step, optimizer.step, on_optimizer_step,
lr_scheduler.step, model.zero_grad, global_step += 1, on_step_end, and only then
_maybe_log_save_evaluate -> on_log (every `logging_steps`). The logged loss is
therefore neither this step's nor available at on_step_end, so the callback takes
the loss itself: it wraps the model's `forward` and keeps `output.loss` of every
training forward (a mean, or with `num_items_in_batch` the micro-batch's share of
the step's sum). The raw loss is kept: HF's `logging_nan_inf_filter` replaces a
NaN step in its logs, but the daemon must see it. A model whose output carries no
loss (a custom `compute_loss`, a label smoother) needs `OrbitTrainerMixin`, which
records what `training_step` returns (exactly what HF adds to its logged loss);
without either the callback refuses at the first step. The gradient norm is the
one HF logs (before clipping) with `OrbitTrainerMixin`, which records what
`accelerator.clip_grad_norm_` returns; the callback alone has no hook between the
last backward and the clipping, so it measures in on_pre_optimizer_step (before
zero_grad, after clipping: with `max_grad_norm` the clipped norm the update used).

Lightning call order (`loops/training_epoch_loop.py` `advance` and
`loops/optimization/automatic.py`, v2.x): with `accumulate_grad_batches=k`,
on_train_batch_end runs after every micro-batch with outputs["loss"] = loss / k,
and `global_step` moves only after the k-th (the optimizer step). The callback sums
the micro-batch losses and reports once per optimizer step; the gradient norm is
taken in on_before_optimizer_step (before Lightning's clipping).
"""
from __future__ import annotations

import math
import weakref
from typing import Any, Dict, List, Mapping, Optional

import torch

__all__ = ["OrbitHooks", "OrbitTrainerCallback", "OrbitTrainerMixin", "OrbitLightningCallback",
           "HAS_TRANSFORMERS", "HAS_LIGHTNING", "STATE_CODES", "BASIN_CODES"]

# Numeric codes for the daemon's state and basin in framework logs (TensorBoard and
# MLflow drop strings); protocol/SPEC.md `state` message.
STATE_CODES = {"STABLE": 0, "DRIFTING": 1, "WARNING": 2, "CRITICAL": 3, "RECOVERING": 4,
               "STALE": 5, "MONITOR": 6}
BASIN_CODES = {"CREATIVE": 0, "SEMANTIC_LOOP": 1, "TOKEN_COLLAPSE": 2, "UNKNOWN": 3}


class OrbitHooks:
    """What a trainer callback does, without the framework."""

    def __init__(self, orbit, sampler=None):
        self.orbit = orbit
        self.sampler = sampler
        self._losses: List[torch.Tensor] = []    # this step's micro-batch losses
        self._partial = False                     # losses are shares of a sum, not means
        self._partial_scale = 1.0
        self._exact: List[torch.Tensor] = []      # OrbitTrainerMixin: training_step returns
        self._grad_norm: Optional[torch.Tensor] = None
        self._loss_missing_checked = False

    # ---- lifecycle ---------------------------------------------------------------
    def train_begin(self, model, optimizer, scheduler=None, *, rank: int = 0, world_size: int = 1,
                    start_step: int = 0) -> None:
        """Attaches (again, after a previous train's close); raises where Orbit cannot act."""
        self.orbit.set_topology(rank, world_size)
        self.orbit.attach(model, optimizer, scheduler=scheduler, sampler=self.sampler,
                          start_step=start_step)
        self.reset_step()
        self._loss_missing_checked = False

    def train_end(self) -> None:
        self.orbit.close()

    @property
    def attached(self) -> bool:
        return self.orbit.attached

    # ---- what one optimizer step collects ----------------------------------------
    def reset_step(self) -> None:
        self._losses, self._exact, self._grad_norm = [], [], None
        self._partial, self._partial_scale = False, 1.0

    def add_loss(self, loss: Any, partial: bool = False, scale: float = 1.0) -> None:
        """One micro-batch's loss. partial: a share of the step's sum (summed, times
        `scale`), else a mean (averaged over the step's micro-batches)."""
        self._losses.append(_detached(loss))
        self._partial = self._partial or partial
        self._partial_scale = scale

    def add_exact_loss(self, loss: Any) -> None:
        """A micro-batch's contribution to the step's loss; the step's loss is their sum."""
        self._exact.append(_detached(loss))

    def take_grad_norm(self, step: int) -> None:
        """Measures the gradient norm of the coming report of `step` (once per step)."""
        if self._grad_norm is None and self.attached and self.orbit.grad_norm_due(step):
            self._grad_norm = self.orbit.grad_norm_tensor()

    def set_grad_norm(self, norm: Any) -> None:
        """The total gradient norm the trainer measured (before its clipping)."""
        if isinstance(norm, torch.Tensor):
            self._grad_norm = norm.detach().reshape(())
        elif norm is not None and math.isfinite(float(norm)):
            self._grad_norm = torch.tensor(float(norm))

    def step_loss(self) -> Optional[torch.Tensor]:
        if self._exact:
            return torch.stack([t.float() for t in self._exact]).sum()
        if not self._losses:
            return None
        stacked = torch.stack([t.float() for t in self._losses])
        return stacked.sum() * self._partial_scale if self._partial else stacked.mean()

    def report(self, step: int) -> Optional[int]:
        """Sends optimizer step `step`; returns the restored step after a rollback."""
        if not self.attached:
            self.reset_step()
            return None
        loss = self.step_loss()
        if loss is None:
            self.reset_step()
            if not self._loss_missing_checked:
                raise RuntimeError(
                    "orbit: no training loss was seen in optimizer step "
                    f"{step}: the model's output has no `loss`. Use OrbitTrainerMixin with "
                    "transformers (class MyTrainer(OrbitTrainerMixin, Trainer)), or return the "
                    "loss from Lightning's training_step.")
            return None
        self._loss_missing_checked = True
        # One host sync for both numbers.
        if self._grad_norm is not None:
            values = torch.stack([loss, self._grad_norm.float().to(loss.device)]).tolist()
            loss_value, grad_norm = values[0], values[1]
        else:
            loss_value, grad_norm = float(loss), None
        self.reset_step()
        return self.orbit.step(step, loss_value, grad_norm=grad_norm)

    # ---- what users see in their loggers -----------------------------------------
    def log_values(self) -> Dict[str, float]:
        """Orbit's view as numbers, for `logs` / `pl_module.log`."""
        o = self.orbit
        out: Dict[str, float] = {"orbit/lr_scale": float(o.lr_scale),
                                 "orbit/burns": float(len(o.applied)),
                                 "orbit/rollbacks": float(len(o.rollbacks)),
                                 "orbit/connected": 1.0 if o.connected else 0.0}
        lr = o.lr_in_effect
        if lr is not None:
            out["orbit/lr"] = float(lr)
        if o.state in STATE_CODES:
            out["orbit/state"] = float(STATE_CODES[o.state])
        if o.basin in BASIN_CODES:
            out["orbit/basin"] = float(BASIN_CODES[o.basin])
        for k, v in (o.metrics or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[f"orbit/{k}"] = float(v)
        return out

    def state_dict(self) -> dict:
        return self.orbit.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.orbit.load_state_dict(state)


def _detached(loss: Any) -> torch.Tensor:
    if isinstance(loss, torch.Tensor):
        return loss.detach().reshape(())
    return torch.tensor(float(loss))


def _is_training_loss(module: torch.nn.Module) -> bool:
    return module.training and torch.is_grad_enabled()


def _output_loss(out: Any) -> Optional[torch.Tensor]:
    loss = out.get("loss") if isinstance(out, Mapping) else getattr(out, "loss", None)
    return loss if isinstance(loss, torch.Tensor) else None


# ---------------------------------------------------------------- Hugging Face
try:  # Hugging Face transformers
    from transformers import TrainerCallback as _HFCallback
    HAS_TRANSFORMERS = True
except Exception:  # not installed (or broken): a plain base, same behaviour
    _HFCallback = object
    HAS_TRANSFORMERS = False
try:  # transformers >= 4.41: callbacks whose state goes into the checkpoint
    from transformers.trainer_callback import ExportableState as _HFExportable
except Exception:
    _HFExportable = None

_HF_BASES = (_HFCallback,) + ((_HFExportable,) if _HFExportable is not None else ())


def _hf_flag(args: Any, name: str) -> bool:
    value = getattr(args, name, None)
    return bool(value) and value not in ("", [], ())


class OrbitTrainerCallback(*_HF_BASES):
    """`transformers.Trainer` callback: one snapshot per optimizer step with that step's
    loss, rank from `args.process_index`, the burn in force saved with HF checkpoints
    (TrainerState.stateful_callbacks) and re-applied on resume, Orbit's view in `logs`.

    orbit:   the Orbit object. HF may rebuild stateful callbacks from a checkpoint with
             no arguments (`restore_callback_states_from_checkpoint`); a callback built
             without one takes the Orbit of the latest callback built with one.
    sampler: a DomainMixtureSampler the train DataLoader draws from (the data actuators).
    """

    STATE_KEY = "OrbitTrainerCallback"
    _latest: "Optional[weakref.ReferenceType]" = None

    def __init__(self, orbit=None, sampler=None):
        if orbit is None:
            prev = OrbitTrainerCallback._latest() if OrbitTrainerCallback._latest else None
            if prev is None:
                raise TypeError("OrbitTrainerCallback needs an Orbit object")
            orbit, sampler = prev.orbit, sampler if sampler is not None else prev.hooks.sampler
        self.orbit = orbit
        self.hooks = OrbitHooks(orbit, sampler)
        self._model = None
        self._forward = None
        self._previous_forward = None
        self._scale_partial = 1.0
        OrbitTrainerCallback._latest = weakref.ref(self)

    # HF ExportableState: HF calls state() when it builds its TrainerState (start of
    # train), not at each save, so on_step_end keeps state.stateful_callbacks fresh.
    def state(self) -> dict:
        sd = self.orbit.state_dict()
        sd["pending"] = {str(k): v for k, v in sd["pending"].items()}  # JSON keys
        return {"args": {}, "attributes": {"orbit_state": sd}}

    def on_train_begin(self, args, state, control, model=None, optimizer=None,
                       lr_scheduler=None, **kwargs):
        if _hf_flag(args, "deepspeed") or getattr(args, "hf_deepspeed_config", None) is not None:
            raise RuntimeError(
                "orbit: DeepSpeed is not supported: accelerate's DeepSpeed optimizer wrapper has "
                "a no-op step() and the engine steps inside backward(), so Orbit's lr burns would "
                "silently do nothing. Train without DeepSpeed or remove OrbitTrainerCallback.")
        if _hf_flag(args, "fsdp") and self.orbit.checkpoint_config.every > 0:
            raise RuntimeError(
                "orbit: rollback cannot checkpoint an FSDP-sharded model; pass "
                "checkpoints=CheckpointConfig(every=0) to Orbit to train without rollback.")
        saved = (getattr(state, "stateful_callbacks", None) or {}).get(self.STATE_KEY)
        if isinstance(saved, list):
            saved = saved[0] if saved else None
        if saved and state.global_step > 0:  # resuming from an HF checkpoint
            self.orbit.load_state_dict(saved.get("attributes", {}).get("orbit_state") or {"active": None})
        self.hooks.train_begin(model, optimizer, lr_scheduler,
                               rank=int(getattr(args, "process_index", 0)),
                               world_size=int(getattr(args, "world_size", 1)),
                               start_step=int(state.global_step))
        self._scale_partial = (float(getattr(args, "world_size", 1))
                               if getattr(args, "average_tokens_across_devices", False) else 1.0)
        self._wrap_forward(model)

    def _wrap_forward(self, model) -> None:
        self._unwrap_forward()
        if not isinstance(model, torch.nn.Module):
            return
        inner = model.forward
        previous = model.__dict__.get("forward")  # accelerate's autocast wrapper, say
        hooks, cb = self.hooks, self

        def forward(*args, **kwargs):
            out = inner(*args, **kwargs)
            if _is_training_loss(model):
                loss = _output_loss(out)
                if loss is not None:
                    partial = kwargs.get("num_items_in_batch") is not None
                    hooks.add_loss(loss, partial=partial,
                                   scale=cb._scale_partial if partial else 1.0)
            return out

        model.forward = forward
        self._model, self._forward, self._previous_forward = model, forward, previous

    def _unwrap_forward(self) -> None:
        m = self._model
        # Only ours: something that wrapped it since keeps working.
        if m is not None and m.__dict__.get("forward") is self._forward:
            if self._previous_forward is not None:
                m.forward = self._previous_forward
            else:
                del m.forward
        self._model = self._forward = self._previous_forward = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.hooks.reset_step()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.hooks.take_grad_norm(state.global_step + 1)

    def on_optimizer_step(self, args, state, control, **kwargs):  # before 4.41: no pre hook
        self.hooks.take_grad_norm(state.global_step + 1)

    def on_step_end(self, args, state, control, **kwargs):
        self.hooks.report(state.global_step)
        if isinstance(getattr(state, "stateful_callbacks", None), dict):
            state.stateful_callbacks[self.STATE_KEY] = self.state()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and self.hooks.attached:
            logs.update(self.hooks.log_values())

    def on_train_end(self, args, state, control, **kwargs):
        self._unwrap_forward()
        self.hooks.train_end()


class OrbitTrainerMixin:
    """`class MyTrainer(OrbitTrainerMixin, Trainer)`: the step's loss exactly as HF adds
    it to its logged loss (what `training_step` returns, for any `compute_loss`); the
    gradient norm before clipping (what `accelerator.clip_grad_norm_` returns, as HF
    logs it); and Orbit's view in every log record before the reporting callbacks
    (W&B, TensorBoard, MLflow) see it: HF calls them before user callbacks, so on_log
    alone is too late."""

    def _orbit_callbacks(self):
        return [c for c in self.callback_handler.callbacks if isinstance(c, OrbitTrainerCallback)]

    def _orbit_wrap_clipping(self) -> None:
        acc = getattr(self, "accelerator", None)
        clip = getattr(acc, "clip_grad_norm_", None)
        if clip is None or getattr(clip, "_orbit", False):
            return
        trainer = self

        def clip_grad_norm_(*args, **kwargs):
            norm = clip(*args, **kwargs)
            for c in trainer._orbit_callbacks():
                c.hooks.set_grad_norm(norm)
            return norm
        clip_grad_norm_._orbit = True
        acc.clip_grad_norm_ = clip_grad_norm_

    def training_step(self, *args, **kwargs):
        self._orbit_wrap_clipping()
        loss = super().training_step(*args, **kwargs)
        for c in self._orbit_callbacks():
            c.hooks.add_exact_loss(loss)
        return loss

    def log(self, logs, *args, **kwargs):
        for c in self._orbit_callbacks():
            if c.hooks.attached:
                logs.update(c.hooks.log_values())
        return super().log(logs, *args, **kwargs)


# ---------------------------------------------------------------- Lightning
try:  # Lightning 2.x, then the older package name
    try:
        import lightning.pytorch as _pl
    except ImportError:
        import pytorch_lightning as _pl
    _PLCallback = _pl.Callback
    HAS_LIGHTNING = True
except Exception:
    _PLCallback = object
    HAS_LIGHTNING = False


class OrbitLightningCallback(_PLCallback):
    """Lightning callback (automatic optimization, one optimizer): one report per
    optimizer step with the full loss, rank from `trainer.global_rank`, the burn in
    force saved in checkpoints and re-applied on resume, Orbit's view through
    `pl_module.log` (log_metrics=False turns that off)."""

    def __init__(self, orbit, sampler=None, log_metrics: bool = True):
        self.orbit = orbit
        self.hooks = OrbitHooks(orbit, sampler)
        self.log_metrics = log_metrics
        self._reported_step: Optional[int] = None

    def on_train_start(self, trainer, pl_module):
        strategy = type(getattr(trainer, "strategy", None)).__name__
        if "DeepSpeed" in strategy:
            raise RuntimeError(
                "orbit: Lightning's DeepSpeed strategy is not supported: the engine steps the "
                "optimizer itself, so Orbit's lr burns would silently do nothing.")
        if "FSDP" in strategy and self.orbit.checkpoint_config.every > 0:
            raise RuntimeError(
                "orbit: rollback cannot checkpoint an FSDP-sharded model; pass "
                "checkpoints=CheckpointConfig(every=0) to Orbit to train without rollback.")
        if len(trainer.optimizers) != 1:
            raise RuntimeError(f"orbit: one optimizer expected, the trainer has {len(trainer.optimizers)}")
        scheds = [c.scheduler for c in getattr(trainer, "lr_scheduler_configs", [])]
        self.hooks.train_begin(pl_module, trainer.optimizers[0], scheds or None,
                               rank=int(trainer.global_rank), world_size=int(trainer.world_size),
                               start_step=int(trainer.global_step))
        self._reported_step = int(trainer.global_step)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer, *args):
        self.hooks.take_grad_norm(trainer.global_step + 1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            self.hooks.add_exact_loss(loss)  # loss / accumulate_grad_batches: the sum is the step's
        step = int(trainer.global_step)
        if self._reported_step is not None and step <= self._reported_step:
            return  # a micro-batch of an accumulation window: the optimizer has not stepped
        self._reported_step = step
        self.hooks.report(step)
        if self.log_metrics and self.hooks.attached:
            pl_module.log_dict(self.hooks.log_values(), on_step=True, on_epoch=False, prog_bar=False,
                               logger=bool(getattr(trainer, "loggers", True)), batch_size=1)

    def on_train_end(self, trainer, pl_module):
        self.hooks.train_end()

    def state_dict(self):
        return self.hooks.state_dict()

    def load_state_dict(self, state_dict):
        # Lightning restores callback state before on_train_start: Orbit keeps it and
        # puts the burn back in force when attach comes.
        self.hooks.load_state_dict(state_dict)
