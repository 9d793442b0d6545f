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
the lr the optimizer actually used), takes a checkpoint when one is due, reads every
reply that has arrived (never waits), sends a snapshot when the daemon's
`snapshot_every` said so before this step (spectral probes on their own cadence;
what the replies just read say counts from the next step), applies burns due at
the next step, lets expired burns go, and arms the probes for the next forward
pass when the next step is a probe step. An ordinary snapshot (no probe) is packed
by the client's SnapshotTemplate and the daemon's `state` reply read by its
StateTemplate: the encoder's bytes and the decoder's dict, in one C call each.

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
import os
import socket
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch

from .burn_appliers import BurnAppliers
from .burn_schedule import AppliedBurn, BurnSchedule
from .client import OrbitClient
from .client_thread import ClientThread
from .daemon_link import DaemonLink
from .endpoints import default_endpoint
from .failures import FailOpen
from .lr import LrScaler
from .messages import Burn, Error, Welcome, reply_from_dict
from .probe_worker import ProbeWorker
from .probes import ProbeConfig
from .rollback import CheckpointConfig, CheckpointRing
from .snapshots import SnapshotAssembler, grad_norm_tensor

__all__ = ["Orbit", "ProbeConfig", "CheckpointConfig", "AppliedBurn", "domain_losses",
           "default_endpoint", "refuse_unsupported"]

ADAPTER_NAME = "orbit-python-torch"
ADAPTER_VERSION = "0.1.0"

ALARM_STATES = ("WARNING", "CRITICAL", "RECOVERING")


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


class Orbit:
    """One rank of one run: the facade over the adapter's parts. See the module
    docstring for the loop contract.

    Its parts: DaemonLink (the client, session, ACKs), SnapshotAssembler (probes and
    what a snapshot carries), BurnSchedule (when burns start and stop), BurnAppliers
    (what they do to lr, sampler, loss weights, checkpoints), FailOpen (errors).

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
    client:       an already built OrbitClient (tests, custom transports), used as given
                  (wrap it in a ClientThread to move its work off the training thread).
    client_options: keyword arguments for the OrbitClient that Orbit builds. Orbit asks
                  for replies on news only (`replies="news"`, protocol/SPEC.md 3: every
                  burn and state change still comes, a `state` that says nothing new
                  does not); `{"replies": "every"}` asks for one reply per snapshot.
    client_thread: run the client on a background thread (ClientThread): encoding,
                  sending, receiving, decoding, the probe spectra and the device-to-host
                  copies of snapshot values leave the training thread. False: all of it
                  on the training thread. "auto" (the default): the thread for a model
                  with CUDA parameters (it keeps `.item()` syncs off the training
                  thread), none for a CPU model, where waking a thread twice a step
                  costs more CPU than the work it takes over (bench/overhead).
    probe_thread: where the client runs on the training thread, a probe step's spectra
                  are computed, and its snapshot encoded and sent, by a ProbeWorker
                  thread while the trainer goes on with the next step (the next
                  `step` waits for it before it touches the client). Same snapshots,
                  same order; the work runs on another core, once per probe step.
                  "auto" (the default): on when the process may run on two CPUs or
                  more; True / False: on / off.
    """

    def __init__(self, endpoint: Optional[str] = "auto", run: Optional[str] = None,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 domains: Sequence[str] = (), *,
                 probes: Optional[ProbeConfig] = None,
                 checkpoints: Optional[CheckpointConfig] = None,
                 generate: Optional[Callable[[torch.nn.Module], Sequence[Sequence]]] = None,
                 distributed: str = "per_rank", sync_every: int = 1,
                 use_loss_weights: bool = False,
                 client: Optional[OrbitClient] = None,
                 client_options: Optional[Mapping[str, Any]] = None,
                 client_thread: Union[bool, str] = "auto",
                 probe_thread: Union[bool, str] = "auto",
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
        self._client_options = dict(client_options or {})
        if client_thread != "auto" and not isinstance(client_thread, bool):
            raise ValueError(f"client_thread must be True, False or 'auto', got {client_thread!r}")
        self.client_thread = client_thread
        if probe_thread != "auto" and not isinstance(probe_thread, bool):
            raise ValueError(f"probe_thread must be True, False or 'auto', got {probe_thread!r}")
        self.probe_thread = probe_thread
        self._worker: Optional[ProbeWorker] = None

        self._failures = FailOpen()
        self._link = DaemonLink(endpoint, self.run, self._failures, client)
        self._snapshots = SnapshotAssembler(self.probe_config, self.domains, generate,
                                            self._failures)
        self._schedule = BurnSchedule()
        self._appliers = BurnAppliers(self._failures)

        self.model: Optional[torch.nn.Module] = None
        self.optimizer = None
        self.schedulers: List[Any] = []
        self.sampler = None
        self._scaler: Optional[LrScaler] = None
        self._ring: Optional[CheckpointRing] = None

        self.last_step: Optional[int] = None
        self.last_lr: Optional[float] = None
        self.state: Optional[str] = None     # the daemon's latest view
        self.basin: Optional[str] = None
        self.metrics: Dict[str, float] = {}
        self.applied: List[AppliedBurn] = []
        self.states_visited: List[str] = []
        self._sync_ready: set = set()  # rank0 mode: burns every rank has received
        self._closed = False
        self._sampler_state: Optional[Dict[str, Any]] = None  # loaded before attach
        # (snapshot_every, ProbeConfig.spectra_every, the probe step cadence they give)
        self._spectral_every = (0, 0, 1)

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
        active = self._schedule.active
        if active is not None:  # state loaded before attach (a resume): back in force
            self._scaler.set_scale(active.lr_scale)
        if sampler is not None and self._sampler_state is not None:
            sampler.load_state_dict(self._sampler_state)
        self._sampler_state = None
        self._snapshots.attach(model, optimizer, sampler, layers)
        if self.checkpoint_config.every > 0:
            self._ring = CheckpointRing(model, optimizer, self.schedulers, sampler,
                                        self.checkpoint_config)
            if self.checkpoint_config.keep_initial:
                self._ring.save(start_step)
        self._appliers.attach(self._scaler, sampler, self._ring)
        self._link.open(self._make_client if self._talks_to_daemon() else None)
        if self._link.client is not None and not self._link.deferred and self.uses_probe_thread():
            self._worker = ProbeWorker()
        self._snapshots.worker = self._worker
        # With the worker, the MHA probabilities are computed there too (probes.finish),
        # and the checkpoints' parameter and optimizer-state copies (CPU) go there.
        self._snapshots.probes.defer_attention = self._worker is not None
        if self._ring is not None and self._worker is not None:
            self._ring.defer, self._ring.wait = self._worker.submit, self._settle_now
            self._scaler.before_step = self._ring.before_update
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
        self._link.reopen()
        self.model = None

    def register_attention(self, module: torch.nn.Module) -> None:
        """One line per custom attention module; its forward calls
        `orbit_adapter.probes.report_attention(self, probs)`."""
        if self._snapshots.probes is None:
            raise RuntimeError("call Orbit.attach before register_attention")
        self._snapshots.probes.register_attention(module)

    def _talks_to_daemon(self) -> bool:
        return self.endpoint is not None and (self.distributed == "per_rank" or self.rank == 0)

    def _sends_acks(self) -> bool:
        return self.distributed == "per_rank" or self.rank == 0

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

    def _make_client(self) -> OrbitClient:
        group = self.optimizer.param_groups[0]
        base_lr = float(group.get("initial_lr", group["lr"]))
        world = self.world_size if self.distributed == "per_rank" else 1
        rank = self.rank if self.distributed == "per_rank" else 0
        # Replies on news only (the daemon must grant it): a snapshot whose answer says
        # nothing new wakes no thread here or in orbitd (bench/overhead, round 9).
        options = {"replies": "news", **self._client_options}
        client = OrbitClient(self.endpoint, self.run, rank=rank, world_size=world,
                             domains=self.domains, actuators=tuple(self._actuators()),
                             adapter=ADAPTER_NAME, adapter_version=ADAPTER_VERSION,
                             base_lr=base_lr, **options)
        return ClientThread(client) if self.uses_client_thread() else client

    def uses_probe_thread(self) -> bool:
        """Whether probe steps go to a ProbeWorker (where the client runs on the
        training thread): `probe_thread` when given, else ("auto") whether this process
        may run on two CPUs or more (on one, the worker would only take turns with
        the trainer)."""
        if self.probe_thread != "auto":
            return bool(self.probe_thread)
        try:
            return len(os.sched_getaffinity(0)) >= 2
        except (AttributeError, OSError):
            return (os.cpu_count() or 1) >= 2

    def _settle_now(self) -> None:
        if self._worker is not None and self._worker.unsettled:
            self._settle()

    def _settle(self) -> None:
        """Waits for the probe step the worker is finishing (it holds the client until
        then) and reports what failed there."""
        for where, error in self._worker.wait():
            self._failures.fail(where, error)

    def uses_client_thread(self) -> bool:
        """Whether the client runs on a ClientThread: `client_thread` when given, else
        ("auto") whether the attached model has a parameter on a CUDA device."""
        if self.client_thread != "auto":
            return bool(self.client_thread)
        model = self.model
        return model is not None and any(p.is_cuda for p in model.parameters())

    # ---- the per-step call -----------------------------------------------------
    def step(self, step: int, loss: Any, *, grad_norm: Any = None,
             domain_losses: Optional[Mapping[str, float]] = None,
             tokens: Optional[int] = None,
             scalars: Optional[Mapping[str, float]] = None) -> Optional[int]:
        """Reports training step `step` (after optimizer.step) and applies due burns.

        `grad_norm` and the values of `scalars` may be floats or one-element tensors on any
        device (with the client thread they are read there, so the training thread does
        not wait for the device).
        Returns the restored checkpoint's step when this call rolled the model back,
        else None. The caller keeps counting steps forward: steps lost to a rollback
        count against the run's budget.
        """
        if self.model is None:
            raise RuntimeError("call Orbit.attach before Orbit.step")
        # An ordinary step (9 in 10) runs on cold caches right after a training step,
        # where each attribute lookup, call and object it touches costs several times
        # its warm price (bench/overhead): the common case reads plain attributes once.
        worker = self._worker
        if worker is not None and worker.unsettled:
            self._settle()
        step = int(step)
        self.last_step = step
        last_lrs = self._scaler.last_lrs
        if last_lrs:
            self.last_lr = last_lrs[0]
        if loss.__class__ is not float:
            if isinstance(loss, torch.Tensor):
                loss = float(loss.detach())
            loss = float(loss)

        link, probes = self._link, self._snapshots.probes
        if link.unacked:
            link.send_acks(step, last_lrs, self._sends_acks())
        ring = self._ring
        if ring is not None and ring.due(step):
            ring.save(step)

        client = link.client
        if client is not None:
            if link.last_reply_time is None:
                link.warn_if_unanswered(self.rank)
            # The snapshot is decided on what the daemon had said before this step, as
            # if it went out first; the replies that arrived during the training step
            # are read before it goes, though: ZeroMQ then has its pending commands
            # done, which the send no longer has to look for (bench/overhead).
            every, registered = client.snapshot_every, client.registered
            if every.__class__ is not int or every < 1:
                every = link.snapshot_every
            self._poll()
            if step % every == 0:
                schedule = self._scaler.last_schedule_lrs
                self._snapshots.send(link, step, loss, grad_norm, domain_losses, tokens,
                                     scalars, self.last_lr, schedule[0] if schedule else None,
                                     registered)
            elif probes.armed:
                probes.disarm()
            every = link.client.snapshot_every if link.client is not None else 1
            if every.__class__ is not int or every < 1:
                every = link.snapshot_every
        if self.distributed == "rank0" and self.world_size > 1 and step % self.sync_every == 0:
            self._sync_burns()

        # Most steps have no burn received, in force or just ended: nothing to advance.
        restored = self._advance_burns(step + 1) if self._schedule.busy else None
        if client is not None:
            spectral, spectra_every = self._spectral_every, self.probe_config.spectra_every
            if spectral[0] != every or spectral[1] != spectra_every:
                spectral = self._spectral_every = (every, spectra_every,
                                                   self._snapshots.spectral_every(every))
            if (step + 1) % spectral[2] == 0 and link.connected:
                probes.arm()
        return restored

    # ---- snapshots ---------------------------------------------------------------
    def grad_norm_tensor(self) -> Optional[torch.Tensor]:
        """The total L2 norm of the optimizer's gradients, as a tensor on their device
        (no host sync); None without gradients."""
        return grad_norm_tensor(self.optimizer)

    def grad_norm_due(self, step: int) -> bool:
        """Whether the snapshot of `step` will be sent with a gradient norm, so a
        trainer callback measures it only then (before the gradients are zeroed)."""
        return (self._link.client is not None and self.probe_config.grad_norm
                and step % self._link.snapshot_every == 0)

    # ---- replies and burns --------------------------------------------------------
    def poll(self) -> None:
        """Reads whatever replies have arrived, without waiting (step() does this too).
        Burns read here are applied by the next step() call."""
        if self._link.client is not None:
            if self._worker is not None:
                self._settle()
            self._poll()

    @property
    def connected(self) -> bool:
        """True while the daemon has answered within the last 30 s."""
        return self._link.connected

    def _poll(self) -> None:
        for message in self._link.poll():
            if message.get("type") == "state":
                # The reply to every snapshot, read as decoded: the fields reply_from_dict's
                # State would hold, without building it on every step.
                state, basin, metrics = message["state"], message["basin"], message.get("metrics")
                if state and state == self.state and basin == self.basin \
                        and not (state == "STABLE" and self._ring is not None
                                 and self._ring.pinned is not None):
                    if metrics:  # the state and basin go on: only the metrics are new
                        self.metrics = dict(metrics)
                else:
                    self._note_state(state, basin, metrics)
                if self.on_reply is not None:
                    self._on_reply(message)
                continue
            reply = reply_from_dict(message)
            if isinstance(reply, Welcome):
                if self._link.note_welcome(reply):
                    self._schedule.forget_seqs()
            elif isinstance(reply, Burn):
                self._note_state(reply.state, reply.basin, None)
                self._schedule.add(reply)
            elif isinstance(reply, Error):
                self._failures.count(reply.code)
            if self.on_reply is not None:
                self._on_reply(message)

    def _on_reply(self, message: Dict[str, Any]) -> None:
        try:
            self.on_reply(message)
        except Exception as e:
            self._failures.fail("on_reply", e)

    def _note_state(self, state: str, basin: str, metrics: Optional[Mapping[str, float]]) -> None:
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

    def _sync_burns(self) -> None:
        import torch.distributed as dist
        payload = [self._schedule.pending_burns() if self.rank == 0 else None]
        try:
            dist.broadcast_object_list(payload, src=0)
        except Exception as e:
            self._failures.fail("broadcast", e)
            return
        if self.rank != 0:
            for _, burn in payload[0]:
                self._schedule.add(burn)
        self._sync_ready = {seq for seq, _ in payload[0]}

    def _advance_burns(self, next_step: int) -> Optional[int]:
        """Applies the burns due at `next_step` and lets an expired one go; returns the
        restored checkpoint's step when a burn rolled the model back."""
        ready = self._sync_ready if self.distributed == "rank0" and self.world_size > 1 else None
        applied = self._schedule.advance(next_step, ready=ready, apply=self._apply)
        if self._schedule.expired is not None:
            self._appliers.release()
        restored = [ab.restored_step for ab in applied if ab.restored_step is not None]
        return restored[-1] if restored else None

    def _apply(self, burn: Burn, ab: AppliedBurn) -> bool:
        try:
            self._appliers.apply(burn, ab)
        except Exception as e:
            self._failures.fail("apply", e)
            return False
        self.applied.append(ab)
        self._link.unacked.append(ab)
        return True

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
        return dict(self._appliers.loss_weights)

    @property
    def rollbacks(self) -> List[Dict[str, int]]:
        """Every rollback done: at_step, to_step, restored_step, skip_batches."""
        return self._appliers.rollbacks

    @property
    def pending_burns(self) -> List[int]:
        """Sequence numbers of burns received and waiting for their step."""
        return self._schedule.pending

    @property
    def checkpoint_steps(self) -> List[int]:
        return self._ring.steps() if self._ring else []

    def summary(self) -> Dict[str, Any]:
        if self._worker is not None:
            self._settle()
        client = self._link.client
        stats = dataclasses.asdict(client.stats) if client is not None else None
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
            "errors": dict(self._failures.errors),
            "client": stats,
            "client_thread": ({"cpu_s": client.cpu_time(), **dataclasses.asdict(client.thread_stats)}
                              if isinstance(client, ClientThread) else None),
            "probe_thread": ({"cpu_s": self._worker.cpu_s, "jobs": self._worker.jobs}
                             if self._worker is not None else None),
        }

    # ---- persistence --------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """What a resumed run needs: sampler position and weights, the burn in force."""
        burns = self._schedule.state_dict()
        return {
            "version": 1,
            "run": self.run,
            "last_step": self.last_step,
            "seen_seq": burns["seen_seq"],
            "active": burns["active"],
            "pending": burns["pending"],
            "loss_weights": dict(self._appliers.loss_weights),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "loop_bucket": self._snapshots.loop_bucket,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state.get("version", 1)) != 1:
            raise ValueError("unsupported Orbit state version")
        self.last_step = state.get("last_step")
        self._schedule.load_state_dict(state)
        self._appliers.loss_weights = dict(state.get("loss_weights") or {})
        self._snapshots.loop_bucket = int(state.get("loop_bucket", 0))
        if state.get("sampler") is not None:
            if self.sampler is not None:
                self.sampler.load_state_dict(state["sampler"])
            else:  # before attach (Lightning restores callbacks first): applied by attach
                self._sampler_state = dict(state["sampler"])
        if self._scaler is not None:
            self._scaler.set_scale(self._schedule.lr_scale)

    # ---- shutdown -----------------------------------------------------------------
    def close(self) -> None:
        """Sends outstanding ACKs and bye, stops scaling, removes every hook."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:  # its snapshot goes before the ACKs and bye
            for where, error in self._worker.close():
                self._failures.fail(where, error)
            self._worker = None
            self._snapshots.worker = None
            if self._ring is not None:
                self._ring.defer = self._ring.wait = None
        if self.last_step is not None and self._link.unacked:
            self._link.send_acks(self.last_step, self._scaler.lr_in_effect(),
                                 self._sends_acks(), final=True)
        if self._snapshots.probes is not None:
            self._snapshots.probes.disarm()
        self._link.close()
        if self._ring is not None:
            self._ring.close()
        if self._scaler is not None:
            self._scaler.detach()

    def __enter__(self) -> "Orbit":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
