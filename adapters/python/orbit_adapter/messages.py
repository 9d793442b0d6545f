# SPDX-License-Identifier: Apache-2.0
"""Typed views of the replies orbitd sends a rank (protocol/SPEC.md): welcome, state,
burn, heartbeat and error.

``OrbitClient.poll`` hands out the decoded dicts (its public API); ``reply_from_dict``
turns one into the dataclass of its type, so the adapter reads fields by name
instead of probing an untyped object. The dicts come from ``protocol.decode``,
which has already checked every field, so no validation is repeated here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union

__all__ = ["Welcome", "State", "Burn", "Heartbeat", "Error", "Reply", "reply_from_dict"]


@dataclass(frozen=True)
class Welcome:
    run: str
    rank: int
    session: str
    version: int
    mode: str
    snapshot_every: int
    max_message_bytes: Optional[int] = None


@dataclass(frozen=True)
class State:
    run: str
    rank: int
    step: int
    state: str
    basin: str
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Burn:
    """One control decision. It governs the steps [apply_at_step,
    apply_at_step + expires_after_steps); see burn_schedule.py for the rules."""
    seq: int
    apply_at_step: int
    state: str = ""
    basin: str = ""
    reason: str = ""
    for_step: int = 0
    expires_after_steps: int = 0
    lr_scale: float = 1.0
    domain_weights: Optional[Dict[str, float]] = None
    curriculum_phase: Optional[int] = None
    loss_weights: Optional[Dict[str, float]] = None
    rollback_to_step: Optional[int] = None
    skip_batches: Optional[int] = None
    run: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Burn":
        """From a decoded burn or a burn kept in ``Orbit.state_dict()['pending']``
        (which has no `run`); absent or null fields take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known and v is not None})

    def to_dict(self) -> Dict[str, Any]:
        """The fields the adapter persists and reports (``AppliedBurn.raw``): every
        field but `run`, as the adapter has always kept them."""
        d = dataclasses.asdict(self)
        del d["run"]
        return d


@dataclass(frozen=True)
class Heartbeat:
    run: Optional[str] = None
    rank: Optional[int] = None


@dataclass(frozen=True)
class Error:
    code: str
    message: str
    ref: Optional[str] = None


Reply = Union[Welcome, State, Burn, Heartbeat, Error]

_TYPES = {"welcome": Welcome, "state": State, "burn": Burn, "heartbeat": Heartbeat,
          "error": Error}


def reply_from_dict(message: Mapping[str, Any]) -> Optional[Reply]:
    """The typed reply for a decoded message; None for a type a rank is never sent
    (hello, snapshot, ack, bye, telemetry)."""
    cls = _TYPES.get(message.get("type"))
    if cls is None:
        return None
    if cls is Burn:
        return Burn.from_dict(message)
    known = _FIELD_NAMES[cls]
    return cls(**{k: v for k, v in message.items() if k in known})


_FIELD_NAMES = {cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in _TYPES.values()}
