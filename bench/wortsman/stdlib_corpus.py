# SPDX-License-Identifier: Apache-2.0
"""The benchmark's data: Python source of the interpreter's own standard library.

Every Debian machine with python3 has it (/usr/lib/python3.X), and it is a domain the
project's example corpus (English prose) does not cover. Characters are the tokens:
tab, newline and printable ASCII; anything else reads as '?'.

Domains (for orbitd's data-reweighting actuator): `modules` (top-level .py files),
`packages` (files inside stdlib packages), `tests` (test files Debian ships in the
base package). Files are split train/val by a CRC of their relative path, so the
split is the same on every machine with the same stdlib.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import zlib
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "adapters", "python"))
from orbit_basins.windows import WindowCorpus  # noqa: E402

VOCAB = "\t\n" + "".join(chr(c) for c in range(32, 127))
_LOOKUP = np.full(256, VOCAB.index("?"), dtype=np.int64)
for _i, _c in enumerate(VOCAB):
    _LOOKUP[ord(_c)] = _i

SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_dir() -> str:
    return sysconfig.get_paths()["stdlib"]


def domain_of(rel: str) -> str:
    parts = rel.split(os.sep)
    if parts[0] in ("test", "tests") or "test" in parts[:-1] or parts[-1].startswith("test_"):
        return "tests"
    return "modules" if len(parts) == 1 else "packages"


def encode(data: bytes) -> torch.Tensor:
    return torch.from_numpy(_LOOKUP[np.frombuffer(data, dtype=np.uint8)])


class StdlibCorpus(WindowCorpus):
    """Token streams per training domain and one validation stream.

    max_bytes_per_domain caps how much source each domain reads (files in sorted
    order), which keeps start-up short; val_every: one file in N goes to val.
    """

    def __init__(self, context: int, root: str | None = None,
                 max_bytes_per_domain: int = 3 << 20, max_val_bytes: int = 1 << 20,
                 val_every: int = 20):
        self.root = root or stdlib_dir()
        files: List[str] = []
        for dirpath, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            files += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith(".py")]
        if not files:
            raise FileNotFoundError(f"no Python sources under {self.root}")
        train: Dict[str, List[bytes]] = {}
        sizes: Dict[str, int] = {}
        val: List[bytes] = []
        val_size = 0
        for path in sorted(files):
            rel = os.path.relpath(path, self.root)
            is_val = zlib.crc32(rel.encode()) % val_every == 0
            d = domain_of(rel)
            if (is_val and val_size >= max_val_bytes) or (
                    not is_val and sizes.get(d, 0) >= max_bytes_per_domain):
                continue
            with open(path, "rb") as f:
                data = f.read()
            if is_val:
                val.append(data)
                val_size += len(data)
            else:
                train.setdefault(d, []).append(data)
                sizes[d] = sizes.get(d, 0) + len(data)
        self.context = context
        self.domains = sorted(train)
        self.train = {d: encode(b"".join(train[d])) for d in self.domains}
        self.val = encode(b"".join(val))
        self.bytes = {"train": sizes, "val": val_size}
        # A sample is a window start; a window holds context + 1 tokens.
        self.sizes = self.window_sizes()
