# SPDX-License-Identifier: Apache-2.0
"""Decodes prompts greedily and with seeded sampling, recording what the model predicted.

Every (prompt, decoding) pair is one row; rows whose current window has the same
length share a forward pass, so a corpus costs about as many forwards as one long
prompt. Each sampled row has its own generator seeded from (seed, prompt key), so a
row's text depends neither on the other rows nor on the order of the corpus, and
two prompts never share their random draws.
"""
from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from .basin_config import GenerationSettings
from .models import LanguageModel

__all__ = ["Decoding", "decode_prompts", "sampling_seed"]


@dataclass
class Decoding:
    kind: str                   # "greedy" or "sampled"
    seed: Optional[int]         # the sampling seed (None for greedy)
    tokens: List[int]           # generated tokens, prompt excluded
    text: str
    predictive_entropy: float   # mean entropy (nats) of the next-token distributions
    prediction_share: float     # share of steps whose top-1 prediction is the most common one


def sampling_seed(seed: int, key: str) -> int:
    """The generator seed of one sampled decoding of the prompt named `key`."""
    return (int(seed) * 0x9E3779B1 + zlib.crc32(key.encode())) % (2 ** 63)


def decode_prompts(lm: LanguageModel, prompts: Sequence[List[int]], keys: Sequence[str],
                   settings: GenerationSettings) -> List[List[Decoding]]:
    """For each prompt (token ids, with a key such as its id): its decodings, greedy first."""
    kinds = (["greedy"] if settings.greedy else []) + ["sampled"] * len(settings.sampled_seeds)
    seeds = ([None] if settings.greedy else []) + list(settings.sampled_seeds)
    rows = []  # [prompt index, decoding index, tokens, generator]
    for p, ids in enumerate(prompts):
        for k, s in enumerate(seeds):
            gen = None if s is None else torch.Generator().manual_seed(sampling_seed(s, keys[p]))
            rows.append([p, k, list(ids), gen])
    entropy = [0.0] * len(rows)
    top1: List[List[int]] = [[] for _ in rows]
    with torch.no_grad():
        for _ in range(settings.new_tokens):
            groups = defaultdict(list)
            for r, row in enumerate(rows):
                groups[min(len(row[2]), lm.context)].append(r)
            for width, members in groups.items():
                batch = torch.tensor([rows[r][2][-width:] for r in members], dtype=torch.long)
                logits = lm.logits(batch)[:, -1].float()
                logp = logits.log_softmax(-1)
                ent = -(logp.exp() * logp).sum(-1)
                best = logits.argmax(-1)
                for j, r in enumerate(members):
                    entropy[r] += float(ent[j])
                    top1[r].append(int(best[j]))
                    gen = rows[r][3]
                    if gen is None:
                        rows[r][2].append(int(best[j]))
                        continue
                    scaled = logits[j] / settings.temperature
                    if settings.top_k > 0:
                        kth = scaled.topk(min(settings.top_k, scaled.numel())).values[-1]
                        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
                    rows[r][2].append(int(torch.multinomial(scaled.softmax(-1), 1, generator=gen)[0]))
    out: List[List[Decoding]] = [[] for _ in prompts]
    for r, (p, k, toks, _) in enumerate(rows):
        new = toks[len(prompts[p]):]
        share = Counter(top1[r]).most_common(1)[0][1] / len(top1[r])
        out[p].append(Decoding(kinds[k], seeds[k], new, lm.decode(new),
                               entropy[r] / settings.new_tokens, share))
    return out
