# SPDX-License-Identifier: Apache-2.0
"""Issue 3's integration test: a real orbitd in active mode with its default
controller, Python clients streaming a drifting run. Burns must arrive on their
own (no forced burns), carry apply_at_step ahead of the step they answer, be
accepted when acknowledged, and reach every rank of a two-rank run identically."""

from __future__ import annotations

import math
import time

import msgpack
import numpy as np
import zmq

from conftest import wait_for
from orbit_adapter import OrbitClient

ACTIVE_CONFIG = """\
# SPDX-License-Identifier: Apache-2.0
[daemon]
mode = "active"
[logging]
level = "warn"
"""


def drifting_spectrum(step: int) -> np.ndarray:
    """Hidden-state eigenvalues whose spectral entropy falls by ~0.01 nats per step
    from ln(64) = 4.16: the mass drains into the first eigenvalue."""
    decay = 0.002 + 0.0004 * step
    return np.exp(-decay * np.arange(64) * 8).astype(np.float32)


def entropy(values: np.ndarray) -> float:
    p = np.abs(values.astype(np.float64))
    p = p / p.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def control_status(endpoint: str) -> dict:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect(endpoint)
    s.send(msgpack.packb({"v": 1, "type": "control", "cmd": "status"}))
    reply = msgpack.unpackb(s.recv(), raw=False)
    s.close()
    return reply


def stream(clients: list[OrbitClient], steps: range, replies: dict[int, list[dict]]) -> None:
    for step in steps:
        for c in clients:
            c.send_snapshot(step, loss=2.0 + 0.001 * step, grad_norm=1.0,
                            spectra={"hidden.0": drifting_spectrum(step)})
        for c in clients:
            def got_answer(c=c, step=step):
                for r in c.poll():
                    replies[c.rank].append(r)
                return any(r.get("type") in ("state", "burn") and
                           (r.get("step", r.get("for_step")) == step) for r in replies[c.rank])
            assert wait_for(got_answer, timeout=5.0), f"rank {c.rank}: no answer for step {step}"


def test_drifting_run_gets_burns_with_lead_and_acks_are_accepted(daemon_factory):
    orbitd = daemon_factory("tcp", ACTIVE_CONFIG).start()
    replies: dict[int, list[dict]] = {0: []}
    with OrbitClient(orbitd.endpoint, "drift", actuators=("lr",), base_lr=1e-3) as client:
        stream([client], range(0, 400), replies)
        burns = [r for r in replies[0] if r["type"] == "burn"]
        assert burns, "a run whose entropy drifts into the danger zone got no burn"
        first = burns[0]
        # The first burn came before the entropy reached the danger line (0.75 nats).
        assert entropy(drifting_spectrum(first["for_step"])) > 0.75, first["reason"]
        for b in burns:
            assert b["apply_at_step"] > b["for_step"]
            assert 0.05 <= b["lr_scale"] <= 1.0
            assert b["expires_after_steps"] > 0
            assert b["reason"]
        assert first["lr_scale"] < 1.0
        seqs = [b["seq"] for b in burns]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for b in burns:
            client.send_ack(b["seq"], b["apply_at_step"], late=False, lr=1e-3 * b["lr_scale"])
        status = wait_for(lambda: (s := control_status(orbitd.control))["stats"]["acks"] == len(burns) and s)
        assert status, "orbitd did not count every ack"
        assert status["stats"]["errors_sent"] == 0
        run = next(r for r in status["runs"] if r["run"] == "drift")
        assert run["burns"] == burns[-1]["seq"]


def test_two_ranks_receive_the_same_burn(daemon_factory):
    orbitd = daemon_factory("tcp", ACTIVE_CONFIG).start()
    replies: dict[int, list[dict]] = {0: [], 1: []}
    clients = [OrbitClient(orbitd.endpoint, "ddp", rank=r, world_size=2, actuators=("lr",)) for r in (0, 1)]
    try:
        stream(clients, range(0, 400), replies)
        for c in clients:  # the burn pushed to the rank that did not close the step
            time.sleep(0.05)
            replies[c.rank].extend(c.poll())
        burns = {rank: {r["seq"]: r for r in rs if r["type"] == "burn"} for rank, rs in replies.items()}
        assert burns[0], "no burn for a drifting two-rank run"
        assert burns[0].keys() == burns[1].keys()
        for seq, b in burns[0].items():
            assert b == burns[1][seq], f"rank 1 got a different burn #{seq}"
    finally:
        for c in clients:
            c.close()
