# SPDX-License-Identifier: Apache-2.0
"""A ring of in-memory CPU checkpoints for rollback burns.

Each checkpoint holds the model, optimizer, scheduler(s) and sampler states plus
the torch, numpy and Python RNG states, copied to CPU. Checkpoints are taken
every `every` steps. The ring never holds more than `budget_bytes`. Once a new
checkpoint would exceed it the ring thins out: the oldest checkpoint (the start) and
the pinned one (the last state before the daemon raised an alarm, see `pin`) are
never evicted; of the others, the one whose removal leaves the smallest gap relative
to its age goes, so history stays dense near the present and sparse (but reaching
back to the start) in the past. A checkpoint that cannot fit even then is not taken,
with one warning; a ring whose first checkpoint exceeds the budget is refused with
a ValueError (the budget is too small for this model and optimizer).

Copies stay off the critical path where they can: an evicted checkpoint's buffers
receive the new copy (no fresh allocation, already paged in), and CUDA tensors are
copied into pinned host memory with non_blocking copies. The parameters and the
optimizer state are copied on a side CUDA stream, which starts where the training
stream is and overlaps the next forward and backward; the next `optimizer.step` (which
changes them in place) waits for the copies on the device, through an optimizer
step pre-hook (torch >= 2.0; an older torch makes the training stream wait for them
right away). Model buffers (e.g. BatchNorm statistics, which a forward changes) are
copied on the training stream itself. A restore waits for the copies on the host.
On the CPU, with `defer` set (the adapter's ProbeWorker), the parameters and the
optimizer state are copied on the worker thread while the next forward and backward
run; the next `optimizer.step` waits for them (Orbit's LrScaler wrapper calls
`before_update`), and so does a restore or the next save (`wait`). Buffers and
everything that is not a tensor are copied at once.
A CPU model's checkpoint does not walk the state dicts each time: a `CopyPlan` (the
flat lists of the state dicts' tensors, built by one walk) is kept while the
optimizer's state and parameter groups hold the same objects, checked on every save
without building a dict; the rest of the check (the model's state dict still names
the same tensors) runs with the copies on the worker, and a checkpoint that fails it
is dropped and the plan rebuilt (without a worker, the save is taken again at once).
The worker also builds the checkpoint's dicts, the same dicts `state_dict()` gives
(bench/overhead).
A rollback restores the newest checkpoint at or before the requested step and drops
every newer one: they belong to the trajectory being abandoned.
"""
from __future__ import annotations

import operator
import random
import warnings
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

__all__ = ["CheckpointConfig", "Checkpoint", "CheckpointRing"]


@dataclass
class CheckpointConfig:
    every: int = 10                      # steps between checkpoints (0: rollback disabled)
    budget_bytes: int = 64 << 20         # memory the ring may hold
    keep_initial: bool = True            # checkpoint at attach time (step `start_step`)


def _cpu_copy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_copy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_cpu_copy(v) for v in obj)
    return obj


def _copy_into(dst: Any, src: Any, stream_for: Optional[Callable[[torch.Tensor], Any]] = None,
               defer_to: Optional[Callable[[torch.Tensor], Optional[list]]] = None) -> Any:
    """A CPU copy of `src` that reuses `dst`'s tensors where shapes match: an evicted
    checkpoint's memory is already paged in, fresh allocations are not. CUDA sources
    go into pinned memory with non_blocking copies, on the stream `stream_for(tensor)`
    names (None: the current stream). CPU sources for which `defer_to(tensor)` names a
    list are not copied here: (destination, source) goes on that list."""
    if isinstance(src, torch.Tensor):
        src = src.detach()
        cuda = src.is_cuda
        later = defer_to(src) if defer_to is not None and not cuda else None
        if (isinstance(dst, torch.Tensor) and dst.shape == src.shape and dst.dtype == src.dtype
                and dst.device.type == "cpu" and (not cuda or dst.is_pinned())):
            out = dst
        elif cuda:
            out = torch.empty(src.shape, dtype=src.dtype, device="cpu", pin_memory=True)
        elif later is not None:
            out = torch.empty_like(src, device="cpu")
        else:
            return src.to("cpu", copy=True)
        if later is not None:
            later.append((out, src))
            return out
        if not cuda:
            return out.copy_(src)
        stream = stream_for(src) if stream_for is not None else None
        if stream is None:
            return out.copy_(src, non_blocking=True)
        with torch.cuda.stream(stream):
            return out.copy_(src, non_blocking=True)
    if isinstance(src, dict):
        d = dst if isinstance(dst, dict) else {}
        return {k: _copy_into(d.get(k), v, stream_for, defer_to) for k, v in src.items()}
    if isinstance(src, (list, tuple)):
        d = dst if isinstance(dst, (list, tuple)) and len(dst) == len(src) else [None] * len(src)
        out = [_copy_into(a, b, stream_for, defer_to) for a, b in zip(d, src)]
        return out if isinstance(src, list) else tuple(out)
    return src


def _copy_pairs(pairs: List[tuple]) -> None:
    with torch.no_grad():
        for out, src in pairs:
            out.copy_(src)


def _copy_job(pairs: List[tuple]) -> Callable[[], list]:
    """The worker's part of a checkpoint: copies each source into its destination."""
    def job() -> list:
        _copy_pairs(pairs)
        return []
    return job


def _has_cuda_tensor(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.is_cuda
    if isinstance(obj, dict):
        return any(_has_cuda_tensor(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_cuda_tensor(v) for v in obj)
    return False


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


@dataclass
class Checkpoint:
    step: int
    model: Dict[str, Any]
    optimizer: Dict[str, Any]
    schedulers: List[Dict[str, Any]]
    sampler: Optional[Dict[str, Any]]
    rng: Dict[str, Any]
    nbytes: int
    # A planned checkpoint: False until the copy job has filled `model` and `optimizer`
    # (and for good when it found the plan out of date); its flat copies, in plan order,
    # for the next checkpoint that recycles it.
    ready: bool = True
    plan: Optional["CopyPlan"] = None
    flat: Optional[List[Optional[torch.Tensor]]] = None


def _scheduler_state(s) -> Dict[str, Any]:
    return _cpu_copy(s.state_dict())


def _picker(positions: Sequence[int]) -> Callable[[Sequence[Any]], tuple]:
    """A function that returns the items of a sequence at `positions`, as a tuple."""
    if not positions:
        return lambda seq: ()
    if len(positions) == 1:
        i = positions[0]
        return lambda seq: (seq[i],)
    return operator.itemgetter(*positions)


def _plain_cpu_tensor(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.layout == torch.strided


def _holds_tensor(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, dict):
        return any(_holds_tensor(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_holds_tensor(v) for v in obj)
    return False


_ATOMIC = (float, int, bool, str, type(None))


class CopyPlan:
    """The tensors of a CPU model's checkpoint as flat lists, from one walk of the state
    dicts: the model's state dict entries (the live parameters and buffers), then every
    optimizer state's tensors. `check` tells, without building a dict, whether the
    optimizer still holds the same state and parameter objects (a restore or a resume
    replaces them, the first update adds state); `model_unchanged` whether the model's
    state dict still names the same tensors (a full walk: the worker runs it). The
    copies of a checkpoint then come out as the dicts `state_dict()` gives.
    `build` gives None for what it does not cover: any tensor that is not a dense CPU
    tensor, a model entry that is not one of its parameters or buffers (extra state,
    state dict hooks), an optimizer with its own `state_dict`."""

    @classmethod
    def build(cls, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Optional["CopyPlan"]:
        if (getattr(type(optimizer), "state_dict", None) is not torch.optim.Optimizer.state_dict
                or "state_dict" in vars(optimizer)
                or getattr(optimizer, "_optimizer_state_dict_pre_hooks", None)
                or getattr(optimizer, "_optimizer_state_dict_post_hooks", None)):
            return None
        model_sd = model.state_dict(keep_vars=True)
        own = {id(t) for t in chain(model.parameters(), model.buffers())}
        if not all(_plain_cpu_tensor(v) and id(v) in own for v in model_sd.values()):
            return None
        opt_sd = optimizer.state_dict()
        states = list(opt_sd["state"].values())
        if len(states) != len(optimizer.state) or not all(map(operator.is_, states,
                                                               optimizer.state.values())):
            return None
        plan = cls()
        plan.keys = list(model_sd.keys())
        plan.n_model = len(plan.keys)
        plan.buffer_pos = [i for i, v in enumerate(model_sd.values())
                           if not isinstance(v, torch.nn.Parameter)]
        buffers = set(plan.buffer_pos)
        plan.deferred_pos = [i for i in range(plan.n_model) if i not in buffers]
        plan.state = optimizer.state
        plan.groups = optimizer.param_groups
        plan.params = list(chain.from_iterable(g["params"] for g in optimizer.param_groups))
        plan.group_params = [list(g["params"]) for g in opt_sd["param_groups"]]
        plan.state_ids = list(opt_sd["state"].keys())
        plan.state_params = list(optimizer.state.keys())
        plan.state_dicts = states
        plan.state_keys = [tuple(st) for st in states]
        plan.flat_state_keys = list(chain.from_iterable(plan.state_keys))
        values = list(chain.from_iterable(map(dict.values, states)))
        tensor_pos, value_pos = [], []
        for i, v in enumerate(values):
            if isinstance(v, torch.Tensor):
                if not _plain_cpu_tensor(v):
                    return None
                tensor_pos.append(i)
            elif _holds_tensor(v):
                return None
            else:
                value_pos.append(i)
        plan.n_values = len(values)
        plan.tensor_pos, plan.value_pos = tensor_pos, value_pos
        plan.pick_tensors, plan.pick_values = _picker(tensor_pos), _picker(value_pos)
        plan.state_tensors = plan.pick_tensors(values)
        plan.srcs = list(model_sd.values()) + list(plan.state_tensors)
        plan.deferred_pos += range(plan.n_model, len(plan.srcs))
        plan.nbytes = _nbytes(plan.srcs)
        return plan

    def check(self, optimizer: torch.optim.Optimizer) -> Optional[list]:
        """Copies of the optimizer state's non-tensor values when the optimizer still
        holds the objects this plan was built from (else None): the same state dict and
        parameter groups, the same parameters, states, keys and state tensors."""
        state, groups = optimizer.state, optimizer.param_groups
        if state is not self.state or groups is not self.groups or len(state) != len(self.state_dicts):
            return None
        params = list(chain.from_iterable(g["params"] for g in groups))
        if len(params) != len(self.params) or not all(map(operator.is_, params, self.params)):
            return None
        if not (all(map(operator.is_, state.keys(), self.state_params))
                and all(map(operator.is_, state.values(), self.state_dicts))):
            return None
        if list(chain.from_iterable(self.state_dicts)) != self.flat_state_keys:
            return None
        values = list(chain.from_iterable(map(dict.values, self.state_dicts)))
        if not all(map(operator.is_, self.pick_tensors(values), self.state_tensors)):
            return None
        return [_copy_into(None, v) for v in self.pick_values(values)]

    def param_groups(self, optimizer: torch.optim.Optimizer) -> tuple:
        """The optimizer state dict's parameter groups as of now, copied as `_copy_into`
        copies them, and the bytes of the tensors among their values."""
        out, nbytes = [], 0
        for g, ids in zip(optimizer.param_groups, self.group_params):
            packed = {}
            for k, v in g.items():
                if k != "params":
                    if type(v) not in _ATOMIC:  # containers and tensors: copied
                        v = _copy_into(None, v)
                        nbytes += _nbytes(v)
                    packed[k] = v
            packed["params"] = list(ids)
            out.append(packed)
        return out, nbytes

    def model_unchanged(self, model: torch.nn.Module) -> bool:
        """Whether the model's state dict still names this plan's tensors, in order."""
        model_sd = model.state_dict(keep_vars=True)
        return (len(model_sd) == self.n_model and list(model_sd.keys()) == self.keys
                and all(map(operator.is_, model_sd.values(), self.srcs)))

    def dicts(self, flat: List[torch.Tensor], values: list,
              groups: List[Dict[str, Any]]) -> tuple:
        """The model and optimizer state dicts of the copies `flat` (plan order)."""
        model = dict(zip(self.keys, flat))
        merged: List[Any] = [None] * self.n_values
        for i, t in zip(self.tensor_pos, flat[self.n_model:]):
            merged[i] = t
        for i, v in zip(self.value_pos, values):
            merged[i] = v
        it = iter(merged)
        state = {sid: {k: next(it) for k in keys} for sid, keys in zip(self.state_ids, self.state_keys)}
        return model, {"state": state, "param_groups": groups}


class CheckpointRing:
    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 schedulers: Sequence[Any] = (), sampler: Any = None,
                 config: Optional[CheckpointConfig] = None):
        self.model = model
        self.optimizer = optimizer
        self.schedulers = list(schedulers)
        self.sampler = sampler
        self.config = config or CheckpointConfig()
        self.ring: List[Checkpoint] = []
        self.pinned: Optional[int] = None     # step of the pre-alarm checkpoint
        self.not_taken: List[int] = []        # steps whose checkpoint did not fit
        self._pending_copy = None             # CUDA event of the latest non_blocking copy
        self._copy_stream = None              # side CUDA stream of the copies (made on first use)
        self._step_waits = None               # CUDA event the next optimizer.step waits for
        self._step_hook = None                # registered with the first side-stream copy
        # CPU copies on a worker: defer(job) runs job() there; wait() waits for it.
        self.defer: Optional[Callable[[Callable[[], list]], None]] = None
        self.wait: Optional[Callable[[], None]] = None
        self._plan: Optional[CopyPlan] = None  # a CPU checkpoint's flat lists, while they hold
        self._no_plan = False                   # what CopyPlan does not cover: never tried again
        need = self._need()
        if need > self.config.budget_bytes:
            raise ValueError(
                f"orbit: one rollback checkpoint of this model and optimizer takes "
                f"{need / 2**20:.1f} MiB, more than CheckpointConfig.budget_bytes = "
                f"{self.config.budget_bytes / 2**20:.1f} MiB: raise the budget, or pass "
                "CheckpointConfig(every=0) to train without rollback")

    def _need(self) -> int:
        return _nbytes(self.model.state_dict()) + _nbytes(self.optimizer.state_dict())

    def pin(self, step: int) -> Optional[int]:
        """Protects the newest checkpoint at or before `step` from eviction (the state
        before an alarm); returns its step. One pin at a time."""
        ck = self.find(step)
        self.pinned = ck.step if ck is not None else None
        return self.pinned

    def unpin(self) -> None:
        self.pinned = None

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.ring)

    def steps(self) -> List[int]:
        return [c.step for c in self.ring]

    def due(self, step: int) -> bool:
        return self.config.every > 0 and step % self.config.every == 0

    def _protected(self, i: int) -> bool:
        return i == 0 or self.ring[i].step == self.pinned

    def save(self, step: int) -> Optional[Checkpoint]:
        """Takes the checkpoint of `step`; None when it does not fit the budget."""
        if self.wait is not None:  # the previous checkpoint's copies may go on recycled buffers
            self.wait()
        self._drop_unready()
        rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
               "numpy": np.random.get_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        plan, values = self._current_plan()
        if plan is not None:
            groups, group_bytes = plan.param_groups(self.optimizer)
            need = plan.nbytes + group_bytes
        else:
            model_sd, opt_sd = self.model.state_dict(), self.optimizer.state_dict()
            need = _nbytes(model_sd) + _nbytes(opt_sd)
        # A re-save at the same step (e.g. after a rollback to it) replaces the old one.
        self.ring = [c for c in self.ring if c.step < step]
        kept = sum(c.nbytes for i, c in enumerate(self.ring) if self._protected(i))
        if kept + need > self.config.budget_bytes:
            self.not_taken.append(step)
            if len(self.not_taken) == 1:
                warnings.warn(
                    f"orbit: the checkpoint of step {step} ({need / 2**20:.1f} MiB) does not fit "
                    f"the rollback budget ({self.config.budget_bytes / 2**20:.1f} MiB, of which "
                    f"{kept / 2**20:.1f} MiB hold the start and pre-alarm checkpoints): not taken, "
                    "and later ones that do not fit neither. Raise CheckpointConfig.budget_bytes.",
                    RuntimeWarning, stacklevel=3)
            return None
        recycled = None
        while self.ring and self.nbytes + need > self.config.budget_bytes:
            recycled = self.ring.pop(self._victim(step))  # its buffers take the new copy
        if plan is not None:
            ck = Checkpoint(step=step, model=None, optimizer=None,
                            schedulers=[_scheduler_state(s) for s in self.schedulers],
                            sampler=self.sampler.state_dict() if self.sampler is not None else None,
                            rng=rng, nbytes=need, ready=False, plan=plan)
            self._copy_planned(ck, plan, recycled, values, groups)
            if not ck.ready and self.defer is None:  # the model changed behind the plan
                return self.save(step)               # (rebuilt): nothing has moved since
            self.ring.append(ck)
            return ck
        side = self._side_stream(model_sd, opt_sd)
        if side is None and self.defer is not None:
            # Buffers now (a forward may change them); parameters and optimizer state on
            # the worker, before the next update changes them.
            buffers = {b.data_ptr() for b in self.model.buffers()}
            later: List[tuple] = []

            def copy_for(t: torch.Tensor):
                return None if t.data_ptr() in buffers else later
            model = _copy_into(recycled.model if recycled else None, model_sd, defer_to=copy_for)
            opt = _copy_into(recycled.optimizer if recycled else None, opt_sd, defer_to=copy_for)
            if later:
                self.defer(_copy_job(later))
        elif side is None:
            model = _copy_into(recycled.model if recycled else None, model_sd)
            opt = _copy_into(recycled.optimizer if recycled else None, opt_sd)
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                self._pending_copy = torch.cuda.Event()
                self._pending_copy.record()
        else:
            # Buffers (changed by the next forward) on the training stream, the rest beside it.
            buffers = {b.data_ptr() for b in self.model.buffers() if b.is_cuda}
            main = torch.cuda.current_stream()
            side.wait_stream(main)  # the copies read the values as of now

            def stream_for(t: torch.Tensor):
                return None if t.data_ptr() in buffers else side
            model = _copy_into(recycled.model if recycled else None, model_sd, stream_for)
            opt = _copy_into(recycled.optimizer if recycled else None, opt_sd, stream_for)
            done = torch.cuda.Event()
            done.record(side)
            main_done = torch.cuda.Event()
            main_done.record(main)
            self._pending_copy = (done, main_done)
            if self._step_hook is not None:
                self._step_waits = done
            else:  # no pre-hook: the training stream waits now (on the device, not here)
                main.wait_event(done)
        ck = Checkpoint(step=step, model=model, optimizer=opt,
                        schedulers=[_scheduler_state(s) for s in self.schedulers],
                        sampler=self.sampler.state_dict() if self.sampler is not None else None,
                        rng=rng, nbytes=need)
        self.ring.append(ck)
        return ck

    def _current_plan(self) -> tuple:
        """(plan, the optimizer state's non-tensor values) for a CPU checkpoint: the
        plan kept while it holds, else a new one; (None, None) where none applies."""
        if self._no_plan:
            return None, None
        plan = self._plan
        values = plan.check(self.optimizer) if plan is not None else None
        if values is None:
            plan = self._plan = CopyPlan.build(self.model, self.optimizer)
            if plan is None:
                self._no_plan = True
                return None, None
            values = plan.check(self.optimizer)
        return plan, values

    def _copy_planned(self, ck: Checkpoint, plan: CopyPlan, recycled: Optional[Checkpoint],
                      values: list, groups: List[Dict[str, Any]]) -> None:
        """Copies the buffers now (a forward may change them); the job that copies the
        parameters and the optimizer state and builds the checkpoint's dicts runs on the
        worker (`defer`), else here. A recycled checkpoint of the same plan lends its
        memory; a new one's is allocated here."""
        flat = recycled.flat if recycled is not None and recycled.plan is plan else None
        srcs = plan.srcs
        if flat is None:
            # A new checkpoint's memory (until the ring is full) is allocated here, not
            # on the worker: from the worker's own malloc arena its first writes cost the
            # worker ~10 ms per checkpoint beside a training step, against ~1 ms from
            # here, where they cost this thread ~0.4 ms (bench/overhead, load 5-6).
            flat = [None] * len(srcs)
            for i in plan.deferred_pos:
                flat[i] = torch.empty_like(srcs[i], device="cpu")
        flat = ck.flat = list(flat)
        with torch.no_grad():
            for i in plan.buffer_pos:
                src, dst = srcs[i], flat[i]
                if dst is None or dst.shape != src.shape or dst.dtype != src.dtype:
                    flat[i] = src.detach().clone()
                else:
                    dst.copy_(src)
        model, deferred = self.model, self.defer is not None

        def job() -> list:
            if not plan.model_unchanged(model):
                self._plan = None  # rebuilt by the next save; this checkpoint is dropped
                return []
            pairs = []
            for i in plan.deferred_pos:
                src, dst = srcs[i], flat[i]
                if dst is None or dst.shape != src.shape or dst.dtype != src.dtype:
                    dst = flat[i] = torch.empty_like(src, device="cpu")
                pairs.append((dst, src))
            if deferred:
                _copy_job(pairs)()
            else:
                _copy_pairs(pairs)
            ck.model, ck.optimizer = plan.dicts(flat, values, groups)
            ck.ready = True
            return []
        if deferred:
            self.defer(job)
        else:
            job()

    def _drop_unready(self) -> None:
        """Drops the checkpoints whose copy job found the plan out of date (call after
        `wait`); a pin on one of them moves to the newest checkpoint before it."""
        if all(c.ready for c in self.ring):
            return
        self.ring = [c for c in self.ring if c.ready]
        if self.pinned is not None and self.pinned not in self.steps():
            self.pin(self.pinned)

    def _side_stream(self, *states: Any) -> Optional[Any]:
        """The side stream for copying these states (on their CUDA device), or None
        when nothing in them lives on a CUDA device."""
        if not any(_has_cuda_tensor(st) for st in states):
            return None
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream()
            if hasattr(self.optimizer, "register_step_pre_hook"):  # torch >= 2.0
                self._step_hook = self.optimizer.register_step_pre_hook(self._before_optimizer_step)
        return self._copy_stream

    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        """Optimizer step pre-hook: the update waits (on the device) for the copies of
        the values it is about to change."""
        done, self._step_waits = self._step_waits, None
        if done is not None:
            torch.cuda.current_stream().wait_event(done)

    def _wait_for_copies(self) -> None:
        pending, self._pending_copy = self._pending_copy, None
        for event in (pending if isinstance(pending, tuple) else (pending,)):
            if event is not None:
                event.synchronize()

    def before_update(self) -> None:
        """Called right before an optimizer step: the worker's copies are done first."""
        if self.wait is not None:
            self.wait()

    def close(self) -> None:
        """Removes the optimizer hook; the checkpoints stay readable."""
        if self.wait is not None:
            self.wait()
        self._drop_unready()
        self._wait_for_copies()
        if self._step_hook is not None:
            self._step_hook.remove()
            self._step_hook = None
        self._step_waits = None

    def _victim(self, now: int) -> int:
        """Index of the checkpoint to drop: never the oldest nor the pinned one (save
        made sure another exists)."""
        n = len(self.ring)
        steps = [c.step for c in self.ring] + [now]
        candidates = [i for i in range(1, n) if not self._protected(i)]
        return min(candidates, key=lambda i: (steps[i + 1] - steps[i - 1]) / (now - steps[i] + 1))

    def find(self, step: int) -> Optional[Checkpoint]:
        """The newest checkpoint at or before `step`."""
        best = None
        for c in self.ring:
            if c.step <= step:
                best = c
        return best

    def restore(self, step: int, skip_batches: int = 0) -> Optional[int]:
        """Restores the newest checkpoint at or before `step`; returns its step, or None."""
        if self.wait is not None:  # the worker's copies have landed
            self.wait()
        self._drop_unready()
        ck = self.find(step)
        if ck is None:
            return None
        self._wait_for_copies()  # the non_blocking copies have landed
        self._step_waits = None
        self.model.load_state_dict(ck.model)
        self.optimizer.load_state_dict(ck.optimizer)  # deep-copies, the checkpoint stays intact
        for s, st in zip(self.schedulers, ck.schedulers):
            s.load_state_dict(_cpu_copy(st))
        if self.sampler is not None and ck.sampler is not None:
            self.sampler.load_state_dict(ck.sampler)
            if skip_batches:
                self.sampler.skip(skip_batches)
        torch.set_rng_state(ck.rng["torch"])
        random.setstate(ck.rng["python"])
        np.random.set_state(ck.rng["numpy"])
        if "cuda" in ck.rng:
            torch.cuda.set_rng_state_all(ck.rng["cuda"])
        self.ring = [c for c in self.ring if c.step <= ck.step]
        if self.pinned is not None and self.pinned > ck.step:
            self.pinned = None
        return ck.step
