# SPDX-License-Identifier: Apache-2.0
"""Rollback burns restore model, optimizer, scheduler, sampler and RNG bit for bit."""
import copy

import pytest
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon, TinyLM
from orbit_adapter import Orbit
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


def test_rollback_burn_restores_everything_bit_for_bit():
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
                      checkpoints=CheckpointConfig(every=5))
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
