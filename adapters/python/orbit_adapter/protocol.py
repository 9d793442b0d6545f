# SPDX-License-Identifier: Apache-2.0
"""Orbit protocol v1 in Python: canonical encoding and validating decoding.

This is the Python twin of protocol/codec.cpp and follows protocol/SPEC.md. Both
sides produce the same bytes for the same message (the golden vectors in
protocol/vectors/ check it) and reject the same malformed input with the same
error code.

Messages are plain dicts: ``{"v": 1, "type": "snapshot", "run": ..., ...}``.
``encode`` takes such a dict; fields that are ``None`` (and optional maps or
arrays that are empty) are left out. ``decode`` returns a dict holding ``v``,
``type`` and the fields the message carries (unknown keys are dropped), with
spectra as read-only ``numpy.float32`` arrays; it raises ``ProtocolError`` with
the code the daemon would answer.

Per-step fast paths, same results: ``decode`` reads a well-formed `state` reply (one
per snapshot) without the general validator's per-field calls and hands anything
else to it; ``encode_snapshot`` packs a snapshot of plain values the same way.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from typing import Any, Mapping

import msgpack
import numpy as np

VERSION = 1

TYPES = ("hello", "welcome", "snapshot", "state", "burn", "ack", "heartbeat", "bye",
         "error", "telemetry")

ERROR_CODES = ("bad_message", "unsupported_version", "unknown_type", "invalid_field",
               "too_large", "not_registered", "internal")

ACTUATORS = ("lr", "domain_weights", "curriculum", "loss_weights", "rollback")

MODES = ("active", "monitor")

# hello.replies: one reply per snapshot (the default), or only replies with news.
REPLIES = ("every", "news")

MAX_DEPTH = 8  # nested containers, the root map included

_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# Field kinds. The order of each list is the canonical key order (SPEC.md).
_STR, _INT, _FLOAT, _BOOL = "str", "int", "float", "bool"
_INTS, _STRS, _FLOATS, _DOMAINS, _SPECTRA = "int[]", "str[]", "map<float>", "domains", "spectra"
_REQ, _OPT = True, False

FIELDS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "hello": (("run", _STR, _REQ), ("rank", _INT, _REQ), ("world_size", _INT, _REQ),
              ("adapter", _STR, _REQ), ("adapter_version", _STR, _REQ),
              ("versions", _INTS, _REQ), ("domains", _STRS, _OPT), ("actuators", _STRS, _OPT),
              ("base_lr", _FLOAT, _OPT), ("replies", _STR, _OPT)),
    "welcome": (("run", _STR, _REQ), ("rank", _INT, _REQ), ("session", _STR, _REQ),
                ("version", _INT, _REQ), ("mode", _STR, _REQ), ("snapshot_every", _INT, _REQ),
                ("max_message_bytes", _INT, _OPT), ("replies", _STR, _OPT)),
    "snapshot": (("run", _STR, _REQ), ("rank", _INT, _REQ), ("step", _INT, _REQ),
                 ("time", _FLOAT, _REQ), ("loss", _FLOAT, _REQ), ("grad_norm", _FLOAT, _OPT),
                 ("lr", _FLOAT, _OPT), ("schedule_lr", _FLOAT, _OPT), ("tokens", _INT, _OPT),
                 ("domains", _DOMAINS, _OPT), ("spectra", _SPECTRA, _OPT), ("loop_rate", _FLOAT, _OPT),
                 ("scalars", _FLOATS, _OPT)),
    "state": (("run", _STR, _REQ), ("rank", _INT, _REQ), ("step", _INT, _REQ),
              ("state", _STR, _REQ), ("basin", _STR, _REQ), ("metrics", _FLOATS, _REQ),
              ("basin_age_steps", _INT, _OPT)),
    "burn": (("run", _STR, _REQ), ("seq", _INT, _REQ), ("state", _STR, _REQ),
             ("basin", _STR, _REQ), ("reason", _STR, _REQ), ("for_step", _INT, _REQ),
             ("apply_at_step", _INT, _REQ), ("expires_after_steps", _INT, _REQ),
             ("lr_scale", _FLOAT, _REQ), ("domain_weights", _FLOATS, _OPT),
             ("curriculum_phase", _INT, _OPT), ("loss_weights", _FLOATS, _OPT),
             ("rollback_to_step", _INT, _OPT), ("skip_batches", _INT, _OPT),
             ("basin_age_steps", _INT, _OPT)),
    "ack": (("run", _STR, _REQ), ("rank", _INT, _REQ), ("seq", _INT, _REQ),
            ("step", _INT, _REQ), ("late", _BOOL, _REQ), ("lr", _FLOAT, _OPT),
            ("restored_step", _INT, _OPT)),
    "heartbeat": (("run", _STR, _OPT), ("rank", _INT, _OPT)),
    "bye": (("run", _STR, _REQ), ("rank", _INT, _REQ)),
    "error": (("code", _STR, _REQ), ("message", _STR, _REQ), ("ref", _STR, _OPT)),
    "telemetry": (("run", _STR, _REQ), ("rank", _INT, _REQ), ("step", _INT, _REQ),
                  ("time", _FLOAT, _REQ), ("mode", _STR, _REQ), ("state", _STR, _REQ),
                  ("basin", _STR, _REQ), ("forecast_basin", _STR, _REQ),
                  ("lr_scale", _FLOAT, _REQ), ("metrics", _FLOATS, _REQ),
                  ("burn_seq", _INT, _OPT), ("reason", _STR, _REQ),
                  ("basin_age_steps", _INT, _OPT)),
}
assert tuple(FIELDS) == TYPES


@dataclasses.dataclass(frozen=True)
class DecodeLimits:
    """Bounds applied while decoding (the defaults of protocol/codec.hpp)."""

    max_message_bytes: int = 4 << 20
    max_spectrum_length: int = 131072
    max_spectra: int = 64
    max_domains: int = 256
    max_scalars: int = 256


class ProtocolError(ValueError):
    """A message that protocol v1 rejects; ``code`` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str, ref: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref


def valid_run_id(run: Any) -> bool:
    """True when ``run`` is 1-128 characters of [A-Za-z0-9._-]."""
    if type(run) is str and run in _VALID_RUN_IDS:  # every reply names the rank's own run
        return True
    if not (isinstance(run, str) and _RUN_ID.fullmatch(run) is not None):
        return False
    if type(run) is str and len(_VALID_RUN_IDS) < 1024:
        _VALID_RUN_IDS.add(run)
    return True


_VALID_RUN_IDS: set = set()  # run ids that matched (only exact str; bounded)


# ------------------------------------------------------------------ encoding

def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _enc_int(name: str, x: Any) -> int:
    if not _is_int(x):
        raise TypeError(f"field '{name}' must be an integer, got {type(x).__name__}")
    return int(x)


def _enc_float(name: str, x: Any) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"field '{name}' must be a number, got {type(x).__name__}")
    return float(x)


def _enc_str(name: str, x: Any) -> str:
    if not isinstance(x, str):
        raise TypeError(f"field '{name}' must be a string, got {type(x).__name__}")
    return x


def _sorted_items(name: str, m: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if not isinstance(m, Mapping):
        raise TypeError(f"field '{name}' must be a mapping, got {type(m).__name__}")
    for k in m:
        _enc_str(name, k)
    # Canonical order: keys sorted by their UTF-8 bytes (what std::map<std::string> does).
    return sorted(m.items(), key=lambda kv: kv[0].encode("utf-8"))


def spectrum_bytes(values: Any) -> bytes:
    """The wire form of one spectrum: little-endian float32 values."""
    if isinstance(values, (bytes, bytearray, memoryview)):
        raw = bytes(values)
        if len(raw) % 4:
            raise ValueError("a spectrum given as bytes must hold whole float32 values")
        return raw
    return np.ascontiguousarray(values, dtype="<f4").reshape(-1).tobytes()


def _enc_value(name: str, kind: str, x: Any) -> Any:
    if kind == _STR:
        return _enc_str(name, x)
    if kind == _INT:
        return _enc_int(name, x)
    if kind == _FLOAT:
        return _enc_float(name, x)
    if kind == _BOOL:
        if not isinstance(x, (bool, np.bool_)):
            raise TypeError(f"field '{name}' must be a boolean, got {type(x).__name__}")
        return bool(x)
    if kind == _INTS:
        return [_enc_int(name, e) for e in x]
    if kind == _STRS:
        return [_enc_str(name, e) for e in x]
    if kind == _FLOATS:
        return {k: _enc_float(f"{name}.{k}", v) for k, v in _sorted_items(name, x)}
    if kind == _DOMAINS:
        out = {}
        for k, stats in _sorted_items(name, x):
            inner = {}
            for field in ("loss", "weight"):
                if stats.get(field) is not None:
                    inner[field] = _enc_float(f"{name}.{k}.{field}", stats[field])
            out[k] = inner
        return out
    if kind == _SPECTRA:
        return {k: spectrum_bytes(v) for k, v in _sorted_items(name, x)}
    raise AssertionError(kind)


def canonical(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message as an ordered dict of wire values (what ``encode`` packs)."""
    mtype = message.get("type")
    if mtype not in FIELDS:
        raise ValueError(f"unknown message type {mtype!r}; protocol v1 knows {', '.join(TYPES)}")
    out: dict[str, Any] = {"v": VERSION, "type": mtype}
    for name, kind, required in FIELDS[mtype]:
        x = message.get(name)
        if x is None:
            if required:
                raise ValueError(f"'{mtype}' needs field '{name}'")
            continue
        value = _enc_value(name, kind, x)
        # An optional map or array that is empty carries nothing: it is left out.
        if not required and kind in (_INTS, _STRS, _FLOATS, _DOMAINS, _SPECTRA) and not value:
            continue
        out[name] = value
    return out


_packer_options = dict(use_bin_type=True, use_single_float=False, autoreset=True)
_local = threading.local()


def _pack(value: Any) -> bytes:
    """msgpack.packb with this thread's Packer: packb builds a Packer, and its 1 MiB
    buffer, on every call (a Packer resets itself after an error)."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(**_packer_options)
    return packer.pack(value)


def encode(message: Mapping[str, Any]) -> bytes:
    """Canonical MessagePack bytes of a message dict (SPEC.md, "Canonical encoding")."""
    return _pack(canonical(message))


_SNAPSHOT_FLOATS = ("grad_norm", "lr", "schedule_lr")


def encode_snapshot(message: Mapping[str, Any]) -> bytes:
    """``encode`` of a snapshot: the same bytes and the same errors, with less work for
    the common case (a snapshot goes out every step). Fields of the plain types
    (str, int, float, None) are taken as they are; any other value, and a message with
    spectra, goes through ``encode``."""
    g = message.get
    run, rank, step, t, loss = g("run"), g("rank"), g("step"), g("time"), g("loss")
    tokens, loop = g("tokens"), g("loop_rate")
    if not (type(run) is str and type(rank) is int and type(step) is int and type(t) is float
            and type(loss) is float and (tokens is None or type(tokens) is int)
            and (loop is None or type(loop) is float) and g("spectra") is None
            and g("type") == "snapshot"):
        return encode(message)
    out: dict[str, Any] = {"v": VERSION, "type": "snapshot", "run": run, "rank": rank,
                           "step": step, "time": t, "loss": loss}
    for name in _SNAPSHOT_FLOATS:
        x = g(name)
        if x is not None:
            if type(x) is not float:
                return encode(message)
            out[name] = x
    if tokens is not None:
        out["tokens"] = tokens
    domains = g("domains")
    if domains is not None:
        value = _plain_domains(domains)
        if value is None:
            value = _enc_value("domains", _DOMAINS, domains)
        if value:
            out["domains"] = value
    if loop is not None:
        out["loop_rate"] = loop
    scalars = g("scalars")
    if scalars is not None:
        value = _enc_value("scalars", _FLOATS, scalars)
        if value:
            out["scalars"] = value
    try:  # _pack, inline (this runs on every step)
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(**_packer_options)
    return packer.pack(out)


def _plain_domains(domains: Any) -> dict | None:
    """The wire form of `domains` when it is a dict of ASCII names to dicts of floats
    (code point order is then byte order); None for anything else."""
    if type(domains) is not dict:
        return None
    out = {}
    names = sorted(domains) if _ONLY_STR.issuperset(map(type, domains)) else ()
    for name in names if all(map(str.isascii, names)) else ():
        stats = domains[name]
        if type(stats) is not dict:
            return None
        inner = {}
        for field in ("loss", "weight"):
            x = stats.get(field)
            if x is not None:
                if type(x) is not float:
                    return None
                inner[field] = x
        out[name] = inner
    return out if len(out) == len(domains) else None


# ------------------------------------------------------------------ decoding

class _Map:
    """A decoded MessagePack map kept as its list of pairs, so that repeated keys and
    non-string keys stay visible to validation (a dict would hide them)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


def _kind(o: Any) -> str:
    if o is None:
        return "nil"
    if isinstance(o, bool):
        return "a boolean"
    if isinstance(o, int):
        return "an integer"
    if isinstance(o, float):
        return "a float"
    if isinstance(o, str):
        return "a string"
    if isinstance(o, bytes):
        return "binary"
    if isinstance(o, list):
        return "an array"
    if isinstance(o, _Map):
        return "a map"
    return "an extension"


def _fail(code: str, message: str, ref: str | None = None):
    raise ProtocolError(code, message, ref)


def _too_deep(o: Any, depth: int = 1) -> bool:
    """True when containers nest deeper than MAX_DEPTH (the root counts as 1).
    Recursion stops at MAX_DEPTH + 1, so hostile nesting cannot exhaust the stack."""
    if depth > MAX_DEPTH:
        return True
    if type(o) is _Map:
        children = [x for kv in o.pairs for x in kv if type(x) in (list, _Map)]
    else:
        children = [x for x in o if type(x) in (list, _Map)]
    return any(_too_deep(c, depth + 1) for c in children)


def _check_unique_keys(m: _Map, code: str, field: str) -> None:
    seen = set()
    for k, _ in m.pairs:
        if isinstance(k, str):
            if k in seen:
                name = f"{field}.{k}" if field else k
                _fail(code, f"key '{name}' appears more than once", name)
            seen.add(k)


_MISSING = object()


class _Fields:
    """Typed, validating accessors over one map (mirrors Fields in codec.cpp)."""

    def __init__(self, m: _Map, prefix: str = ""):
        self.m = m
        self.prefix = prefix
        # String keys only, the first occurrence winning (as in codec.cpp's find).
        self.d = {k: v for k, v in reversed(m.pairs) if isinstance(k, str)}

    def name(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def find(self, k: str) -> tuple[bool, Any]:
        val = self.d.get(k, _MISSING)
        return (False, None) if val is _MISSING else (True, val)

    def need(self, k: str) -> Any:
        found, val = self.find(k)
        if not found:
            _fail("invalid_field", f"missing required field '{self.name(k)}'", self.name(k))
        return val

    def wrong(self, k: str, o: Any, expected: str):
        _fail("invalid_field", f"field '{self.name(k)}' must be {expected}, got {_kind(o)}",
              self.name(k))

    def integer(self, k: str, o: Any = ..., *, present: bool = True) -> int:
        if o is ...:
            o = self.need(k)
        if isinstance(o, int) and not isinstance(o, bool):
            if o > 2**63 - 1:
                _fail("invalid_field", f"field '{self.name(k)}' is out of the 64-bit signed range",
                      self.name(k))
            return o
        self.wrong(k, o, "an integer")

    def opt_integer(self, k: str) -> int | None:
        found, o = self.find(k)
        return None if not found or o is None else self.integer(k, o)

    def at_least(self, k: str, v: int, lo: int) -> int:
        if v < lo:
            _fail("invalid_field", f"field '{self.name(k)}' must be >= {lo}, got {v}", self.name(k))
        return v

    def number(self, k: str, o: Any = ...) -> float:
        if o is ...:
            o = self.need(k)
        if isinstance(o, float):
            return o
        if isinstance(o, int) and not isinstance(o, bool):
            return float(o)
        self.wrong(k, o, "a number")

    def opt_number(self, k: str) -> float | None:
        found, o = self.find(k)
        return None if not found or o is None else self.number(k, o)

    def finite(self, k: str, v: float) -> float:
        if not math.isfinite(v):
            _fail("invalid_field", f"field '{self.name(k)}' must be finite", self.name(k))
        return v

    def string(self, k: str, o: Any = ...) -> str:
        if o is ...:
            o = self.need(k)
        if not isinstance(o, str):
            self.wrong(k, o, "a string")
        return o

    def opt_string(self, k: str) -> str | None:
        found, o = self.find(k)
        return None if not found or o is None else self.string(k, o)

    def boolean(self, k: str) -> bool:
        o = self.need(k)
        if not isinstance(o, bool):
            self.wrong(k, o, "a boolean")
        return o

    def opt_container(self, k: str, cls: type, expected: str):
        found, o = self.find(k)
        if not found or o is None:
            return None
        if not isinstance(o, cls):
            self.wrong(k, o, expected)
        return o


def _run_id(f: _Fields) -> str:
    run = f.string("run")
    if not valid_run_id(run):
        _fail("invalid_field", "field 'run' must be 1-128 characters of [A-Za-z0-9._-]", "run")
    return run


def _check_name(field: str, n: str) -> None:
    if not 1 <= len(n.encode("utf-8")) <= 128:
        _fail("invalid_field", f"names in '{field}' must be 1-128 bytes", field)


def _check_count(field: str, n: int, limit: int) -> None:
    if n > limit:
        _fail("too_large", f"'{field}' has {n} entries; the limit is {limit}", field)


def _string_array(f: _Fields, k: str, limit: int) -> list[str] | None:
    a = f.opt_container(k, list, "an array of strings")
    if a is None:
        return None
    _check_count(k, len(a), limit)
    for e in a:
        if not isinstance(e, str):
            f.wrong(k, e, "an array of strings")
        _check_name(k, e)
    return list(a)


def _number_map(f: _Fields, k: str, limit: int, require_finite: bool) -> dict[str, float] | None:
    m = f.opt_container(k, _Map, "a map of name to number")
    if m is None:
        return None
    _check_count(k, len(m.pairs), limit)
    _check_unique_keys(m, "invalid_field", f.name(k))
    inner = _Fields(m, f.name(k))
    out = {}
    for key, val in m.pairs:
        if not isinstance(key, str):
            f.wrong(k, key, "a map with string keys")
        _check_name(k, key)
        v = inner.number(key, val)
        if require_finite and not math.isfinite(v):
            _fail("invalid_field", f"field '{inner.name(key)}' must be finite", inner.name(key))
        out[key] = v
    return out


def _hello(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["rank"] = f.at_least("rank", f.integer("rank"), 0)
    m["world_size"] = f.at_least("world_size", f.integer("world_size"), 1)
    if m["rank"] >= m["world_size"]:
        _fail("invalid_field",
              f"field 'rank' ({m['rank']}) must be below 'world_size' ({m['world_size']})", "rank")
    m["adapter"] = f.string("adapter")
    m["adapter_version"] = f.string("adapter_version")
    versions = f.need("versions")
    if not isinstance(versions, list):
        f.wrong("versions", versions, "an array of integers")
    _check_count("versions", len(versions), 64)
    m["versions"] = [f.integer("versions", e) for e in versions]
    if VERSION not in m["versions"]:
        _fail("unsupported_version",
              "'versions' does not offer protocol version 1, the only one this daemon speaks",
              "versions")
    m["domains"] = _string_array(f, "domains", limits.max_domains)
    m["actuators"] = _string_array(f, "actuators", len(ACTUATORS))
    for a in m["actuators"] or ():
        if a not in ACTUATORS:
            _fail("invalid_field",
                  f"unknown actuator '{a}'; known: lr, domain_weights, curriculum, loss_weights, rollback",
                  "actuators")
    lr = f.opt_number("base_lr")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        _fail("invalid_field", "field 'base_lr' must be a finite number > 0", "base_lr")
    m["base_lr"] = lr
    m["replies"] = _replies(f)
    return m


def _replies(f: _Fields) -> str | None:
    """hello.replies / welcome.replies: "every" or "news" (SPEC.md 3), absent allowed."""
    replies = f.opt_string("replies")
    if replies is not None and replies not in REPLIES:
        _fail("invalid_field", "field 'replies' must be 'every' or 'news'", "replies")
    return replies


def _welcome(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["rank"] = f.at_least("rank", f.integer("rank"), 0)
    m["session"] = f.string("session")
    m["version"] = f.integer("version")
    m["mode"] = f.string("mode")
    if m["mode"] not in MODES:
        _fail("invalid_field", "field 'mode' must be 'active' or 'monitor'", "mode")
    m["snapshot_every"] = f.at_least("snapshot_every", f.integer("snapshot_every"), 1)
    limit = f.opt_integer("max_message_bytes")
    m["max_message_bytes"] = None if limit is None else f.at_least("max_message_bytes", limit, 1024)
    m["replies"] = _replies(f)
    return m


def _spectrum(f: _Fields, name: str, o: Any, limits: DecodeLimits) -> np.ndarray:
    field = f"spectra.{name}"
    if isinstance(o, bytes):
        if len(o) % 4:
            _fail("invalid_field",
                  f"spectrum '{name}' is {len(o)} bytes, not a whole number of float32 values", field)
        n = len(o) // 4
        if n > limits.max_spectrum_length:
            _fail("too_large",
                  f"spectrum '{name}' has {n} values; the limit is {limits.max_spectrum_length}", field)
        return np.frombuffer(o, dtype="<f4")
    if isinstance(o, list):
        if len(o) > limits.max_spectrum_length:
            _fail("too_large",
                  f"spectrum '{name}' has {len(o)} values; the limit is {limits.max_spectrum_length}",
                  field)
        values = np.array([f.number(name, e) for e in o], dtype=np.float64).astype("<f4")
        values.flags.writeable = False
        return values
    f.wrong(name, o, "binary float32 or an array of numbers")


def _snapshot(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["rank"] = f.at_least("rank", f.integer("rank"), 0)
    m["step"] = f.at_least("step", f.integer("step"), 0)
    m["time"] = f.finite("time", f.number("time"))
    m["loss"] = f.number("loss")  # non-finite is a signal
    m["grad_norm"] = f.opt_number("grad_norm")
    lr = f.opt_number("lr")
    if lr is not None and not (math.isfinite(lr) and lr >= 0):
        _fail("invalid_field", "field 'lr' must be a finite number >= 0", "lr")
    m["lr"] = lr
    schedule_lr = f.opt_number("schedule_lr")
    if schedule_lr is not None and not (math.isfinite(schedule_lr) and schedule_lr >= 0):
        _fail("invalid_field", "field 'schedule_lr' must be a finite number >= 0", "schedule_lr")
    m["schedule_lr"] = schedule_lr
    tokens = f.opt_integer("tokens")
    m["tokens"] = None if tokens is None else f.at_least("tokens", tokens, 0)
    d = f.opt_container("domains", _Map, "a map of domain name to stats")
    if d is not None:
        _check_count("domains", len(d.pairs), limits.max_domains)
        _check_unique_keys(d, "invalid_field", "domains")
        domains = {}
        for key, val in d.pairs:
            if not isinstance(key, str):
                f.wrong("domains", key, "a map with string keys")
            _check_name("domains", key)
            prefix = f"domains.{key}"
            if not isinstance(val, _Map):
                _Fields(d, "domains").wrong(key, val, "a map with 'loss' and 'weight'")
            _check_unique_keys(val, "invalid_field", prefix)
            stats = _Fields(val, prefix)
            s = {}
            loss = stats.opt_number("loss")
            if loss is not None:
                s["loss"] = loss
            w = stats.opt_number("weight")
            if w is not None:
                if not (math.isfinite(w) and w >= 0):
                    _fail("invalid_field", f"field '{prefix}.weight' must be a finite number >= 0",
                          f"{prefix}.weight")
                s["weight"] = w
            domains[key] = s
        m["domains"] = domains
    s = f.opt_container("spectra", _Map, "a map of name to spectrum")
    if s is not None:
        _check_count("spectra", len(s.pairs), limits.max_spectra)
        _check_unique_keys(s, "invalid_field", "spectra")
        inner = _Fields(s, "spectra")
        spectra = {}
        for key, val in s.pairs:
            if not isinstance(key, str):
                f.wrong("spectra", key, "a map with string keys")
            _check_name("spectra", key)
            spectra[key] = _spectrum(inner, key, val, limits)
        m["spectra"] = spectra
    r = f.opt_number("loop_rate")
    if r is not None and not (0.0 <= r <= 1.0):
        _fail("invalid_field", "field 'loop_rate' must be in [0, 1]", "loop_rate")
    m["loop_rate"] = r
    m["scalars"] = _number_map(f, "scalars", limits.max_scalars, False)
    return m


def _state(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["rank"] = f.at_least("rank", f.integer("rank"), 0)
    m["step"] = f.at_least("step", f.integer("step"), 0)
    m["state"] = f.string("state")
    m["basin"] = f.string("basin")
    # Five metrics per spectrum plus domain and scalar signals: as for telemetry.
    m["metrics"] = _number_map(f, "metrics", limits.max_scalars * 8, False) or {}
    a = f.opt_integer("basin_age_steps")
    m["basin_age_steps"] = None if a is None else f.at_least("basin_age_steps", a, 0)
    return m


def _burn(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["seq"] = f.at_least("seq", f.integer("seq"), 0)
    m["state"] = f.string("state")
    m["basin"] = f.string("basin")
    m["reason"] = f.string("reason")
    for k in ("for_step", "apply_at_step", "expires_after_steps"):
        m[k] = f.at_least(k, f.integer(k), 0)
    m["lr_scale"] = f.number("lr_scale")
    if not (math.isfinite(m["lr_scale"]) and m["lr_scale"] > 0):
        _fail("invalid_field", "field 'lr_scale' must be a finite number > 0", "lr_scale")
    m["domain_weights"] = _number_map(f, "domain_weights", limits.max_domains, True)
    c = f.opt_integer("curriculum_phase")
    m["curriculum_phase"] = None if c is None else f.at_least("curriculum_phase", c, 0)
    m["loss_weights"] = _number_map(f, "loss_weights", limits.max_scalars, True)
    r = f.opt_integer("rollback_to_step")
    m["rollback_to_step"] = None if r is None else f.at_least("rollback_to_step", r, 0)
    s = f.opt_integer("skip_batches")
    m["skip_batches"] = None if s is None else f.at_least("skip_batches", s, 0)
    a = f.opt_integer("basin_age_steps")
    m["basin_age_steps"] = None if a is None else f.at_least("basin_age_steps", a, 0)
    return m


def _ack(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["rank"] = f.at_least("rank", f.integer("rank"), 0)
    m["seq"] = f.at_least("seq", f.integer("seq"), 0)
    m["step"] = f.at_least("step", f.integer("step"), 0)
    m["late"] = f.boolean("late")
    lr = f.opt_number("lr")
    m["lr"] = None if lr is None else f.finite("lr", lr)
    r = f.opt_integer("restored_step")
    m["restored_step"] = None if r is None else f.at_least("restored_step", r, 0)
    return m


def _heartbeat(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": f.opt_string("run")}
    if m["run"] is not None and not valid_run_id(m["run"]):
        _fail("invalid_field", "field 'run' must be 1-128 characters of [A-Za-z0-9._-]", "run")
    r = f.opt_integer("rank")
    m["rank"] = None if r is None else f.at_least("rank", r, 0)
    return m


def _bye(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["rank"] = f.at_least("rank", f.integer("rank"), 0)
    return m


def _error(f: _Fields, limits: DecodeLimits) -> dict:
    code = f.string("code")
    # A code from a newer peer reads as `internal`, as in codec.cpp.
    return {"code": code if code in ERROR_CODES else "internal",
            "message": f.string("message"), "ref": f.opt_string("ref")}


def _telemetry(f: _Fields, limits: DecodeLimits) -> dict:
    m = {"run": _run_id(f)}
    m["rank"] = f.at_least("rank", f.integer("rank"), 0)
    m["step"] = f.at_least("step", f.integer("step"), 0)
    m["time"] = f.number("time")
    for k in ("mode", "state", "basin", "forecast_basin"):
        m[k] = f.string(k)
    m["lr_scale"] = f.number("lr_scale")
    m["metrics"] = _number_map(f, "metrics", limits.max_scalars * 8, False) or {}
    m["burn_seq"] = f.opt_integer("burn_seq")
    m["reason"] = f.string("reason")
    return m


_DECODERS = {"hello": _hello, "welcome": _welcome, "snapshot": _snapshot, "state": _state,
             "burn": _burn, "ack": _ack, "heartbeat": _heartbeat, "bye": _bye, "error": _error,
             "telemetry": _telemetry}


def _unpack(data: bytes, limits: DecodeLimits) -> Any:
    n = len(data)
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=False, object_pairs_hook=_Map, use_list=True,
            max_str_len=n, max_bin_len=n, max_ext_len=n,
            max_array_len=max(limits.max_spectrum_length, 1024),
            max_map_len=max(limits.max_domains, limits.max_scalars, limits.max_spectra,
                            limits.max_scalars * 8, 64))
    except msgpack.ExtraData as e:
        _fail("bad_message", f"{len(e.extra)} trailing bytes after the MessagePack map")
    except msgpack.StackError:
        _fail("too_large", f"MessagePack nesting is deeper than {MAX_DEPTH} levels")
    except ValueError as e:
        if "exceeds max" in str(e):
            _fail("too_large", "a MessagePack container exceeds the configured limits")
        _fail("bad_message", f"not valid MessagePack: {e}")
    except Exception as e:  # FormatError, UnicodeDecodeError, ...
        _fail("bad_message", f"not valid MessagePack: {e}")


def _to_plain(m: dict) -> dict:
    return {k: v for k, v in m.items() if v is not None}


class _NotPlain(Exception):
    """A message the fast path leaves to the full decoder."""


def _unique_pairs(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):  # a repeated key: the full decoder names it
        raise _NotPlain
    return d


_STATE_KEYS = frozenset(("v", "type", "run", "rank", "step", "state", "basin", "metrics",
                         "basin_age_steps"))
_I64_MAX = 2**63 - 1


def _decode_plain_state(data: bytes, limits: DecodeLimits) -> dict | None:
    """The fast path of ``decode`` for the reply a rank gets after every snapshot: a
    well-formed `state`. Returns exactly what the full decoder returns, or None (any
    other message, or anything the full decoder might reject or read differently),
    and then the full decoder decides.

    It runs after every training step, when the step's own work has pushed this code
    out of the CPU caches; hence as few Python-level calls as it can (bench/overhead):
    a repeated map key, which a dict would hide, is ruled out by packing the dict
    back into the very same bytes (the daemon's canonical encoding does; anything
    else is read pair by pair), and metric names seen before are not checked again."""
    try:
        m = msgpack.unpackb(data, raw=False, use_list=True, max_str_len=len(data), max_bin_len=0,
                            max_ext_len=0, max_array_len=0, max_map_len=limits.max_scalars * 8)
        if type(m) is not dict:
            return None
        if _pack(m) != data:
            m = msgpack.unpackb(data, raw=False, object_pairs_hook=_unique_pairs, use_list=True,
                                max_str_len=len(data), max_bin_len=0, max_ext_len=0,
                                max_array_len=0, max_map_len=limits.max_scalars * 8)
    except Exception:
        return None
    if m.get("type") != "state" or not m.keys() <= _STATE_KEYS:
        return None
    v, run, rank, step = m.get("v"), m.get("run"), m.get("rank"), m.get("step")
    state, basin, metrics = m.get("state"), m.get("basin"), m.get("metrics")
    if not (type(v) is int and v == VERSION and type(run) is str and valid_run_id(run)
            and type(rank) is int and 0 <= rank <= _I64_MAX
            and type(step) is int and 0 <= step <= _I64_MAX
            and type(state) is str and type(basin) is str and type(metrics) is dict):
        return None
    # The usual case in two C-level checks: every name already checked, every value a float.
    if not (_METRIC_NAMES_OK.issuperset(metrics) and _ONLY_FLOATS.issuperset(map(type, metrics.values()))):
        ints = False
        for k, x in metrics.items():
            # A key of str (msgpack's default strict_map_key: str or bytes; bytes go the long
            # way), 1-128 UTF-8 bytes (an ASCII string has as many bytes as characters).
            if type(k) is not str:
                return None
            if not 0 < (len(k) if k.isascii() else len(k.encode("utf-8"))) <= 128:
                return None
            if type(x) is not float:
                if type(x) is not int:
                    return None
                ints = True
        if len(_METRIC_NAMES_OK) < 4096:
            _METRIC_NAMES_OK.update(metrics)
        if ints:  # numbers read as floats, as the full decoder does
            metrics = {k: float(x) for k, x in metrics.items()}
    age = m.get("basin_age_steps")
    if age is not None and not (type(age) is int and 0 <= age <= _I64_MAX):
        return None
    res = {"v": v, "type": "state", "run": run, "rank": rank, "step": step, "state": state,
           "basin": basin, "metrics": metrics}
    if age is not None:
        res["basin_age_steps"] = age
    return res


# Metric names that passed the checks above (only str keys of 1-128 UTF-8 bytes get in;
# bounded: past the bound, new names are checked every time).
_METRIC_NAMES_OK: set = set()
_ONLY_FLOATS = frozenset((float,))
_ONLY_STR = frozenset((str,))


def decode(data: bytes | bytearray | memoryview, limits: DecodeLimits = DecodeLimits()) -> dict:
    """Decode and validate one message; raises ProtocolError (code, message, ref)."""
    data = bytes(data)
    if len(data) > limits.max_message_bytes:
        _fail("too_large", f"message is {len(data)} bytes; the limit is {limits.max_message_bytes}")
    fast = _decode_plain_state(data, limits) if data else None
    if fast is not None:
        return fast
    if not data:
        _fail("bad_message", "empty message; expected one MessagePack map")
    root = _unpack(data, limits)
    if type(root) in (list, _Map) and _too_deep(root):
        _fail("too_large", f"MessagePack nesting is deeper than {MAX_DEPTH} levels")
    if not isinstance(root, _Map):
        _fail("bad_message", f"message must be a MessagePack map, got {_kind(root)}")
    _check_unique_keys(root, "bad_message", "")
    f = _Fields(root)
    found, mtype = f.find("type")
    if not found:
        _fail("bad_message", "message has no 'type' field", "type")
    if not isinstance(mtype, str):
        f.wrong("type", mtype, "a string")
    found, v = f.find("v")
    if not found:
        _fail("bad_message", "message has no protocol version 'v'", "v")
    version = f.integer("v", v)
    # A hello negotiates: any `v` is fine there; `versions` decides.
    if version != VERSION and mtype != "hello":
        _fail("unsupported_version",
              f"protocol version {version} is not supported; this daemon speaks version 1", "v")
    decoder = _DECODERS.get(mtype)
    if decoder is None:
        _fail("unknown_type",
              f"unknown message type '{mtype}'; protocol v1 knows {', '.join(TYPES)}", "type")
    body = _to_plain(decoder(f, limits))
    return {"v": version, "type": mtype, **body}


# ------------------------------------------------------------------ JSON twins

def to_jsonable(message: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of a message: non-finite floats become "nan"/"inf"/"-inf",
    spectra become lists of numbers (the readable twins in protocol/vectors/)."""

    def num(x):
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x

    def conv(name, kind, x):
        if kind == _FLOAT:
            return num(x)
        if kind == _FLOATS:
            return {k: num(v) for k, v in x.items()}
        if kind == _DOMAINS:
            return {k: {f: num(v) for f, v in s.items()} for k, s in x.items()}
        if kind == _SPECTRA:
            return {k: [num(e) for e in np.frombuffer(spectrum_bytes(v), dtype="<f4")]
                    for k, v in x.items()}
        return x

    c = canonical(message)
    kinds = {name: kind for name, kind, _ in FIELDS[c["type"]]}
    return {k: (conv(k, kinds[k], v) if k in kinds else v) for k, v in c.items()}


def from_jsonable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``to_jsonable``: floats from "nan"/"inf"/"-inf", spectra as
    float32 arrays."""

    def num(x):
        return float(x) if isinstance(x, str) else x

    out = dict(obj)
    for name, kind, _ in FIELDS.get(obj.get("type"), ()):
        if name not in out or out[name] is None:
            continue
        x = out[name]
        if kind == _FLOAT:
            out[name] = num(x)
        elif kind == _FLOATS:
            out[name] = {k: num(v) for k, v in x.items()}
        elif kind == _DOMAINS:
            out[name] = {k: {f: num(v) for f, v in s.items()} for k, s in x.items()}
        elif kind == _SPECTRA:
            out[name] = {k: np.array([float(num(e)) for e in v], dtype="<f4") for k, v in x.items()}
    return out
