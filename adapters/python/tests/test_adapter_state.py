# SPDX-License-Identifier: Apache-2.0
"""orbit.state_dict(): a resumed run neither repeats nor skips samples, and keeps its burn."""
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon
from orbit_adapter import Orbit
from orbit_adapter.rollback import CheckpointConfig
from orbit_adapter.sampler import DomainMixtureSampler

SIZES = {"prose": 40, "code": 25, "data": 15}
BURN = dict(for_step=3, apply_at_step=6, lr_scale=0.5, expires_after_steps=1000,
            domain_weights={"prose": 0.2, "code": 0.7, "data": 0.1})


def new_objects():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sampler = DomainMixtureSampler(SIZES, 6, seed=11)
    return model, opt, sampler


def train(orbit, opt, sampler, steps, daemon, picks):
    for step in steps:
        picks.append(sampler.next_batch())
        opt.step()
        orbit.step(step, 1.0)
        if step == BURN["for_step"]:
            daemon.wait_replied(step, orbit)


def test_resume_neither_repeats_nor_skips_and_keeps_the_burn():
    # Uninterrupted reference: 30 steps.
    d = ScriptedDaemon()
    try:
        d.burn_at(**BURN)
        model, opt, sampler = new_objects()
        orbit = Orbit(endpoint=d.endpoint, run="resume-ref", domains=tuple(SIZES),
                      checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt, sampler=sampler)
        d.wait_hello()
        reference = []
        train(orbit, opt, sampler, range(1, 31), d, reference)
        orbit.close()
    finally:
        d.close()

    # Interrupted after step 15: state_dict, fresh process objects, load, continue.
    d = ScriptedDaemon()
    try:
        d.burn_at(**BURN)
        model, opt, sampler = new_objects()
        orbit = Orbit(endpoint=d.endpoint, run="resume-a", domains=tuple(SIZES),
                      checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt, sampler=sampler)
        d.wait_hello()
        got = []
        train(orbit, opt, sampler, range(1, 16), d, got)
        state = orbit.state_dict()
        orbit.close()
        assert state["sampler"]["weights"]["code"] > 0.6

        model, opt, sampler = new_objects()
        orbit = Orbit(endpoint=d.endpoint, run="resume-b", domains=tuple(SIZES),
                      checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt, sampler=sampler)
        orbit.load_state_dict(state)
        assert orbit.lr_scale == 0.5
        train(orbit, opt, sampler, range(16, 31), d, got)
        orbit.close()
    finally:
        d.close()

    assert got == reference
    # Within each domain's first epoch no sample appears twice.
    for dom, n in SIZES.items():
        idx = [i for batch in got for d_, i in batch if d_ == dom][:n]
        assert len(idx) == len(set(idx)), dom


def test_curriculum_burn_moves_the_phase_and_gates_domains():
    d = ScriptedDaemon()
    try:
        d.burn_at(for_step=2, apply_at_step=4, curriculum_phase=1, expires_after_steps=1000)
        model, opt, _ = new_objects()
        sampler = DomainMixtureSampler(SIZES, 6, seed=11, phases=[["prose"], ["prose", "code"]])
        orbit = Orbit(endpoint=d.endpoint, run="curriculum", domains=tuple(SIZES),
                      checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt, sampler=sampler)
        d.wait_hello()
        assert {"domain_weights", "curriculum"} <= set(d.hellos[0]["actuators"])
        drawn = {}
        for step in range(1, 30):
            drawn[step] = {dom for dom, _ in sampler.next_batch()}
            orbit.step(step, 1.0)
            if step == 2:
                d.wait_replied(2, orbit)
        orbit.close()
    finally:
        d.close()
    assert set().union(*(drawn[s] for s in range(1, 4))) == {"prose"}
    assert set().union(*(drawn[s] for s in range(4, 30))) == {"prose", "code"}  # data stays gated
