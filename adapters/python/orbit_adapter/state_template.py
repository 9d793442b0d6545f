# SPDX-License-Identifier: Apache-2.0
"""StateTemplate: the daemon's `state` reply read with one C call when its layout is known.

orbitd answers every snapshot with a `state` reply whose bytes differ from the
previous one's only in numbers (step, metric values, basin age) as long as the
state, the basin, the metric names and the integers' MessagePack widths stay the
same. Each such layout the client has decoded and validated once (`learn`, from
bytes that are the canonical encoding of what `protocol.decode` returned) becomes a
`struct.Struct` of `s` fields for the constant runs and `d` / `B`/`H`/`I`/`Q` fields
for the numbers. `decode` unpacks a reply of a known length, compares its constant
runs with the layout's in one tuple comparison, and returns the very dict
`protocol.decode` returns; any other reply gives None and goes to `protocol.decode`.
Nothing in the unchanged bytes needs validating again, and every number the layout
leaves open is valid in any value (unsigned integers, float metrics).
"""
from __future__ import annotations

import struct
from typing import Any, Dict, Optional

import msgpack

from . import protocol

_MAX_LAYOUTS = 8  # by message length; past it, the oldest goes
_INT_FORMAT = {0: "B", 0xcc: "B", 0xcd: "H", 0xce: "I", 0xcf: "Q"}


class _Layout:
    __slots__ = ("unpack", "consts", "base", "names", "fixints")

    def __init__(self, fmt: str, consts: tuple, base: dict, names: tuple, fixints: tuple) -> None:
        self.unpack = struct.Struct(fmt).unpack
        self.consts = consts    # the constant runs, in order
        self.base = base        # the message with its numbers still to fill in
        self.names = names      # metric names in wire order
        self.fixints = fixints  # the numbers that are a positive fixint (a byte below 0x80)


class StateTemplate:
    def __init__(self) -> None:
        self._layouts: Dict[int, _Layout] = {}

    def decode(self, data: bytes) -> Optional[Dict[str, Any]]:
        """`protocol.decode(data)` for a state reply of a learnt layout; None otherwise."""
        layout = self._layouts.get(len(data))
        if layout is None:
            return None
        fields = layout.unpack(data)
        if fields[0::2] != layout.consts:
            return None
        numbers = fields[1::2]
        for i in layout.fixints:
            if numbers[i] > 127:  # another type's marker byte
                return None
        message = layout.base.copy()
        message["step"] = numbers[0]
        message["metrics"] = dict(zip(layout.names, numbers[1:]))
        if "basin_age_steps" in message:
            message["basin_age_steps"] = numbers[-1]
        return message

    def learn(self, data: bytes, message: Dict[str, Any]) -> None:
        """Keeps the layout of `data`, a reply that `protocol.decode` read as `message`
        (a `state` only, and only where `data` is its canonical encoding)."""
        if message.get("type") != "state":
            return
        try:
            if protocol.encode(message) != data:
                return
        except Exception:
            return
        pk = msgpack.Packer(use_bin_type=True, use_single_float=False, autoreset=True).pack
        fmt, consts, numbers, fixints = [">"], [], [], []
        pending = bytearray()

        def number(code: str, value: Any) -> None:
            fmt.append(f"{len(pending)}s{code}")
            consts.append(bytes(pending))
            numbers.append(value)
            pending.clear()

        def integer(value: int) -> None:
            encoded = pk(value)
            prefix = encoded[0] if len(encoded) > 1 else 0
            if prefix:
                pending.append(prefix)
            else:
                fixints.append(len(numbers))
            number(_INT_FORMAT[prefix], value)

        metrics = message["metrics"]
        keys = list(message)  # the decoder's order is the canonical one
        pending += data[:1]   # the map header (at most 9 fields: a fixmap)
        for k in keys:
            pending += pk(k)
            value = message[k]
            if k in ("step", "basin_age_steps"):
                integer(value)
            elif k == "metrics":
                header = msgpack.Packer(autoreset=False)
                header.pack_map_header(len(metrics))
                pending += header.bytes()
                for name, x in metrics.items():
                    pending += pk(name) + b"\xcb"
                    number("d", x)
            else:
                pending += pk(value)
        if pending:
            fmt.append(f"{len(pending)}s")
            consts.append(bytes(pending))
        base = {k: (None if k in ("step", "metrics", "basin_age_steps") else message[k]) for k in keys}
        layout = _Layout("".join(fmt), tuple(consts), base, tuple(metrics), tuple(fixints))
        try:
            fields = layout.unpack(data)
        except struct.error:
            return
        if fields[0::2] == layout.consts and repr(list(fields[1::2])) == repr(numbers) \
                and layout_decodes_as(layout, data, message):
            layouts = self._layouts
            layouts.pop(len(data), None)  # the newest layout of a length replaces the older
            if len(layouts) >= _MAX_LAYOUTS:
                del layouts[next(iter(layouts))]  # the oldest
            layouts[len(data)] = layout


def layout_decodes_as(layout: _Layout, data: bytes, message: Dict[str, Any]) -> bool:
    """Whether the template reads `data` back as `message` (NaN metrics compared as equal)."""
    template = StateTemplate()
    template._layouts[len(data)] = layout
    got = template.decode(data)
    return got is not None and list(got) == list(message) and repr(got) == repr(message)
