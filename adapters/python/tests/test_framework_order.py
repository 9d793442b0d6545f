# SPDX-License-Identifier: Apache-2.0
"""The HF Trainer and Lightning callbacks, called in the real libraries' order
(framework_drivers.py cites the versions and functions mirrored), with a real torch
model and a real orbitd or a scripted daemon on real sockets."""
import math
import threading

import pytest
import torch

from conftest import TEST_CONFIG, wait_for
from framework_drivers import (DeepSpeedStrategy, HFArgs, HFTrainer, PLModule, PLTrainer,
                               TinyCausalLM, hf_batch)
from torch_fixtures import ScriptedDaemon
from orbit_adapter import Orbit, callbacks
from orbit_adapter.callbacks import OrbitLightningCallback, OrbitTrainerCallback, OrbitTrainerMixin
from orbit_adapter.probes import ProbeConfig
from orbit_adapter.rollback import CheckpointConfig

ACTIVE_CONFIG = TEST_CONFIG.replace('mode = "monitor"', 'mode = "active"')
NO_PROBES = ProbeConfig(attention=False, hidden=False, output_entropy=False)


def status(daemon):
    return daemon.command("status")


def scripted():
    d = ScriptedDaemon()
    return d


def orbit_for(endpoint, run, every=0, **kw):
    return Orbit(endpoint=endpoint, run=run, probes=NO_PROBES,
                 checkpoints=CheckpointConfig(every=every), **kw)


def per_step_losses(forward_losses, k):
    """The full loss of each optimizer step: the mean of its k micro-batch losses."""
    return [sum(forward_losses[i:i + k]) / k for i in range(0, len(forward_losses), k)]


def test_callback_classes_derive_from_the_library_bases_when_installed():
    if callbacks.HAS_TRANSFORMERS:
        from transformers import TrainerCallback
        assert issubclass(OrbitTrainerCallback, TrainerCallback)
    if callbacks.HAS_LIGHTNING:
        assert issubclass(OrbitLightningCallback, callbacks._PLCallback)


# ---------------------------------------------------------------- transformers
@pytest.mark.parametrize("logging_steps", [1, 500])
def test_hf_each_snapshot_carries_its_own_steps_loss(logging_steps):
    d = scripted()
    try:
        torch.manual_seed(0)
        model = TinyCausalLM()
        orbit = orbit_for(d.endpoint, "hf-loss")
        tr = HFTrainer(model, HFArgs(max_steps=12, logging_steps=logging_steps),
                       callbacks=[OrbitTrainerCallback(orbit)])
        tr.train()
        d.wait_for(lambda: d.byes)
        snaps = d.snapshots
        assert [s["step"] for s in snaps] == list(range(1, 13))
        assert [s["loss"] for s in snaps] == pytest.approx(model.forward_losses, rel=1e-6)
        # The norm of the gradients the update used (HF clipped them to max_grad_norm=1).
        assert all(0 < s["grad_norm"] <= 1.0 + 1e-4 for s in snaps)
        if logging_steps == 1:  # HF's own per-step log agrees (it rounds to 4 digits)
            logged = [h["loss"] for h in tr.state.log_history if "loss" in h]
            assert logged == pytest.approx([s["loss"] for s in snaps], abs=1e-4)
    finally:
        d.close()


@pytest.mark.parametrize("logging_steps", [1, 500])
def test_hf_healthy_run_is_neither_rolled_back_nor_cut_by_a_real_orbitd(daemon_factory, logging_steps):
    daemon = daemon_factory("tcp", config=ACTIVE_CONFIG).start()
    torch.manual_seed(0)
    model = TinyCausalLM()
    orbit = orbit_for(daemon.endpoint, f"hf-healthy-{logging_steps}", every=5)
    replies = []
    orbit.on_reply = replies.append
    tr = HFTrainer(model, HFArgs(max_steps=30, logging_steps=logging_steps),
                   callbacks=[OrbitTrainerCallback(orbit)])
    tr.train()
    assert all(math.isfinite(x) for x in model.forward_losses)
    # The daemon processed all 30 steps of the run (its session closed with the bye).
    st = wait_for(lambda: [r for r in status(daemon)["runs"] if r["step"] == 30] or None, 10)
    assert st, status(daemon)
    assert status(daemon)["stats"]["snapshots"] == 30
    assert orbit.rollbacks == []
    assert [b for b in orbit.applied if b.lr_scale < 1.0] == []
    assert "CRITICAL" not in orbit.states_visited, orbit.states_visited


@pytest.mark.parametrize("accepts_loss_kwargs", [False, True])
def test_hf_accumulation_reports_each_optimizer_step_once_with_its_full_loss(accepts_loss_kwargs):
    d = scripted()
    try:
        torch.manual_seed(0)
        model = TinyCausalLM(accepts_loss_kwargs=accepts_loss_kwargs)
        orbit = orbit_for(d.endpoint, "hf-accum")
        tr = HFTrainer(model, HFArgs(max_steps=6, gradient_accumulation_steps=4, logging_steps=500),
                       callbacks=[OrbitTrainerCallback(orbit)])
        tr.train()
        d.wait_for(lambda: d.byes)
        assert [s["step"] for s in d.snapshots] == list(range(1, 7))
        assert [s["loss"] for s in d.snapshots] == pytest.approx(per_step_losses(model.forward_losses, 4),
                                                                rel=1e-5)
    finally:
        d.close()


def test_hf_a_real_nan_reaches_the_daemon_although_hfs_log_filter_hides_it():
    d = scripted()
    try:
        torch.manual_seed(0)
        model = TinyCausalLM()
        poisoned = {4}

        def make_batch(i):
            b = hf_batch(i)
            if i + 1 in poisoned:  # step 4's batch: labels out of range -> NaN? use inf logits
                b["input_ids"] = b["input_ids"].clone()
                b["poison"] = True
            return b

        real_forward = model.forward

        def forward(input_ids, labels=None, poison=False, **kw):
            out = real_forward(input_ids, labels=labels, **kw)
            if poison:
                out["loss"] = out["loss"] * float("nan")
            return out
        model.forward = forward
        orbit = orbit_for(d.endpoint, "hf-nan")
        tr = HFTrainer(model, HFArgs(max_steps=4, logging_steps=1, max_grad_norm=0.0),
                       callbacks=[OrbitTrainerCallback(orbit)], make_batch=make_batch)
        tr.train()
        d.wait_for(lambda: d.byes)
        logged = {h["step"]: h["loss"] for h in tr.state.log_history if "loss" in h}
        assert math.isfinite(logged[4])                      # HF's filter hid it ...
        assert math.isnan(d.snapshots[3]["loss"])            # ... the daemon saw it
        assert all(math.isfinite(s["loss"]) for s in d.snapshots[:3])
    finally:
        d.close()


def test_hf_resume_puts_the_burn_in_force_back(tmp_path):
    d = scripted()
    try:
        d.burn_at(for_step=3, apply_at_step=5, lr_scale=0.5, expires_after_steps=1000)
        torch.manual_seed(0)
        args = HFArgs(max_steps=12, logging_steps=500, save_steps=8, output_dir=str(tmp_path))
        orbit = orbit_for(d.endpoint, "hf-resume")
        cb = OrbitTrainerCallback(orbit)

        class StopAt8:
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == 3:
                    d.wait_replied(3, orbit)
                if state.global_step == 8:
                    control.should_training_stop = True
        tr = HFTrainer(TinyCausalLM(), args, callbacks=[cb, StopAt8()])
        tr.train()
        assert tr.lrs_used[8] == pytest.approx(0.5e-3 * (1 - 7 / 12))  # the burn was in force

        # A new process: new model, Orbit, callback and trainer, resumed from checkpoint-8.
        orbit2 = orbit_for(d.endpoint, "hf-resume")
        tr2 = HFTrainer(TinyCausalLM(), args, callbacks=[OrbitTrainerCallback(orbit2)])
        tr2.train(resume_from_checkpoint=str(tmp_path / "checkpoint-8"))
        assert tr2.lrs_used[9] == pytest.approx(0.5e-3 * (1 - 8 / 12))
        assert orbit2.state_dict()["active"]["seq"] == 1
    finally:
        d.close()


def test_hf_two_ranks_register_as_two_ranks(daemon_factory):
    daemon = daemon_factory("tcp", config=TEST_CONFIG).start()
    barrier = threading.Barrier(3, timeout=30)
    errors = []

    class Hold:  # both ranks pause mid-run while the test reads the daemon's sessions
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:
                barrier.wait()
                barrier.wait()

    def run(rank):
        try:
            torch.manual_seed(rank)
            orbit = orbit_for(daemon.endpoint, "hf-ddp")
            HFTrainer(TinyCausalLM(), HFArgs(max_steps=8, process_index=rank, world_size=2),
                      callbacks=[OrbitTrainerCallback(orbit), Hold()]).train()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()
    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    barrier.wait()
    try:
        sessions = wait_for(lambda: [s for s in status(daemon)["sessions"]
                                     if s["run"] == "hf-ddp" and s["snapshots"] >= 5]
                            if len([s for s in status(daemon)["sessions"]
                                    if s["run"] == "hf-ddp" and s["snapshots"] >= 5]) == 2 else None, 10)
        runs = [r for r in status(daemon)["runs"] if r["run"] == "hf-ddp"]
    finally:
        barrier.wait()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert sessions and sorted(s["rank"] for s in sessions) == [0, 1]
    assert runs and runs[0]["world_size"] == 2


def test_hf_refuses_deepspeed_at_train_begin():
    orbit = orbit_for(None, "hf-ds")
    tr = HFTrainer(TinyCausalLM(), HFArgs(max_steps=3, deepspeed="ds_config.json"),
                   callbacks=[OrbitTrainerCallback(orbit)], deepspeed_wrapper=True)
    with pytest.raises(RuntimeError, match="DeepSpeed"):
        tr.train()
    # The optimizer wrapper alone (args not saying so) is caught by Orbit.attach.
    orbit = orbit_for(None, "hf-ds2")
    tr = HFTrainer(TinyCausalLM(), HFArgs(max_steps=3), callbacks=[OrbitTrainerCallback(orbit)],
                   deepspeed_wrapper=True)
    with pytest.raises(RuntimeError, match="DeepSpeed"):
        tr.train()


def test_hf_refuses_rollback_under_fsdp():
    tr = HFTrainer(TinyCausalLM(), HFArgs(max_steps=3, fsdp=["full_shard"]),
                   callbacks=[OrbitTrainerCallback(orbit_for(None, "hf-fsdp", every=5))])
    with pytest.raises(RuntimeError, match="FSDP"):
        tr.train()
    # Without rollback there is nothing sharded to checkpoint: it trains.
    tr = HFTrainer(TinyCausalLM(), HFArgs(max_steps=3, fsdp=["full_shard"]),
                   callbacks=[OrbitTrainerCallback(orbit_for(None, "hf-fsdp2", every=0))])
    tr.train()


def test_hf_second_train_attaches_again():
    d = scripted()
    try:
        orbit = orbit_for(d.endpoint, "hf-twice")
        tr = HFTrainer(TinyCausalLM(), HFArgs(max_steps=4), callbacks=[OrbitTrainerCallback(orbit)])
        tr.train()
        d.wait_for(lambda: len(d.byes) == 1)
        tr.train()
        d.wait_for(lambda: len(d.byes) == 2)
        assert len(d.hellos) == 2
        assert [s["step"] for s in d.snapshots] == [1, 2, 3, 4, 1, 2, 3, 4]
    finally:
        d.close()


def test_hf_orbit_view_reaches_logs_and_with_the_mixin_the_log_history():
    d = scripted()
    try:
        d.burn_at(for_step=2, apply_at_step=3, lr_scale=0.5, expires_after_steps=1000)
        seen = []

        class Reporter:  # a reporting integration listed after Orbit's callback
            def on_log(self, args, state, control, logs=None, **kw):
                seen.append(dict(logs))
        orbit = orbit_for(d.endpoint, "hf-logs")

        class Wait:
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == 2:
                    d.wait_replied(2, orbit)
        tr = HFTrainer(TinyCausalLM(), HFArgs(max_steps=5, logging_steps=1),
                       callbacks=[OrbitTrainerCallback(orbit), Wait(), Reporter()])
        tr.train()
        last = seen[-1]
        assert last["orbit/lr_scale"] == 0.5 and last["orbit/burns"] == 1.0
        assert last["orbit/state"] in callbacks.STATE_CODES.values()
        assert last["orbit/lr"] == pytest.approx(0.5 * last["learning_rate"])

        class MixedTrainer(OrbitTrainerMixin, HFTrainer):
            pass
        orbit2 = orbit_for(d.endpoint, "hf-logs2")
        tr2 = MixedTrainer(TinyCausalLM(), HFArgs(max_steps=3, logging_steps=1, max_grad_norm=0.01),
                           callbacks=[OrbitTrainerCallback(orbit2)])
        tr2.train()
        assert all("orbit/lr_scale" in h for h in tr2.state.log_history)
        # The mixin sends the norm HF logs, taken before clipping to 0.01.
        d.wait_for(lambda: len([s for s in d.snapshots if s["run"] == "hf-logs2"]) == 3)
        sent = [s["grad_norm"] for s in d.snapshots if s["run"] == "hf-logs2"]
        logged = [h["grad_norm"] for h in tr2.state.log_history if "grad_norm" in h]
        assert sent == pytest.approx(logged, rel=1e-5) and min(sent) > 0.05
    finally:
        d.close()


def test_hf_custom_compute_loss_needs_the_mixin_and_works_with_it():
    d = scripted()
    try:
        class OutsideLoss:  # compute_loss outside the model: its output has no loss
            def compute_loss(self, model, inputs, num_items_in_batch=None):
                out = model(inputs["input_ids"])
                return torch.nn.functional.cross_entropy(out["logits"].reshape(-1, 11),
                                                         inputs["labels"].reshape(-1)) * 2.0

        class Plain(OutsideLoss, HFTrainer):
            pass
        with pytest.raises(RuntimeError, match="OrbitTrainerMixin"):
            Plain(TinyCausalLM(), HFArgs(max_steps=3),
                  callbacks=[OrbitTrainerCallback(orbit_for(d.endpoint, "hf-custom"))]).train()

        class Mixed(OrbitTrainerMixin, OutsideLoss, HFTrainer):
            pass
        tr = Mixed(TinyCausalLM(), HFArgs(max_steps=3, logging_steps=1),
                   callbacks=[OrbitTrainerCallback(orbit_for(d.endpoint, "hf-custom2"))])
        tr.train()
        d.wait_for(lambda: [s for s in d.snapshots if s["run"] == "hf-custom2" and s["step"] == 3])
        sent = [s["loss"] for s in d.snapshots if s["run"] == "hf-custom2"]
        assert sent == pytest.approx([h["loss"] for h in tr.state.log_history if "loss" in h], abs=1e-4)
    finally:
        d.close()


# ---------------------------------------------------------------- Lightning
def test_lightning_accumulation_reports_each_optimizer_step_once_with_its_full_loss():
    d = scripted()
    try:
        torch.manual_seed(0)
        module = PLModule()
        orbit = orbit_for(d.endpoint, "pl-accum")
        PLTrainer([OrbitLightningCallback(orbit)], accumulate_grad_batches=4, max_steps=6).fit(module)
        d.wait_for(lambda: d.byes)
        assert [s["step"] for s in d.snapshots] == list(range(1, 7))
        assert [s["loss"] for s in d.snapshots] == pytest.approx(per_step_losses(module.step_losses, 4),
                                                                rel=1e-5)
        assert all(s["grad_norm"] > 0 for s in d.snapshots)
    finally:
        d.close()


def test_lightning_accumulation_under_a_real_orbitd_sends_one_snapshot_per_step(daemon_factory):
    daemon = daemon_factory("tcp", config=ACTIVE_CONFIG).start()
    torch.manual_seed(0)
    # One reply per snapshot (not news only), so the replies show every step's snapshot.
    orbit = orbit_for(daemon.endpoint, "pl-real", every=5, client_options={"replies": "every"})
    replies = []
    orbit.on_reply = replies.append
    PLTrainer([OrbitLightningCallback(orbit)], accumulate_grad_batches=4, max_steps=20).fit(PLModule())
    got = wait_for(lambda: [r for r in status(daemon)["runs"] if r["step"] == 20] or None, 10)
    assert got, status(daemon)
    assert status(daemon)["stats"]["snapshots"] == 20
    # The replies read before close answer steps 1, 2, 3, ... once each, in order.
    steps = [r["step"] for r in replies if r["type"] == "state" and "step" in r]
    assert len(steps) >= 15 and steps == list(range(1, len(steps) + 1))
    assert orbit.rollbacks == [] and "CRITICAL" not in orbit.states_visited


def test_lightning_resume_puts_the_burn_in_force_back():
    d = scripted()
    try:
        d.burn_at(for_step=3, apply_at_step=5, lr_scale=0.5, expires_after_steps=1000)
        torch.manual_seed(0)
        orbit = orbit_for(d.endpoint, "pl-resume")

        class Wait:
            def on_train_batch_end(self, trainer, module, outputs, batch, i):
                if trainer.global_step == 3:
                    d.wait_replied(3, orbit)
        t1 = PLTrainer([OrbitLightningCallback(orbit), Wait()], max_steps=8, horizon=10)
        t1.fit(PLModule())
        assert orbit.last_lr == pytest.approx(0.5e-3 * (1 - 7 / 10))
        ckpt = t1.save_checkpoint()

        orbit2 = orbit_for(d.endpoint, "pl-resume")
        t2 = PLTrainer([OrbitLightningCallback(orbit2)], max_steps=10)
        t2.fit(PLModule(), ckpt_path=ckpt)
        sched_lr = 1e-3 * (1 - 9 / 10)           # step 10 ran at LambdaLR index 9
        assert orbit2.last_lr == pytest.approx(0.5 * sched_lr)
    finally:
        d.close()


def test_lightning_rank_and_world_size_come_from_the_trainer_and_metrics_are_logged():
    d = scripted()
    try:
        module = PLModule()
        orbit = orbit_for(d.endpoint, "pl-rank")
        PLTrainer([OrbitLightningCallback(orbit)], max_steps=3, global_rank=1, world_size=2).fit(module)
        d.wait_for(lambda: d.byes)
        assert (d.hellos[0]["rank"], d.hellos[0]["world_size"]) == (1, 2)
        assert len(module.logged) == 3 and "orbit/lr_scale" in module.logged[-1]
    finally:
        d.close()


def test_lightning_refuses_deepspeed():
    cb = OrbitLightningCallback(orbit_for(None, "pl-ds"))
    with pytest.raises(RuntimeError, match="DeepSpeed"):
        PLTrainer([cb], max_steps=2, strategy=DeepSpeedStrategy()).fit(PLModule())


def test_hf_train_end_puts_back_the_forward_it_found():
    model = TinyCausalLM()
    found = model.forward          # e.g. accelerate's autocast wrapper, an instance attribute
    model.forward = found
    HFTrainer(model, HFArgs(max_steps=2), callbacks=[OrbitTrainerCallback(orbit_for(None, "fw"))]).train()
    assert model.__dict__["forward"] is found
    plain = TinyCausalLM()
    HFTrainer(plain, HFArgs(max_steps=2), callbacks=[OrbitTrainerCallback(orbit_for(None, "fw2"))]).train()
    assert "forward" not in plain.__dict__


def test_plain_attach_refuses_a_deepspeed_engine_and_rollback_of_a_sharded_model():
    class DeepSpeedEngine(torch.nn.Module):  # deepspeed is not installed: its class names
        def __init__(self, module):
            super().__init__()
            self.module = module

    class FullyShardedDataParallel(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module
    inner = TinyCausalLM()
    opt = torch.optim.SGD(inner.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="DeepSpeed"):
        orbit_for(None, "ds").attach(DeepSpeedEngine(inner), opt)
    with pytest.raises(RuntimeError, match="sharded"):
        orbit_for(None, "fsdp", every=5).attach(FullyShardedDataParallel(inner), opt)
    orbit_for(None, "fsdp-no-rollback", every=0).attach(FullyShardedDataParallel(inner), opt).close()

    class DeepSpeedTransformerLayer(torch.nn.Module):  # a fused layer inside a plain model
        pass
    inner.extra = DeepSpeedTransformerLayer()
    orbit_for(None, "fused").attach(inner, opt).close()


def test_hf_data_actuators_reach_the_sampler_given_to_the_callback():
    from orbit_adapter.sampler import DomainMixtureSampler
    d = scripted()
    try:
        d.burn_at(for_step=2, apply_at_step=3, lr_scale=1.0, domain_weights={"a": 0.9, "b": 0.1})
        sampler = DomainMixtureSampler({"a": 50, "b": 50}, 4, seed=0)
        orbit = orbit_for(d.endpoint, "hf-data", domains=("a", "b"))

        class Wait:
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == 2:
                    d.wait_replied(2, orbit)
        HFTrainer(TinyCausalLM(), HFArgs(max_steps=4),
                  callbacks=[OrbitTrainerCallback(orbit, sampler=sampler), Wait()]).train()
        assert "domain_weights" in d.hellos[0]["actuators"]
        assert sampler.weights["a"] == pytest.approx(0.9)
    finally:
        d.close()


def test_lightning_second_fit_attaches_again():
    d = scripted()
    try:
        cb = OrbitLightningCallback(orbit_for(d.endpoint, "pl-twice"))
        PLTrainer([cb], max_steps=3).fit(PLModule())
        d.wait_for(lambda: len(d.byes) == 1)
        PLTrainer([cb], max_steps=3).fit(PLModule())
        d.wait_for(lambda: len(d.byes) == 2)
        assert len(d.hellos) == 2 and [s["step"] for s in d.snapshots] == [1, 2, 3, 1, 2, 3]
    finally:
        d.close()
