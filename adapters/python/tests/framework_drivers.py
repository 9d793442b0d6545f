# SPDX-License-Identifier: Apache-2.0
"""Drivers that call trainer callbacks in exactly the order the real libraries do.

transformers and lightning cannot be installed here (not in Debian, no PyPI), so
these drivers re-enact the parts of their training loops that decide what a
callback sees: which hook runs when, what the model, optimizer and gradients look
like at that moment, and what `logs` / `outputs` hold. Everything else is real: a
torch model, optimizer and scheduler, real backward passes. The sources mirrored:

- transformers v4.46, `trainer.py`: `Trainer._inner_training_loop` (the step loop),
  `Trainer.training_step`, `Trainer.compute_loss`, `Trainer.get_batch_samples`,
  `Trainer._maybe_log_save_evaluate`, `Trainer.log`, `Trainer._save_checkpoint`;
  `trainer_callback.py`: `CallbackHandler.call_event`, `DefaultFlowCallback.on_step_end`,
  `TrainerState` (`stateful_callbacks`); accelerate v1.0 `optimizer.py`
  (`AcceleratedOptimizer.step`) and `utils/deepspeed.py`
  (`DeepSpeedOptimizerWrapper.step` is a no-op).
- Lightning v2.4: `loops/training_epoch_loop.py` `_TrainingEpochLoop.advance`,
  `loops/optimization/automatic.py` (`_AutomaticOptimization.run`, `Closure`,
  `_make_zero_grad_fn`, `ClosureResult.from_training_step_output`: loss / k),
  `plugins/precision/precision.py` (`_wrap_closure` -> `on_before_optimizer_step`,
  clipping, then `optimizer.step(closure=...)`), `trainer/connectors/checkpoint_connector.py`
  (callback state restored before `on_train_start`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn as nn

from torch_fixtures import TinyLM


# ---------------------------------------------------------------- models
class CausalLMOutput(dict):
    """transformers' ModelOutput: a dict whose keys are also attributes."""
    __getattr__ = dict.get


class TinyCausalLM(nn.Module):
    """An HF-style causal LM: forward(input_ids, labels) returns an output with `.loss`.
    accepts_loss_kwargs: takes `num_items_in_batch` (HF >= 4.46 passes it then) and
    returns that micro-batch's share of the step's summed loss."""

    def __init__(self, accepts_loss_kwargs: bool = False, vocab: int = 11):
        super().__init__()
        self.lm = TinyLM(vocab=vocab)
        self.vocab = vocab
        self.accepts_loss_kwargs = accepts_loss_kwargs
        self.forward_losses: List[float] = []   # every training forward's mean loss

    def forward(self, input_ids, labels=None, num_items_in_batch=None, **kwargs):
        logits = self.lm(input_ids)
        out = CausalLMOutput(logits=logits)
        if labels is not None:
            flat = nn.functional.cross_entropy(logits.reshape(-1, self.vocab), labels.reshape(-1),
                                               reduction="none")
            if self.training:
                self.forward_losses.append(float(flat.mean()))
            out["loss"] = flat.sum() / num_items_in_batch if num_items_in_batch is not None else flat.mean()
        return out


def hf_batch(i: int, batch: int = 4, context: int = 8, vocab: int = 11) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5000 + i)
    x = torch.randint(0, vocab, (batch, context + 1), generator=g)
    return {"input_ids": x[:, :-1], "labels": x[:, 1:]}


# ---------------------------------------------------------------- transformers
@dataclass
class HFArgs:
    """The TrainingArguments fields the loop and the callbacks read."""
    max_steps: int = 20
    logging_steps: int = 500
    logging_first_step: bool = False
    logging_nan_inf_filter: bool = True
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    learning_rate: float = 1e-3
    save_steps: int = 0
    output_dir: str = ""
    process_index: int = 0
    world_size: int = 1
    deepspeed: Optional[str] = None
    fsdp: List[str] = field(default_factory=list)
    restore_callback_states_from_checkpoint: bool = False
    average_tokens_across_devices: bool = False


@dataclass
class HFState:
    """TrainerState (the fields used here)."""
    global_step: int = 0
    epoch: float = 0.0
    log_history: List[Dict[str, Any]] = field(default_factory=list)
    stateful_callbacks: Dict[str, Any] = field(default_factory=dict)


@dataclass
class HFControl:
    should_log: bool = False
    should_save: bool = False
    should_training_stop: bool = False

    def _new_step(self):
        self.should_log = self.should_save = False


class DefaultFlowCallback:
    """transformers `DefaultFlowCallback.on_step_end`: sets should_log / should_save.
    It is the first callback in the handler, so it runs before user callbacks."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1 and args.logging_first_step:
            control.should_log = True
        if args.logging_steps > 0 and state.global_step % args.logging_steps == 0:
            control.should_log = True
        if args.save_steps > 0 and state.global_step % args.save_steps == 0:
            control.should_save = True
        if state.global_step >= args.max_steps:
            control.should_training_stop = True
        return control


class CallbackHandler:
    """transformers `CallbackHandler.call_event`: every event gets the model, the
    optimizer, the scheduler and the dataloader as keyword arguments."""

    def __init__(self, callbacks, model, optimizer, lr_scheduler):
        self.callbacks = [DefaultFlowCallback()] + list(callbacks)
        self.model, self.optimizer, self.lr_scheduler = model, optimizer, lr_scheduler
        self.events: List[str] = []

    def call_event(self, event, args, state, control, **kwargs):
        self.events.append(event)
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is None:
                continue
            result = fn(args, state, control, model=self.model, processing_class=None,
                        optimizer=self.optimizer, lr_scheduler=self.lr_scheduler,
                        train_dataloader=None, eval_dataloader=None, **kwargs)
            if result is not None:
                control = result
        return control


class AcceleratedOptimizer:
    """accelerate `AcceleratedOptimizer`: delegates to the torch optimizer."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, sd):
        self.optimizer.load_state_dict(sd)

    def zero_grad(self, set_to_none=None):
        self.optimizer.zero_grad(set_to_none=True if set_to_none is None else set_to_none)

    def step(self, closure=None):
        self.optimizer.step(closure) if closure is not None else self.optimizer.step()


class DeepSpeedOptimizerWrapper(AcceleratedOptimizer):
    """accelerate `utils/deepspeed.py`: `step` is a no-op, the engine steps in backward."""

    def step(self, closure=None):
        pass


class Accelerator:
    """accelerate `Accelerator.clip_grad_norm_`: clips and returns the total norm
    before clipping (torch.nn.utils.clip_grad_norm_)."""

    def clip_grad_norm_(self, parameters, max_norm, norm_type=2):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type=norm_type)


class HFTrainer:
    """The step loop of transformers v4.46 `Trainer._inner_training_loop`."""

    def __init__(self, model, args: HFArgs, callbacks=(), deepspeed_wrapper: bool = False,
                 make_batch: Callable[[int], Dict[str, torch.Tensor]] = hf_batch):
        self.model, self.args = model, args
        torch_opt = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            torch_opt, lambda s: max(0.0, 1.0 - s / max(1, args.max_steps)))  # "linear"
        wrapper = DeepSpeedOptimizerWrapper if deepspeed_wrapper else AcceleratedOptimizer
        self.optimizer = wrapper(torch_opt)
        self.accelerator = Accelerator()
        self.callback_handler = CallbackHandler(callbacks, model, self.optimizer, self.lr_scheduler)
        self.state = HFState()
        self.control = HFControl()
        self.make_batch = make_batch
        # Trainer.__init__: model_accepts_loss_kwargs from the forward signature.
        self.model_accepts_loss_kwargs = getattr(model, "accepts_loss_kwargs", False)
        self.lrs_used: Dict[int, float] = {}   # global step -> lr the torch optimizer ran with
        self._wrap_torch_step(torch_opt)

    def _wrap_torch_step(self, opt):
        inner = opt.step
        trainer = self

        def step(*a, **k):
            trainer.lrs_used[trainer.state.global_step + 1] = opt.param_groups[0]["lr"]
            return inner(*a, **k)
        step._with_counter = getattr(inner, "_with_counter", False)
        opt.step = step

    # Trainer.get_batch_samples
    def get_batch_samples(self, it, num_batches):
        batch_samples = [next(it) for _ in range(num_batches)]
        num_items_in_batch = None
        if batch_samples and "labels" in batch_samples[0]:
            num_items_in_batch = sum(int(b["labels"].ne(-100).sum()) for b in batch_samples)
        return batch_samples, num_items_in_batch

    # Trainer.compute_loss
    def compute_loss(self, model, inputs, num_items_in_batch=None):
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
        outputs = model(**inputs)
        return outputs["loss"] if isinstance(outputs, dict) else outputs[0]

    # Trainer.training_step
    def training_step(self, model, inputs, num_items_in_batch=None):
        model.train()
        loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        if not self.model_accepts_loss_kwargs:
            loss = loss / self.args.gradient_accumulation_steps
        loss.backward()  # accelerator.backward (DeepSpeed: engine.backward + engine.step)
        return loss.detach()

    # Trainer.log
    def log(self, logs):
        logs["epoch"] = self.state.epoch
        output = {**logs, "step": self.state.global_step}
        self.state.log_history.append(output)
        self.control = self.callback_handler.call_event("on_log", self.args, self.state,
                                                        self.control, logs=logs)

    # Trainer._maybe_log_save_evaluate
    def _maybe_log_save_evaluate(self, tr_loss, grad_norm):
        if self.control.should_log and self.state.global_step > self._globalstep_last_logged:
            logs = {}
            tr_loss_scalar = tr_loss.item()
            tr_loss -= tr_loss  # reset in place, as HF does
            logs["loss"] = round(tr_loss_scalar / (self.state.global_step - self._globalstep_last_logged), 4)
            if grad_norm is not None:
                logs["grad_norm"] = float(grad_norm)
            logs["learning_rate"] = self.lr_scheduler.get_last_lr()[0]
            self._globalstep_last_logged = self.state.global_step
            self.log(logs)
        if self.control.should_save:
            self._save_checkpoint()
            self.control = self.callback_handler.call_event("on_save", self.args, self.state, self.control)

    # Trainer._save_checkpoint
    def _save_checkpoint(self):
        d = os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}")
        os.makedirs(d, exist_ok=True)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.lr_scheduler.state_dict()}, os.path.join(d, "train.pt"))
        self.state.stateful_callbacks["TrainerControl"] = {"args": {}, "attributes": {}}
        with open(os.path.join(d, "trainer_state.json"), "w") as f:
            json.dump({"global_step": self.state.global_step, "log_history": self.state.log_history,
                       "stateful_callbacks": self.state.stateful_callbacks}, f, sort_keys=True)

    def train(self, resume_from_checkpoint: Optional[str] = None):
        args = self.args
        # TrainerState(stateful_callbacks=[cb for cb in callbacks if ExportableState]): state()
        # is called once here, at the start of train.
        self.state = HFState(stateful_callbacks={
            type(cb).__name__: cb.state() for cb in self.callback_handler.callbacks if hasattr(cb, "state")})
        if resume_from_checkpoint is not None:
            with open(os.path.join(resume_from_checkpoint, "trainer_state.json")) as f:
                saved = json.load(f)
            self.state = HFState(global_step=saved["global_step"], log_history=saved["log_history"],
                                 stateful_callbacks=saved["stateful_callbacks"])
            ck = torch.load(os.path.join(resume_from_checkpoint, "train.pt"))
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            self.lr_scheduler.load_state_dict(ck["scheduler"])
        self.control = HFControl()
        tr_loss = torch.tensor(0.0)
        self._globalstep_last_logged = self.state.global_step
        self.control = self.callback_handler.call_event("on_train_begin", args, self.state, self.control)
        gas = args.gradient_accumulation_steps
        micro = self.state.global_step * gas
        data = iter(self.make_batch(i) for i in range(micro, 10 ** 9))
        self.control = self.callback_handler.call_event("on_epoch_begin", args, self.state, self.control)
        step = -1
        while self.state.global_step < args.max_steps:
            batch_samples, num_items_in_batch = self.get_batch_samples(data, gas)
            for i, inputs in enumerate(batch_samples):
                step += 1
                do_sync_step = (step + 1) % gas == 0
                if step % gas == 0:
                    self.control = self.callback_handler.call_event("on_step_begin", args, self.state, self.control)
                tr_loss_step = self.training_step(self.model, inputs, num_items_in_batch)
                if args.logging_nan_inf_filter and (torch.isnan(tr_loss_step) or torch.isinf(tr_loss_step)):
                    # if loss is nan or inf simply add the average of previous logged losses
                    tr_loss = tr_loss + tr_loss / (1 + self.state.global_step - self._globalstep_last_logged)
                else:
                    tr_loss = tr_loss + tr_loss_step
                if do_sync_step:
                    grad_norm = None
                    if args.max_grad_norm is not None and args.max_grad_norm > 0:
                        grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                    self.control = self.callback_handler.call_event("on_pre_optimizer_step", args, self.state, self.control)
                    self.optimizer.step()
                    self.control = self.callback_handler.call_event("on_optimizer_step", args, self.state, self.control)
                    self.lr_scheduler.step()
                    self.model.zero_grad()
                    self.state.global_step += 1
                    self.state.epoch = (step + 1) / gas / 1000.0
                    self.control._new_step()
                    self.control = self.callback_handler.call_event("on_step_end", args, self.state, self.control)
                    self._maybe_log_save_evaluate(tr_loss, grad_norm)
                else:
                    self.control = self.callback_handler.call_event("on_substep_end", args, self.state, self.control)
                if self.control.should_training_stop:
                    break
            if self.control.should_training_stop:
                break
        self.control = self.callback_handler.call_event("on_epoch_end", args, self.state, self.control)
        self.control = self.callback_handler.call_event("on_train_end", args, self.state, self.control)


# ---------------------------------------------------------------- Lightning
class SingleDeviceStrategy:
    pass


class DeepSpeedStrategy:
    pass


@dataclass
class LRSchedulerConfig:
    scheduler: Any
    interval: str = "step"


class PLModule(nn.Module):
    """A LightningModule: training_step returns the loss; `log_dict` records what
    callbacks log (Lightning's logger connector)."""

    def __init__(self):
        super().__init__()
        self.lm = TinyLM()
        self.trainer = None
        self.logged: List[Dict[str, float]] = []
        self.step_losses: List[float] = []   # every training_step's loss

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.lm(x).reshape(-1, 11), y.reshape(-1))
        self.step_losses.append(float(loss))
        return loss

    def log_dict(self, values, **kwargs):
        self.logged.append({"step": self.trainer.global_step, **values})


def pl_batch(i: int):
    g = torch.Generator().manual_seed(9000 + i)
    x = torch.randint(0, 11, (4, 9), generator=g)
    return x[:, :-1], x[:, 1:]


class PLTrainer:
    """Lightning v2.4's fit -> training epoch loop with automatic optimization."""

    def __init__(self, callbacks=(), accumulate_grad_batches: int = 1, max_steps: int = 20,
                 global_rank: int = 0, world_size: int = 1, strategy=None,
                 gradient_clip_val: Optional[float] = None, horizon: Optional[int] = None):
        self.callbacks = list(callbacks)
        self.accumulate_grad_batches = accumulate_grad_batches
        self.max_steps = max_steps
        self.horizon = horizon or max_steps   # the lr schedule's length
        self.global_rank, self.world_size = global_rank, world_size
        self.strategy = strategy or SingleDeviceStrategy()
        self.gradient_clip_val = gradient_clip_val
        self._optimizer_steps = 0

    @property
    def global_step(self) -> int:  # fit_loop.epoch_loop.global_step: completed optimizer steps
        return self._optimizer_steps

    def _call(self, hook, *args):
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, self.module, *args)

    def _callback_key(self, cb):  # Callback.state_key: the qualified class name
        return type(cb).__qualname__

    def save_checkpoint(self) -> dict:
        return {"global_step": self.global_step, "model": self.module.state_dict(),
                "optimizer": self.optimizers[0].state_dict(),
                "schedulers": [c.scheduler.state_dict() for c in self.lr_scheduler_configs],
                "callbacks": {self._callback_key(cb): cb.state_dict()
                              for cb in self.callbacks if hasattr(cb, "state_dict")}}

    def fit(self, module: PLModule, ckpt_path: Optional[dict] = None, lr: float = 1e-3):
        self.module = module
        module.trainer = self
        opt = torch.optim.AdamW(module.parameters(), lr=lr)       # configure_optimizers
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / self.horizon))
        self.optimizers = [opt]
        self.lr_scheduler_configs = [LRSchedulerConfig(sched)]
        if ckpt_path is not None:
            # checkpoint_connector._restore_modules_and_callbacks, inside Trainer._run and
            # before _run_stage: callback.load_state_dict comes before on_train_start.
            module.load_state_dict(ckpt_path["model"])
            for cb in self.callbacks:
                key = self._callback_key(cb)
                if key in ckpt_path["callbacks"]:
                    cb.load_state_dict(ckpt_path["callbacks"][key])
            opt.load_state_dict(ckpt_path["optimizer"])
            sched.load_state_dict(ckpt_path["schedulers"][0])
            self._optimizer_steps = ckpt_path["global_step"]
        self._call("on_fit_start")
        self._call("on_train_start")
        self._call("on_train_epoch_start")
        k = self.accumulate_grad_batches
        batch_idx = 0
        micro = self.global_step * k
        while self.global_step < self.max_steps:
            batch = pl_batch(micro + batch_idx)
            self._call("on_train_batch_start", batch, batch_idx)
            outputs = self._run_automatic(opt, batch, batch_idx)
            should_accumulate = (batch_idx + 1) % k != 0
            if not should_accumulate:   # update_lr_schedulers("step"): only on optimizer steps
                sched.step()
            self._call("on_train_batch_end", outputs, batch, batch_idx)
            batch_idx += 1
        self._call("on_train_epoch_end")
        self._call("on_train_end")
        self._call("on_fit_end")

    # loops/optimization/automatic.py _AutomaticOptimization.run
    def _run_automatic(self, opt, batch, batch_idx):
        k = self.accumulate_grad_batches
        should_accumulate = (batch_idx + 1) % k != 0
        result = {}

        def step_fn():   # _training_step + ClosureResult.from_training_step_output
            loss = self.module.training_step(batch, batch_idx)
            result["closure_loss"] = loss / k
            result["loss"] = result["closure_loss"].detach().clone()

        def zero_grad_fn():  # _make_zero_grad_fn: only on the first batch of a window
            if batch_idx % k == 0:
                opt.zero_grad()

        def closure():   # Closure.closure: step, zero_grad, backward
            step_fn()
            zero_grad_fn()
            result["closure_loss"].backward()

        if should_accumulate:
            closure()
        else:
            # LightningModule.optimizer_step -> LightningOptimizer.step -> Precision.optimizer_step
            def wrapped_closure():  # Precision._wrap_closure
                closure()
                self._call("on_before_optimizer_step", opt)
                if self.gradient_clip_val:
                    torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.gradient_clip_val)
            opt.step(closure=wrapped_closure)
            self._optimizer_steps += 1   # optim_progress.optimizer.step.increment_completed
        return {"loss": result["loss"]}
