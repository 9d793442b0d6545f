# SPDX-License-Identifier: Apache-2.0
"""When each received burn takes effect and when it stops: pure bookkeeping over step
numbers, no torch and no sockets, so every rank that sees the same burns makes the
same decisions at the same steps. The Python twin of the LibTorch adapter's
adapters/libtorch/burn_schedule.{hpp,cpp}.

Rules (protocol/SPEC.md, sections 5.5 and 5.6):
- a burn governs the steps [apply_at_step, apply_at_step + expires_after_steps)
  (0 = a one-shot: its rollback happens, its lr scale governs no step); the window is
  counted from apply_at_step, not from arrival, so late ranks still agree on the end;
- a burn that arrives after its apply_at_step is applied at once and is late;
- due burns are applied in seq order and the newest defines the scale; scales never
  compound;
- a burn whose seq is not above the newest applied one is ignored on arrival
  (duplicate delivery, per-rank fan-out), and a pending one that a newer burn
  overtook (the newer took effect first) is dropped when its own step comes: it is
  never applied, never acknowledged, and its rollback does not happen, exactly as
  in the C++ schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Tuple

from .messages import Burn

__all__ = ["AppliedBurn", "BurnSchedule"]


@dataclass
class AppliedBurn:
    seq: int
    received_step: int        # the orbit.step call that read it
    apply_at_step: int        # what the daemon asked for
    applied_step: int         # the first training step that ran under it
    late: bool
    lr_scale: float
    reason: str
    state: str
    basin: str
    expires_at_step: int
    restored_step: Optional[int] = None
    lr: Optional[float] = None  # lr the optimizer used at applied_step (filled by the ACK)
    raw: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def starting(cls, burn: Burn, step: int) -> "AppliedBurn":
        """`burn` taking effect at training step `step`."""
        scale = float(burn.lr_scale)
        if not math.isfinite(scale) or scale <= 0:  # never scale by garbage
            scale = 1.0
        return cls(seq=burn.seq, received_step=step - 1, apply_at_step=burn.apply_at_step,
                   applied_step=step, late=burn.apply_at_step < step, lr_scale=scale,
                   reason=burn.reason, state=burn.state, basin=burn.basin,
                   expires_at_step=burn.apply_at_step + burn.expires_after_steps,
                   raw=burn.to_dict())

    def ack(self) -> Dict[str, Any]:
        """What the ACK of this burn reports (OrbitClient.send_ack's arguments)."""
        return {"seq": self.seq, "step": self.applied_step, "late": self.late, "lr": self.lr,
                "restored_step": self.restored_step}


class BurnSchedule:
    """The burns received and waiting for their step, and the one in force."""

    def __init__(self) -> None:
        self._pending: Dict[int, Burn] = {}
        self.active: Optional[AppliedBurn] = None   # governs the step given to advance()
        self.expired: Optional[AppliedBurn] = None  # stopped governing at that step
        self.last_seq = -1                          # newest seq applied

    def add(self, burn: Burn) -> bool:
        """Queues `burn`; False when it is a duplicate or older than the newest applied."""
        if burn.seq <= self.last_seq or burn.seq in self._pending:
            return False
        self._pending[burn.seq] = burn
        return True

    def advance(self, step: int, *, ready: Optional[Collection[int]] = None,
                apply: Optional[Callable[[Burn, AppliedBurn], bool]] = None) -> List[AppliedBurn]:
        """Moves the schedule to `step`, the next training step to run. Returns the burns
        that take effect at this step, in seq order (each must be acknowledged); a burn
        whose window has ended stops governing here (`expired` says which).

        ready: when given, only these seqs may be applied (rank0 mode: the ones every
        rank has received). apply: called with each due burn (and the record of it
        taking effect, which it may complete: restored_step); False means it could not
        be applied, so it is dropped without governing or being acknowledged."""
        applied: List[AppliedBurn] = []
        for seq in sorted(self._pending):
            burn = self._pending[seq]
            if (ready is not None and seq not in ready) or burn.apply_at_step > step:
                continue
            del self._pending[seq]
            if seq <= self.last_seq:  # overtaken by a newer burn already in force
                continue
            self.last_seq = seq
            ab = AppliedBurn.starting(burn, step)
            if apply is not None and not apply(burn, ab):
                continue
            self.active = ab
            applied.append(ab)
        self.expired = None
        if self.active is not None and step >= self.active.expires_at_step:
            self.expired, self.active = self.active, None
        return applied

    @property
    def busy(self) -> bool:
        """Whether `advance` has anything to do: a burn waits, governs, or has just
        stopped governing (its `expired` is reset by the next `advance`)."""
        return bool(self._pending) or self.active is not None or self.expired is not None

    @property
    def lr_scale(self) -> float:
        return self.active.lr_scale if self.active is not None else 1.0

    @property
    def pending(self) -> List[int]:
        """Seqs of the burns waiting for their step, oldest first."""
        return sorted(self._pending)

    def pending_burns(self) -> List[Tuple[int, Burn]]:
        return sorted(self._pending.items())

    def forget_seqs(self) -> None:
        """The daemon registered us again: a daemon restarted without its journal
        numbers burns from 1 again, so earlier seqs say nothing about the next ones."""
        self.last_seq = -1

    # ---- persistence (the fields of Orbit.state_dict) --------------------------------
    def state_dict(self) -> Dict[str, Any]:
        active = None
        if self.active is not None:
            a = self.active
            active = {"seq": a.seq, "applied_step": a.applied_step, "apply_at_step": a.apply_at_step,
                      "expires_at_step": a.expires_at_step, "lr_scale": a.lr_scale,
                      "reason": a.reason, "state": a.state, "basin": a.basin}
        return {"seen_seq": self.last_seq, "active": active,
                "pending": {seq: b.to_dict() for seq, b in self._pending.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_seq = int(state.get("seen_seq", -1))
        self._pending = {int(k): Burn.from_dict(v) for k, v in (state.get("pending") or {}).items()}
        a = state.get("active")
        self.active = None if a is None else AppliedBurn(
            seq=a["seq"], received_step=a["applied_step"] - 1, apply_at_step=a["apply_at_step"],
            applied_step=a["applied_step"], late=False, lr_scale=a["lr_scale"], reason=a["reason"],
            state=a["state"], basin=a["basin"], expires_at_step=a["expires_at_step"])
        self.expired = None
