# SPDX-License-Identifier: Apache-2.0
"""The trainer-callback logic (OrbitHooks) on the plain-torch path, as HF / Lightning drive it."""
import math

import pytest
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon, TinyLM, tiny_batch
from orbit_adapter import Orbit, callbacks
from orbit_adapter.callbacks import OrbitHooks
from orbit_adapter.rollback import CheckpointConfig


def test_framework_classes_exist_exactly_when_their_library_does():
    assert hasattr(callbacks, "OrbitTrainerCallback") == callbacks.HAS_TRANSFORMERS
    assert hasattr(callbacks, "OrbitLightningCallback") == callbacks.HAS_LIGHTNING


def test_hooks_drive_orbit_like_a_trainer_does():
    d = ScriptedDaemon()
    try:
        d.burn_at(for_step=4, apply_at_step=7, lr_scale=0.5, expires_after_steps=100)
        torch.manual_seed(0)
        model = TinyLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.StepLR(opt, 5, 0.5)
        hooks = OrbitHooks(Orbit(endpoint=d.endpoint, run="hooks", checkpoints=CheckpointConfig(every=0)))
        hooks.step_end(0, 1.0)                       # before train start: ignored, no error
        hooks.train_begin(model, opt, sched)         # on_train_begin / on_train_start
        d.wait_hello()
        losses = []
        for step in range(1, 11):
            x, y = tiny_batch(step)
            loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf))
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 2 == 0:
                hooks.log({"loss": loss.item(), "grad_norm": gn, "learning_rate": 0.0})  # on_log
                hooks.step_end(step)                                                   # on_step_end (HF)
            else:
                hooks.step_end(step, loss)            # on_train_batch_end (Lightning: outputs["loss"])
            if step == 4:
                d.wait_replied(4, hooks.orbit)
        state = hooks.state_dict()
        assert hooks.orbit.lr_scale == 0.5 and state["active"]["lr_scale"] == 0.5
        hooks.train_end()                            # on_train_end
        d.wait_for(lambda: d.byes)
        snaps = {s["step"]: s for s in d.snapshots}
        assert [snaps[s]["loss"] for s in range(1, 11)] == pytest.approx(losses)
        assert "grad_norm" in snaps[2]
        assert d.acks and d.acks[0]["step"] == 7
    finally:
        d.close()
