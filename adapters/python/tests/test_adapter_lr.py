# SPDX-License-Identifier: Apache-2.0
"""LR burns over every chainable scheduler, step by step, through a real socket.

The lr the optimizer really used is read back from the update itself: plain SGD
on loss = sum(p) moves p by exactly -lr per step (float64).
"""
import pytest
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon
from orbit_adapter import Orbit
from orbit_adapter.rollback import CheckpointConfig

STEPS = 40
SCHEDULERS = {
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5),
    "ExponentialLR": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.93),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=9),
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.3, total_steps=STEPS + 1,
                                                                 cycle_momentum=False),
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0 / (1.0 + 0.3 * s)),
    "ReduceLROnPlateau": lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=2, factor=0.6),
}


class Param(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1, dtype=torch.float64))


def run(make_sched, daemon=None, burns=()):
    model = Param()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = make_sched(opt)
    orbit = None
    if daemon is not None:
        for b in burns:
            daemon.burn_at(**b)
        orbit = Orbit(endpoint=daemon.endpoint, run="lr-test", checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt, scheduler=sched)
        daemon.wait_hello()
    used, reported = [], []
    for step in range(1, STEPS + 1):
        before = model.p.item()
        opt.zero_grad()
        model.p.sum().backward()
        opt.step()
        used.append(before - model.p.item())
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(1.0)  # never improves: cuts every patience + 1 steps
        else:
            sched.step()
        if orbit is not None:
            orbit.step(step, 1.0)
            reported.append(orbit.last_lr)
            if any(b["for_step"] == step for b in burns):
                daemon.wait_replied(step, orbit)
    if orbit is not None:
        orbit.close()
    return used, reported


@pytest.fixture
def daemon():
    d = ScriptedDaemon()
    yield d
    d.close()


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_unchanged_at_scale_one_and_scaled_under_burns(name, daemon):
    reference, _ = run(SCHEDULERS[name])
    # Attached, the daemon answering but never burning: identical to the float.
    neutral, reported = run(SCHEDULERS[name], daemon)
    assert neutral == reference
    assert reported == pytest.approx(reference, rel=1e-12)

    d2 = ScriptedDaemon()
    try:
        burns = [dict(for_step=3, apply_at_step=8, lr_scale=0.5, expires_after_steps=12),
                 dict(for_step=22, apply_at_step=26, lr_scale=0.25, expires_after_steps=10)]
        used, reported = run(SCHEDULERS[name], d2, burns)
        d2.wait_for(lambda: len(d2.acks) == 2)
        acks = sorted(d2.acks, key=lambda a: a["seq"])
    finally:
        d2.close()
    for step in range(1, STEPS + 1):
        scale = 0.5 if 8 <= step < 20 else 0.25 if 26 <= step < 36 else 1.0
        expected = reference[step - 1] * scale
        assert used[step - 1] == pytest.approx(expected, rel=1e-9, abs=1e-15), (name, step)
        assert reported[step - 1] == pytest.approx(expected, rel=1e-12), (name, step)
    assert [(a["seq"], a["step"], a["late"]) for a in acks] == [(1, 8, False), (2, 26, False)]
    assert acks[0]["lr"] == pytest.approx(reference[7] * 0.5, rel=1e-12)
    assert acks[1]["lr"] == pytest.approx(reference[25] * 0.25, rel=1e-12)


def test_late_burn_applies_at_once_and_says_so(daemon):
    burns = [dict(for_step=5, apply_at_step=3, lr_scale=0.5, expires_after_steps=100)]
    used, _ = run(SCHEDULERS["StepLR"], daemon, burns)
    reference, _ = run(SCHEDULERS["StepLR"])
    daemon.wait_for(lambda: daemon.acks)
    ack = daemon.acks[0]
    # The reply to step 5's snapshot is read by orbit.step(5) when it is quick, else by
    # orbit.step(6): the next step is the first under the burn either way.
    first = ack["step"]
    assert ack["late"] is True and first in (6, 7)
    assert used[first - 2] == pytest.approx(reference[first - 2])
    assert used[first - 1] == pytest.approx(reference[first - 1] * 0.5)
    assert used[STEPS - 1] == pytest.approx(reference[STEPS - 1] * 0.5)


def test_scale_does_not_compound_across_burns(daemon):
    burns = [dict(for_step=2, apply_at_step=5, lr_scale=0.5),
             dict(for_step=8, apply_at_step=12, lr_scale=0.5)]
    used, _ = run(SCHEDULERS["ExponentialLR"], daemon, burns)
    reference, _ = run(SCHEDULERS["ExponentialLR"])
    assert used[20] == pytest.approx(reference[20] * 0.5, rel=1e-9)  # 0.5, not 0.25
