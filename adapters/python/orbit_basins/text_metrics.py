# SPDX-License-Identifier: Apache-2.0
"""Outcome metrics of one generated token sequence: loops and token collapse."""
from __future__ import annotations

import math
from collections import Counter
from typing import Dict, Sequence

from orbit_adapter.probes import loop_rate

__all__ = ["sequence_metrics"]


def sequence_metrics(tokens: Sequence[int], loop_n: int) -> Dict[str, float]:
    """Metrics of the generated tokens (the prompt excluded):

    loop_rate         share of the sequence's n-grams (n = loop_n) that repeat an
                      earlier one (rep-n); 0 = no repeated n-gram, -> 1 = one cycle
    distinct_n        distinct n-grams / n-grams (1 - loop_rate)
    entropy_bits      entropy of the token histogram, bits
    distinct_tokens   number of different tokens
    dominant_share    share of the most frequent token
    """
    toks = list(tokens)
    if not toks:
        return {"loop_rate": 0.0, "distinct_n": 1.0, "entropy_bits": 0.0,
                "distinct_tokens": 0, "dominant_share": 0.0}
    counts = Counter(toks)
    n = len(toks)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values())
    rate = loop_rate([toks], loop_n)
    rate = 0.0 if rate is None else rate
    return {"loop_rate": rate, "distinct_n": 1.0 - rate, "entropy_bits": entropy,
            "distinct_tokens": len(counts), "dominant_share": counts.most_common(1)[0][1] / n}
