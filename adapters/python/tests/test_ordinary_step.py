# SPDX-License-Identifier: Apache-2.0
"""The ordinary step's short paths (bench/overhead, round 8) do what the long ones did:
the client reads a snapshot's reply first and still everything that has arrived; a
`state` reply that changes nothing but the metrics skips `_note_state` only where that
would have changed nothing; the sampler's weights are reused only while they are the
same; the probe cadence follows a changed `spectra_every`."""
from __future__ import annotations

import itertools
import random
import time
import types

import pytest
import torch
import torch.nn as nn
import zmq

from orbit_adapter import Orbit, OrbitClient, protocol as P, snapshots
from orbit_adapter.failures import FailOpen
from orbit_adapter.probes import ProbeConfig
from orbit_adapter.rollback import CheckpointConfig
from orbit_adapter.snapshot_template import SnapshotTemplate
from test_step_templates import recording_client

_ENDPOINTS = itertools.count()


class Router:
    """A bare ROUTER in this process standing in for orbitd (inproc: no I/O thread)."""

    def __init__(self) -> None:
        self.endpoint = f"inproc://orbit-ordinary-step-{next(_ENDPOINTS)}"
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)
        self.peer = None

    def take(self) -> dict:
        assert self.sock.poll(5000), "nothing from the client"
        frames = self.sock.recv_multipart()
        self.peer = frames[0]
        return P.decode(frames[-1])

    def reply(self, *frames: bytes) -> None:
        self.sock.send_multipart([self.peer, *frames])

    def close(self) -> None:
        self.sock.close(linger=0)


def state(step: int, name: str = "STABLE") -> bytes:
    return P.encode({"type": "state", "run": "r", "rank": 0, "step": step, "state": name,
                     "basin": "healthy", "metrics": {"entropy": 1.5}})


def burn(seq: int) -> bytes:
    return P.encode({"type": "burn", "run": "r", "seq": seq, "state": "WARNING", "basin": "B",
                     "reason": "test", "for_step": 1, "apply_at_step": 2,
                     "expires_after_steps": 5, "lr_scale": 0.5})


@pytest.fixture
def link():
    """(router, client): an OrbitClient connected to a bare ROUTER, after its hello."""
    router = Router()
    client = OrbitClient(router.endpoint, "r", close_linger=0)
    assert router.take()["type"] == "hello"
    yield router, client
    client.close()
    router.close()


def test_the_reply_read_first_is_followed_by_everything_else_that_arrived(link):
    router, client = link
    for step in range(1, 6):
        assert client.send_snapshot(step, 1.0)
        assert router.take()["step"] == step
        router.reply(state(step))
        router.reply(burn(step))
        router.reply(state(step, "WARNING"))
        time.sleep(0.01)
        replies = client.poll()
        assert [(m["type"], m.get("state")) for m in replies] == \
            [("state", "STABLE"), ("burn", "WARNING"), ("state", "WARNING")], step
    assert client.stats.decode_errors == 0


def test_a_reply_not_there_yet_is_read_by_a_later_poll_and_so_are_unasked_messages(link):
    router, client = link
    assert client.send_snapshot(1, 1.0)
    router.take()
    assert client.poll() == []   # its reply has not come: nothing, and no error
    router.reply(state(1))
    time.sleep(0.01)
    assert [m["step"] for m in client.poll()] == [1]
    router.reply(burn(7))        # a burn that answers no snapshot (an operator's)
    time.sleep(0.01)
    assert [m.get("seq") for m in client.poll()] == [7]
    for step in (2, 3):          # and after a miss the replies are read first again
        assert client.send_snapshot(step, 1.0)
        router.take()
        router.reply(state(step))
        time.sleep(0.01)
        assert [m["step"] for m in client.poll()] == [step]
    assert client.stats.states == 3 and client.stats.burns == 1


def test_the_reply_read_first_is_the_last_frame_of_its_message(link):
    router, client = link
    assert client.send_snapshot(1, 1.0)
    router.take()
    router.reply(b"an envelope frame", state(1))
    time.sleep(0.01)
    assert [m["step"] for m in client.poll()] == [1]
    assert client.stats.decode_errors == 0 and client.stats.replies == 1


class Replies:
    """A client whose poll hands out the scripted replies, one list per call."""

    snapshot_every, registered, template = 1, True, SnapshotTemplate("r", 0)

    def __init__(self) -> None:
        self.script: list = []

    def poll(self):
        return self.script.pop(0) if self.script else []

    def send_snapshot_bytes(self, data):
        return True

    def send_snapshot(self, *args, **kwargs):
        return True

    def close(self):
        pass


def state_reply(name: str, basin: str = "healthy", entropy: float = 1.0) -> dict:
    return {"v": 1, "type": "state", "run": "r", "rank": 0, "step": 1, "state": name,
            "basin": basin, "metrics": {"entropy": entropy}}


def scripted_orbit(checkpoint_every: int, spectra_every: int):
    """(orbit, its optimizer, its Replies client), attached to a small model."""
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    client = Replies()
    orbit = Orbit(endpoint="inproc://unused", run="r", client=client, probe_thread=False,
                  checkpoints=CheckpointConfig(every=checkpoint_every),
                  probes=ProbeConfig(spectra_every=spectra_every))
    orbit.attach(model, opt)
    return orbit, opt, client


def test_state_replies_pin_unpin_and_record_as_note_state_does():
    orbit, opt, client = scripted_orbit(checkpoint_every=1, spectra_every=1000)
    ring = orbit._ring
    script = [("STABLE", "healthy"), ("STABLE", "healthy"), ("WARNING", "healthy"),
              ("WARNING", "healthy"), ("WARNING", "spiky"), ("STABLE", "spiky"),
              ("STABLE", "spiky"), ("RECOVERING", "spiky"), ("STABLE", "spiky")]
    pins = []
    for step, (name, basin) in enumerate(script, start=1):
        client.script.append([state_reply(name, basin, entropy=float(step))])
        if step == 7:
            ring.pin(5)  # pinned by someone else while STABLE: the next STABLE reply unpins
            assert ring.pinned == 5
        opt.step()
        orbit.step(step, 1.0)
        pins.append(ring.pinned)
        assert orbit.metrics == {"entropy": float(step)}
        assert (orbit.state, orbit.basin) == (name, basin)
    assert orbit.states_visited == ["STABLE", "WARNING", "STABLE", "RECOVERING", "STABLE"]
    # pinned when the alarm began (the checkpoint of that step), kept through it,
    # let go at STABLE; pinned again at RECOVERING
    assert pins == [None, None, 3, 3, 3, None, None, 8, None]
    orbit.close()


def test_the_sampler_weights_are_sent_again_only_while_they_are_the_same(monkeypatch):
    """One assembler over many steps: the template path sends what the general path
    sends, with the weights replaced, changed in place (a sampler that hands out its
    own dict) or kept."""
    monkeypatch.setattr(snapshots.time, "time", lambda: 1733580000.25)
    rng = random.Random(5)
    sent = []
    Client = recording_client(sent)

    class OwnDictSampler:
        """Hands out the very dict it changes (no copy)."""
        weights = {"code": 0.5, "prose": 0.5}

        def effective_weights(self):
            return self.weights

    declared = ("code", "prose")
    assembler = snapshots.SnapshotAssembler(ProbeConfig(grad_norm=False), declared, None, FailOpen())
    assembler.sampler = OwnDictSampler()
    assembler.probes = types.SimpleNamespace(armed=False)
    link = types.SimpleNamespace(deferred=False, registered=True,
                                 client=Client(template=SnapshotTemplate("r", 0)))
    for step in range(1, 200):
        change = rng.random()
        weights = assembler.sampler.weights
        if change < 0.2:
            weights["code"] = rng.random()          # in place
        elif change < 0.3:
            assembler.sampler.weights = {"code": rng.random(), "prose": rng.random()}
        elif change < 0.35:
            assembler.sampler.weights = {"code": rng.random()}  # some domains only
        losses = {"code": 1.0, "prose": 2.0} if rng.random() < 0.2 else None
        assembler.send(link, step, 1.0, None, losses, None, None, 1e-3, 1e-3)
        fast = sent.pop()
        plain = assembler._send_plain
        assembler._send_plain = lambda *a: False
        assembler.send(link, step, 1.0, None, losses, None, None, 1e-3, 1e-3)
        assembler._send_plain = plain
        assert fast == sent.pop(), step
        if losses is None and "prose" in assembler.sampler.weights:
            sent_weights = {d: e["weight"] for d, e in P.decode(fast)["domains"].items()}
            assert sent_weights == assembler.sampler.weights, step


def test_the_probe_cadence_follows_a_changed_spectra_every():
    orbit, opt, client = scripted_orbit(checkpoint_every=0, spectra_every=4)
    armed = []
    for step in range(1, 25):
        client.script.append([state_reply("STABLE")])  # keeps the link connected
        if step == 12:
            orbit.probe_config.spectra_every = 5
        opt.step()
        orbit.step(step, 1.0)
        if orbit._snapshots.probes.armed:
            armed.append(step + 1)
    assert armed == [4, 8, 12, 15, 20, 25]
    orbit.close()
