# SPDX-License-Identifier: Apache-2.0
"""SnapshotTemplate: an ordinary snapshot's bytes packed in one C call.

Two snapshots of the same shape (the same optional fields present, the same domain
entries, their integers in the same MessagePack width) differ only in their numbers.
For each shape the template keeps the canonical encoding as one `struct.Struct`:
the constant runs of bytes (keys, type markers, the run id) are `s` fields and the
numbers `d` (float64) or `B`/`H`/`I`/`Q` (unsigned ints) fields, so a step packs with
one `Struct.pack` instead of building the message dict and running the encoder
(bench/overhead: the adapter's per-step cost follows the Python calls it makes).

`pack` returns None for anything it does not cover (spectra, scalars, loop rate, a
negative integer, a value that is not exactly float / int); the caller then encodes
with `protocol.encode_snapshot`. A shape's layout is checked once against
`protocol.encode_snapshot` when it is built and never used if the bytes differ, so
the bytes are the encoder's (tests compare them over random inputs too).
"""
from __future__ import annotations

import struct
from typing import Dict, Optional, Sequence, Tuple, Union

import msgpack

from . import protocol

# Domain entries a template covers: every listed domain with a loss, with a weight, or
# with both (in that order on the wire: "loss" < "weight").
LOSS, WEIGHT, LOSS_AND_WEIGHT = ("loss",), ("weight",), ("loss", "weight")
DomainShape = Optional[Tuple[Tuple[str, ...], Tuple[str, ...]]]  # (names in wire order, fields)

# MessagePack's smallest encoding of a non-negative integer, by width class.
_INT_PREFIX = (b"", b"\xcc", b"\xcd", b"\xce", b"\xcf")
_INT_FORMAT = ("B", "B", "H", "I", "Q")
_MAX_LAYOUTS = 64  # shapes kept; past it new shapes go to the encoder


def int_width(x: int) -> int:
    """The width class of a non-negative int (0: fixint, 1-4: uint8-uint64); -1 else."""
    if 0 <= x < 128:
        return 0
    if 128 <= x < 256:
        return 1
    if 256 <= x < 65536:
        return 2
    if 65536 <= x < 4294967296:
        return 3
    if 4294967296 <= x < 18446744073709551616:
        return 4
    return -1


class _Layout:
    __slots__ = ("pack", "args")

    def __init__(self, fmt: str, args: list) -> None:
        self.pack = struct.Struct(fmt).pack
        self.args = args  # constants at even indices; the numbers go to the odd ones


class SnapshotTemplate:
    """The snapshot bytes of one (run, rank), by shape."""

    def __init__(self, run: str, rank: int) -> None:
        self.run = run
        self.rank = rank
        self._layouts: Dict[tuple, Union[_Layout, bool]] = {}
        self._packb = msgpack.Packer(use_bin_type=True, use_single_float=False, autoreset=True).pack

    def pack(self, step: int, time: float, loss: float, grad_norm: Optional[float],
             lr: Optional[float], schedule_lr: Optional[float], tokens: Optional[int],
             domains: DomainShape, domain_values: Sequence[float]) -> Optional[bytes]:
        """The snapshot's bytes, or None where the caller must encode it in full.
        `domain_values` holds the numbers of `domains` in wire order (per name, its
        fields in order)."""
        if not (type(step) is int and type(time) is float and type(loss) is float):
            return None
        sw = 0 if 0 <= step < 128 else int_width(step)
        tw = -2 if tokens is None else int_width(tokens) if type(tokens) is int else -1
        if sw < 0 or tw == -1:
            return None
        numbers = [step, time, loss]
        for x in (grad_norm, lr, schedule_lr):
            if x is not None:
                if type(x) is not float:
                    return None
                numbers.append(x)
        if tokens is not None:
            numbers.append(tokens)
        key = (sw, grad_norm is None, lr is None, schedule_lr is None, tw, domains)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._build(key, step, time, loss, grad_norm, lr, schedule_lr, tokens,
                                 domains, domain_values)
        if layout is False:
            return None
        numbers += domain_values
        args = layout.args
        if len(numbers) * 2 != len(args):
            return None
        args[1::2] = numbers
        return layout.pack(*args)

    def _build(self, key, step, time, loss, grad_norm, lr, schedule_lr, tokens, domains,
               domain_values) -> Union[_Layout, bool]:
        """The layout of `key`'s shape from this message, checked against the encoder."""
        message = {"type": "snapshot", "run": self.run, "rank": self.rank, "step": step,
                   "time": time, "loss": loss, "grad_norm": grad_norm, "lr": lr,
                   "schedule_lr": schedule_lr, "tokens": tokens}
        names, fields = domains if domains is not None else ((), ())
        if len(domain_values) != len(names) * len(fields):
            return False
        values = iter(domain_values)
        if names:
            message["domains"] = {name: {f: next(values) for f in fields} for name in names}
        pk = self._packb
        fmt, args = [">"], []
        pending = [b""]  # constant bytes not yet closed by a number

        def const(data: bytes) -> None:
            pending[0] += data

        def number(code: str, value) -> None:
            fmt.append(f"{len(pending[0])}s{code}")
            args.extend((pending[0], value))
            pending[0] = b""

        present = [(k, message[k]) for k in ("grad_norm", "lr", "schedule_lr", "tokens")
                   if message[k] is not None]
        const(bytes([0x80 | (7 + len(present) + (1 if names else 0))]))
        for k, v in (("v", protocol.VERSION), ("type", "snapshot"), ("run", self.run),
                     ("rank", self.rank)):
            const(pk(k) + pk(v))
        const(pk("step") + _INT_PREFIX[key[0]])
        number(_INT_FORMAT[key[0]], step)
        for k, v in [("time", time), ("loss", loss)] + present:
            if k == "tokens":
                const(pk(k) + _INT_PREFIX[key[4]])
                number(_INT_FORMAT[key[4]], v)
            else:
                const(pk(k) + b"\xcb")
                number("d", v)
        if names:
            const(pk("domains") + _map_header(len(names)))
            for name in names:
                const(pk(name) + _map_header(len(fields)))
                for f in fields:
                    const(pk(f) + b"\xcb")
                    number("d", message["domains"][name][f])
        layout: Union[_Layout, bool] = False
        if not pending[0]:  # a snapshot ends with a number here
            candidate = _Layout("".join(fmt), args)
            try:
                if candidate.pack(*args) == protocol.encode_snapshot(message):
                    layout = candidate
            except (struct.error, TypeError, ValueError):
                pass
        if len(self._layouts) < _MAX_LAYOUTS:
            self._layouts[key] = layout
        return layout


def _map_header(n: int) -> bytes:
    packer = msgpack.Packer(autoreset=False)
    packer.pack_map_header(n)
    return packer.bytes()
