#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Builds the golden vectors of protocol v1 (protocol/SPEC.md, "Golden vectors").

    /usr/bin/python3 scripts/generate_vectors.py          # (re)write the .msgpack files
    /usr/bin/python3 scripts/generate_vectors.py --check  # exit 1 if any file is stale

- NAME.json (hand-written, the source) -> NAME.msgpack: the canonical bytes, made by
  the Python package's encoder (adapters/python/orbit_adapter/protocol.py).
- lenient/NAME.msgpack + NAME.json: bytes that are not canonical but valid; decoding
  them and encoding again must give the bytes of the golden vector NAME.json names.
- invalid/NAME.msgpack + NAME.json: bytes every decoder must reject with the error
  code (and `ref`) that NAME.json names.
The lenient and invalid bytes are built below, byte by byte where msgpack's own
packer would pick another form.
"""

from __future__ import annotations

import json
import pathlib
import struct
import sys

# The vectors live in protocol/vectors/; this script sits in scripts/ because it imports
# the Python adapter, which is above protocol/ in the house (docs/architecture.md).
ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = ROOT / "protocol" / "vectors"
sys.path.insert(0, str(ROOT / "adapters" / "python"))

from orbit_adapter import protocol  # noqa: E402

# ------------------------------------------------------------ raw MessagePack forms


def s(text: str) -> bytes:
    """str in its smallest form."""
    b = text.encode("utf-8")
    if len(b) < 32:
        return bytes([0xA0 | len(b)]) + b
    if len(b) < 256:
        return b"\xd9" + bytes([len(b)]) + b
    return b"\xda" + struct.pack(">H", len(b)) + b


def i(x: int) -> bytes:
    """int in its smallest form (what every canonical encoder writes)."""
    import msgpack
    return msgpack.packb(x)


def u64(x: int) -> bytes:
    return b"\xcf" + struct.pack(">Q", x)


def i64(x: int) -> bytes:
    return b"\xd3" + struct.pack(">q", x)


def f64(x: float) -> bytes:
    return b"\xcb" + struct.pack(">d", x)


def f32(x: float) -> bytes:
    return b"\xca" + struct.pack(">f", x)


def b(data: bytes) -> bytes:
    if len(data) < 256:
        return b"\xc4" + bytes([len(data)]) + data
    return b"\xc5" + struct.pack(">H", len(data)) + data


def arr(items: list[bytes]) -> bytes:
    n = len(items)
    head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
    return head + b"".join(items)


def m(pairs: list[tuple[bytes, bytes]]) -> bytes:
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
    return head + b"".join(k + v for k, v in pairs)


NIL, TRUE = b"\xc0", b"\xc3"
FLOATS_LE = lambda *xs: struct.pack(f"<{len(xs)}f", *xs)  # noqa: E731


def head(mtype: str, v: int = 1) -> list[tuple[bytes, bytes]]:
    return [(s("v"), i(v)), (s("type"), s(mtype))]


def snapshot(extra: list[tuple[bytes, bytes]] = (), drop: tuple[str, ...] = (),
             v: int = 1) -> bytes:
    """A valid minimal snapshot, with fields dropped or added (added ones win)."""
    fields = {"run": s("run-1"), "rank": i(0), "step": i(7), "time": f64(1732612345.25),
              "loss": f64(2.5)}
    for k in drop:
        del fields[k]
    extra = list(extra)
    names = {k for k, _ in extra}
    pairs = head("snapshot", v) + [(s(k), val) for k, val in fields.items() if s(k) not in names]
    return m(pairs + extra)


def hello(extra: list[tuple[bytes, bytes]] = (), versions: bytes | None = None) -> bytes:
    fields = [("run", s("run-1")), ("rank", i(0)), ("world_size", i(1)),
              ("adapter", s("orbit-python")), ("adapter_version", s("0.1.0")),
              ("versions", versions if versions is not None else arr([i(1)]))]
    names = {k for k, _ in extra}
    return m(head("hello") + [(s(k), val) for k, val in fields if s(k) not in names] + list(extra))


# ------------------------------------------------------------ lenient vectors
# name -> (golden vector its re-encoding must equal, note, bytes)

def lenient() -> dict[str, tuple[str, str, bytes]]:
    full = json.loads((HERE / "snapshot_full.json").read_text())
    spectra_arrays = m([(s(k), arr([f64(x) for x in vals])) for k, vals in full["spectra"].items()])
    out = {}
    out["snapshot_spectra_as_arrays"] = (
        "snapshot_full", "spectra as arrays of float64 numbers instead of float32 bin",
        m(head("snapshot") + [
            (s("run"), s(full["run"])), (s("rank"), i(3)), (s("step"), i(1200)),
            (s("time"), f64(full["time"])), (s("loss"), f64(2.75)), (s("grad_norm"), f64(0.8125)),
            (s("lr"), f64(0.0003)), (s("schedule_lr"), f64(0.0006)), (s("tokens"), i(19660800)),
            (s("domains"), m([(s(d), m([(s("loss"), f64(st["loss"])), (s("weight"), f64(st["weight"]))]))
                              for d, st in full["domains"].items()])),
            (s("spectra"), spectra_arrays), (s("loop_rate"), f64(0.0625)),
            (s("scalars"), m([(s("accuracy"), f64(0.4375)), (s("ppl"), f64(15.625))]))]))
    out["snapshot_reordered_unknown_keys"] = (
        "snapshot_full",
        "keys in another order (maps unsorted, domain stats weight before loss), unknown keys "
        "at every level, float32 and integer forms for float fields",
        m([(s("scalars"), m([(s("ppl"), f32(15.625)), (s("accuracy"), f64(0.4375))])),
           (s("x-future"), m([(s("nested"), arr([i(1), i(2)]))])),
           (s("spectra"), m([(s("hidden.last"), arr([i(8), i(1), f32(0.5)])),
                             (s("attn.0"), b(FLOATS_LE(*full["spectra"]["attn.0"])))])),
           (s("loss"), f32(2.75)), (s("time"), f64(full["time"])),
           (s("domains"), m([(s(d), m([(s("weight"), f64(st["weight"])), (s("note"), s("ignored")),
                                       (s("loss"), f64(st["loss"]))]))
                             for d, st in reversed(full["domains"].items())])),
           (s("type"), s("snapshot")), (s("step"), u64(1200)), (s("rank"), i64(3)),
           (i(42), s("a key that is not a string is ignored")),
           (s("run"), s(full["run"])), (s("grad_norm"), f32(0.8125)), (s("lr"), f64(0.0003)),
           (s("schedule_lr"), f64(0.0006)),
           (s("tokens"), u64(19660800)), (s("loop_rate"), f32(0.0625)), (s("v"), u64(1))]))
    out["snapshot_nil_and_empty_optionals"] = (
        "snapshot_minimal", "optional fields present as nil, optional maps present but empty",
        m(head("snapshot") + [
            (s("run"), s("run-1")), (s("rank"), i(0)), (s("step"), i(0)),
            (s("time"), f64(1732612345.25)), (s("loss"), f64(10.5)),
            (s("grad_norm"), NIL), (s("lr"), NIL), (s("tokens"), NIL), (s("domains"), m([])),
            (s("spectra"), m([])), (s("loop_rate"), NIL), (s("scalars"), m([]))]))
    out["hello_wide_int_unknown_key"] = (
        "hello_minimal", "an unknown key and an integer in a wider form than needed",
        hello(extra=[(s("world_size"), u64(1)), (s("hostname"), s("node-3"))]))
    out["hello_newer_version"] = (
        "hello_full", "a hello from a newer adapter: v 2 and versions [2, 1]; the daemon answers in 1",
        m(head("hello", v=2) + [
            (s("run"), s("gpt2.small_seed-7")), (s("rank"), i(3)), (s("world_size"), i(8)),
            (s("adapter"), s("orbit-libtorch")), (s("adapter_version"), s("0.1.0")),
            (s("versions"), arr([i(1), i(2)])), (s("domains"), arr([s("code"), s("web"), s("wiki")])),
            (s("actuators"), arr([s(a) for a in protocol.ACTUATORS])), (s("base_lr"), f64(0.0003)),
            (s("features"), arr([s("zstd")]))]))
    out["state_integer_metrics"] = (
        "state", "metrics given as integers and float32",
        m(head("state") + [
            (s("run"), s("run-1")), (s("rank"), i(0)), (s("step"), i(40)), (s("state"), s("STABLE")),
            (s("basin"), s("CREATIVE")),
            (s("metrics"), m([(s("phi_proximity"), f32(0.875)), (s("entropy"), f64(1.875)),
                              (s("effective_rank"), f64(6.5)), (s("normalized_entropy"), f64(0.9)),
                              (s("dominant_ratio"), f32(0.25))]))]))
    out["error_unknown_code"] = (
        "error_internal",
        "an error code this version does not know reads as 'internal' (forward compatibility)",
        m(head("error") + [(s("code"), s("rate_limited")), (s("message"), s("slow down"))]))
    return out


# ------------------------------------------------------------ invalid vectors
# name -> (code, ref or None, note, bytes)

def invalid(golden: dict[str, bytes]) -> dict[str, tuple[str, str | None, str, bytes]]:
    minimal = golden["snapshot_minimal"]
    out = {}

    def add(name, code, ref, note, data):
        out[name] = (code, ref, note, data)

    add("empty", "bad_message", None, "zero bytes", b"")
    add("not_msgpack", "bad_message", None, "0xc1 is never used by MessagePack", b"\xc1")
    add("truncated", "bad_message", None, "snapshot_minimal without its last byte", minimal[:-1])
    add("trailing_bytes", "bad_message", None, "snapshot_minimal followed by one more object",
        minimal + b"\x00")
    add("not_a_map", "bad_message", None, "an array at the top level", arr([i(1), s("snapshot")]))
    add("declared_length_beyond_message", "bad_message", None,
        "a str header declaring more bytes than the whole message holds",
        m([(s("v"), i(1)), (s("type"), b"\xda\x10\x00" + b"snapshot")]))
    add("missing_type", "bad_message", "type", "no 'type' key",
        m([(s("v"), i(1)), (s("run"), s("run-1"))]))
    add("type_not_string", "invalid_field", "type", "'type' is an integer",
        m([(s("v"), i(1)), (s("type"), i(3))]))
    add("missing_version", "bad_message", "v", "no 'v' key", m([(s("type"), s("bye")),
                                                                (s("run"), s("r")), (s("rank"), i(0))]))
    add("version_not_int", "invalid_field", "v", "'v' is a float",
        m([(s("v"), f64(1.0)), (s("type"), s("bye")), (s("run"), s("r")), (s("rank"), i(0))]))
    add("unsupported_version", "unsupported_version", "v", "a snapshot in protocol version 2",
        snapshot(v=2))
    add("hello_without_v1", "unsupported_version", "versions", "hello offering only version 2",
        hello(versions=arr([i(2)])))
    add("unknown_type", "unknown_type", "type", "type 'launch'",
        m([(s("v"), i(1)), (s("type"), s("launch"))]))
    add("duplicate_key", "bad_message", "loss", "'loss' twice at the top level",
        m(head("snapshot") + [
            (s("run"), s("run-1")), (s("rank"), i(0)), (s("step"), i(7)),
            (s("time"), f64(1.0)), (s("loss"), f64(2.5)), (s("loss"), f64(9.0))]))
    add("duplicate_scalar", "invalid_field", "scalars.acc", "scalar 'acc' twice",
        snapshot(extra=[(s("scalars"), m([(s("acc"), f64(1.0)), (s("acc"), f64(2.0))]))]))
    add("missing_field", "invalid_field", "loss", "snapshot without 'loss'", snapshot(drop=("loss",)))
    add("wrong_type", "invalid_field", "step", "'step' is a string", snapshot(extra=[(s("step"), s("7"))]))
    add("loss_is_nil", "invalid_field", "loss", "required 'loss' is nil", snapshot(extra=[(s("loss"), NIL)]))
    add("bad_run_id", "invalid_field", "run", "run id with a space",
        snapshot(extra=[(s("run"), s("my run"))]))
    add("run_id_too_long", "invalid_field", "run", "run id of 129 characters",
        snapshot(extra=[(s("run"), s("r" * 129))]))
    add("empty_run_id", "invalid_field", "run", "empty run id", snapshot(extra=[(s("run"), s(""))]))
    add("negative_step", "invalid_field", "step", "step -1", snapshot(extra=[(s("step"), i(-1))]))
    add("step_out_of_range", "invalid_field", "step", "step 2^63 (uint64) does not fit int64",
        snapshot(extra=[(s("step"), u64(2**63))]))
    add("time_not_finite", "invalid_field", "time", "time is NaN",
        snapshot(extra=[(s("time"), f64(float("nan")))]))
    add("rank_not_below_world_size", "invalid_field", "rank", "hello with rank 2 of world size 2",
        hello(extra=[(s("rank"), i(2)), (s("world_size"), i(2))]))
    add("world_size_zero", "invalid_field", "world_size", "hello with world size 0",
        hello(extra=[(s("world_size"), i(0))]))
    add("unknown_actuator", "invalid_field", "actuators", "actuator 'momentum'",
        hello(extra=[(s("actuators"), arr([s("lr"), s("momentum")]))]))
    add("base_lr_zero", "invalid_field", "base_lr", "base_lr 0", hello(extra=[(s("base_lr"), f64(0.0))]))
    add("too_many_versions", "too_large", "versions", "65 versions offered",
        hello(versions=arr([i(1)] * 65)))
    add("loop_rate_above_one", "invalid_field", "loop_rate", "loop_rate 1.5",
        snapshot(extra=[(s("loop_rate"), f64(1.5))]))
    add("loop_rate_nan", "invalid_field", "loop_rate", "loop_rate NaN",
        snapshot(extra=[(s("loop_rate"), f64(float("nan")))]))
    add("lr_negative", "invalid_field", "lr", "lr -0.1", snapshot(extra=[(s("lr"), f64(-0.1))]))
    add("schedule_lr_negative", "invalid_field", "schedule_lr", "schedule_lr -0.1",
        snapshot(extra=[(s("schedule_lr"), f64(-0.1))]))
    add("spectrum_odd_bytes", "invalid_field", "spectra.attn", "a 6-byte spectrum",
        snapshot(extra=[(s("spectra"), m([(s("attn"), b(b"\x00" * 6))]))]))
    add("spectrum_wrong_type", "invalid_field", "spectra.attn", "a spectrum given as a string",
        snapshot(extra=[(s("spectra"), m([(s("attn"), s("1,2,3"))]))]))
    add("spectrum_array_of_strings", "invalid_field", "spectra.attn", "an array spectrum holding a string",
        snapshot(extra=[(s("spectra"), m([(s("attn"), arr([f64(1.0), s("2")]))]))]))
    add("scalar_not_number", "invalid_field", "scalars.acc", "scalar given as a string",
        snapshot(extra=[(s("scalars"), m([(s("acc"), s("high"))]))]))
    add("domain_weight_negative", "invalid_field", "domains.web.weight", "weight -0.5",
        snapshot(extra=[(s("domains"), m([(s("web"), m([(s("weight"), f64(-0.5))]))]))]))
    add("domain_stats_not_map", "invalid_field", "domains.web", "domain stats given as a number",
        snapshot(extra=[(s("domains"), m([(s("web"), f64(1.0))]))]))
    add("domain_name_empty", "invalid_field", "domains", "a domain with an empty name",
        snapshot(extra=[(s("domains"), m([(s(""), m([]))]))]))
    add("nesting_too_deep", "too_large", None, "9 nested containers (the limit is 8)",
        snapshot(extra=[(s("x"), b"\x91" * 7 + b"\x90")]))
    add("ack_late_not_bool", "invalid_field", "late", "late given as 1",
        m(head("ack") + [(s("run"), s("r")), (s("rank"), i(0)), (s("seq"), i(1)), (s("step"), i(5)),
                         (s("late"), i(1))]))
    add("burn_lr_scale_zero", "invalid_field", "lr_scale", "lr_scale 0",
        m(head("burn") + [(s("run"), s("r")), (s("seq"), i(1)), (s("state"), s("WARNING")),
                          (s("basin"), s("TOKEN_COLLAPSE")), (s("reason"), s("x")), (s("for_step"), i(1)),
                          (s("apply_at_step"), i(2)), (s("expires_after_steps"), i(10)),
                          (s("lr_scale"), f64(0.0))]))
    add("burn_weight_infinite", "invalid_field", "domain_weights.web", "a domain weight of +inf",
        m(head("burn") + [(s("run"), s("r")), (s("seq"), i(1)), (s("state"), s("WARNING")),
                          (s("basin"), s("TOKEN_COLLAPSE")), (s("reason"), s("x")), (s("for_step"), i(1)),
                          (s("apply_at_step"), i(2)), (s("expires_after_steps"), i(10)),
                          (s("lr_scale"), f64(0.5)), (s("domain_weights"), m([(s("web"), f64(float("inf")))]))]))
    add("welcome_bad_mode", "invalid_field", "mode", "mode 'auto'",
        m(head("welcome") + [(s("run"), s("r")), (s("rank"), i(0)), (s("session"), s("s")),
                             (s("version"), i(1)), (s("mode"), s("auto")), (s("snapshot_every"), i(1))]))
    add("bye_missing_rank", "invalid_field", "rank", "bye without rank",
        m(head("bye") + [(s("run"), s("r"))]))
    return out


# ------------------------------------------------------------ driver

def build() -> dict[pathlib.Path, bytes]:
    files: dict[pathlib.Path, bytes] = {}
    golden = {}
    for src in sorted(HERE.glob("*.json")):
        message = protocol.from_jsonable(json.loads(src.read_text()))
        # The twin must say exactly what the bytes say: every spectrum value a float32.
        for name, values in message.get("spectra", {}).items():
            as_json = json.loads(src.read_text())["spectra"][name]
            for x, y in zip(as_json, values):
                assert isinstance(x, str) or float(y) == x, f"{src.name}: {x} is not a float32"
        data = protocol.encode(message)
        files[src.with_suffix(".msgpack")] = data
        golden[src.stem] = data

    def text(obj) -> bytes:
        return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    for name, (canonical, note, data) in lenient().items():
        files[HERE / "lenient" / f"{name}.msgpack"] = data
        files[HERE / "lenient" / f"{name}.json"] = text(
            {"canonical": canonical, "note": note, "hex": data.hex()})
    for name, (code, ref, note, data) in invalid(golden).items():
        files[HERE / "invalid" / f"{name}.msgpack"] = data
        files[HERE / "invalid" / f"{name}.json"] = text(
            {"code": code, "ref": ref, "note": note, "hex": data.hex()})
    return files


CHECK = "--check" in sys.argv


def main() -> int:
    stale = []
    for path, data in build().items():
        if path.exists() and path.read_bytes() == data:
            continue
        stale.append(path.relative_to(HERE))
        if not CHECK:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
    verb = "stale" if CHECK else "written"
    print(f"{len(stale)} vector files {verb}" + "".join(f"\n  {p}" for p in stale))
    return 1 if CHECK and stale else 0


if __name__ == "__main__":
    sys.exit(main())
