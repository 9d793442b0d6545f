# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the PyTorch adapter tests.

`ScriptedDaemon` is a protocol-v1 peer on a real ZeroMQ ROUTER socket that sends
burns the test chooses at the steps it chooses. The real orbitd decides burns with
its controller, so exact step-by-step checks (every scheduler under a burn at step
k, a rollback at step k, two ranks applying the same burn) need a daemon whose
decisions are scripted; everything else about the wire (the real OrbitClient, real
sockets, the canonical codec, welcome/state/burn/ack/error) is the same. Tests that
need the real daemon use conftest's `orbitd` fixture.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from typing import Any, Dict, List

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from orbit_adapter import protocol  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


class ScriptedDaemon:
    """Answers hello with welcome and each snapshot with the scripted burn or a state."""

    def __init__(self, snapshot_every: int = 1, mode: str = "active",
                 bind: str = "tcp://127.0.0.1:*", rcvhwm: int | None = None,
                 rcvbuf: int | None = None):
        self.snapshot_every = snapshot_every
        self.mode = mode
        self.instance = uuid.uuid4().hex[:8]  # session ids differ across daemon instances
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.set(zmq.LINGER, 0)
        # Small queues make a backlog reach the sender's kernel (tests of close).
        if rcvhwm is not None:
            self.sock.set(zmq.RCVHWM, rcvhwm)
        if rcvbuf is not None:
            self.sock.set(zmq.RCVBUF, rcvbuf)
        self.sock.bind(bind)
        self.endpoint = self.sock.get(zmq.LAST_ENDPOINT).decode()
        self.lock = threading.Lock()
        self.script: Dict[int, Dict[str, Any]] = {}     # for_step -> burn fields
        self.hellos: List[Dict[str, Any]] = []
        self.snapshots: List[Dict[str, Any]] = []
        self.acks: List[Dict[str, Any]] = []
        self.byes: List[Dict[str, Any]] = []
        self.replied_steps: Dict[int, set] = {}          # rank -> steps answered
        self.registered: Dict[bytes, tuple] = {}
        self._seq = 0
        self.hold = threading.Event()  # while set, the daemon reads nothing (a stall)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def burn_at(self, for_step: int, apply_at_step: int, lr_scale: float = 1.0,
                expires_after_steps: int = 1000, **fields) -> int:
        """Scripts a burn sent in reply to the snapshot of `for_step` (to every rank)."""
        with self.lock:
            self._seq += 1
            self.script[for_step] = dict(
                seq=self._seq, state=fields.pop("state", "WARNING"),
                basin=fields.pop("basin", "TOKEN_COLLAPSE"),
                reason=fields.pop("reason", f"scripted burn {self._seq}"),
                for_step=for_step, apply_at_step=apply_at_step,
                expires_after_steps=expires_after_steps, lr_scale=lr_scale, **fields)
            return self._seq

    def wait_replied(self, step: int, orbit=None, ranks=(0,), timeout: float = 20.0) -> None:
        """Waits until the snapshot of `step` was answered for every rank and, when the
        answer was a burn and `orbit` is given, until that Orbit has read it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(step in self.replied_steps.get(r, ()) for r in ranks):
                    break
            time.sleep(0.001)
        else:
            raise TimeoutError(f"no reply to the snapshot of step {step}")
        with self.lock:
            burn = self.script.get(step)
        if orbit is None or burn is None:
            time.sleep(0.02)  # loopback delivery into the client's queue
            return
        seq = burn["seq"]
        while time.monotonic() < deadline:
            orbit.poll()
            # A restarted daemon numbers its burns from 1 again: match the step too, so a
            # burn kept from the previous daemon with the same seq does not count.
            if seq in orbit.pending_burns or any(b.seq == seq and b.apply_at_step == burn["apply_at_step"]
                                                 for b in orbit.applied):
                return
            time.sleep(0.001)
        raise TimeoutError(f"the burn answering step {step} never reached the adapter")

    def wait_for(self, what, timeout: float = 20.0) -> None:
        """Waits until `what()` (called under the lock) is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if what():
                    return
            time.sleep(0.002)
        raise TimeoutError("the daemon did not see what the test waited for")

    def wait_hello(self, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.hellos) >= count:
                    return
            time.sleep(0.002)
        raise TimeoutError("no hello")

    def _send(self, ident: bytes, msg: Dict[str, Any]) -> None:
        self.sock.send_multipart([ident, protocol.encode({"v": 1, **msg})])

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            if self.hold.is_set():
                time.sleep(0.002)
                continue
            if not poller.poll(10):
                continue
            frames = self.sock.recv_multipart()
            ident, payload = frames[0], frames[-1]
            try:
                msg = protocol.decode(payload)
            except protocol.ProtocolError as e:
                self._send(ident, {"type": "error", "code": e.code, "message": str(e)})
                continue
            kind = msg["type"]
            with self.lock:
                if kind == "hello":
                    self.hellos.append(msg)
                    self.registered[ident] = (msg["run"], msg["rank"])
                    self._send(ident, {"type": "welcome", "run": msg["run"], "rank": msg["rank"],
                                       "session": f"{self.instance}-{len(self.hellos)}", "version": 1,
                                       "mode": self.mode, "snapshot_every": self.snapshot_every})
                elif kind == "snapshot":
                    if self.registered.get(ident) != (msg["run"], msg["rank"]):
                        self._send(ident, {"type": "error", "code": "not_registered",
                                           "message": "say hello first"})
                        continue
                    self.snapshots.append(msg)
                    burn = self.script.get(msg["step"])
                    if burn is not None and self.mode == "active":
                        self._send(ident, {"type": "burn", "run": msg["run"], **burn})
                    else:
                        self._send(ident, {"type": "state", "run": msg["run"], "rank": msg["rank"],
                                           "step": msg["step"], "state": "STABLE",
                                           "basin": "CREATIVE", "metrics": {"loss": float(msg["loss"])}
                                           if msg["loss"] == msg["loss"] else {}})
                    self.replied_steps.setdefault(msg["rank"], set()).add(msg["step"])
                elif kind == "ack":
                    self.acks.append(msg)
                elif kind == "bye":
                    self.byes.append(msg)
                    self.registered.pop(ident, None)
                elif kind == "heartbeat":  # echoed, as orbitd does (a plain ping too)
                    self._send(ident, {k: v for k, v in msg.items() if k != "v"})

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close(0)
        self.ctx.term()


# ---- tiny models --------------------------------------------------------------
class TinyLM(nn.Module):
    """Two nn.TransformerEncoderLayer blocks with a causal mask: real MHA modules."""

    def __init__(self, vocab: int = 11, d: int = 16, heads: int = 2, layers: int = 2,
                 context: int = 8, norm_first: bool = True):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True,
                                       norm_first=norm_first) for _ in range(layers))
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", torch.triu(torch.full((context, context), float("-inf")), 1),
                             persistent=False)

    def forward(self, idx):
        x = self.tok(idx)
        m = self.mask[:idx.shape[1], :idx.shape[1]]
        for b in self.blocks:
            x = b(x, src_mask=m)
        return self.head(x)


def tiny_batch(step: int, batch: int = 4, context: int = 8, vocab: int = 11):
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randint(0, vocab, (batch, context + 1), generator=g)
    return x[:, :-1], x[:, 1:]


def tiny_train_step(model: nn.Module, opt, step: int) -> torch.Tensor:
    """One training step of TinyLM on `tiny_batch(step)`; returns the loss."""
    x, y = tiny_batch(step)
    loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def slow_copy_jobs(monkeypatch, seconds: float) -> List[threading.Thread]:
    """Makes the rollback ring's worker copy jobs sleep `seconds` first (so the next
    step trains before they land); returns the list of threads that ran them."""
    from orbit_adapter import rollback
    real_job = rollback._copy_job
    threads: List[threading.Thread] = []

    def slow_job(pairs):
        job = real_job(pairs)

        def slow():
            threads.append(threading.current_thread())
            time.sleep(seconds)
            return job()
        return slow

    monkeypatch.setattr(rollback, "_copy_job", slow_job)
    return threads
