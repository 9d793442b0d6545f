# SPDX-License-Identifier: Apache-2.0
"""ClientThread: the adapter's client work on a background thread, nothing lost, the
training thread never waiting; and Orbit sends the same snapshots with or without it."""
import math
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import zmq

from torch_fixtures import ScriptedDaemon, TinyLM, tiny_batch
from orbit_adapter import Orbit
from orbit_adapter.client import OrbitClient
from orbit_adapter.client_thread import ClientThread
from orbit_adapter.probes import ProbeConfig
from orbit_adapter.rollback import CheckpointConfig


def test_everything_queued_before_close_reaches_the_daemon_in_order_then_bye():
    d = ScriptedDaemon()
    try:
        ct = ClientThread(OrbitClient(d.endpoint, run="drain", queue_limit=5000))
        d.wait_hello()
        spectrum = np.linspace(0.0, 1.0, 256, dtype=np.float32)
        # The thread is held on the first snapshot until after close() began, so close
        # finds the whole queue still waiting.
        release = threading.Event()
        threading.Timer(0.3, release.set).start()
        ct.send_snapshot(0, 1.0, prepare=lambda: release.wait(20) and {}, time=0.0)
        for step in range(1, 401):
            ct.send_snapshot(step, 1.0, spectra={"hidden.0": spectrum}, time=0.0)
            if step % 100 == 0:
                ct.send_ack(seq=step // 100, step=step, late=False)
        ct.close()  # right away: the queue is still full of work
        assert ct.closed
        d.wait_for(lambda: len(d.byes) == 1)
        steps = [s["step"] for s in d.snapshots]
        acks = [a["seq"] for a in d.acks]
    finally:
        d.close()
    assert steps == list(range(0, 401))
    assert acks == [1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        ct.send_snapshot(401, 1.0)


def test_close_after_a_stall_loses_neither_the_tail_nor_the_bye():
    """The daemon stalls while a burst waits in the kernels, then answers it. A close
    that left the answers unread would reset the connection (TCP RST) and lose the
    burst's tail and the bye; close waits for its ping's echo instead."""
    d = ScriptedDaemon(rcvhwm=8, rcvbuf=4096)
    try:
        client = OrbitClient(d.endpoint, run="stall", queue_limit=5000, close_linger=5.0)
        d.wait_hello()
        deadline = time.monotonic() + 20
        while not client.registered and time.monotonic() < deadline:
            client.poll()
            time.sleep(0.002)
        assert client.registered
        d.hold.set()
        spectrum = np.linspace(0.0, 1.0, 256, dtype=np.float32)
        for step in range(400):
            assert client.send_snapshot(step, 1.0, spectra={"hidden.0": spectrum}, time=0.0)
        threading.Timer(0.3, d.hold.clear).start()
        client.close()
        d.wait_for(lambda: len(d.byes) == 1)
        steps = [s["step"] for s in d.snapshots]
    finally:
        d.hold.clear()
        d.close()
    assert steps == list(range(400))
    assert client.stats.close_confirmed == 1
    assert client.stats.dropped == 0


def test_a_not_registered_answer_read_while_closing_says_no_hello_after_bye():
    d = ScriptedDaemon()
    try:
        client = OrbitClient(d.endpoint, run="late-error", close_linger=5.0)
        d.wait_hello()
        deadline = time.monotonic() + 20
        while not client.registered and time.monotonic() < deadline:
            client.poll()
            time.sleep(0.002)
        assert client.registered
        with d.lock:
            d.registered.clear()  # the daemon forgot the session (a restart)
        assert client.send_snapshot(1, 1.0, time=0.0)
        client.close()  # reads the snapshot's not_registered before the ping's echo
        assert client.stats.close_confirmed == 1
        assert client.stats.errors == 1
        time.sleep(0.1)
        with d.lock:
            hellos = len(d.hellos)
    finally:
        d.close()
    assert hellos == 1


def test_tensor_values_are_brought_to_the_host_on_the_thread():
    d = ScriptedDaemon()
    try:
        ct = ClientThread(OrbitClient(d.endpoint, run="tensors"))
        d.wait_hello()
        ct.send_snapshot(1, 2.0, grad_norm=torch.tensor(2.5, dtype=torch.bfloat16),
                         spectra={"hidden.0": torch.arange(4, dtype=torch.bfloat16)},
                         scalars={"x": torch.tensor(1.5), "nan": float("nan")}, time=0.0)
        d.wait_for(lambda: len(d.snapshots) == 1)
        snap = d.snapshots[0]
        ct.close()
    finally:
        d.close()
    assert snap["grad_norm"] == 2.5
    assert snap["spectra"]["hidden.0"].dtype == np.float32
    assert snap["spectra"]["hidden.0"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert snap["scalars"] == {"x": 1.5}  # non-finite values are left out, as before


def test_deferred_work_runs_on_the_thread_and_its_failure_costs_only_its_values():
    d = ScriptedDaemon()
    try:
        ct = ClientThread(OrbitClient(d.endpoint, run="prepare"))
        d.wait_hello()
        ran_on = []

        def prepare():
            ran_on.append(threading.current_thread().name)
            return {"spectra": {"hidden.0": torch.ones(3)}, "scalars": {"a": 1.0, "b": 2.0}}

        def broken():
            raise ValueError("probe broke")

        ct.send_snapshot(1, 1.0, prepare=prepare, scalars={"b": 5.0}, time=0.0)
        ct.send_snapshot(2, 1.0, prepare=broken, scalars={"b": 5.0}, time=0.0)
        d.wait_for(lambda: len(d.snapshots) == 2)
        first, second = d.snapshots
        errors = ct.take_errors()
        ct.close()
    finally:
        d.close()
    assert ran_on == ["orbit-client"]
    assert first["spectra"]["hidden.0"].tolist() == [1.0, 1.0, 1.0]
    assert first["scalars"] == {"a": 1.0, "b": 5.0}  # the trainer's own value wins
    assert "spectra" not in second and second["scalars"] == {"b": 5.0}
    assert [(where, str(e)) for where, e in errors] == [("probe", "probe broke")]


def test_welcome_fields_change_when_poll_hands_the_welcome_over():
    d = ScriptedDaemon(snapshot_every=4)
    try:
        inner = OrbitClient(d.endpoint, run="welcome")
        ct = ClientThread(inner)
        deadline = time.monotonic() + 20
        while not inner.registered and time.monotonic() < deadline:
            time.sleep(0.002)  # the thread has read the welcome...
        assert inner.registered
        assert not ct.registered and ct.snapshot_every == 1  # ...the trainer has not yet
        replies = ct.poll()
        assert [r["type"] for r in replies] == ["welcome"]
        assert ct.registered and ct.snapshot_every == 4 and ct.mode == "active"
        ct.close()
    finally:
        d.close()


def test_sends_to_nobody_are_dropped_and_counted_and_close_returns():
    ctx = zmq.Context.instance()
    probe = ctx.socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(0)  # nobody listens there now
    ct = ClientThread(OrbitClient(f"tcp://127.0.0.1:{port}", run="nobody", queue_limit=10))
    for step in range(1, 201):
        ct.send_snapshot(step, 1.0, time=0.0)
    assert ct.flush(20.0)
    stats = ct.stats
    ct.close()
    assert not ct._thread.is_alive()
    assert stats.dropped > 0 and stats.snapshots < 200
    assert stats.snapshots + stats.dropped >= 200


def _train(endpoint, client_thread, steps=12):
    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    orbit = Orbit(endpoint=endpoint, run=f"same-{client_thread}", domains=("even", "odd"),
                  probes=ProbeConfig(spectra_every=3, weights=None),
                  checkpoints=CheckpointConfig(every=0), client_thread=client_thread)
    orbit.attach(model, opt)
    for step in range(1, steps + 1):
        x, y = tiny_batch(step)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        orbit.step(step, loss.item(), domain_losses={"even": 1.0, "odd": 2.0})
        if step == 1:
            deadline = time.monotonic() + 20
            while not orbit.connected and time.monotonic() < deadline:
                orbit.poll()
                time.sleep(0.002)
    summary = orbit.summary()
    orbit.close()
    return summary


def test_orbit_sends_the_same_snapshots_with_and_without_the_client_thread():
    d = ScriptedDaemon()
    try:
        s_thread = _train(d.endpoint, True)
        s_plain = _train(d.endpoint, False)
        d.wait_for(lambda: len(d.byes) == 2)
        by_run = {}
        for snap in d.snapshots:
            by_run.setdefault(snap["run"], {})[snap["step"]] = snap
    finally:
        d.close()
    threaded, plain = by_run["same-True"], by_run["same-False"]
    assert sorted(threaded) == sorted(plain) == list(range(1, 13))
    assert s_thread["errors"] == {} and s_plain["errors"] == {}
    assert s_thread["client_thread"]["queued"] >= 12 and s_plain["client_thread"] is None
    spectral = [s for s in threaded if threaded[s].get("spectra")]
    assert spectral == [3, 6, 9, 12] == [s for s in plain if plain[s].get("spectra")]
    for step in threaded:
        a, b = threaded[step], plain[step]
        for field in ("loss", "grad_norm", "lr", "domains"):
            assert a.get(field) == b.get(field), (step, field)
        assert a.get("scalars") == b.get("scalars"), step
        assert sorted(a.get("spectra") or {}) == sorted(b.get("spectra") or {})
        for name, values in (a.get("spectra") or {}).items():
            assert np.array_equal(values, b["spectra"][name]), (step, name)
    assert math.isfinite(threaded[5]["grad_norm"]) and threaded[5]["grad_norm"] > 0


@pytest.mark.parametrize("client_thread", [True, False])
def test_a_grad_norm_tensor_from_the_trainer_is_sent_as_a_number(client_thread):
    d = ScriptedDaemon()
    try:
        model = TinyLM()
        orbit = Orbit(endpoint=d.endpoint, run="gn", client_thread=client_thread,
                      checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, torch.optim.SGD(model.parameters(), lr=0.1))
        for step in (1, 2):
            orbit.step(step, 1.0, grad_norm=torch.tensor(3.0 * step, dtype=torch.bfloat16))
        orbit.close()
        d.wait_for(lambda: len(d.byes) == 1)
        norms = [s["grad_norm"] for s in d.snapshots]
        errors = orbit.summary()["errors"]
    finally:
        d.close()
    assert norms == [3.0, 6.0] and errors == {}


def test_a_client_thread_dropped_without_close_says_bye_and_ends():
    import gc
    d = ScriptedDaemon()
    try:
        ct = ClientThread(OrbitClient(d.endpoint, run="dropped"))
        ct.send_snapshot(1, 1.0, time=0.0)
        ct.flush(20.0)
        thread = ct._thread
        del ct
        gc.collect()
        thread.join(10.0)
        assert not thread.is_alive()
        d.wait_for(lambda: len(d.byes) == 1)
    finally:
        d.close()
