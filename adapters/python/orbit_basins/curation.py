# SPDX-License-Identifier: Apache-2.0
"""Data curation: a basin map -> per-domain mixture weights and verdicts.

The design's data-quality scorecard, per training-data domain (prompts carry the
domain they stand for):
  increase  most of the domain's prompts land in CREATIVE
  reduce    most land in SEMANTIC_LOOP or TOKEN_COLLAPSE
  remove    TOKEN_COLLAPSE alone reaches remove_collapse_share
  analyse   anything else (mixed, or mostly UNKNOWN)
Weights: w_d = base_d * exp(creative_gain * c_d - loop_penalty * l_d), where c_d and l_d
are the CREATIVE and SEMANTIC_LOOP shares of the domain's prompts; removed domains get 0.
Shares of a few prompts per domain are coarse (6 prompts: steps of 1/6); the
multiplier is bounded to [exp(-loop_penalty), exp(creative_gain)] so a noisy map
cannot starve a domain. The result feeds `DomainMixtureSampler(weights=...)` or
examples/pytorch/train.py --domain-weights.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

__all__ = ["CurationSettings", "domain_scorecard", "curated_weights"]


@dataclass
class CurationSettings:
    creative_gain: float = 1.0
    loop_penalty: float = 1.0
    remove_collapse_share: float = 0.5
    majority: float = 0.5      # a share above this decides increase / reduce
    tag_share: float = 0.25    # a basin reached by at least this share of prompts tags the domain


def domain_scorecard(prompts, settings: CurationSettings = CurationSettings()) -> Dict[str, dict]:
    """Per domain: prompt count, basin counts and shares, tags (basins) and verdict.

    `prompts` are the basin map's prompt records (dicts with 'domain' and 'basin');
    prompts without a domain are left out."""
    groups: Dict[str, Counter] = {}
    for p in prompts:
        if p.get("domain"):
            groups.setdefault(p["domain"], Counter())[p["basin"]] += 1
    card = {}
    for d, counts in sorted(groups.items()):
        n = sum(counts.values())
        share = {b: counts[b] / n for b in ("CREATIVE", "SEMANTIC_LOOP", "TOKEN_COLLAPSE", "UNKNOWN")}
        if share["TOKEN_COLLAPSE"] >= settings.remove_collapse_share:
            verdict = "remove"
        elif share["SEMANTIC_LOOP"] + share["TOKEN_COLLAPSE"] > settings.majority:
            verdict = "reduce"
        elif share["CREATIVE"] > settings.majority:
            verdict = "increase"
        else:
            verdict = "analyse"
        tags = [b for b in ("SEMANTIC_LOOP", "TOKEN_COLLAPSE", "CREATIVE")
                if counts[b] > 0 and share[b] >= settings.tag_share]
        card[d] = {"prompts": n, "counts": {b: counts[b] for b in share}, "shares": share,
                   "basins": tags, "verdict": verdict}
    return card


def curated_weights(card: Mapping[str, dict], base: Optional[Mapping[str, float]] = None,
                    settings: CurationSettings = CurationSettings()) -> Dict[str, float]:
    """Normalized mixture weights from a scorecard; `base` defaults to uniform.
    Domains of `base` missing from the card keep their base weight."""
    base = dict(base) if base else {d: 1.0 for d in card}
    raw = {}
    for d, b in base.items():
        c = card.get(d)
        if c is None:
            raw[d] = float(b)
        elif c["verdict"] == "remove":
            raw[d] = 0.0
        else:
            s = c["shares"]
            raw[d] = float(b) * math.exp(settings.creative_gain * s["CREATIVE"]
                                         - settings.loop_penalty * s["SEMANTIC_LOOP"])
    total = sum(raw.values())
    if total <= 0:
        raise ValueError("curation removed every domain (all tagged TOKEN_COLLAPSE); "
                         "nothing left to train on")
    return {d: w / total for d, w in raw.items()}
