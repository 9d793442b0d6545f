# SPDX-License-Identifier: Apache-2.0
"""orbitd's default endpoint, computed by the daemon's own rule (no torch needed)."""
from __future__ import annotations

import os

__all__ = ["default_endpoint"]


def default_endpoint() -> str:
    """orbitd's default adapter endpoint (config/endpoints.cpp): `$XDG_RUNTIME_DIR/orbit/
    orbitd.sock` when XDG_RUNTIME_DIR is set and not empty, else `/tmp/orbit-<uid>/orbitd.sock`."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(xdg, "orbit") if xdg else f"/tmp/orbit-{os.getuid()}"
    return "ipc://" + os.path.join(base, "orbitd.sock")
