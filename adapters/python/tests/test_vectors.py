# SPDX-License-Identifier: Apache-2.0
"""The golden vectors of protocol/vectors/ in Python (SPEC.md section 11): the same
files the C++ tests read, decoded and re-encoded byte for byte."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import VECTORS
from orbit_adapter import protocol as P

GOLDEN = sorted(p.stem for p in VECTORS.glob("*.msgpack"))
LENIENT = sorted(p.stem for p in (VECTORS / "lenient").glob("*.msgpack"))
INVALID = sorted(p.stem for p in (VECTORS / "invalid").glob("*.msgpack"))


def test_vectors_exist_for_every_type():
    types = {json.loads((VECTORS / f"{n}.json").read_text())["type"] for n in GOLDEN}
    assert types == set(P.TYPES)
    assert len(GOLDEN) >= 25 and len(LENIENT) >= 6 and len(INVALID) >= 40


def equal(a, b) -> bool:
    """Field equality with NaN == NaN and spectra compared as float32 values."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32),
                              equal_nan=True)
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_vector(name):
    data = (VECTORS / f"{name}.msgpack").read_bytes()
    twin = P.from_jsonable(json.loads((VECTORS / f"{name}.json").read_text()))
    decoded = P.decode(data)
    assert P.encode(decoded) == data
    # The bytes say what the readable twin says, field for field.
    assert equal(decoded, twin), (decoded, twin)
    assert P.encode(twin) == data


@pytest.mark.parametrize("name", LENIENT)
def test_lenient_vector(name):
    data = (VECTORS / "lenient" / f"{name}.msgpack").read_bytes()
    meta = json.loads((VECTORS / "lenient" / f"{name}.json").read_text())
    canonical = (VECTORS / f"{meta['canonical']}.msgpack").read_bytes()
    assert data != canonical and bytes.fromhex(meta["hex"]) == data
    assert P.encode(P.decode(data)) == canonical


@pytest.mark.parametrize("name", INVALID)
def test_invalid_vector(name):
    data = (VECTORS / "invalid" / f"{name}.msgpack").read_bytes()
    meta = json.loads((VECTORS / "invalid" / f"{name}.json").read_text())
    with pytest.raises(P.ProtocolError) as e:
        P.decode(data)
    assert (e.value.code, e.value.ref) == (meta["code"], meta["ref"]), e.value.message


def test_committed_vectors_match_the_generator():
    result = subprocess.run([sys.executable, str(VECTORS.parents[1] / "scripts" / "generate_vectors.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
