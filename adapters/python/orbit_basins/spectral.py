# SPDX-License-Identifier: Apache-2.0
"""Spectral summaries of one forward pass: hidden-state and attention spectra.

Reuses the adapter's probe math (covariance eigenvalues, attention singular values,
spectral entropy), so "effective rank" and "dominant ratio" mean here what they mean
in the daemon's metrics.
"""
from __future__ import annotations

import math
from typing import Dict, List

import torch

from orbit_adapter.probes import attention_stats, covariance_eigenvalues, spectral_entropy

__all__ = ["spectral_summary"]


def spectral_summary(hidden: List[torch.Tensor], attention: List[torch.Tensor]) -> Dict[str, float]:
    """hidden: per layer (T, d); attention: per module (H, T, T). Returns

    hidden_effective_rank_min   min over layers of exp(entropy of the covariance spectrum)
    hidden_dominant_ratio_max   max over layers of lambda_1 / sum(lambda)
    attn_entropy_mean/_min      mean / min over modules of the mean attention-row entropy (nats)
    attn_effective_rank_min     min over modules of exp(entropy of the mean singular values)
    """
    out: Dict[str, float] = {}
    ranks, dominants = [], []
    for h in hidden:
        if h.shape[0] < 2:
            continue
        ev = covariance_eigenvalues(h, max_rows=4096)
        total = float(ev.sum())
        if total <= 0 or not math.isfinite(total):
            ranks.append(1.0)
            dominants.append(1.0)
            continue
        ranks.append(math.exp(float(spectral_entropy(ev))))
        dominants.append(float(ev[0]) / total)
    if ranks:
        out["hidden_effective_rank_min"] = min(ranks)
        out["hidden_dominant_ratio_max"] = max(dominants)
    ents, aranks = [], []
    for a in attention:
        sv, ent = attention_stats(a.unsqueeze(0), samples=1)
        ents.append(ent)
        aranks.append(math.exp(float(spectral_entropy(sv))))
    if ents:
        out["attn_entropy_mean"] = sum(ents) / len(ents)
        out["attn_entropy_min"] = min(ents)
        out["attn_effective_rank_min"] = min(aranks)
    return out
