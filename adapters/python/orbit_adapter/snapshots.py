# SPDX-License-Identifier: Apache-2.0
"""What one snapshot carries, measured on the trainer's side: the spectra of the armed
probes, the gradient norm, the loop rate of generated text, the per-domain losses and
sampler weights, the trainer's scalars.

Measuring never changes training: a probe failure disarms the probes and is counted,
and the loop-rate probe puts the RNGs and train/eval modes back as it found them.
"""
from __future__ import annotations

import math
import random
import time
from itertools import chain
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from .daemon_link import DaemonLink
from .failures import FailOpen
from .probe_worker import ProbeWorker
from .probes import ModelProbes, ProbeCapture, ProbeConfig, loop_rate
from .snapshot_template import LOSS, LOSS_AND_WEIGHT, WEIGHT


def cpu_grad_norm(optimizer: torch.optim.Optimizer) -> Optional[float]:
    """The total L2 norm of the optimizer's gradients when every one is a dense float32
    CPU tensor; None otherwise and without gradients. On the CPU a read waits for
    nothing, and one BLAS dot per gradient with no other per-tensor call costs about a
    fifth less than _foreach_norm + stack + norm (bench/overhead). A float32 sum of
    squares that overflows (a norm past ~1e19) gives None too, so the general path
    decides."""
    total, seen = 0.0, False
    with torch.no_grad():
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is not None:
                    if g.dtype is not _F32 or not g.is_cpu or g.is_sparse:
                        return None
                    flat = g.reshape(-1)
                    total += float(torch.dot(flat, flat))
                    seen = True
    return math.sqrt(total) if seen and math.isfinite(total) else None


_F32 = torch.float32


def grad_norm_tensor(optimizer: torch.optim.Optimizer) -> Optional[torch.Tensor]:
    """The total L2 norm of the optimizer's gradients, as a tensor on their device
    (no host sync); None without gradients."""
    grads = [p.grad.detach() for g in optimizer.param_groups
             for p in g["params"] if p.grad is not None]
    if not grads:
        return None
    foreach = getattr(torch, "_foreach_norm", None)  # one kernel launch per call, not per tensor
    norms = foreach(grads) if foreach is not None and not any(g.is_sparse for g in grads) \
        else [g.norm() for g in grads]
    if any(n.dtype != torch.float32 for n in norms):  # fp32 norms need no cast kernel each
        norms = [n.float() for n in norms]
    return torch.stack(norms).norm()


class SnapshotAssembler:
    def __init__(self, config: ProbeConfig, domains: Sequence[str],
                 generate: Optional[Callable[[torch.nn.Module], Sequence[Sequence]]],
                 failures: FailOpen) -> None:
        self.config = config
        self.domains = tuple(domains)
        self.generate = generate
        self._failures = failures
        self.model: Optional[torch.nn.Module] = None
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.sampler: Any = None
        self.probes: Optional[ModelProbes] = None
        # Set (by Orbit) when a probe step's spectra and snapshot go to a worker thread.
        self.worker: Optional[ProbeWorker] = None
        self.loop_bucket = 0  # the last loop_every period measured (kept by state_dict)
        # The declared domains in wire order (UTF-8 byte order; ASCII names only, where
        # that is code point order), for the template's fast path; None: no such list.
        names = self.domains
        plain = bool(names) and all(type(d) is str and d.isascii() for d in names) \
            and len(set(names)) == len(names)
        self._wire_names = tuple(sorted(names)) if plain else None
        self._name_set = frozenset(names) if plain else frozenset()
        # The sampler's weights last sent without domain losses, and their (shape,
        # numbers) for the template: most steps send the same mixture again.
        self._weights_seen: Optional[Dict[str, float]] = None
        self._weights_values: Any = None

    def attach(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, sampler: Any,
               layers: Optional[Sequence[torch.nn.Module]]) -> None:
        self.model, self.optimizer, self.sampler = model, optimizer, sampler
        self.probes = ModelProbes(model, self.config, layers)

    def is_spectral(self, step: int, snapshot_every: int) -> bool:
        """Whether `step`'s snapshot carries spectra: the probe cadence rounded up to a
        multiple of the daemon's snapshot cadence, so spectral steps are sent."""
        return step % self.spectral_every(snapshot_every) == 0

    def spectral_every(self, snapshot_every: int) -> int:
        """The steps between spectral snapshots under the daemon's `snapshot_every`."""
        spectra_every = max(1, self.config.spectra_every)
        return ((spectra_every + snapshot_every - 1) // snapshot_every) * snapshot_every

    def send(self, link: DaemonLink, step: int, loss: float, grad_norm: Optional[float],
             domain_losses: Optional[Mapping[str, float]], tokens: Optional[int],
             scalars: Optional[Mapping[str, float]], lr: Optional[float],
             schedule_lr: Optional[float] = None, registered: Optional[bool] = None) -> None:
        """Sends `step`'s snapshot. With a client thread (link.deferred) the training
        thread only captures: the probe spectra are computed, and the gradient norm and
        every device value brought to the host, on that thread. `registered`: whether
        the daemon had welcomed us when the step began (None: link.registered)."""
        if registered is None:
            registered = link.registered
        if not (scalars or self.probes.armed or link.deferred):
            if self.generate is None or self.config.loop_every <= 0 \
                    or step // self.config.loop_every <= self.loop_bucket:
                if self._send_plain(link, step, loss, grad_norm, domain_losses, tokens, lr,
                                    schedule_lr, registered):
                    return
        cfg = self.config
        deferred = link.deferred
        spectra: Dict[str, np.ndarray] = {}
        extra: Dict[str, float] = {}
        prepare = None
        offload = None  # the probe step's capture, when the worker finishes and sends it
        try:
            if self.probes.armed:
                if deferred:
                    capture, probes = self.probes.take(), self.probes
                    prepare = lambda: self._finish_probes(probes, capture)  # noqa: E731
                elif self.worker is not None:
                    offload = self.probes.take()
                else:
                    sp, sc = self.probes.collect()
                    spectra = {k: v.float().cpu().numpy() for k, v in sp.items()}
                    extra.update(sc)
            if isinstance(grad_norm, torch.Tensor) and not deferred:
                grad_norm = float(grad_norm)  # the client thread takes tensors as they are
            # Nobody registered us yet (no daemon, or one that restarted): skip the work.
            if grad_norm is None and cfg.grad_norm and registered:
                # CPU gradients are read here in either mode (nothing waits for a device).
                grad_norm = cpu_grad_norm(self.optimizer)
                if grad_norm is None:
                    norm = grad_norm_tensor(self.optimizer)  # queued on the device, no sync
                    grad_norm = norm if deferred or norm is None else float(norm)
            loop = None
            if self.generate is not None and cfg.loop_every > 0 and step // cfg.loop_every > self.loop_bucket:
                self.loop_bucket = step // cfg.loop_every
                loop = self._loop_rate()
        except Exception as e:  # a probe failure must not stop training
            self.probes.disarm()
            self._failures.fail("probe", e)
            spectra, loop, prepare, offload = {}, None, None, None
        if scalars and deferred:  # tensors too: the client thread reads them and drops non-finite
            extra.update({k: v if isinstance(v, torch.Tensor) else float(v) for k, v in scalars.items()})
        else:
            if scalars:
                extra.update({k: float(v) for k, v in scalars.items()})
            if extra:
                extra = {k: v for k, v in extra.items() if math.isfinite(v)}
        fields = dict(grad_norm=grad_norm, lr=lr, schedule_lr=schedule_lr, tokens=tokens,
                      domains=self._domains(domain_losses) if self.domains or domain_losses else None,
                      spectra=spectra or None, loop_rate=loop, scalars=extra or None, time=time.time())
        if prepare is not None:
            fields["prepare"] = prepare
        if offload is not None:
            self.worker.submit(self._offloaded_send(link.client, self.probes, offload, step, loss,
                                                    fields, extra))
            return
        try:  # to the client itself, fail-open: a call less on every step
            link.client.send_snapshot(step, loss, **fields)
        except Exception as e:
            self._failures.fail("send", e)

    def _send_plain(self, link: DaemonLink, step: int, loss: float, grad_norm: Any,
                    domain_losses: Optional[Mapping[str, float]], tokens: Optional[int],
                    lr: Optional[float], schedule_lr: Optional[float], registered: bool) -> bool:
        """`send` of an ordinary snapshot (no probe, scalars or loop rate) through the
        client's SnapshotTemplate: the same bytes, without building the message. False
        where `send`'s general path must take it (any other shape or type, and every
        error, which that path then reports as before)."""
        client = link.client
        try:
            if grad_norm is None:
                if self.config.grad_norm and registered:
                    grad_norm = cpu_grad_norm(self.optimizer)
                    if grad_norm is None:
                        return False
            elif type(grad_norm) is not float:
                if not isinstance(grad_norm, torch.Tensor):
                    return False
                grad_norm = float(grad_norm)
            shape, values = self._domain_values(domain_losses)
            if shape is False:
                return False
            data = client.template.pack(step, time.time(), loss, grad_norm, lr, schedule_lr,
                                        tokens, shape, values)
        except Exception:  # the general path reports it
            return False
        if data is None:
            return False
        try:
            client.send_snapshot_bytes(data)
        except Exception as e:
            self._failures.fail("send", e)
        return True

    def _domain_values(self, domain_losses: Optional[Mapping[str, float]]):
        """(shape, numbers) of the snapshot's domains for the template, as `_domains`
        would build them: every declared domain with a loss, a weight or both; shape
        None without domain entries, False for anything else (the general path)."""
        names = self._wire_names
        if names is None:
            return (None, ()) if not (self.domains or domain_losses) else (False, ())
        sampler = self.sampler
        weights = sampler.effective_weights() if hasattr(sampler, "effective_weights") else {}
        if type(weights) is not dict:
            return False, ()
        if not domain_losses and weights == self._weights_seen:
            return self._weights_values  # the mixture of the step before: its numbers again
        everyone = self._name_set
        if not weights or everyone.isdisjoint(weights):
            weights = None
        elif not weights.keys() >= everyone:
            return False, ()
        if domain_losses:
            if type(domain_losses) is not dict:
                return False, ()
            if everyone.isdisjoint(domain_losses):
                domain_losses = None
            elif not domain_losses.keys() >= everyone:
                return False, ()
        else:
            domain_losses = None
        if weights is None:
            if domain_losses is None:
                return None, ()
            return (names, LOSS), list(map(float, map(domain_losses.__getitem__, names)))
        ws = map(float, map(weights.__getitem__, names))
        if domain_losses is None:
            # A copy: a sampler may hand out a dict it changes in place later.
            self._weights_seen, self._weights_values = dict(weights), ((names, WEIGHT), list(ws))
            return self._weights_values
        losses = map(float, map(domain_losses.__getitem__, names))
        return (names, LOSS_AND_WEIGHT), list(chain.from_iterable(zip(losses, ws)))

    @staticmethod
    def _offloaded_send(client: Any, probes: ModelProbes, capture: ProbeCapture, step: int,
                        loss: float, fields: Dict[str, Any], trainer_scalars: Dict[str, float]):
        """The ProbeWorker's job for a probe step: its spectra and scalars, then the
        snapshot, as the training thread's path would have built and sent it (the
        trainer's scalars win over a probe scalar of the same name)."""
        def job():
            errors = []
            try:
                sp, sc = probes.finish(capture)
                fields["spectra"] = {k: v.float().cpu().numpy() for k, v in sp.items()} or None
            except Exception as e:  # the snapshot still goes, without spectra
                errors.append(("probe", e))
                sc = {}
            scalars = {k: v for k, v in {**sc, **trainer_scalars}.items() if math.isfinite(v)}
            fields["scalars"] = scalars or None
            try:
                client.send_snapshot(step, loss, **fields)
            except Exception as e:
                errors.append(("send", e))
            return errors
        return job

    @staticmethod
    def _finish_probes(probes: ModelProbes, capture: ProbeCapture) -> Dict[str, Any]:
        """On the client thread: the captured probe step's spectra and scalars."""
        sp, sc = probes.finish(capture)
        return {"spectra": {k: v.float().cpu().numpy() for k, v in sp.items()} or None,
                "scalars": {k: v for k, v in sc.items() if math.isfinite(v)} or None}

    def _domains(self, domain_losses: Optional[Mapping[str, float]]) -> Optional[Dict[str, Dict[str, float]]]:
        if not (self.domains or domain_losses):
            return None
        weights = self.sampler.effective_weights() if hasattr(self.sampler, "effective_weights") else {}
        domains = {}
        # Only declared domains (the daemon knows them from hello); none declared: all.
        for d in self.domains or tuple(domain_losses or ()):
            entry = {}
            if domain_losses and d in domain_losses:
                entry["loss"] = float(domain_losses[d])
            if d in weights:
                entry["weight"] = float(weights[d])
            if entry:
                domains[d] = entry
        return domains or None

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
        return loop_rate(seqs, self.config.loop_n)
