# SPDX-License-Identifier: Apache-2.0
"""orbit_adapter.protocol without a daemon: canonical encoding, validation, and a
randomized round trip (protocol/SPEC.md sections 4-7)."""

from __future__ import annotations

import math
import random
import struct
import subprocess
import sys

import msgpack
import numpy as np
import pytest

from conftest import HERE
from orbit_adapter import protocol as P


def snapshot(**fields):
    m = {"type": "snapshot", "run": "r", "rank": 0, "step": 0, "time": 0.0, "loss": 0.0}
    m.update(fields)
    return m


def raw(d: dict) -> bytes:
    """msgpack's own packing of a dict (insertion order, no canonicalization)."""
    return msgpack.packb(d, use_bin_type=True)


def error_of(data: bytes, limits: P.DecodeLimits = P.DecodeLimits()):
    with pytest.raises(P.ProtocolError) as e:
        P.decode(data, limits)
    assert e.value.message
    return e.value.code, e.value.ref


# ------------------------------------------------------------ encoding

def test_key_order_is_v_type_then_spec_order():
    data = P.encode({"loss": 1.5, "scalars": {"b": 1, "a": 2}, "time": 3, "step": 4, "rank": 5,
                     "run": "r", "type": "snapshot", "grad_norm": 0.5, "spectra": {"x": [1.0]}})
    keys = list(msgpack.unpackb(data, raw=False).keys())
    assert keys == ["v", "type", "run", "rank", "step", "time", "loss", "grad_norm", "spectra",
                    "scalars"]


def test_absent_and_empty_optionals_are_left_out_but_required_maps_stay():
    data = P.encode(snapshot(grad_norm=None, domains={}, spectra={}, scalars={}, tokens=None))
    assert set(msgpack.unpackb(data, raw=False)) == {"v", "type", "run", "rank", "step", "time", "loss"}
    state = P.encode({"type": "state", "run": "r", "rank": 0, "step": 1, "state": "S", "basin": "B",
                      "metrics": {}})
    assert msgpack.unpackb(state, raw=False)["metrics"] == {}


def test_nested_maps_sorted_by_utf8_bytes():
    data = P.encode(snapshot(scalars={"b": 1, "B": 2, "é": 3, "aa": 4, "a": 5, "_": 6}))
    keys = list(msgpack.unpackb(data, raw=False)["scalars"])
    assert keys == ["B", "_", "a", "aa", "b", "é"]


def test_floats_are_float64_even_when_integral():
    for value, expected in [(2, "cb4000000000000000"), (2.0, "cb4000000000000000"),
                            (-0.0, "cb8000000000000000"), (np.float32(0.5), "cb3fe0000000000000"),
                            (float("nan"), "cb7ff8000000000000")]:
        data = P.encode(snapshot(loss=value))
        assert data.endswith(b"\xa4loss" + bytes.fromhex(expected)), value


@pytest.mark.parametrize("value,expected", [
    (0, "00"), (127, "7f"), (128, "cc80"), (255, "ccff"), (256, "cd0100"), (65535, "cdffff"),
    (65536, "ce00010000"), (2**32, "cf0000000100000000"), (2**63 - 1, "cf7fffffffffffffff"),
    (-1, "ff"), (-32, "e0"), (-33, "d0df"), (-128, "d080"), (-129, "d1ff7f"),
    (-32769, "d2ffff7fff"), (-2**63, "d38000000000000000")])
def test_integers_in_smallest_form(value, expected):
    data = P.encode({"type": "welcome", "run": "r", "rank": 0, "session": "s", "version": value,
                     "mode": "active", "snapshot_every": 1})
    e = bytes.fromhex(expected)
    at = data.index(b"\xa7version") + 8
    assert data[at:at + len(e) + 5] == e + b"\xa4mode"


def test_spectra_go_out_as_little_endian_float32_bin():
    for values in ([1.0, -2.5], np.array([1.0, -2.5]), np.array([1.0, -2.5], dtype=">f8"),
                   np.array([[1.0], [-2.5]], dtype=np.float32), (1, -2.5)):
        data = P.encode(snapshot(spectra={"s": values}))
        assert b"\xa1s\xc4\x08" + struct.pack("<2f", 1.0, -2.5) in data, values


def test_numpy_scalars_are_accepted():
    data = P.encode(snapshot(step=np.int64(5), loss=np.float32(1.5), tokens=np.uint32(9)))
    d = P.decode(data)
    assert (d["step"], d["loss"], d["tokens"]) == (5, 1.5, 9)


def test_encoder_rejects_wrong_types_and_missing_fields():
    with pytest.raises(ValueError):
        P.encode({"type": "snapshot", "run": "r"})
    with pytest.raises(ValueError):
        P.encode({"type": "launch"})
    with pytest.raises(TypeError):
        P.encode(snapshot(step=True))
    with pytest.raises(TypeError):
        P.encode(snapshot(step=1.0))
    with pytest.raises(TypeError):
        P.encode(snapshot(loss="1"))
    with pytest.raises(TypeError):
        P.encode({"type": "ack", "run": "r", "rank": 0, "seq": 1, "step": 1, "late": 1})


def test_arrays_keep_their_order():
    d = P.decode(P.encode({"type": "hello", "run": "r", "rank": 0, "world_size": 1, "adapter": "a",
                           "adapter_version": "1", "versions": [2, 1], "domains": ["z", "a"]}))
    assert d["versions"] == [2, 1] and d["domains"] == ["z", "a"]


# ------------------------------------------------------------ decoding

def test_decoder_accepts_lenient_forms():
    data = raw({"type": "snapshot", "v": 1, "run": "r", "rank": 0, "step": 3, "time": 1,
                "loss": 2, "spectra": {"s": [3, 1.5, 0.1]}, "lr": None, "future": {"x": [1]}})
    d = P.decode(data)
    assert d["loss"] == 2.0 and isinstance(d["loss"], float)
    assert d["spectra"]["s"].dtype == np.dtype("<f4")
    assert d["spectra"]["s"].tolist() == [3.0, 1.5, float(np.float32(0.1))]
    assert "lr" not in d and "future" not in d
    assert P.encode(d) == P.encode(snapshot(step=3, time=1.0, loss=2.0,
                                            spectra={"s": [3.0, 1.5, 0.1]}))


def test_non_finite_loss_and_grad_norm_are_signals():
    for v in (float("nan"), float("inf"), float("-inf")):
        d = P.decode(P.encode(snapshot(loss=v, grad_norm=v)))
        assert (math.isnan(d["loss"]) if math.isnan(v) else d["loss"] == v)
        assert (math.isnan(d["grad_norm"]) if math.isnan(v) else d["grad_norm"] == v)
    assert error_of(P.encode(snapshot(time=float("inf")))) == ("invalid_field", "time")


@pytest.mark.parametrize("message,expected", [
    (snapshot(run="a b"), ("invalid_field", "run")),
    (snapshot(run="x" * 129), ("invalid_field", "run")),
    (snapshot(step=-1), ("invalid_field", "step")),
    (snapshot(loop_rate=1.5), ("invalid_field", "loop_rate")),
    (snapshot(loop_rate=float("nan")), ("invalid_field", "loop_rate")),
    (snapshot(lr=-1.0), ("invalid_field", "lr")),
    (snapshot(domains={"web": {"weight": -1.0}}), ("invalid_field", "domains.web.weight")),
    (snapshot(scalars={"": 1.0}), ("invalid_field", "scalars")),
    (snapshot(spectra={"s": b"\x00" * 5}), None),  # the encoder refuses partial float32
    ({"type": "hello", "run": "r", "rank": 1, "world_size": 1, "adapter": "a",
      "adapter_version": "1", "versions": [1]}, ("invalid_field", "rank")),
    ({"type": "hello", "run": "r", "rank": 0, "world_size": 1, "adapter": "a",
      "adapter_version": "1", "versions": [2]}, ("unsupported_version", "versions")),
    ({"type": "hello", "run": "r", "rank": 0, "world_size": 1, "adapter": "a",
      "adapter_version": "1", "versions": [1], "actuators": ["momentum"]},
     ("invalid_field", "actuators")),
    ({"type": "burn", "run": "r", "seq": 1, "state": "S", "basin": "B", "reason": "x",
      "for_step": 1, "apply_at_step": 1, "expires_after_steps": 1, "lr_scale": 0.0},
     ("invalid_field", "lr_scale")),
    ({"type": "welcome", "run": "r", "rank": 0, "session": "s", "version": 1, "mode": "auto",
      "snapshot_every": 1}, ("invalid_field", "mode")),
])
def test_validation_rules(message, expected):
    if expected is None:
        with pytest.raises(ValueError):
            P.encode(message)
        return
    assert error_of(P.encode(message)) == expected


def test_framing_errors():
    good = P.encode(snapshot())
    assert error_of(b"") == ("bad_message", None)
    assert error_of(good[:-1]) == ("bad_message", None)
    assert error_of(good + b"\x00") == ("bad_message", None)
    assert error_of(raw([1, 2])) == ("bad_message", None)
    assert error_of(raw({"v": 1})) == ("bad_message", "type")
    assert error_of(raw({"type": "bye", "run": "r", "rank": 0})) == ("bad_message", "v")
    assert error_of(raw({"v": 2, "type": "launch"})) == ("unsupported_version", "v")
    assert error_of(raw({"v": 1, "type": "launch"})) == ("unknown_type", "type")
    assert error_of(raw({"v": 1, "type": 7})) == ("invalid_field", "type")
    assert error_of(raw({"v": "1", "type": "bye"})) == ("invalid_field", "v")


def test_limits():
    small = P.DecodeLimits(max_spectrum_length=4, max_spectra=1, max_domains=1, max_scalars=1)
    assert error_of(P.encode(snapshot(scalars={"a": 1.0, "b": 2.0})), small)[0] == "too_large"
    assert error_of(P.encode(snapshot(spectra={"s": [1.0] * 5})), small) == ("too_large", "spectra.s")
    assert P.decode(P.encode(snapshot(spectra={"s": [1.0] * 4})), small)["spectra"]["s"].size == 4
    assert error_of(P.encode(snapshot(run="r" * 100)), P.DecodeLimits(max_message_bytes=64)) == (
        "too_large", None)
    assert error_of(P.encode(snapshot(spectra={"s": [1.0], "t": [2.0]})), small) == ("too_large", "spectra")
    nested = raw({"v": 1, "type": "bye", "run": "r", "rank": 0, "x": [[[[[[[[]]]]]]]]})
    assert error_of(nested) == ("too_large", None)
    ok = raw({"v": 1, "type": "bye", "run": "r", "rank": 0, "x": [[[[[[[]]]]]]]})
    assert P.decode(ok)["type"] == "bye"
    assert error_of(b"\x91" * 100000 + b"\x90")[0] in ("too_large", "bad_message")


def test_duplicate_keys_are_rejected():
    dup_root = b"\x83" + raw("v") + raw(1) + raw("type") + raw("bye") + raw("v") + raw(1)
    assert error_of(dup_root) == ("bad_message", "v")


def test_unknown_error_code_reads_as_internal():
    d = P.decode(raw({"v": 1, "type": "error", "code": "rate_limited", "message": "m"}))
    assert d["code"] == "internal"


def test_json_twin_round_trip():
    m = snapshot(loss=float("nan"), grad_norm=float("-inf"), spectra={"s": [1.5, float("inf")]},
                 domains={"d": {"loss": float("nan")}})
    j = P.to_jsonable(m)
    assert j["loss"] == "nan" and j["grad_norm"] == "-inf" and j["spectra"]["s"] == [1.5, "inf"]
    assert P.encode(P.from_jsonable(j)) == P.encode(m)


# ------------------------------------------------------------ randomized round trip

def random_message(rng: random.Random, mtype: str) -> dict:
    def name():
        return "".join(rng.choice("abcXYZ_.é日") for _ in range(rng.randint(1, 40)))

    def counter():
        return rng.randrange(rng.choice([128, 256, 65536, 2**32, 2**63]))

    def num(finite=True):
        if not finite and rng.random() < 0.2:
            return rng.choice([float("nan"), float("inf"), float("-inf")])
        return rng.choice([rng.uniform(-1e6, 1e6), float(rng.randint(0, 100)),
                           math.ldexp(rng.random(), rng.randint(-1000, 1000))])

    def pos():
        return math.ldexp(rng.uniform(0.5, 1), rng.randint(-40, 20))

    def fmap(finite):
        return {name(): num(finite) for _ in range(rng.randint(0, 20))}

    def maybe(v):
        return v if rng.random() < 0.5 else None

    run = "".join(rng.choice("ab1._-Z") for _ in range(rng.randint(1, 128)))
    if mtype == "hello":
        ws = 1 + rng.randrange(1000)
        return {"type": mtype, "run": run, "rank": rng.randrange(ws), "world_size": ws,
                "adapter": name(), "adapter_version": name(), "versions": [1] + [2] * rng.randint(0, 1),
                "domains": [name() for _ in range(rng.randint(0, 5))],
                "actuators": [a for a in P.ACTUATORS if rng.random() < 0.5], "base_lr": maybe(pos())}
    if mtype == "welcome":
        return {"type": mtype, "run": run, "rank": counter(), "session": name(), "version": 1,
                "mode": rng.choice(P.MODES), "snapshot_every": 1 + counter() % 1000}
    if mtype == "snapshot":
        def value():
            return rng.choice([rng.uniform(-1e30, 1e30), rng.random(), float("nan"), float("inf")])

        spectra = {name(): np.array([value() for _ in range(rng.choice([0, 1, 63, 64, 300]))],
                                    dtype=np.float32) for _ in range(rng.randint(0, 3))}
        domains = {}
        for _ in range(rng.randint(0, 4)):
            stats = {}
            if rng.random() < 0.5:
                stats["loss"] = num(False)
            if rng.random() < 0.5:
                stats["weight"] = pos()
            domains[name()] = stats
        return {"type": mtype, "run": run, "rank": counter(), "step": counter(), "time": num(),
                "loss": num(False), "grad_norm": maybe(num(False)), "lr": maybe(pos()),
                "tokens": maybe(counter()), "domains": domains, "spectra": spectra,
                "loop_rate": maybe(rng.random()), "scalars": fmap(False)}
    if mtype == "state":
        return {"type": mtype, "run": run, "rank": counter(), "step": counter(), "state": name(),
                "basin": name(), "metrics": fmap(False)}
    if mtype == "burn":
        return {"type": mtype, "run": run, "seq": counter(), "state": name(), "basin": name(),
                "reason": name() * rng.randint(1, 20), "for_step": counter(),
                "apply_at_step": counter(), "expires_after_steps": counter(), "lr_scale": pos(),
                "domain_weights": fmap(True), "curriculum_phase": maybe(counter()),
                "loss_weights": fmap(True), "rollback_to_step": maybe(counter()),
                "skip_batches": maybe(counter())}
    if mtype == "ack":
        return {"type": mtype, "run": run, "rank": counter(), "seq": counter(), "step": counter(),
                "late": rng.random() < 0.5, "lr": maybe(num()), "restored_step": maybe(counter())}
    if mtype == "heartbeat":
        return {"type": mtype, "run": maybe(run), "rank": maybe(counter())}
    if mtype == "bye":
        return {"type": mtype, "run": run, "rank": counter()}
    if mtype == "error":
        return {"type": mtype, "code": rng.choice(P.ERROR_CODES), "message": name(), "ref": maybe(name())}
    return {"type": mtype, "run": run, "rank": counter(), "step": counter(), "time": num(),
            "mode": rng.choice(P.MODES), "state": name(), "basin": name(), "forecast_basin": name(),
            "lr_scale": pos(), "metrics": fmap(False), "burn_seq": maybe(counter()), "reason": name()}


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.asarray(a, dtype="<f4").tobytes() == np.asarray(b, dtype="<f4").tobytes()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("mtype", P.TYPES)
def test_random_round_trip(mtype):
    rng = random.Random(f"orbit-{mtype}")
    for _ in range(150):
        m = random_message(rng, mtype)
        data = P.encode(m)
        d = P.decode(data)
        assert P.encode(d) == data
        expected = {k: v for k, v in P.canonical(m).items()}
        assert same(P.canonical(d), expected)


def test_import_does_not_pull_in_torch():
    code = ("import sys; sys.path.insert(0, %r); import orbit_adapter, orbit_adapter.client, "
            "orbit_adapter.protocol; assert 'torch' not in sys.modules, 'torch imported'" % str(HERE.parent))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
