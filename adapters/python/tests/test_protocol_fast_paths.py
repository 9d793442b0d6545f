# SPDX-License-Identifier: Apache-2.0
"""The per-step fast paths of protocol.py give what the general code gives: the state
reply's decoder (`_decode_plain_state`, tried first by `decode`) returns the same dict
or leaves the message to the full decoder, and `encode_snapshot` the same bytes or
error as `encode`, on the golden vectors and on generated and mutated messages."""

from __future__ import annotations

import math
import random

import msgpack
import numpy as np
import pytest

from conftest import VECTORS
from orbit_adapter import protocol as P


def full_decode(data, limits=P.DecodeLimits()):
    """`decode` with the fast path switched off."""
    saved = P._decode_plain_state
    P._decode_plain_state = lambda data, limits: None
    try:
        return P.decode(data, limits)
    finally:
        P._decode_plain_state = saved


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except P.ProtocolError as e:
        return ("error", e.code, e.message, e.ref)
    except Exception as e:  # encode: TypeError, ValueError, AttributeError
        return ("raise", type(e).__name__, str(e))


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) and type(a[k]) is type(b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    return a == b


def check_decode(data, limits=P.DecodeLimits()):
    fast, full = outcome(P.decode, data, limits), outcome(full_decode, data, limits)
    assert same(fast, full), (data.hex(), fast, full)
    return fast


def pack_pairs(pairs):
    """A MessagePack map of `pairs` as given (repeated keys, any order)."""
    packer = msgpack.Packer(use_bin_type=True)
    return packer.pack_map_header(len(pairs)) + b"".join(packer.pack(k) + packer.pack(v) for k, v in pairs)


STATE = [("v", 1), ("type", "state"), ("run", "exp-1"), ("rank", 0), ("step", 12),
         ("state", "STABLE"), ("basin", "healthy"), ("metrics", {"loss_z": 0.5, "rank_eff": 31.0})]


@pytest.mark.parametrize("folder", ["", "lenient", "invalid"])
def test_every_vector_decodes_as_the_full_decoder_reads_it(folder):
    paths = sorted((VECTORS / folder).glob("*.msgpack"))
    assert paths
    for path in paths:
        check_decode(path.read_bytes())


def test_the_golden_state_vectors_take_the_fast_path():
    for name in ("state", "state_empty_metrics"):
        data = (VECTORS / f"{name}.msgpack").read_bytes()
        fast = P._decode_plain_state(data, P.DecodeLimits())
        assert fast is not None and same(fast, full_decode(data))


def test_a_daemon_state_reply_takes_the_fast_path():
    data = P.encode({"type": "state", "run": "r", "rank": 3, "step": 7, "state": "WARNING",
                     "basin": "collapse", "metrics": {f"m{i}": i / 3 for i in range(60)},
                     "basin_age_steps": 4})
    fast = P._decode_plain_state(data, P.DecodeLimits())
    assert fast is not None and same(fast, full_decode(data))
    assert fast["metrics"]["m3"] == 1.0 and fast["basin_age_steps"] == 4


@pytest.mark.parametrize("value", [None, {}, {"é" * 64: 1.0}, {"é" * 65: 1.0}, {"k" * 128: 1.0},
                                   {"k" * 129: 1.0}, {"": 1.0}, {"k": 2**64 - 1}, {"k": -2**63},
                                   {"k": True}, {"k": None}, {b"k": 1.0}, {"k": float("nan")}])
def test_metric_maps_at_the_edges_decode_as_the_full_decoder_reads_them(value):
    check_decode(pack_pairs(STATE[:-1] + [("metrics", value)]))


VALUES = [None, True, False, 0, 1, -1, 2**63 - 1, 2**63, 2**64 - 1, -2**63, 0.0, -0.0, 1.5,
          float("nan"), float("inf"), "", "x", "STABLE", "a" * 129, b"\x00\x01", [], [1.0], {},
          {"k": 1.0}, {"": 1.0}, {"k" * 129: 1.0}, {"k": True}, {"k": "s"}, {"k": None},
          {"k": 2**64 - 1}, {"k": -2**63}, {"k": [1.0]}, {1: 1.0}, {b"k": 1.0}, {"é": 2.0},
          {"é" * 100: 1.0}, {"é" * 64: 1.0}]


def test_generated_state_messages_decode_as_the_full_decoder_reads_them():
    rng = random.Random(1801)
    fast_taken = 0
    for _ in range(3000):
        pairs = list(STATE)
        if rng.random() < 0.3:
            pairs.append(("basin_age_steps", rng.choice([0, 5, -1, None, 2**63, 1.0, True])))
        for _ in range(rng.randrange(3)):
            op = rng.randrange(5)
            i = rng.randrange(len(pairs))
            if op == 0:    # another value
                pairs[i] = (pairs[i][0], rng.choice(VALUES))
            elif op == 1:  # a field left out
                del pairs[i]
            elif op == 2:  # a key repeated
                pairs.append((pairs[i][0], rng.choice([pairs[i][1], rng.choice(VALUES)])))
            elif op == 3:  # an unknown or odd key
                pairs.append((rng.choice(["extra", "", 7, b"run", "metrics2"]), rng.choice(VALUES)))
            else:          # another order
                rng.shuffle(pairs)
        if rng.random() < 0.2:  # metrics with a repeated key
            pairs.append(("metrics", msgpack.ExtType(1, b"")) if rng.random() < 0.1 else ("metrics", {}))
        data = pack_pairs(pairs)
        if rng.random() < 0.1:
            data += b"\xc0"  # trailing bytes
        if P._decode_plain_state(data, P.DecodeLimits()) is not None:
            fast_taken += 1
        check_decode(data)
    assert fast_taken > 300  # the comparison covered the fast path, not only its refusals


def test_repeated_metric_names_and_byte_flips_are_read_as_the_full_decoder_reads_them():
    packer = msgpack.Packer(use_bin_type=True)
    metrics = packer.pack_map_header(2) + packer.pack("a") + packer.pack(1.0) + packer.pack("a") + packer.pack(2.0)
    head = pack_pairs(STATE[:-1])
    data = bytes([head[0] + 1]) + head[1:] + packer.pack("metrics") + metrics
    assert check_decode(data)[0] == "error"
    rng = random.Random(7)
    base = P.encode({"type": "state", "run": "r", "rank": 0, "step": 1, "state": "S", "basin": "b",
                     "metrics": {"x": 1.0, "y": 2}})
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        check_decode(bytes(data))
    small = P.DecodeLimits(max_scalars=1)  # 8 metrics at most
    many = P.encode({"type": "state", "run": "r", "rank": 0, "step": 1, "state": "S", "basin": "b",
                     "metrics": {f"m{i}": 1.0 for i in range(9)}})
    assert check_decode(many, small)[1] == "too_large"


def snapshot(**over):
    m = {"type": "snapshot", "run": "exp-1", "rank": 0, "step": 5, "time": 1.7e9, "loss": 2.5,
         "grad_norm": 0.75, "lr": 1e-3, "schedule_lr": 1e-3, "tokens": None,
         "domains": {"prose": {"weight": 0.5}, "code": {"loss": 2.0, "weight": 0.5}},
         "spectra": None, "loop_rate": None, "scalars": {"z": 1.0, "a": float("nan")}}
    m.update(over)
    return m


SNAPSHOT_VARIANTS = [
    {}, {"grad_norm": None, "lr": None, "schedule_lr": None}, {"tokens": 4096}, {"tokens": -1},
    {"loop_rate": 0.25}, {"domains": None}, {"domains": {}}, {"domains": []}, {"scalars": {}},
    {"scalars": None}, {"scalars": {"b": 1, "a": 2.0}}, {"scalars": {"x": "bad"}}, {"scalars": {3: 1.0}},
    {"domains": {"é": {"weight": 1.0}, "z": {"loss": None}, "a": {}}},
    {"domains": {"b": {"weight": 1}, "a": {"loss": 2.0}}}, {"domains": {"a": {"weight": "x"}}},
    {"domains": {"a": 5}}, {"domains": {"b": {"weight": 1.0, "extra": 1}, "a": {"loss": -0.0}}},
    {"grad_norm": np.float32(0.5)}, {"grad_norm": 1}, {"grad_norm": True}, {"grad_norm": "1"},
    {"lr": np.float64(1e-3)}, {"loss": float("inf")}, {"loss": float("nan")}, {"loss": 3},
    {"loss": None}, {"run": None}, {"run": 5}, {"rank": np.int64(2)}, {"rank": True}, {"step": 2**63},
    {"time": 5}, {"tokens": True}, {"loop_rate": 1}, {"spectra": {"hidden.0": np.arange(3.0)}},
    {"spectra": {}}, {"type": "heartbeat"},
]


@pytest.mark.parametrize("over", SNAPSHOT_VARIANTS, ids=range(len(SNAPSHOT_VARIANTS)))
def test_encode_snapshot_gives_the_bytes_and_errors_of_encode(over):
    message = snapshot(**over)
    fast, full = outcome(P.encode_snapshot, message), outcome(P.encode, message)
    assert fast == full


def test_an_ordinary_snapshot_takes_the_fast_path(monkeypatch):
    message = snapshot()
    expected = P.encode(message)
    monkeypatch.setattr(P, "canonical", lambda m: pytest.fail("took encode's general path"))
    assert P.encode_snapshot(message) == expected


def test_the_per_thread_packer_gives_packb_bytes_after_errors_and_across_threads():
    import threading
    message = snapshot()
    expected = msgpack.packb(P.canonical(message), use_bin_type=True)
    with pytest.raises(TypeError):  # fails half-way through the map
        P.encode_snapshot(snapshot(scalars={"a": 1.0, "b": "x"}, spectra={"s": [1.0]}))
    with pytest.raises(TypeError):
        P._pack({"a": 1, "b": object()})
    assert P.encode_snapshot(message) == expected and P.encode(message) == expected
    results, errors = [], []

    def work(i):
        try:
            for step in range(300):
                m = snapshot(step=step, run=f"r{i}")
                results.append(P.encode(m) == msgpack.packb(P.canonical(m), use_bin_type=True))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 1200 and all(results)
