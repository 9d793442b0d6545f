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
A rollback restores the newest checkpoint at or before the requested step and drops
every newer one: they belong to the trajectory being abandoned.
"""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
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


def _copy_job(pairs: List[tuple]) -> Callable[[], list]:
    """The worker's part of a checkpoint: copies each source into its destination."""
    def job() -> list:
        with torch.no_grad():
            for out, src in pairs:
                out.copy_(src)
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


def _scheduler_state(s) -> Dict[str, Any]:
    return _cpu_copy(s.state_dict())


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
        rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
               "numpy": np.random.get_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
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
        ck = self.find(step)
        if ck is None:
            return None
        if self.wait is not None:  # the worker's copies have landed
            self.wait()
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
