# SPDX-License-Identifier: Apache-2.0
"""The adapter against a real orbitd: the example model's snapshots, forced burns, rollback."""
import os
import sys

import pytest
import torch

from conftest import REPO, TEST_CONFIG, wait_for
from torch_fixtures import TinyLM, tiny_batch
from orbit_adapter import Orbit
from orbit_adapter.probes import ProbeConfig
from orbit_adapter.rollback import CheckpointConfig

sys.path.insert(0, os.path.join(str(REPO), "examples", "pytorch"))
ACTIVE_CONFIG = TEST_CONFIG.replace('mode = "monitor"', 'mode = "active"')


def control(daemon, cmd, **fields):
    return daemon.command(cmd, **fields)


def train_steps(model, opt, orbit, steps, losses=None):
    for step in steps:
        x, y = tiny_batch(step % 7)
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        orbit.step(step, loss.item())
        if losses is not None:
            losses.append(loss.item())


@pytest.mark.parametrize("attn,replies", [("torch", "every"), ("custom", "every"), ("torch", "news")])
def test_example_model_snapshots_are_accepted_and_answered(orbitd_tcp, attn, replies):
    orbitd = orbitd_tcp
    """Both attention paths of the example trainer, every probe on, monitor mode; with one
    reply per snapshot, and with replies on news only (the adapter's default: here every
    probe step's snapshot, every 2nd, has spectra and so gets its reply)."""
    from train import CharTransformer, VOCAB
    torch.manual_seed(0)
    model = CharTransformer(len(VOCAB), d=32, layers=2, heads=4, context=16, attn=attn)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    orbit = Orbit(endpoint=orbitd.endpoint, run=f"example-{attn}-{replies}", domains=("prose", "code"),
                  probes=ProbeConfig(spectra_every=2, weights=None), client_options={"replies": replies})
    orbit.attach(model, opt)
    if attn == "custom":
        for block in model.blocks:
            orbit.register_attention(block.attn)
    seen = []
    orbit.on_reply = seen.append
    g = torch.Generator().manual_seed(0)
    for step in range(1, 41):
        x = torch.randint(0, len(VOCAB), (4, 17), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).reshape(-1, len(VOCAB)), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        orbit.step(step, loss.item(), domain_losses={"prose": loss.item()})
        if step == 1:
            assert wait_for(lambda: (orbit.poll(), orbit.connected)[1], 30)
    # Without news, one state per snapshot; with news, the first, those with spectra
    # and those with another forecast, and orbitd counts the others as withheld.
    stats = lambda: control(orbitd, "status")["stats"]  # noqa: E731
    answered = lambda: sum(r["type"] == "state" for r in seen) + stats()["states_withheld"]  # noqa: E731
    assert wait_for(lambda: (orbit.poll(), stats()["snapshots"] == 40 and answered() == 40)[1], 30)
    withheld = stats()["states_withheld"]
    summary = orbit.summary()
    orbit.close()
    states = [r for r in seen if r["type"] == "state"]
    if replies == "every":
        assert len(states) == 40 and withheld == 0
    else:
        # (which steps carry spectra depends on when the welcome came: probes arm once
        # the daemon has answered)
        spectral = [r for r in states if any(k.startswith("hidden.") for k in r["metrics"])]
        assert len(states) + withheld == 40 and withheld > 0 and len(spectral) >= 15
    assert not [r for r in seen if r["type"] == "error"]
    assert summary["client"]["errors"] == 0
    # The daemon computed metrics from the hidden-state spectra the probes sent.
    assert any(k.startswith("hidden.") for k in states[-1]["metrics"]), states[-1]["metrics"]


def test_forced_burns_reach_the_trainer_and_are_acknowledged(daemon_factory):
    d = daemon_factory("tcp", config=ACTIVE_CONFIG).start()
    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=0.5)
    orbit = Orbit(endpoint=d.endpoint, run="forced", checkpoints=CheckpointConfig(every=5),
                  probes=ProbeConfig(attention=False, hidden=False, output_entropy=False))
    orbit.attach(model, opt, scheduler=sched)
    train_steps(model, opt, orbit, range(1, 21))
    assert wait_for(lambda: control(d, "status")["ok"], 5)
    reply = control(d, "burn", run="forced", lr_scale=0.5, expires_after_steps=1000, reason="test")
    assert reply["ok"], reply
    apply_at = reply["burn"]["apply_at_step"]
    step = 20
    while orbit.lr_scale != 0.5 and step < 400:
        step += 1
        train_steps(model, opt, orbit, [step])
    assert orbit.lr_scale == 0.5
    burn = orbit.applied[-1]
    assert burn.seq == reply["burn"]["seq"] and burn.applied_step >= apply_at
    train_steps(model, opt, orbit, [step + 1])
    assert orbit.last_lr == pytest.approx(0.05)

    # A rollback burn: the newest checkpoint at or before the asked step comes back.
    saved_step = max(s for s in orbit.checkpoint_steps if s <= step - 3)
    reply = control(d, "burn", run="forced", lr_scale=0.5, expires_after_steps=1000,
                    rollback_to_step=step - 3, reason="test rollback")
    assert reply["ok"], reply
    start = step + 1
    for step in range(start + 1, start + 200):
        train_steps(model, opt, orbit, [step])
        if orbit.rollbacks:
            break
    assert orbit.rollbacks and orbit.rollbacks[0]["restored_step"] == saved_step
    train_steps(model, opt, orbit, [step + 1, step + 2])
    status = control(d, "status")
    assert status["ok"]
    orbit.close()
    assert d.stop() == 0


def test_example_trainer_runs_under_a_real_orbitd(orbitd_tcp, tmp_path):
    """examples/pytorch/train.py --control on, end to end (hand-written attention path)."""
    import json
    import subprocess
    out = tmp_path / "run.json"
    cmd = [sys.executable, os.path.join(str(REPO), "examples", "pytorch", "train.py"),
           "--steps", "30", "--control", "on", "--endpoint", orbitd_tcp.endpoint, "--run", "example-e2e",
           "--attn", "custom", "--spectra-every", "1", "--loop-every", "10", "--eval-every", "0",
           "--final-eval-windows", "64", "--quiet", "--json-out", str(out)]
    subprocess.run(cmd, check=True, timeout=300)
    res = json.loads(out.read_text())
    o = res["orbit"]
    assert o["client"]["snapshots"] == 30 and o["client"]["errors"] == 0
    assert o["client"]["states"] >= 25          # monitor mode: every answer is a state
    assert o["states_visited"] and not o["errors"]
    metrics = o["last_state"]["metrics"]    # the daemon read the probes' spectra
    assert any(k.startswith("attn.0.") for k in metrics) and any(k.startswith("hidden.1.") for k in metrics)
    assert res["final_val_loss"] < 4.6          # below ln(97): it learned something
