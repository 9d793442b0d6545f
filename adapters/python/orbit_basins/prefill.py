# SPDX-License-Identifier: Apache-2.0
"""Prefill features of a prompt: what one forward pass over the prompt shows, no generation.

Prompt-token statistics (from the tokens alone), the model's next-token predictions
over the prompt, and the hidden-state and attention spectra of that forward pass.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Dict, List

import torch

from orbit_adapter.probes import loop_rate

from .models import LanguageModel
from .spectral import spectral_summary

__all__ = ["FEATURE_NAMES", "prefill_features"]

FEATURE_NAMES = (
    "prompt_tokens_log",        # log(1 + prompt length in tokens)
    "prompt_distinct_share",    # distinct tokens / tokens
    "prompt_repetition",        # rep-4 of the prompt: share of repeated 4-grams
    "prompt_entropy_bits",      # entropy of the prompt's token histogram
    "prompt_dominant_share",    # share of the prompt's most frequent token
    "end_entropy",              # entropy (nats) of the next-token distribution after the prompt
    "end_top_prob",             # probability of the most likely next token after the prompt
    "mean_entropy",             # mean next-token entropy over the prompt's positions
    "prediction_share",         # share of positions whose top-1 prediction is the most common one
    "hidden_effective_rank_min",
    "hidden_dominant_ratio_max",
    "attn_entropy_mean",
    "attn_entropy_min",
    "attn_effective_rank_min",
)


def prefill_features(lm: LanguageModel, text: str) -> Dict[str, float]:
    ids = lm.encode(text)
    if not ids:
        raise ValueError("prompt encodes to no tokens")
    ids = ids[-lm.context:]
    counts = Counter(ids)
    n = len(ids)
    rep = loop_rate([ids], 4)
    logits, hidden, attention = lm.internals(torch.tensor(ids, dtype=torch.long))
    logp = logits.float().log_softmax(-1)
    ent = -(logp.exp() * logp).sum(-1)
    top1: List[int] = logits.argmax(-1).tolist()
    f = {
        "prompt_tokens_log": math.log1p(n),
        "prompt_distinct_share": len(counts) / n,
        "prompt_repetition": 0.0 if rep is None else rep,
        "prompt_entropy_bits": -sum(c / n * math.log2(c / n) for c in counts.values()),
        "prompt_dominant_share": counts.most_common(1)[0][1] / n,
        "end_entropy": float(ent[-1]),
        "end_top_prob": float(logp[-1].exp().max()),
        "mean_entropy": float(ent.mean()),
        "prediction_share": Counter(top1).most_common(1)[0][1] / n,
    }
    spec = spectral_summary(hidden, attention)
    for k in FEATURE_NAMES:
        if k not in f:
            f[k] = float(spec.get(k, 0.0))
    return f
