# SPDX-License-Identifier: Apache-2.0
"""orbit_adapter: connect a trainer to orbitd, Orbit's training-controller daemon.

``OrbitClient`` (pyzmq, msgpack, numpy) speaks protocol v1 (protocol/SPEC.md).
``Orbit``, the PyTorch adapter built on it, is imported on first use, so importing
this package never imports torch.
"""

from . import protocol
from .client import ClientStats, OrbitClient, __version__
from .protocol import ProtocolError

__all__ = ["ClientStats", "Orbit", "OrbitClient", "ProtocolError", "protocol", "__version__"]


def __getattr__(name: str):
    if name == "Orbit":
        from .adapter import Orbit  # imports torch

        return Orbit
    raise AttributeError(f"module 'orbit_adapter' has no attribute {name!r}")
