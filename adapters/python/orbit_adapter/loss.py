# SPDX-License-Identifier: Apache-2.0
"""The basin-aware loss: cross-entropy plus penalties that push away from collapse.

    loss = CE + w_collapse * mean_s max(0, h0 - H(s)) + w_phi * mean_s (1 - phi_prox(s))

over the spectra s handed in (eigenvalues or singular values, computed with
gradients, e.g. by `covariance_spectrum` or `torch.linalg.svdvals`). H is the
spectral entropy of protocol/SPEC.md 5.4.1; phi_prox = max(0, 1 - |l1/l2 - phi| / phi). The
weights come from the latest burn's `loss_weights` (`Orbit.loss_weights`), which
are zero until the daemon sends some: until then the loss is plain cross-entropy.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F

from .probes import spectral_entropy

__all__ = ["basin_aware_loss", "covariance_spectrum", "PHI"]

PHI = (1.0 + math.sqrt(5.0)) / 2.0


def covariance_spectrum(hidden: torch.Tensor, max_rows: Optional[int] = None) -> torch.Tensor:
    """Descending eigenvalues of the covariance of hidden states (..., d), differentiable."""
    x = hidden.reshape(-1, hidden.shape[-1])
    if max_rows is not None:
        x = x[:max_rows]
    x = x - x.mean(0, keepdim=True)
    cov = (x.T @ x) / max(1, x.shape[0] - 1)
    return torch.linalg.eigvalsh(cov).flip(0)


def _phi_drift(values: torch.Tensor, target: float) -> torch.Tensor:
    v = values.abs().sort(descending=True).values
    ratio = v[0] / v[1].clamp_min(1e-12)
    return ((ratio - target).abs() / target).clamp(max=1.0)  # = 1 - phi-proximity


def basin_aware_loss(logits: torch.Tensor, labels: torch.Tensor,
                     spectra: Optional[Mapping[str, torch.Tensor]],
                     weights: Optional[Mapping[str, float]], *,
                     h0: float = 2.0, target_ratio: float = PHI,
                     ignore_index: int = -100,
                     parts: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
    """Cross-entropy plus the weighted collapse and phi-drift penalties.

    `weights` uses the burn's keys: `collapse` and `phi` (missing keys are 0).
    Pass a dict as `parts` to receive the three terms separately.
    """
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                         ignore_index=ignore_index)
    w_collapse = float((weights or {}).get("collapse", 0.0))
    w_phi = float((weights or {}).get("phi", 0.0))
    total = ce
    collapse = phi = ce.new_zeros(())
    usable = [s for s in (spectra or {}).values() if s.numel() >= 2]
    if usable and (w_collapse > 0 or w_phi > 0):
        if w_collapse > 0:
            collapse = torch.stack([F.relu(h0 - spectral_entropy(s)) for s in usable]).mean()
            total = total + w_collapse * collapse
        if w_phi > 0:
            phi = torch.stack([_phi_drift(s, target_ratio) for s in usable]).mean()
            total = total + w_phi * phi
    if parts is not None:
        parts.update(ce=ce.detach(), collapse=collapse.detach(), phi=phi.detach())
    return total
