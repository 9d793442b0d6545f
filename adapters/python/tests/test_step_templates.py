# SPDX-License-Identifier: Apache-2.0
"""The per-step templates give what the general code gives: SnapshotTemplate the bytes
of `protocol.encode_snapshot` (and the assembler's template path the bytes of its
general path), StateTemplate the dict of `protocol.decode` or None, over random inputs
that reuse each learnt layout with new numbers."""

from __future__ import annotations

import math
import random
import struct
import types

import numpy as np
import pytest

from conftest import VECTORS
from orbit_adapter import protocol as P
from orbit_adapter import snapshots
from orbit_adapter.failures import FailOpen
from orbit_adapter.probes import ProbeConfig
from orbit_adapter.snapshot_template import LOSS, LOSS_AND_WEIGHT, WEIGHT, SnapshotTemplate
from orbit_adapter.state_template import StateTemplate
from test_protocol_fast_paths import same

# Integers at and around every MessagePack width boundary.
EDGES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1]


def a_float(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.05:
        return rng.choice([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -1.7976931348623157e308])
    if kind < 0.08:  # a NaN with a payload and either sign
        return struct.unpack(">d", struct.pack(">Q", 0x7FF0000000000001 | rng.getrandbits(51)
                                               | (rng.getrandbits(1) << 63)))[0]
    return rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-12, 12)


def an_int(rng: random.Random) -> int:
    x = rng.choice(EDGES)
    return max(0, min(2**64 - 1, x + rng.randint(-2, 2)))


def a_name(rng: random.Random, n: int = 40) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, n)))


def snapshot_message(run, rank, step, t, loss, gn, lr, slr, tokens, domains, values):
    message = {"type": "snapshot", "run": run, "rank": rank, "step": step, "time": t, "loss": loss,
               "grad_norm": gn, "lr": lr, "schedule_lr": slr, "tokens": tokens}
    if domains is not None:
        it = iter(values)
        message["domains"] = {name: {f: next(it) for f in domains[1]} for name in domains[0]}
    return message


def test_snapshot_template_gives_the_encoders_bytes():
    rng = random.Random(7)
    for _ in range(40):
        run, rank = a_name(rng, 128), rng.choice([0, 1, 200, 70000])
        template = SnapshotTemplate(run, rank)
        names = tuple(sorted({a_name(rng, 12) for _ in range(rng.randint(1, 20))}))
        shapes = [None, (names, LOSS), (names, WEIGHT), (names, LOSS_AND_WEIGHT)]
        for _ in range(60):  # one template across shapes and values: layouts are reused
            domains = rng.choice(shapes)
            n = 0 if domains is None else len(domains[0]) * len(domains[1])
            args = (an_int(rng), a_float(rng), a_float(rng),
                    *(rng.choice([None, a_float(rng)]) for _ in range(3)),
                    rng.choice([None, an_int(rng)]), domains, [a_float(rng) for _ in range(n)])
            data = template.pack(*args)
            assert data is not None, args
            assert data == P.encode_snapshot(snapshot_message(run, rank, *args)), args
    assert template._layouts and all(template._layouts.values())


@pytest.mark.parametrize("change", [
    dict(step=-1), dict(step=2**64), dict(step=True), dict(step=np.int64(3)),
    dict(time=1), dict(loss=np.float64(1.0)), dict(grad_norm=1), dict(lr=np.float32(1.0)),
    dict(tokens=-5), dict(tokens=np.int64(5)), dict(tokens=2.0)])
def test_snapshot_template_leaves_other_types_to_the_encoder(change):
    args = dict(step=3, time=1.5, loss=2.0, grad_norm=0.5, lr=1e-3, schedule_lr=None, tokens=64,
                domains=None, domain_values=())
    assert SnapshotTemplate("r", 0).pack(**{**args, **change}) is None


def recording_client(sent: list):
    """A client class whose snapshots' bytes (by either path) go to `sent`."""
    class Client(types.SimpleNamespace):
        def send_snapshot(self, step, loss, **fields):
            fields.pop("prepare", None)
            sent.append(P.encode_snapshot(dict(type="snapshot", run="r", rank=0, step=step,
                                               loss=loss, **fields)))

        def send_snapshot_bytes(self, data):
            sent.append(data)

    return Client


def test_assembler_template_path_sends_what_the_general_path_sends(monkeypatch):
    """`SnapshotAssembler.send` with and without `_send_plain`: the same bytes, for
    domain losses and sampler weights covering all, some or none of the domains."""
    monkeypatch.setattr(snapshots.time, "time", lambda: 1733580000.25)
    rng = random.Random(11)
    sent = []
    Client = recording_client(sent)

    class Sampler:
        weights: dict = {}

        def effective_weights(self):
            return dict(self.weights)

    for _ in range(300):
        declared = tuple(rng.sample(["code", "prose", "math", "zh-Hans", "b"], rng.randint(0, 4)))
        sampler = Sampler() if rng.random() < 0.8 else None
        if sampler is not None:
            sampler.weights = {d: rng.choice([a_float(rng), 1]) for d in declared if rng.random() < 0.9}
        assembler = snapshots.SnapshotAssembler(ProbeConfig(grad_norm=False), declared, None, FailOpen())
        assembler.sampler = sampler
        assembler.probes = types.SimpleNamespace(armed=False)
        link = types.SimpleNamespace(deferred=False, registered=True,
                                     client=Client(template=SnapshotTemplate("r", 0)))
        losses = rng.choice([None, {}, {d: a_float(rng) for d in declared if rng.random() < 0.9},
                             {d: a_float(rng) for d in declared + ("extra",)}])
        args = (link, an_int(rng) % 2**63, a_float(rng), rng.choice([None, a_float(rng), 3]),
                losses, rng.choice([None, 640]), None, rng.choice([None, 1e-3]), rng.choice([None, 2e-3]))
        assembler.send(*args)
        fast = sent.pop()
        plain = assembler._send_plain
        assembler._send_plain = lambda *a: False
        assembler.send(*args)
        assembler._send_plain = plain
        assert fast == sent.pop(), args


def same_width(rng: random.Random, x: int) -> int:
    """A random int of x's MessagePack width (x itself one time in ten)."""
    bounds = [(0, 127), (128, 255), (256, 65535), (65536, 2**32 - 1), (2**32, 2**63 - 1)]
    lo, hi = next(b for b in bounds if b[0] <= x <= b[1])
    return x if rng.random() < 0.1 else rng.randint(lo, hi)


def state_message(rng, run, names, rank=0, step=1, age=None, state="STABLE", basin="healthy"):
    message = {"v": 1, "type": "state", "run": run, "rank": rank, "step": same_width(rng, step),
               "state": state, "basin": basin, "metrics": {k: a_float(rng) for k in names}}
    if age is not None:
        message["basin_age_steps"] = same_width(rng, age)
    return message


def check(template, data):
    """The template's reading of `data` is None or what protocol.decode returns."""
    got = template.decode(data)
    if got is None:
        return False
    assert same(got, P.decode(data)), data.hex()
    return True


def test_state_template_reads_what_decode_reads():
    rng = random.Random(3)
    hits = 0
    for _ in range(30):
        template = StateTemplate()
        run = a_name(rng, 128)
        names = sorted({a_name(rng, 30) for _ in range(rng.randint(0, 40))})
        ints = dict(rank=an_int(rng) % 2**63, step=an_int(rng) % 2**63,
                    age=an_int(rng) % 2**63 if rng.random() < 0.7 else None)
        first = P.encode(state_message(rng, run, names, **ints))
        template.learn(first, P.decode(first))
        for _ in range(50):
            message = state_message(rng, run, names, **ints)
            if rng.random() < 0.1:
                message["state"] = rng.choice(["WARNING", "STABLF", "STABLE"])
            data = P.encode(message)
            hits += check(template, data)
            if template.decode(data) is None:  # as the client does on a miss
                template.learn(data, P.decode(data))
                assert check(template, data)
    assert hits > 1000  # the same shape: most replies take the template


def test_state_template_returns_none_or_decodes_mutated_bytes():
    rng = random.Random(5)
    base = {"v": 1, "type": "state", "run": "exp-1", "rank": 0, "step": 300, "state": "STABLE",
            "basin": "healthy", "metrics": {"loss_z": 0.5, "rank_eff": 31.0, "a": 1.0},
            "basin_age_steps": 7}
    data = P.encode(base)
    template = StateTemplate()
    template.learn(data, P.decode(data))
    assert check(template, data)
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        mutated = bytes(mutated)
        try:
            P.decode(mutated)
        except P.ProtocolError:
            assert template.decode(mutated) is None, mutated.hex()
            continue
        check(template, mutated)


def test_state_template_learns_only_canonical_state_replies():
    template = StateTemplate()
    for path in sorted(VECTORS.glob("*.msgpack")):
        data = path.read_bytes()
        try:
            message = P.decode(data)
        except P.ProtocolError:
            continue
        template.learn(data, message)
        if message["type"] != "state":
            assert template.decode(data) is None
        else:
            check(template, data)
    # Integers where floats belong: decode reads them as floats; not this layout's bytes.
    data = P.encode({"v": 1, "type": "state", "run": "r", "rank": 0, "step": 1, "state": "S",
                     "basin": "b", "metrics": {"x": 1.0}}).replace(b"\xa1x\xcb" + struct.pack(">d", 1.0),
                                                                     b"\xa1x\x01")
    message = P.decode(data)
    template.learn(data, message)
    assert template.decode(data) is None and message["metrics"] == {"x": 1.0}
