# SPDX-License-Identifier: Apache-2.0
"""Assigns a basin to one decoding, and one prompt's basin from its decodings.

Per decoding, in this order (thresholds from BasinThresholds):
  TOKEN_COLLAPSE  one token dominates the output, or very few distinct tokens, or the
                  model's top-1 prediction is the same token almost everywhere
  SEMANTIC_LOOP   loop rate (repeated n-grams) at or above loop_min_rate
  CREATIVE        loop rate at most creative_max_loop_rate and output entropy at
                  least creative_min_entropy_bits
  UNKNOWN         anything in between
A prompt takes the basin that more than min_agreement of its decodings reached
(UNKNOWN decodings count against every basin); otherwise UNKNOWN.
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, List, Tuple

from .basin_config import BasinThresholds

__all__ = ["BASINS", "classify_decoding", "classify_prompt"]

BASINS = ("CREATIVE", "SEMANTIC_LOOP", "TOKEN_COLLAPSE", "UNKNOWN")


def classify_decoding(m: Dict[str, float], t: BasinThresholds) -> Tuple[str, List[str]]:
    """(basin, reasons): the reasons name each metric and threshold that decided."""
    collapse = []
    if m["dominant_share"] >= t.collapse_dominant_share:
        collapse.append(f"dominant_share {m['dominant_share']:.2f} >= {t.collapse_dominant_share:g}")
    if m["distinct_tokens"] <= t.collapse_max_distinct_tokens:
        collapse.append(f"distinct_tokens {m['distinct_tokens']} <= {t.collapse_max_distinct_tokens}")
    if m["prediction_share"] >= t.collapse_prediction_share:
        collapse.append(f"prediction_share {m['prediction_share']:.2f} >= {t.collapse_prediction_share:g}")
    if collapse:
        return "TOKEN_COLLAPSE", collapse
    if m["loop_rate"] >= t.loop_min_rate:
        return "SEMANTIC_LOOP", [f"loop_rate {m['loop_rate']:.2f} >= {t.loop_min_rate:g}"]
    if m["loop_rate"] <= t.creative_max_loop_rate and m["entropy_bits"] >= t.creative_min_entropy_bits:
        return "CREATIVE", [f"loop_rate {m['loop_rate']:.2f} <= {t.creative_max_loop_rate:g}",
                            f"entropy_bits {m['entropy_bits']:.2f} >= {t.creative_min_entropy_bits:g}"]
    why = []
    if m["loop_rate"] > t.creative_max_loop_rate:
        why.append(f"loop_rate {m['loop_rate']:.2f} between {t.creative_max_loop_rate:g} and {t.loop_min_rate:g}")
    if m["entropy_bits"] < t.creative_min_entropy_bits:
        why.append(f"entropy_bits {m['entropy_bits']:.2f} < {t.creative_min_entropy_bits:g}")
    return "UNKNOWN", why


def classify_prompt(decoding_basins: List[str], t: BasinThresholds) -> Tuple[str, Dict[str, int], str]:
    """(basin, votes, evidence sentence) from the basins of a prompt's decodings."""
    votes = Counter(decoding_basins)
    n = len(decoding_basins)
    basin, count = "UNKNOWN", 0
    for b in BASINS[:3]:
        if votes[b] > count:
            basin, count = b, votes[b]
    if n == 0 or count / n <= t.min_agreement:
        note = ", ".join(f"{b} {votes[b]}" for b in BASINS if votes[b])
        return "UNKNOWN", dict(votes), f"no basin in more than {t.min_agreement:g} of {n} decodings ({note})"
    return basin, dict(votes), f"{basin} in {count} of {n} decodings"
