# SPDX-License-Identifier: Apache-2.0
"""Small real char-level models for the basin tests, trained here in a second or two.

  looping    trained on a repeated sentence: greedy and cool sampling recite it over
             and over (SEMANTIC_LOOP)
  collapsed  trained on one repeated character: every output is that character
             (TOKEN_COLLAPSE)
  random     untouched initialization: near-uniform next-token distributions, so hot
             sampling gives varied, loop-free text (CREATIVE by the text metrics)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from orbit_basins.char_lm import VOCAB, CharTransformer, encode_text, save_checkpoint

LOOP_TEXT = "the cat sat. "


def tiny_model(seed: int = 0) -> CharTransformer:
    torch.manual_seed(seed)
    return CharTransformer(len(VOCAB), d=32, layers=1, heads=2, context=32)


def train_on(text: str, steps: int, seed: int = 0) -> CharTransformer:
    model = tiny_model(seed)
    data = encode_text(text * 40)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - 33, (16,), generator=g)
        x = torch.stack([data[s:s + 32] for s in starts])
        y = torch.stack([data[s + 1:s + 33] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, len(VOCAB)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def write_models(folder) -> dict:
    """Checkpoint paths {label: path} of the three models."""
    torch.set_num_threads(1)
    paths = {}
    for label, model in (("looping", train_on(LOOP_TEXT, 120)),
                         ("collapsed", train_on("z", 60)),
                         ("random", tiny_model(1).eval())):
        path = str(folder / f"{label}.pt")
        save_checkpoint(model, path, step=1, meta={"label": label})
        paths[label] = path
    return paths
