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

from torch_fixtures import ScriptedDaemon, TinyLM, tiny_batch
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
