# SPDX-License-Identifier: Apache-2.0
"""Fail-open: no daemon, a mute daemon, a garbage daemon, a daemon that restarts."""
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import zmq

from torch_fixtures import ScriptedDaemon, TinyLM, tiny_batch
from orbit_adapter import Orbit
from orbit_adapter.rollback import CheckpointConfig


def free_tcp_endpoint():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp://127.0.0.1:{port}"


def timed_training(endpoint, steps=1000):
    torch.manual_seed(0)
    model = TinyLM(d=8, heads=2, layers=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.999)
    orbit = Orbit(endpoint=endpoint, run="failopen", checkpoints=CheckpointConfig(every=0))
    orbit.attach(model, opt, scheduler=sched)
    x, y = tiny_batch(0)
    costs, cpu, lrs, expected = [], [], [], []
    for step in range(1, steps + 1):
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        value = loss.item()
        t0, c0 = time.perf_counter(), time.thread_time()
        orbit.step(step, value)       # computes the grad norm itself and sends a snapshot
        costs.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        lrs.append(orbit.last_lr)
    summary = orbit.summary()
    t0 = time.perf_counter()
    orbit.close()
    close_cost = time.perf_counter() - t0
    return np.array(costs), np.array(cpu), lrs, expected, summary, close_cost


def assert_cheap(costs, cpu, label):
    """p99 under 1 ms, in wall time and in this thread's CPU time, on a machine with a
    core to spare. With more runnable processes than cores (a parallel build next
    door) wall time measures the scheduler's queue and even CPU time inflates from
    contention; there the median CPU time must still be well under 1 ms."""
    wall99, cpu99 = float(np.percentile(costs, 99)), float(np.percentile(cpu, 99))
    overloaded = os.getloadavg()[0] > (os.cpu_count() or 1)
    print(f"{label}: wall median {np.median(costs) * 1e6:.0f} us, p99 {wall99 * 1e6:.0f} us, "
          f"max {costs.max() * 1e6:.0f} us; cpu p99 {cpu99 * 1e6:.0f} us; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    if overloaded:
        assert float(np.median(cpu)) < 0.5e-3
    else:
        assert cpu99 < 1e-3 and wall99 < 1e-3


def test_no_daemon_costs_well_under_a_millisecond_and_changes_nothing():
    costs, cpu, lrs, expected, summary, close_cost = timed_training(free_tcp_endpoint())
    assert_cheap(costs, cpu, "orbit.step without a daemon")
    assert lrs == expected                 # the trainer's own schedule, untouched
    assert summary["burns_applied"] == 0
    assert summary["client"]["dropped"] > 0  # the bounded queue filled and dropped
    assert close_cost < 0.5


def test_mute_daemon_that_never_reads():
    ctx = zmq.Context()
    mute = ctx.socket(zmq.ROUTER)
    mute.set(zmq.LINGER, 0)
    mute.set(zmq.RCVHWM, 1)
    mute.bind("tcp://127.0.0.1:*")
    try:
        costs, cpu, lrs, expected, _, _ = timed_training(mute.get(zmq.LAST_ENDPOINT).decode(), steps=1000)
        assert_cheap(costs, cpu, "orbit.step with a daemon that never reads")
        assert lrs == expected
    finally:
        mute.close(0)
        ctx.term()


def test_garbage_replies_never_raise():
    ctx = zmq.Context()
    bad = ctx.socket(zmq.ROUTER)
    bad.set(zmq.LINGER, 0)
    bad.bind("tcp://127.0.0.1:*")
    endpoint = bad.get(zmq.LAST_ENDPOINT).decode()
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    orbit = Orbit(endpoint=endpoint, run="garbage", checkpoints=CheckpointConfig(every=0))
    orbit.attach(model, opt)
    import msgpack
    junk = [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"v": 1, "type": "burn", "seq": "x"}),
            msgpack.packb({"v": 9, "type": "state"}), b"\x00" * 100]
    try:
        for step in range(1, 60):
            if bad.poll(0):
                ident = bad.recv_multipart()[0]
                bad.send_multipart([ident, junk[step % len(junk)]])
            opt.step()
            orbit.step(step, float("nan") if step % 7 == 0 else 1.0)
            time.sleep(0.001)
        assert orbit.lr_scale == 1.0
        assert orbit.summary()["client"]["decode_errors"] > 0
    finally:
        orbit.close()
        bad.close(0)
        ctx.term()


def test_control_resumes_after_the_daemon_restarts():
    d = ScriptedDaemon()
    d.burn_at(for_step=5, apply_at_step=8, lr_scale=0.8)
    endpoint = d.endpoint
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    orbit = Orbit(endpoint=endpoint, run="restart", checkpoints=CheckpointConfig(every=0))
    orbit.attach(model, opt)
    d.wait_hello()
    step = 0
    try:
        for step in range(1, 11):
            opt.step()
            orbit.step(step, 1.0)
            if step == 5:
                d.wait_replied(5, orbit)
        d.wait_replied(10)
        assert orbit.lr_scale == 0.8 and orbit.applied[-1].seq == 1
        d.close()                                  # the daemon dies
        costs, cpu = [], []
        for step in range(11, 211):
            opt.step()
            t0, c0 = time.perf_counter(), time.thread_time()
            orbit.step(step, 1.0)
            costs.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
        assert max(costs) < 0.05
        assert_cheap(np.array(costs), np.array(cpu), "orbit.step while the daemon is down")
        d = ScriptedDaemon(bind=endpoint)          # a new daemon on the same endpoint
        d.burn_at(for_step=650, apply_at_step=655, lr_scale=0.5)  # seq 1 again: a new session
        # ZeroMQ reconnects within its backoff (at most 1 s here); training goes on meanwhile.
        deadline = time.monotonic() + 5
        while not d.hellos and time.monotonic() < deadline:
            step += 1
            opt.step()
            orbit.step(step, 1.0)
            time.sleep(0.01)
        assert d.hellos, "the adapter registered again"
        assert step < 650
        for step in range(step + 1, 700):
            opt.step()
            orbit.step(step, 1.0)
            if step == 650:
                d.wait_replied(650, orbit)
        assert orbit.lr_scale == 0.5 and orbit.last_lr == pytest.approx(0.05)
        assert [b.seq for b in orbit.applied] == [1, 1]
        assert orbit.summary()["client"]["reconnect_hellos"] >= 1
    finally:
        orbit.close()
        d.close()
