# SPDX-License-Identifier: Apache-2.0
"""Starts and stops a private orbitd for the demo and the benchmarks.

The launcher lives in the package (`orbit_adapter.daemon_process`), shared with the
tests; this module keeps the name the benchmarks import.

    with OrbitdProcess("build/daemon/orbitd", "configs/default.toml") as d:
        print(d.endpoint, d.telemetry, d.control, d.journal_dir)
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "adapters", "python"))

from orbit_adapter.daemon_process import OrbitdError, OrbitdProcess, find_orbitd  # noqa: E402,F401

__all__ = ["OrbitdProcess", "OrbitdError", "find_orbitd"]
