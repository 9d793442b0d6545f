# SPDX-License-Identifier: Apache-2.0
"""`Orbit`: the PyTorch adapter that puts a training loop under orbitd's control.

    orbit = Orbit(endpoint="ipc:///run/orbit/orbitd.sock", run="exp-42",
                  domains=("prose", "code"))
    orbit.attach(model, optimizer, scheduler=scheduler, sampler=sampler)
    for step in range(1, steps + 1):
        ...
        loss.backward(); optimizer.step(); scheduler.step()
        orbit.step(step, loss.item())          # after the optimizer (and scheduler) step
    orbit.close()

What `step` does, in order: acknowledges burns applied since the last call (with
the lr the optimizer actually used), takes a checkpoint when one is due, sends a
snapshot when the daemon's `snapshot_every` says so (spectral probes on their own
cadence), reads every reply that has arrived (never waits), applies burns due at
the next step, lets expired burns go, and arms the probes for the next forward
pass when the next step is a probe step.

Fail-open: nothing the daemon does (absent, dead, slow, garbage) makes `step`
raise or wait. Sends are non-blocking and replies are only polled; without a
daemon the run follows its own schedule, and control resumes when orbitd is back.
Training code errors (a bad domain name, a missing checkpoint) are still reported.
One RuntimeWarning says so when no daemon
has answered a few seconds after `attach`: a wrong or unset endpoint must not pass
unnoticed.
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from .endpoints import default_endpoint
from .lr import LrScaler
from .probes import ModelProbes, ProbeConfig, loop_rate
from .rollback import CheckpointConfig, CheckpointRing

__all__ = ["Orbit", "ProbeConfig", "CheckpointConfig", "AppliedBurn", "domain_losses",
           "default_endpoint", "refuse_unsupported"]

ADAPTER_NAME = "orbit-python-torch"
ADAPTER_VERSION = "0.1.0"

ALARM_STATES = ("WARNING", "CRITICAL", "RECOVERING")
NO_ANSWER_WARN_S = 5.0  # seconds after attach without a welcome before the one warning


def _env_int(name: str) -> Optional[int]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name}={value!r} is not an integer") from None


def refuse_unsupported(model: Any, optimizer: Any, rollback: bool) -> None:
    """Raises where Orbit cannot act on what it is given (checked at attach time).

    DeepSpeed: its engine steps inside `backward` and the optimizer wrappers that
    trainers hold have a no-op `step`, so an lr burn would change nothing while the
    ACK reports it as used. FSDP / ZeRO-3: each rank holds a shard of the state, so
    an in-memory rollback checkpoint of one rank cannot restore the model."""
    def names(obj):
        return {c.__name__ for c in type(obj).__mro__} if obj is not None else set()

    mods = list(model.modules()) if isinstance(model, torch.nn.Module) else [model]
    model_names = set().union(*(names(m) for m in mods)) if mods else set()
    # The engine wraps the whole model; DeepSpeed's fused layers inside a plain model
    # are fine. Optimizers: the engine's ZeRO optimizers and accelerate's wrapper.
    engine = {"DeepSpeedEngine", "PipelineEngine"} & names(model)
    opt_names = names(optimizer) | names(getattr(optimizer, "optimizer", None))
    if engine or any(n.startswith("DeepSpeed") for n in opt_names):
        raise RuntimeError(
            "orbit: DeepSpeed is not supported: the DeepSpeed engine steps inside backward() "
            "and the optimizer step the trainer calls is a no-op, so Orbit's lr burns would "
            "silently do nothing. Train without DeepSpeed (DDP works) or leave Orbit out.")
    sharded = {"FullyShardedDataParallel", "FSDPModule"} & model_names
    if rollback and sharded:
        raise RuntimeError(
            f"orbit: rollback cannot checkpoint a sharded model ({sorted(sharded)[0]}): each "
            "rank holds only its shard of the parameters and optimizer state. Pass "
            "checkpoints=CheckpointConfig(every=0) to run Orbit without rollback.")


def _get(msg: Any, key: str, default: Any = None) -> Any:
    """Reads a reply field whether the client hands out dicts or objects."""
    if isinstance(msg, Mapping):
        return msg.get(key, default)
    return getattr(msg, key, default)


def _default_run_id() -> str:
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())[:40]
    return f"{host or 'run'}-{os.getpid()}-{int(time.time())}"


def domain_losses(per_sample_loss: torch.Tensor, domains: Sequence[str]) -> Dict[str, float]:
    """Mean loss per domain label, for `orbit.step(..., domain_losses=...)`.

    `per_sample_loss` holds one loss per batch item (e.g. cross-entropy with
    reduction="none", averaged over tokens); `domains` the label of each item."""
    values = per_sample_loss.detach().float().reshape(len(domains), -1).mean(1).tolist()
    sums: Dict[str, List[float]] = {}
    for d, v in zip(domains, values):
        sums.setdefault(d, []).append(v)
    return {d: sum(v) / len(v) for d, v in sums.items()}


@dataclass
class AppliedBurn:
    seq: int
    received_step: int        # the orbit.step call that read it
    apply_at_step: int        # what the daemon asked for
    applied_step: int         # the first training step that ran under it
    late: bool
    lr_scale: float
    reason: str
    state: str
    basin: str
    expires_at_step: int
    restored_step: Optional[int] = None
    lr: Optional[float] = None  # lr the optimizer used at applied_step (filled by the ACK)
    raw: Dict[str, Any] = field(default_factory=dict)


class Orbit:
    """One rank of one run. See the module docstring for the loop contract.

    endpoint:     orbitd's adapter endpoint; "auto" (the default) takes $ORBIT_ENDPOINT,
                  else the daemon's own default (`default_endpoint()`); None runs offline.
    run:          run id, 1-128 chars of [A-Za-z0-9._-] (default: $ORBIT_RUN or host-pid-time).
    rank, world_size: this process's place in the job; None (the default) reads
                  $RANK / $WORLD_SIZE (torchrun sets them), else 0 of 1. Trainer
                  callbacks fill them from the framework when left None.
    domains:      data domains declared in hello (per-domain losses and weights).
    probes:       ProbeConfig (cadences, which probes).
    checkpoints:  CheckpointConfig for rollback (every=0 disables rollback).
    generate:     generate(model) -> list of token sequences, for the loop-rate probe.
    distributed:  "per_rank" (every rank talks to orbitd) or "rank0" (rank 0 talks,
                  burns reach the other ranks through torch.distributed broadcasts
                  every `sync_every` steps).
    use_loss_weights: declare the `loss_weights` actuator (the trainer uses
                  basin_aware_loss with `orbit.loss_weights`).
    client:       an already built OrbitClient-like object (tests, custom transports).
    """

    def __init__(self, endpoint: Optional[str] = "auto", run: Optional[str] = None,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 domains: Sequence[str] = (), *,
                 probes: Optional[ProbeConfig] = None,
                 checkpoints: Optional[CheckpointConfig] = None,
                 generate: Optional[Callable[[torch.nn.Module], Sequence[Sequence]]] = None,
                 distributed: str = "per_rank", sync_every: int = 1,
                 use_loss_weights: bool = False,
                 client: Any = None, client_options: Optional[Mapping[str, Any]] = None,
                 on_reply: Optional[Callable[[Any], None]] = None):
        if distributed not in ("per_rank", "rank0"):
            raise ValueError("distributed must be 'per_rank' or 'rank0'")
        if endpoint == "auto":
            endpoint = os.environ.get("ORBIT_ENDPOINT") or default_endpoint()
        self.endpoint = endpoint
        self.run = run or os.environ.get("ORBIT_RUN") or _default_run_id()
        # Explicit arguments win; the environment (torchrun) comes next; a trainer
        # callback may still set what neither gave (see set_topology).
        self.topology_given = rank is not None or world_size is not None
        env_rank, env_world = _env_int("RANK"), _env_int("WORLD_SIZE")
        self.rank = int(rank if rank is not None else env_rank if env_rank is not None else 0)
        self.world_size = int(world_size if world_size is not None
                              else env_world if env_world is not None else 1)
        self.local_rank = _env_int("LOCAL_RANK")
        if self.topology_given or env_rank is not None or env_world is not None:
            self._check_topology()
        self.domains = tuple(domains)
        self.probe_config = probes or ProbeConfig()
        self.checkpoint_config = checkpoints or CheckpointConfig()
        self.generate = generate
        self.distributed = distributed
        self.sync_every = max(1, int(sync_every))
        self.use_loss_weights = use_loss_weights
        self.on_reply = on_reply
        self._client = client
        self._client_options = dict(client_options or {})

        self.model: Optional[torch.nn.Module] = None
        self.optimizer = None
        self.schedulers: List[Any] = []
        self.sampler = None
        self._scaler: Optional[LrScaler] = None
        self._probes: Optional[ModelProbes] = None
        self._ring: Optional[CheckpointRing] = None

        self.last_step: Optional[int] = None
        self.last_lr: Optional[float] = None
        self.state: Optional[str] = None     # the daemon's latest view
        self.basin: Optional[str] = None
        self.metrics: Dict[str, float] = {}
        self._loss_weights: Dict[str, float] = {}
        self._active: Optional[AppliedBurn] = None
        self._pending: Dict[int, Dict[str, Any]] = {}   # seq -> burn not yet applied
        self._unacked: List[AppliedBurn] = []
        self._seen_seq = -1
        self.applied: List[AppliedBurn] = []
        self.states_visited: List[str] = []
        self.rollbacks: List[Dict[str, int]] = []
        self._last_reply_time: Optional[float] = None
        self._session: Optional[str] = None
        self._sync_ready: set = set()  # rank0 mode: burns every rank has received
        self._loop_bucket = 0
        self._errors: Dict[str, int] = {}
        self._warned = False
        self._closed = False
        self._attached_at: Optional[float] = None
        self._no_answer_warned = False
        self._own_client = client is None
        self._sampler_state: Optional[Dict[str, Any]] = None  # loaded before attach

    # ---- setup ------------------------------------------------------------------
    def attach(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any = None, sampler: Any = None, *, start_step: int = 0,
               layers: Optional[Sequence[torch.nn.Module]] = None) -> "Orbit":
        """Wires the adapter to the training objects; call once, before the first step.

        `scheduler` may be one lr scheduler or a list of them (checkpointed for rollback;
        lr burns work with any scheduler or none). `layers` overrides the automatic
        choice of transformer layers for the hidden-state probe.
        """
        if self.model is not None and not self._closed:
            raise RuntimeError("Orbit.attach was already called (close() first to attach again)")
        refuse_unsupported(model, optimizer, self.checkpoint_config.every > 0)
        if self._closed:  # attached again after close (a second trainer.train())
            self._reopen()
        self.model, self.optimizer, self.sampler = model, optimizer, sampler
        if scheduler is None:
            self.schedulers = []
        elif isinstance(scheduler, (list, tuple)):
            self.schedulers = list(scheduler)
        else:
            self.schedulers = [scheduler]
        self._scaler = LrScaler(optimizer)
        if self._active is not None:  # state loaded before attach (a resume): back in force
            self._scaler.set_scale(self._active.lr_scale)
        if sampler is not None and self._sampler_state is not None:
            sampler.load_state_dict(self._sampler_state)
        self._sampler_state = None
        self._probes = ModelProbes(model, self.probe_config, layers)
        if self.checkpoint_config.every > 0:
            self._ring = CheckpointRing(model, optimizer, self.schedulers, sampler,
                                        self.checkpoint_config)
            if self.checkpoint_config.keep_initial:
                self._ring.save(start_step)
        if self._client is None and self._talks_to_daemon():
            self._client = self._make_client()
        self._attached_at = time.monotonic()
        return self

    def set_topology(self, rank: int, world_size: int) -> None:
        """The framework's rank and world size, taken unless the constructor was given
        them; call before attach (trainer callbacks do)."""
        if self.topology_given:
            if (int(rank), int(world_size)) != (self.rank, self.world_size):
                warnings.warn(f"orbit: rank {self.rank} of {self.world_size} was given, but the "
                              f"trainer says {rank} of {world_size}; keeping the given values",
                              RuntimeWarning, stacklevel=2)
            return
        if self.model is not None and not self._closed:
            raise RuntimeError("set_topology must come before attach")
        self.rank, self.world_size = int(rank), int(world_size)
        self._check_topology()

    def _check_topology(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} must be in [0, world_size={self.world_size})")

    def _reopen(self) -> None:
        """Forgets the previous attachment; the burn state (state_dict) is kept."""
        self._closed = False
        if self._own_client:
            self._client = None
        self._session = None
        self._last_reply_time = None
        self._no_answer_warned = False
        self._unacked = []
        self.model = None

    def register_attention(self, module: torch.nn.Module) -> None:
        """One line per custom attention module; its forward calls
        `orbit_adapter.probes.report_attention(self, probs)`."""
        if self._probes is None:
            raise RuntimeError("call Orbit.attach before register_attention")
        self._probes.register_attention(module)

    def _talks_to_daemon(self) -> bool:
        return self.endpoint is not None and (self.distributed == "per_rank" or self.rank == 0)

    def _actuators(self) -> List[str]:
        acts = ["lr"]
        if self.sampler is not None:
            acts += ["domain_weights"]
            if getattr(self.sampler, "phases", None):
                acts += ["curriculum"]
        if self.use_loss_weights:
            acts += ["loss_weights"]
        if self._ring is not None:
            acts += ["rollback"]
        return acts

    def _make_client(self):
        from .client import OrbitClient
        group = self.optimizer.param_groups[0]
        base_lr = float(group.get("initial_lr", group["lr"]))
        world = self.world_size if self.distributed == "per_rank" else 1
        rank = self.rank if self.distributed == "per_rank" else 0
        try:
            return OrbitClient(self.endpoint, self.run, rank=rank, world_size=world,
                               domains=self.domains, actuators=tuple(self._actuators()),
                               adapter=ADAPTER_NAME, adapter_version=ADAPTER_VERSION,
                               base_lr=base_lr, **self._client_options)
        except Exception as e:  # a bad endpoint must not stop training either
            self._fail("connect", e)
            return None

    # ---- the per-step call -----------------------------------------------------
    def step(self, step: int, loss: Any, *, grad_norm: Optional[float] = None,
             domain_losses: Optional[Mapping[str, float]] = None,
             tokens: Optional[int] = None,
             scalars: Optional[Mapping[str, float]] = None) -> Optional[int]:
        """Reports training step `step` (after optimizer.step) and applies due burns.

        Returns the restored checkpoint's step when this call rolled the model back,
        else None. The caller keeps counting steps forward: steps lost to a rollback
        count against the run's budget.
        """
        if self.model is None:
            raise RuntimeError("call Orbit.attach before Orbit.step")
        step = int(step)
        self.last_step = step
        if self._scaler.last_lrs:
            self.last_lr = self._scaler.last_lrs[0]
        if isinstance(loss, torch.Tensor):
            loss = float(loss.detach())
        loss = float(loss)

        self._send_acks(step)
        if self._ring is not None and self._ring.due(step):
            self._ring.save(step)

        client = self._client
        if client is not None:
            if not self._no_answer_warned and self._last_reply_time is None:
                self._warn_if_unanswered()
            every = self._snapshot_every()
            spectral = self._probes.armed
            if step % every == 0:
                self._send_snapshot(step, loss, grad_norm, domain_losses, tokens, scalars)
            elif spectral:
                self._probes.disarm()
            self._poll()
        if self.distributed == "rank0" and self.world_size > 1 and step % self.sync_every == 0:
            self._sync_burns()

        restored = self._apply_due(step)
        self._expire(step)
        if client is not None and self._connected() and self._is_spectral(step + 1):
            self._probes.arm()
        return restored

    def _warn_if_unanswered(self) -> None:
        if self._attached_at is None or time.monotonic() - self._attached_at < NO_ANSWER_WARN_S:
            return
        self._no_answer_warned = True
        msg = (f"orbit: no answer from orbitd at {self.endpoint} {NO_ANSWER_WARN_S:.0f} s after "
               f"attach (run {self.run!r}, rank {self.rank}): training continues UNCONTROLLED. "
               "Start orbitd, or set the endpoint (Orbit(endpoint=...) or $ORBIT_ENDPOINT).")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    # ---- snapshots ---------------------------------------------------------------
    def _snapshot_every(self) -> int:
        every = _get(self._client, "snapshot_every", 1) or 1
        return max(1, int(every))

    def _is_spectral(self, step: int) -> bool:
        every = self._snapshot_every()
        spectra_every = max(1, self.probe_config.spectra_every)
        spectra_every = ((spectra_every + every - 1) // every) * every
        return step % spectra_every == 0

    def _connected(self) -> bool:
        # Probes only run while someone listens: a reply within the last 30 s.
        return self._last_reply_time is not None and time.monotonic() - self._last_reply_time < 30.0

    def _grad_norm(self) -> Optional[float]:
        norm = self.grad_norm_tensor()
        return None if norm is None else float(norm)

    def grad_norm_tensor(self) -> Optional[torch.Tensor]:
        """The total L2 norm of the optimizer's gradients, as a tensor on their device
        (no host sync); None without gradients."""
        grads = [p.grad.detach() for g in self.optimizer.param_groups
                 for p in g["params"] if p.grad is not None]
        if not grads:
            return None
        foreach = getattr(torch, "_foreach_norm", None)  # one kernel launch per call, not per tensor
        norms = foreach(grads) if foreach is not None and not any(g.is_sparse for g in grads) \
            else [g.norm() for g in grads]
        return torch.stack([n.float() for n in norms]).norm()

    def grad_norm_due(self, step: int) -> bool:
        """Whether the snapshot of `step` will be sent with a gradient norm, so a
        trainer callback measures it only then (before the gradients are zeroed)."""
        return (self._client is not None and self.probe_config.grad_norm
                and step % self._snapshot_every() == 0)

    def _send_snapshot(self, step, loss, grad_norm, domain_losses, tokens, scalars) -> None:
        cfg = self.probe_config
        spectra: Dict[str, np.ndarray] = {}
        extra: Dict[str, float] = {}
        try:
            if self._probes.armed:
                sp, sc = self._probes.collect()
                spectra = {k: v.numpy().astype(np.float32) for k, v in sp.items()}
                extra.update(sc)
            # Nobody registered us yet (no daemon, or one that restarted): skip the work.
            if grad_norm is None and cfg.grad_norm and _get(self._client, "registered", True):
                grad_norm = self._grad_norm()
            loop = None
            if self.generate is not None and cfg.loop_every > 0 and step // cfg.loop_every > self._loop_bucket:
                self._loop_bucket = step // cfg.loop_every
                loop = self._loop_rate()
        except Exception as e:  # a probe failure must not stop training
            self._probes.disarm()
            self._fail("probe", e)
            spectra, loop = {}, None
        if scalars:
            extra.update({k: float(v) for k, v in scalars.items()})
        extra = {k: v for k, v in extra.items() if math.isfinite(v)}
        domains = None
        if self.domains or domain_losses:
            weights = self.sampler.effective_weights() if hasattr(self.sampler, "effective_weights") else {}
            domains = {}
            # Only declared domains (the daemon knows them from hello); none declared: all.
            names = self.domains or tuple(domain_losses or ())
            for d in names:
                entry = {}
                if domain_losses and d in domain_losses:
                    entry["loss"] = float(domain_losses[d])
                if d in weights:
                    entry["weight"] = float(weights[d])
                if entry:
                    domains[d] = entry
        try:
            self._client.send_snapshot(
                step, loss, grad_norm=grad_norm, lr=self.last_lr, tokens=tokens,
                domains=domains or None, spectra=spectra or None, loop_rate=loop,
                scalars=extra or None, time=time.time())
        except Exception as e:
            self._fail("send", e)

    def _loop_rate(self) -> Optional[float]:
        # The user's generate function may draw from the global RNGs or flip
        # train/eval: put everything back so training is unchanged.
        rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
        modes = [(m, m.training) for m in self.model.modules()]
        try:
            with torch.no_grad():
                seqs = self.generate(self.model)
        finally:
            torch.set_rng_state(rng[0])
            random.setstate(rng[1])
            np.random.set_state(rng[2])
            for m, t in modes:
                m.training = t
        return loop_rate(seqs, self.probe_config.loop_n)

    # ---- replies and burns --------------------------------------------------------
    def poll(self) -> None:
        """Reads whatever replies have arrived, without waiting (step() does this too).
        Burns read here are applied by the next step() call."""
        if self._client is not None:
            self._poll()

    @property
    def connected(self) -> bool:
        """True while the daemon has answered within the last 30 s."""
        return self._connected()

    def _poll(self) -> None:
        try:
            replies = self._client.poll()
        except Exception as e:
            self._fail("poll", e)
            return
        for r in replies or ():
            self._last_reply_time = time.monotonic()
            kind = _get(r, "type")
            if kind == "welcome":
                if self._session is not None:
                    # Registered again: the daemon restarted or dropped our session. A
                    # daemon restarted without its journal numbers burns from 1 again,
                    # so earlier sequence numbers say nothing about the burns to come.
                    self._seen_seq = -1
                self._session = _get(r, "session")
            elif kind == "state":
                self._note_state(_get(r, "state"), _get(r, "basin"), _get(r, "metrics"))
            elif kind == "burn":
                self._note_state(_get(r, "state"), _get(r, "basin"), None)
                self._receive_burn(r)
            elif kind == "error":
                code = str(_get(r, "code", "error"))
                self._errors[code] = self._errors.get(code, 0) + 1
            if self.on_reply is not None:
                try:
                    self.on_reply(r)
                except Exception as e:
                    self._fail("on_reply", e)

    def _note_state(self, state, basin, metrics) -> None:
        if state and self._ring is not None:
            # Entering an alarm: the newest checkpoint so far is the state a rollback
            # will want; no later checkpoint of the degrading run may evict it.
            if state in ALARM_STATES and self.state not in ALARM_STATES:
                self._ring.pin(self.last_step if self.last_step is not None else 0)
            elif state == "STABLE":
                self._ring.unpin()
        if state:
            if not self.states_visited or self.states_visited[-1] != state:
                self.states_visited.append(state)
            self.state = state
        if basin:
            self.basin = basin
        if metrics:
            self.metrics = dict(metrics)

    def _receive_burn(self, r: Any) -> None:
        burn = {k: _get(r, k) for k in (
            "seq", "state", "basin", "reason", "for_step", "apply_at_step",
            "expires_after_steps", "lr_scale", "domain_weights", "curriculum_phase",
            "loss_weights", "rollback_to_step", "skip_batches")}
        seq = int(burn["seq"])
        if seq <= self._seen_seq or seq in self._pending:
            return  # a duplicate (per-rank fan-out, re-delivery)
        self._pending[seq] = burn

    def _sync_burns(self) -> None:
        import torch.distributed as dist
        payload = [sorted(self._pending.items()) if self.rank == 0 else None]
        try:
            dist.broadcast_object_list(payload, src=0)
        except Exception as e:
            self._fail("broadcast", e)
            return
        if self.rank != 0:
            for seq, burn in payload[0]:
                if seq > self._seen_seq:
                    self._pending[seq] = burn
        self._sync_ready = {seq for seq, _ in payload[0]}

    def _apply_due(self, step: int) -> Optional[int]:
        """Applies pending burns whose step has come: effective from step + 1."""
        if not self._pending:
            return None
        ready = self._sync_ready if self.distributed == "rank0" and self.world_size > 1 else None
        restored = None
        for seq in sorted(self._pending):
            burn = self._pending[seq]
            if ready is not None and seq not in ready:
                continue  # not every rank has it yet
            apply_at = int(burn["apply_at_step"])
            if apply_at > step + 1:
                continue
            del self._pending[seq]
            self._seen_seq = max(self._seen_seq, seq)
            try:
                r = self._apply(burn, step)
            except Exception as e:
                self._fail("apply", e)
                continue
            if r is not None:
                restored = r
        return restored

    def _apply(self, burn: Dict[str, Any], step: int) -> Optional[int]:
        applied_step = step + 1
        apply_at = int(burn["apply_at_step"])
        expires = int(burn.get("expires_after_steps") or 0)
        scale = float(burn.get("lr_scale") or 1.0)
        if not math.isfinite(scale) or scale <= 0:
            scale = 1.0
        restored = None
        if burn.get("rollback_to_step") is not None and self._ring is not None:
            restored = self._ring.restore(int(burn["rollback_to_step"]),
                                          int(burn.get("skip_batches") or 0))
            if restored is not None:
                self.rollbacks.append({"at_step": step, "to_step": int(burn["rollback_to_step"]),
                                       "restored_step": restored,
                                       "skip_batches": int(burn.get("skip_batches") or 0)})
        self._scaler.set_scale(scale)
        if self.sampler is not None:
            if burn.get("domain_weights"):
                try:
                    self.sampler.set_weights(burn["domain_weights"])
                except ValueError as e:
                    self._fail("domain_weights", e)
            if burn.get("curriculum_phase") is not None and hasattr(self.sampler, "set_phase"):
                self.sampler.set_phase(int(burn["curriculum_phase"]))
        if burn.get("loss_weights"):
            self._loss_weights = {k: float(v) for k, v in burn["loss_weights"].items()}
        ab = AppliedBurn(seq=int(burn["seq"]), received_step=step, apply_at_step=apply_at,
                         applied_step=applied_step, late=apply_at < applied_step,
                         lr_scale=scale, reason=str(burn.get("reason") or ""),
                         state=str(burn.get("state") or ""), basin=str(burn.get("basin") or ""),
                         expires_at_step=apply_at + expires, restored_step=restored, raw=burn)
        self._active = ab
        self.applied.append(ab)
        self._unacked.append(ab)
        return restored

    def _expire(self, step: int) -> None:
        ab = self._active
        if ab is None or step + 1 < ab.expires_at_step:
            return
        # Heard nothing new for expires_after_steps: the trainer's schedule is back.
        self._active = None
        self._scaler.set_scale(1.0)
        if self.sampler is not None and hasattr(self.sampler, "relax"):
            self.sampler.relax()
        self._loss_weights = {}

    def _send_acks(self, step: int, final: bool = False) -> None:
        if not self._unacked:
            return
        keep = []
        for ab in self._unacked:
            if not final and step < ab.applied_step:
                keep.append(ab)
                continue
            lrs = self._scaler.last_lrs if not final else self._scaler.lr_in_effect()
            ab.lr = lrs[0] if lrs else None
            if self._client is not None and (self.distributed == "per_rank" or self.rank == 0):
                try:
                    self._client.send_ack(ab.seq, ab.applied_step, late=ab.late, lr=ab.lr,
                                          restored_step=ab.restored_step)
                except Exception as e:
                    self._fail("ack", e)
        self._unacked = keep

    # ---- what the trainer reads ------------------------------------------------------
    @property
    def attached(self) -> bool:
        """Between attach and close."""
        return self.model is not None and not self._closed

    @property
    def lr_in_effect(self) -> Optional[float]:
        """The lr the next update uses (schedule x burn), first param group."""
        lrs = self._scaler.lr_in_effect() if self._scaler else None
        return lrs[0] if lrs else None

    @property
    def lr_scale(self) -> float:
        return self._scaler.scale if self._scaler else 1.0

    @property
    def loss_weights(self) -> Dict[str, float]:
        """Weights for basin_aware_loss from the latest burn; empty (zero) otherwise."""
        return dict(self._loss_weights)

    @property
    def pending_burns(self) -> List[int]:
        """Sequence numbers of burns received and waiting for their step."""
        return sorted(self._pending)

    @property
    def checkpoint_steps(self) -> List[int]:
        return self._ring.steps() if self._ring else []

    def summary(self) -> Dict[str, Any]:
        stats = _get(self._client, "stats", None) if self._client is not None else None
        if dataclasses.is_dataclass(stats):
            stats = dataclasses.asdict(stats)
        return {
            "run": self.run,
            "burns_applied": len(self.applied),
            "first_burn_step": self.applied[0].applied_step if self.applied else None,
            "burns": [{"seq": a.seq, "applied_step": a.applied_step, "late": a.late,
                       "lr_scale": a.lr_scale, "lr": a.lr, "reason": a.reason, "state": a.state,
                       "basin": a.basin, "restored_step": a.restored_step} for a in self.applied],
            "rollbacks": list(self.rollbacks),
            "states_visited": list(self.states_visited),
            "last_state": {"state": self.state, "basin": self.basin, "metrics": dict(self.metrics)},
            "errors": dict(self._errors),
            "client": stats,
        }

    # ---- persistence --------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """What a resumed run needs: sampler position and weights, the burn in force."""
        active = None
        if self._active is not None:
            a = self._active
            active = {"seq": a.seq, "applied_step": a.applied_step, "apply_at_step": a.apply_at_step,
                      "expires_at_step": a.expires_at_step, "lr_scale": a.lr_scale,
                      "reason": a.reason, "state": a.state, "basin": a.basin}
        return {
            "version": 1,
            "run": self.run,
            "last_step": self.last_step,
            "seen_seq": self._seen_seq,
            "active": active,
            "pending": {int(k): v for k, v in self._pending.items()},
            "loss_weights": dict(self._loss_weights),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "loop_bucket": self._loop_bucket,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state.get("version", 1)) != 1:
            raise ValueError("unsupported Orbit state version")
        self.last_step = state.get("last_step")
        self._seen_seq = int(state.get("seen_seq", -1))
        self._pending = {int(k): dict(v) for k, v in (state.get("pending") or {}).items()}
        self._loss_weights = dict(state.get("loss_weights") or {})
        self._loop_bucket = int(state.get("loop_bucket", 0))
        if state.get("sampler") is not None:
            if self.sampler is not None:
                self.sampler.load_state_dict(state["sampler"])
            else:  # before attach (Lightning restores callbacks first): applied by attach
                self._sampler_state = dict(state["sampler"])
        a = state.get("active")
        if a is not None:
            self._active = AppliedBurn(seq=a["seq"], received_step=a["applied_step"] - 1,
                                       apply_at_step=a["apply_at_step"], applied_step=a["applied_step"],
                                       late=False, lr_scale=a["lr_scale"], reason=a["reason"],
                                       state=a["state"], basin=a["basin"],
                                       expires_at_step=a["expires_at_step"])
            if self._scaler is not None:
                self._scaler.set_scale(a["lr_scale"])
        else:
            self._active = None
            if self._scaler is not None:
                self._scaler.set_scale(1.0)

    # ---- shutdown -----------------------------------------------------------------
    def close(self) -> None:
        """Sends outstanding ACKs and bye, stops scaling, removes every hook."""
        if self._closed:
            return
        self._closed = True
        if self.last_step is not None:
            self._send_acks(self.last_step, final=True)
        if self._probes is not None:
            self._probes.disarm()
        if self._client is not None:
            try:
                self._client.close()
            except Exception as e:
                self._fail("close", e)
        if self._scaler is not None:
            self._scaler.detach()

    def __enter__(self) -> "Orbit":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, where: str, err: Exception) -> None:
        self._errors[where] = self._errors.get(where, 0) + 1
        if not self._warned:
            self._warned = True
            warnings.warn(f"orbit: {where} failed ({err!r}); training continues uncontrolled "
                          "where needed", RuntimeWarning, stacklevel=3)
