# SPDX-License-Identifier: Apache-2.0
"""What keeps the adapter's per-step cost down: the client mode chosen for the model's
device, a client thread that is woken once per sleep (not once per message), probes
that never read a device value inside the training forward, and the checkpoint
ring's CUDA side stream (selected only for CUDA state)."""
import math
import os
import threading

import pytest
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon, TinyLM, slow_copy_jobs, tiny_batch, tiny_train_step
from orbit_adapter import Orbit
from orbit_adapter import client_thread as client_thread_module
from orbit_adapter.client import OrbitClient
from orbit_adapter.client_thread import ClientThread
from orbit_adapter.probes import ModelProbes, ProbeConfig
from orbit_adapter.rollback import CheckpointConfig, CheckpointRing


@pytest.mark.parametrize("given, expected", [("auto", False), (True, True), (False, False)])
def test_the_client_thread_is_used_as_given_and_auto_leaves_it_out_for_a_cpu_model(given, expected):
    d = ScriptedDaemon()
    try:
        model = TinyLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        orbit = Orbit(endpoint=d.endpoint, run=f"mode-{given}", client_thread=given,
                      checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt)
        x, y = tiny_batch(1)
        nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1)).backward()
        opt.step()
        orbit.step(1, 1.0)
        assert orbit.uses_client_thread() is expected
        assert isinstance(orbit._link.client, ClientThread) is expected
        assert (orbit.summary()["client_thread"] is not None) is expected
        orbit.close()
    finally:
        d.close()


def test_client_thread_must_be_a_bool_or_auto():
    with pytest.raises(ValueError, match="client_thread"):
        Orbit(endpoint=None, client_thread="yes")


def test_a_busy_client_thread_is_not_woken_for_every_message(monkeypatch):
    """Messages queued while the thread works add to its queue without a wake-up
    write each (a write per message costs the thread a pipe read and a poll each);
    none of them is lost."""
    writes = []
    real_write = os.write

    def counting_write(fd, data):
        writes.append(fd)
        return real_write(fd, data)

    monkeypatch.setattr(client_thread_module.os, "write", counting_write)
    d = ScriptedDaemon()
    try:
        ct = ClientThread(OrbitClient(d.endpoint, run="wakes", queue_limit=5000))
        d.wait_hello()
        busy, release = threading.Event(), threading.Event()

        def hold():
            busy.set()
            release.wait(20)
            return {}

        ct.send_snapshot(0, 1.0, prepare=hold, time=0.0)
        assert busy.wait(20)
        before = len(writes)
        for step in range(1, 101):
            ct.send_snapshot(step, 1.0, time=0.0)
        queued_while_busy = len(writes) - before
        release.set()
        assert ct.flush(20)
        d.wait_for(lambda: len(d.snapshots) == 101)
        ct.close()
        steps = [s["step"] for s in d.snapshots]
    finally:
        d.close()
    assert queued_while_busy == 0
    assert steps == list(range(101))


class _NoHostReads:
    """Fails any read of a tensor's value on the host (what syncs a CUDA device) by the
    thread that entered; other threads (the client thread) read as usual."""

    def __enter__(self):
        self.saved = {name: getattr(torch.Tensor, name) for name in ("item", "__float__", "tolist")}
        me = threading.get_ident()

        def guard(name, original):
            def read(*args, **kwargs):
                if threading.get_ident() == me:
                    raise AssertionError(f"Tensor.{name} read a value on the training thread")
                return original(*args, **kwargs)
            return read
        for name, original in self.saved.items():
            setattr(torch.Tensor, name, guard(name, original))
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(torch.Tensor, name, fn)


@pytest.mark.parametrize("kind", ["mha", "custom"])
def test_armed_probes_read_nothing_on_the_host_inside_the_forward(kind):
    torch.manual_seed(0)
    if kind == "mha":
        model, vocab = TinyLM(), 11
    else:
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                        "examples", "pytorch"))
        from train import CharTransformer, VOCAB
        model, vocab = CharTransformer(len(VOCAB), d=32, layers=2, heads=4, context=16,
                                       attn="custom"), len(VOCAB)
    probes = ModelProbes(model, ProbeConfig())
    if kind == "custom":
        for block in model.blocks:
            probes.register_attention(block.attn)
    probes.arm()
    x, _ = tiny_batch(1, context=8, vocab=vocab)
    with _NoHostReads():
        model(x)
        capture = probes.take()
    spectra, scalars = probes.finish(capture)  # the host reads happen here
    assert {"attn.0", "attn.1", "hidden.0", "hidden.1"} <= set(spectra)
    for i in (0, 1):
        assert isinstance(scalars[f"attn_entropy.{i}"], float)
        sv = spectra[f"attn.{i}"]
        assert sv.dtype == torch.float32 and torch.isfinite(sv).all() and sv.max() > 0
    assert scalars["attn_entropy_min"] == min(scalars["attn_entropy.0"], scalars["attn_entropy.1"])
    if kind == "mha":
        assert isinstance(scalars["attn_logit_max"], float) and math.isfinite(scalars["attn_logit_max"])


def test_the_ring_selects_no_side_stream_for_cpu_state():
    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=1, budget_bytes=64 << 20))
    x, y = tiny_batch(1)
    nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1)).backward()
    opt.step()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    ck = ring.save(1)
    assert ring._copy_stream is None and ring._step_hook is None and ring._pending_copy is None
    assert not any(t.is_pinned() for t in ck.model.values())
    opt.step()
    assert ring.restore(1) == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    ring.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (side streams)")
def test_side_stream_copies_of_a_cuda_model_land_before_the_next_update_changes_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.Linear(64, 8)).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-1)
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=1, budget_bytes=64 << 20))
    x = torch.randn(32, 64, device="cuda")
    model(x).square().mean().backward()
    opt.step()
    saved = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ring.save(1)
    assert ring._copy_stream is not None
    for _ in range(3):  # forwards change the BatchNorm buffers, updates the parameters
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    assert ring.restore(1) == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), saved[k]), k
    ring.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (side streams)")
def test_the_client_thread_reads_cuda_values_on_its_own_stream():
    d = ScriptedDaemon()
    try:
        ct = ClientThread(OrbitClient(d.endpoint, run="cuda-values"))
        d.wait_hello()
        g = torch.full((), 2.5, device="cuda")
        ct.send_snapshot(1, 1.0, grad_norm=g * 2, spectra={"hidden.0": torch.arange(4.0, device="cuda")},
                         time=0.0)
        d.wait_for(lambda: len(d.snapshots) == 1)
        streams = dict(ct._streams)
        ct.close()
        snap = d.snapshots[0]
    finally:
        d.close()
    assert snap["grad_norm"] == 5.0 and snap["spectra"]["hidden.0"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert list(streams) == [torch.cuda.current_device()]


def test_trainer_scalars_given_as_tensors_are_read_on_the_client_thread():
    """With a client thread, a scalar tensor the trainer hands over is not read on the
    training thread (on a GPU that read would wait for the device); it arrives as a
    number, and a non-finite one is left out as before."""
    d = ScriptedDaemon()
    try:
        model = TinyLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        orbit = Orbit(endpoint=d.endpoint, run="scalars", client_thread=True,
                      checkpoints=CheckpointConfig(every=0), probes=ProbeConfig(spectra_every=1000))
        orbit.attach(model, opt)
        d.wait_hello()
        x, y = tiny_batch(1)
        nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1)).backward()
        opt.step()
        with _NoHostReads():
            orbit.step(1, 1.0, grad_norm=0.5,
                       scalars={"z": torch.tensor(3.25), "bad": torch.tensor(float("nan")), "f": 2.0})
        orbit.close()
        d.wait_for(lambda: len(d.byes) == 1)
        snap = [s for s in d.snapshots if s["step"] == 1][0]
    finally:
        d.close()
    assert snap["scalars"] == {"z": 3.25, "f": 2.0}


def _probe_run(probe_thread, finish=None, steps=6, scalars_at=4):
    """Trains TinyLM for `steps` steps against a ScriptedDaemon with spectra every 2 steps;
    (the snapshots the daemon received, Orbit.summary(), the threads that ran finish)."""
    from orbit_adapter import probes as probes_module
    threads = []
    real_finish = probes_module.ModelProbes.finish

    def recording_finish(self, capture):
        threads.append(threading.current_thread())
        if finish is not None:
            finish()
        return real_finish(self, capture)

    d = ScriptedDaemon()
    probes_module.ModelProbes.finish = recording_finish
    try:
        torch.manual_seed(0)
        model = TinyLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        orbit = Orbit(endpoint=d.endpoint, run=f"probe-thread-{probe_thread}", probe_thread=probe_thread,
                      probes=ProbeConfig(spectra_every=2, weights=None), checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt)
        d.wait_hello()
        d.wait_for(lambda: (orbit.poll(), orbit.connected)[1])  # welcomed: step 1 arms step 2
        for step in range(1, steps + 1):
            loss = tiny_train_step(model, opt, step)
            # The trainer's scalars win over a probe scalar of the same name; non-finite ones go.
            extra = {"attn_logit_max": 7.5, "mine": 1.25, "bad": float("nan")} if step == scalars_at else None
            orbit.step(step, loss.item(), grad_norm=0.5, scalars=extra)
        summary = orbit.summary()
        orbit.close()
        d.wait_for(lambda: any(m["step"] == steps for m in d.snapshots))
        with d.lock:
            snapshots = [{k: ({n: list(map(float, sv)) for n, sv in v.items()} if k == "spectra" and v else v)
                          for k, v in m.items() if k not in ("time", "run")} for m in d.snapshots]
    finally:
        probes_module.ModelProbes.finish = real_finish
        d.close()
    return snapshots, summary, threads


def test_probe_steps_are_finished_on_the_worker_with_the_snapshots_the_training_thread_sends():
    inline, inline_summary, inline_threads = _probe_run(False)
    worker, worker_summary, worker_threads = _probe_run(True)
    assert [m["step"] for m in worker] == [1, 2, 3, 4, 5, 6]  # in step order
    assert [m["step"] for m in worker if m.get("spectra")] == [2, 4, 6]
    assert worker == inline  # the same bytes' contents, spectra and scalars included
    assert worker[3]["scalars"]["attn_logit_max"] == 7.5 and worker[3]["scalars"]["mine"] == 1.25
    assert "bad" not in worker[3]["scalars"]
    main = threading.main_thread()
    assert inline_threads == [main] * 3 and inline_summary["probe_thread"] is None
    assert len(worker_threads) == 3 and main not in worker_threads
    assert worker_summary["probe_thread"]["jobs"] == 3
    assert worker_summary["probe_thread"]["cpu_s"] > 0
    assert not worker_summary["errors"] and not inline_summary["errors"]


def test_the_step_after_a_probe_step_waits_for_the_worker_before_it_sends():
    import time
    durations = []
    snapshots, _, threads = _probe_run(True, finish=lambda: (time.sleep(0.3), durations.append(1)))
    # Step 2's spectra took 0.3 s on the worker; step 3's snapshot still came after it.
    assert [m["step"] for m in snapshots] == [1, 2, 3, 4, 5, 6]
    assert all(m.get("spectra") for m in snapshots if m["step"] % 2 == 0)


def test_a_failing_probe_on_the_worker_is_counted_and_its_snapshot_still_goes():
    def fail():
        raise RuntimeError("probe broke")
    snapshots, summary, _ = _probe_run(True, finish=fail)
    assert [m["step"] for m in snapshots] == [1, 2, 3, 4, 5, 6]
    assert not any(m.get("spectra") for m in snapshots)
    assert summary["errors"] == {"probe": 3}
    assert snapshots[3]["scalars"] == {"attn_logit_max": 7.5, "mine": 1.25}  # the trainer's still go


@pytest.mark.parametrize("cpus, given, expected", [({0, 1}, "auto", True), ({0}, "auto", False),
                                                    ({0}, True, True), ({0, 1}, False, False)])
def test_the_probe_thread_is_used_as_given_and_auto_needs_a_second_cpu(monkeypatch, cpus, given, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(cpus))
    orbit = Orbit(endpoint=None, probe_thread=given)
    assert orbit.uses_probe_thread() is expected
    with pytest.raises(ValueError, match="probe_thread"):
        Orbit(endpoint=None, probe_thread="yes")


def test_deferred_attention_probes_give_the_same_values_off_the_forward(monkeypatch):
    """defer_attention (the probe worker's mode): the forward keeps the MHA inputs and
    weight copies only, and finish computes the same probabilities, bit for bit, after
    the optimizer has changed the weights."""
    from orbit_adapter import probes as probes_module
    results = []
    real = probes_module._mha_probabilities_of
    for defer in (False, True):
        torch.manual_seed(0)
        model = TinyLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-1)
        probes = ModelProbes(model, ProbeConfig(weights=None))
        probes.defer_attention = defer
        in_forward = []
        monkeypatch.setattr(probes_module, "_mha_probabilities_of",
                            lambda *a: (in_forward.append(probes.armed), real(*a))[1])
        probes.arm()
        x, y = tiny_batch(1)
        nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1)).backward()
        opt.step()  # changes the weights the forward used
        spectra, scalars = probes.finish(probes.take())
        assert in_forward == ([False, False] if defer else [True, True])
        results.append((spectra, scalars))
    (sp0, sc0), (sp1, sc1) = results
    assert list(sc0.items()) == list(sc1.items())  # same values, same order
    assert sp0.keys() == sp1.keys() and all(torch.equal(sp0[k], sp1[k]) for k in sp0)


def test_deferred_attention_refuses_inputs_changed_in_place_after_the_forward():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)

    class Attend(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    model = Attend()
    probes = ModelProbes(model, ProbeConfig(hidden=False, output_entropy=False))
    probes.defer_attention = True
    probes.arm()
    x = torch.randn(2, 5, 8)
    model(x)
    capture = probes.take()
    x.mul_(2.0)
    with pytest.raises(RuntimeError, match="changed in place"):
        probes.finish(capture)


def test_checkpoint_copies_on_the_worker_hold_the_state_of_their_step(monkeypatch):
    """With the probe worker, a CPU checkpoint's parameters and optimizer state are
    copied on the worker (here slowed down) while the next step trains; the next
    optimizer step waits for them, so each checkpoint holds its own step's state."""
    jobs = slow_copy_jobs(monkeypatch, 0.2)
    d = ScriptedDaemon()
    try:
        torch.manual_seed(0)
        model = TinyLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-1)
        orbit = Orbit(endpoint=d.endpoint, run="ring-worker", probe_thread=True,
                      checkpoints=CheckpointConfig(every=2))
        orbit.attach(model, opt)
        d.wait_hello()
        expected = {}
        for step in range(1, 7):
            loss = tiny_train_step(model, opt, step)
            if step % 2 == 0:
                expected[step] = ({k: v.clone() for k, v in model.state_dict().items()},
                                  [s["exp_avg"].clone() for s in opt.state.values()])
            orbit.step(step, loss.item())
        ring = orbit._ring
        orbit.close()
    finally:
        d.close()
    assert len(jobs) == 3 and threading.main_thread() not in jobs
    assert ring.steps() == [0, 2, 4, 6]
    for step, (model_state, exp_avgs) in expected.items():
        ck = ring.find(step)
        for k, v in model_state.items():
            assert torch.equal(ck.model[k], v), (step, k)
        saved = [s["exp_avg"] for s in ck.optimizer["state"].values()]
        assert all(torch.equal(a, b) for a, b in zip(saved, exp_avgs)), step
