# SPDX-License-Identifier: Apache-2.0
"""Rollback burns restore model, optimizer, scheduler, sampler and RNG bit for bit."""
import copy
import threading

import pytest
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon, TinyLM, slow_copy_jobs
from orbit_adapter import Orbit
from orbit_adapter.lr import LrScaler
from orbit_adapter.probe_worker import ProbeWorker
from orbit_adapter.rollback import CheckpointConfig, CheckpointRing
from orbit_adapter.sampler import DomainMixtureSampler


def batch_for(picks, vocab=11, context=8):
    rows = []
    for d, i in picks:
        g = torch.Generator().manual_seed((hash(d) % 1000) * 10_000 + i)
        rows.append(torch.randint(0, vocab, (context + 1,), generator=g))
    x = torch.stack(rows)
    return x[:, :-1], x[:, 1:]


def assert_same(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def snapshot_of(model, opt, sched, sampler):
    return {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
            "sched": copy.deepcopy(sched.state_dict()), "sampler": copy.deepcopy(sampler.state_dict()),
            "rng": torch.get_rng_state().clone()}


@pytest.mark.parametrize("slow_copies", [False, True])
def test_rollback_burn_restores_everything_bit_for_bit(monkeypatch, slow_copies):
    """slow_copies: the probe worker's checkpoint copies take 0.1 s, so the next step's
    forward and backward run before they land: the update waits for them."""
    copier_threads = slow_copy_jobs(monkeypatch, 0.1) if slow_copies else []
    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.7)
    sampler = DomainMixtureSampler({"a": 100, "b": 60}, 4, seed=1)
    daemon = ScriptedDaemon()
    try:
        daemon.burn_at(for_step=12, apply_at_step=14, lr_scale=0.5, rollback_to_step=12, skip_batches=2,
                       state="CRITICAL")
        orbit = Orbit(endpoint=daemon.endpoint, run="rollback-test", domains=("a", "b"),
                      checkpoints=CheckpointConfig(every=5), probe_thread=True)
        orbit.attach(model, opt, scheduler=sched, sampler=sampler)
        daemon.wait_hello()
        saved = {}
        restored = None
        for step in range(1, 14):
            x, y = batch_for(sampler.next_batch())
            loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
            torch.rand(3)  # training code that draws from the global RNG
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step == 10:
                saved = snapshot_of(model, opt, sched, sampler)
            restored = orbit.step(step, loss.item())
            if step == 12:
                daemon.wait_replied(12, orbit)
        assert restored == 10
        assert orbit.checkpoint_steps == [0, 5, 10]  # the abandoned trajectory is gone
        assert orbit._ring._plan is not None  # the copy plan's path, on the worker
        if slow_copies:
            assert len(copier_threads) == 2 and threading.main_thread() not in copier_threads
        now = snapshot_of(model, opt, sched, sampler)
        assert_same(now["model"], saved["model"], "model")
        assert_same(now["opt"], saved["opt"], "optimizer")
        assert_same(now["sched"], saved["sched"], "scheduler")
        assert torch.equal(now["rng"], saved["rng"])
        skipped = DomainMixtureSampler({"a": 100, "b": 60}, 4, seed=1)
        skipped.load_state_dict(saved["sampler"])
        skipped.skip(2)
        assert now["sampler"] == skipped.state_dict()
        # Step 14 runs from the restored state under the burn; its ACK reports the restore.
        x, y = batch_for(sampler.next_batch())
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        orbit.step(14, loss.item())
        daemon.wait_for(lambda: daemon.acks)
        ack = daemon.acks[0]
        assert ack["restored_step"] == 10 and ack["step"] == 14 and not ack["late"]
        assert ack["lr"] == pytest.approx(saved["opt"]["param_groups"][0]["lr"] * 0.5, rel=1e-12)
        assert orbit.summary()["rollbacks"] == [
            {"at_step": 13, "to_step": 12, "restored_step": 10, "skip_batches": 2}]
        orbit.close()
    finally:
        daemon.close()


def test_ring_respects_its_memory_budget_and_thins_out_the_past():
    model = nn.Linear(64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    one = (64 * 64 + 64) * 4
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=10, budget_bytes=6 * one))
    buffers = set()
    for s in range(0, 1001, 10):
        with torch.no_grad():
            model.weight.fill_(s)
        ring.save(s)
        if s >= 100:
            buffers.add(ring.ring[-1].model["weight"].data_ptr())
    steps = ring.steps()
    assert len(steps) == 6 and ring.nbytes <= 6 * one
    assert steps[0] == 0 and steps[-1] == 1000          # the start and the present stay
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps == sorted(gaps, reverse=True)           # denser towards the present
    assert len(buffers) <= 7                            # evicted buffers are reused
    for c in ring.ring:                                 # and hold the right contents
        assert torch.all(c.model["weight"] == c.step)
    assert ring.find(-1) is None and ring.find(999).step == steps[-2]
    assert ring.restore(-5) is None                     # nothing that old: no change
    assert ring.steps() == steps
    assert ring.restore(steps[2] + 1) == steps[2]
    assert ring.steps() == steps[:3] and torch.all(model.weight == steps[2])


def test_checkpoints_are_copies_not_views():
    model = nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=1))
    ring.save(1)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert ring.restore(1) == 1
    assert torch.equal(model.weight, before)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert ring.restore(1) == 1   # the same checkpoint restores twice
    assert torch.equal(model.weight, before)


def test_a_model_whose_checkpoint_exceeds_the_budget_is_refused_at_attach():
    model = nn.Linear(256, 256)                       # 257 KiB of parameters
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="budget"):
        CheckpointRing(model, opt, config=CheckpointConfig(every=1, budget_bytes=100 << 10))
    orbit = Orbit(endpoint=None, run="too-big", checkpoints=CheckpointConfig(every=1, budget_bytes=100 << 10))
    with pytest.raises(ValueError, match="budget"):
        orbit.attach(model, opt)


def test_a_checkpoint_that_cannot_fit_is_not_taken_and_the_start_stays():
    """AdamW's state appears after the first step: the start checkpoint (parameters
    only) fits, a later one (parameters and two moments) does not."""
    torch.manual_seed(0)
    model = nn.Linear(64, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    one = (64 * 64 + 64) * 4
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=1, budget_bytes=int(3.5 * one)))
    ring.save(0)
    start = copy.deepcopy(model.state_dict())
    for step in range(1, 6):
        model(torch.randn(8, 64)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        if step == 1:
            with pytest.warns(RuntimeWarning, match="does not fit the rollback budget"):
                assert ring.save(step) is None
        else:
            assert ring.save(step) is None
        assert ring.nbytes <= ring.config.budget_bytes
    assert ring.steps() == [0] and ring.not_taken == [1, 2, 3, 4, 5]
    assert ring.restore(3) == 0
    assert_same(model.state_dict(), start, "model")


def test_the_pre_alarm_checkpoint_is_never_evicted():
    torch.manual_seed(0)
    model = nn.Linear(32, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    one = (32 * 32 + 32) * 4
    daemon = ScriptedDaemon()
    try:
        for s in range(7, 41):  # the daemon stays in alarm from step 7 on
            daemon.burn_at(for_step=s, apply_at_step=s + 1, lr_scale=1.0, state="WARNING")
        orbit = Orbit(endpoint=daemon.endpoint, run="pin",
                      checkpoints=CheckpointConfig(every=2, budget_bytes=4 * one))
        orbit.attach(model, opt)
        daemon.wait_hello()
        seen = []
        for step in range(1, 41):
            model(torch.randn(4, 32)).square().mean().backward()
            opt.step()
            opt.zero_grad()
            orbit.step(step, 1.0)
            if step == 7:
                daemon.wait_replied(7, orbit)
            seen.append(orbit.checkpoint_steps)
            assert orbit._ring.nbytes <= 4 * one
        assert all(s[0] == 0 for s in seen)
        assert all(6 in s for s in seen[6:]), seen   # from the alarm on, step 6 stays
        assert orbit._ring.pinned == 6
        assert seen[-1][-1] == 40
        orbit.close()
    finally:
        daemon.close()


class NormedMLP(nn.Module):
    """Parameters, a BatchNorm's buffers (changed by every forward), a tied weight."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.norm = nn.BatchNorm1d(16)
        self.out = nn.Linear(16, 16)
        self.back = nn.Linear(16, 16, bias=False)
        self.back.weight = self.out.weight

    def forward(self, x):
        return self.back(self.out(torch.relu(self.norm(self.inp(x)))))


def train_steps(model, opt, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        model(torch.randn(32, 8, generator=g)).square().mean().backward()
        opt.step()
        opt.zero_grad()


def worker_ring(model, opt, worker, every=1):
    """A ring wired to `worker` as Orbit wires it: the optimizer's updates wait for the copies."""
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=every, budget_bytes=64 << 20))
    if worker is not None:
        ring.defer, ring.wait = worker.submit, lambda: worker.wait()
        LrScaler(opt).before_step = ring.before_update
    return ring


def gated(ring, worker):
    """Makes the ring's next copy job wait on `worker` until the returned event is set."""
    gate = threading.Event()

    def defer(job):
        worker.submit(lambda: gate.wait() and [])
        worker.submit(job)
        ring.defer = worker.submit
    ring.defer = defer
    return gate


class CountingSGD(torch.optim.Optimizer):
    """Plain SGD whose state also holds non-tensor values, rebound on every update."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state[p]
                    state["updates"] = state.get("updates", 0) + 1
                    state["last"] = (group["lr"], state["updates"] % 3)
                    p.add_(p.grad, alpha=-group["lr"])


OPTIMIZERS = {
    "counting_sgd": lambda ps: CountingSGD(ps, lr=0.05),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.99)),
    "adam_amsgrad": lambda ps: torch.optim.Adam(ps, lr=1e-2, amsgrad=True),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=1e-3, momentum=0.5, centered=True),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=1e-2),
    "two_groups": lambda ps: torch.optim.AdamW([{"params": ps[:2], "lr": 1e-3},
                                                {"params": ps[2:], "weight_decay": 0.1}], lr=1e-2),
}


@pytest.mark.parametrize("on_worker", [False, True])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_planned_checkpoints_hold_what_state_dict_gives(name, on_worker):
    """A CPU checkpoint from the copy plan holds the dicts state_dict() gives (parameters,
    buffers, every optimizer state value, the parameter groups), as copies, also once the
    first update has added the optimizer's state."""
    torch.manual_seed(0)
    model = NormedMLP()
    opt = OPTIMIZERS[name](list(model.parameters()))
    worker = ProbeWorker() if on_worker else None
    ring = worker_ring(model, opt, worker)
    for step in range(4):
        if step:
            train_steps(model, opt, 1, seed=step)
        expected = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
        gate = gated(ring, worker) if worker is not None else None
        ring.save(step)
        assert ring._plan is not None
        model(torch.randn(32, 8))         # a forward changes the buffers before the copies land
        if worker is not None:
            gate.set()
            worker.wait()
        ck = ring.find(step)
        assert ck.step == step and ck.ready
        assert_same(ck.model, expected[0], "model")
        assert_same(ck.optimizer, expected[1], "optimizer")
    train_steps(model, opt, 2, seed=9)
    assert ring.restore(2) == 2          # the checkpoint's tensors are copies, not views
    assert_same(model.state_dict(), ring.find(2).model, "restored model")
    if worker is not None:
        worker.close()


@pytest.mark.parametrize("change", ["restore", "new_state_tensor"])
def test_the_plan_follows_the_optimizers_state_objects(change):
    """A restore (optimizer.load_state_dict) replaces the optimizer's state; an optimizer
    (or a user) may also put a new tensor into a state dict it keeps. The plan follows,
    and a later rollback restores the later step exactly."""
    torch.manual_seed(0)
    model = NormedMLP()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    worker = ProbeWorker()
    ring = worker_ring(model, opt, worker)
    train_steps(model, opt, 2, seed=1)
    ring.save(2)
    first_plan = ring._plan
    train_steps(model, opt, 1, seed=2)
    if change == "restore":
        assert ring.restore(2) == 2
    else:
        state = opt.state[model.inp.weight]
        state["exp_avg"] = state["exp_avg"] * 0.5
    train_steps(model, opt, 2, seed=3)
    expected = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
    ring.save(5)
    assert ring._plan is not first_plan
    train_steps(model, opt, 3, seed=4)
    assert ring.restore(5) == 5
    assert_same(model.state_dict(), expected[0], "model")
    assert_same(opt.state_dict(), expected[1], "optimizer")
    worker.close()


@pytest.mark.parametrize("on_worker", [False, True])
def test_a_model_changed_behind_the_plan_never_restores_stale_values(on_worker):
    """A parameter replaced in the model (not in the optimizer, so the plan's own check
    cannot see it). On the worker, its check drops that checkpoint and the next save
    builds a new plan; inline, the save is taken again at once with a new plan. No
    restore brings back the replaced tensor's values."""
    torch.manual_seed(0)
    model = NormedMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    worker = ProbeWorker() if on_worker else None
    ring = worker_ring(model, opt, worker)
    settle = worker.wait if worker is not None else (lambda: None)
    train_steps(model, opt, 1)
    ring.save(1)
    settle()
    model.inp.weight = nn.Parameter(torch.full_like(model.inp.weight, 0.5))
    ring.save(2)
    settle()
    ring.save(3)
    assert ring.steps() == ([1, 3] if on_worker else [1, 2, 3])
    expected = copy.deepcopy(model.state_dict())
    assert torch.all(expected["inp.weight"] == 0.5)
    settle()                         # parameters change outside an update only after the copies
    with torch.no_grad():
        model.inp.weight.fill_(-1.0)
    assert ring.restore(3) == 3
    assert_same(model.state_dict(), expected, "model")
    with torch.no_grad():
        model.inp.weight.fill_(-1.0)
    assert ring.restore(2) == (1 if on_worker else 2)
    assert torch.all(model.inp.weight == 0.5) != on_worker
    if worker is not None:
        worker.close()


class WithExtraState(nn.Linear):
    def get_extra_state(self):
        return {"calls": 3}

    def set_extra_state(self, state):
        self.extra = state


@pytest.mark.parametrize("case", ["extra_state", "lbfgs"])
def test_what_the_plan_does_not_cover_takes_the_state_dict_path(case):
    torch.manual_seed(0)
    model = WithExtraState(8, 8) if case == "extra_state" else nn.Linear(8, 8)
    opt = (torch.optim.LBFGS(model.parameters(), lr=0.1, history_size=3) if case == "lbfgs"
           else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=1, budget_bytes=64 << 20))
    x = torch.randn(16, 8)

    def closure():
        opt.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        return loss
    for _ in range(2):
        opt.step(closure)
    expected = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
    ck = ring.save(2)
    assert ring._plan is None and ring._no_plan
    assert_same(ck.model, expected[0], "model")
    assert_same(ck.optimizer, expected[1], "optimizer")
    opt.step(closure)
    assert ring.restore(2) == 2
    assert_same(model.state_dict(), expected[0], "restored model")
