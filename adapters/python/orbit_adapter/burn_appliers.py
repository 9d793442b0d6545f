# SPDX-License-Identifier: Apache-2.0
"""What a burn does to the training objects: the lr scale, the sampler's domain
weights and curriculum phase, the loss weights, a rollback to a checkpoint; and how
the trainer's own schedule takes over again when the burn expires.

BurnSchedule decides when; this decides what. Errors of one actuator (a domain
weight the sampler refuses) are reported to FailOpen and do not stop the others.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .burn_schedule import AppliedBurn
from .failures import FailOpen
from .lr import LrScaler
from .messages import Burn
from .rollback import CheckpointRing


class BurnAppliers:
    def __init__(self, failures: FailOpen) -> None:
        self._failures = failures
        self.scaler: Optional[LrScaler] = None
        self.sampler: Any = None
        self.ring: Optional[CheckpointRing] = None
        self.loss_weights: Dict[str, float] = {}    # for basin_aware_loss; empty: none
        self.rollbacks: List[Dict[str, int]] = []   # every rollback done, oldest first

    def attach(self, scaler: LrScaler, sampler: Any, ring: Optional[CheckpointRing]) -> None:
        self.scaler, self.sampler, self.ring = scaler, sampler, ring

    def apply(self, burn: Burn, applied: AppliedBurn) -> None:
        """Puts `burn` in force from applied.applied_step (called after the optimizer
        step before it); sets applied.restored_step when it rolled the model back."""
        if burn.rollback_to_step is not None and self.ring is not None:
            skip = int(burn.skip_batches or 0)
            restored = self.ring.restore(int(burn.rollback_to_step), skip)
            if restored is not None:
                applied.restored_step = restored
                self.rollbacks.append({"at_step": applied.received_step,
                                       "to_step": int(burn.rollback_to_step),
                                       "restored_step": restored, "skip_batches": skip})
        self.scaler.set_scale(applied.lr_scale)
        if self.sampler is not None:
            if burn.domain_weights:
                try:
                    self.sampler.set_weights(burn.domain_weights)
                except ValueError as e:
                    self._failures.fail("domain_weights", e)
            if burn.curriculum_phase is not None and hasattr(self.sampler, "set_phase"):
                self.sampler.set_phase(int(burn.curriculum_phase))
        if burn.loss_weights:
            self.loss_weights = {k: float(v) for k, v in burn.loss_weights.items()}

    def release(self) -> None:
        """The burn in force expired: the trainer's own schedule is back."""
        self.scaler.set_scale(1.0)
        if self.sampler is not None and hasattr(self.sampler, "relax"):
            self.sampler.relax()
        self.loss_weights = {}
