# SPDX-License-Identifier: Apache-2.0
"""The example trainer's char-level causal transformer, and its checkpoint format.

The model lives here (not in examples/pytorch/train.py) so that a checkpoint saved by
the trainer can be loaded by `orbit-basins` without the example script.

Checkpoint (`torch.save` of a dict, loaded with `weights_only=True`):
  format      "orbit-char-lm/1"
  config      {vocab, d_model, layers, heads, context, norm, attn}
  state_dict  the model's parameters
  step        training step at which it was saved
  meta        JSON text of a free-form dict (the trainer's flags, losses); JSON because
              torch 1.13's weights-only unpickler refuses Python floats
"""
from __future__ import annotations

import json
import math
import os
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from orbit_adapter.probes import report_attention

__all__ = ["VOCAB", "encode_text", "decode_ids", "CharTransformer", "CHECKPOINT_FORMAT",
           "save_checkpoint", "load_checkpoint"]

# Fixed vocabulary: tab, newline and printable ASCII (the corpus holds nothing else).
VOCAB = "\t\n" + "".join(chr(c) for c in range(32, 127))
_LOOKUP = np.zeros(256, dtype=np.int64)
for _i, _c in enumerate(VOCAB):
    _LOOKUP[ord(_c)] = _i

CHECKPOINT_FORMAT = "orbit-char-lm/1"


def encode_text(text: str) -> torch.Tensor:
    """Token ids of `text`; characters outside VOCAB become id 0 (tab)."""
    return torch.from_numpy(_LOOKUP[np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8)])


def decode_ids(ids) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


class CausalSelfAttention(nn.Module):
    """Hand-written attention that hands its probabilities to Orbit's probe."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads) + mask
        att = att.softmax(dim=-1)
        report_attention(self, att)  # no-op unless a probe armed this module
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class CustomBlock(nn.Module):
    def __init__(self, d: int, heads: int, norm: str):
        super().__init__()
        self.pre = norm == "pre"
        self.attn = CausalSelfAttention(d, heads)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        if self.pre:
            x = x + self.attn(self.norm1(x), mask)
            return x + self.ff(self.norm2(x))
        x = self.norm1(x + self.attn(x, mask))
        return self.norm2(x + self.ff(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, d: int = 128, layers: int = 2, heads: int = 4,
                 context: int = 64, norm: str = "pre", attn: str = "torch"):
        super().__init__()
        self.context = context
        self.arch = {"vocab": vocab, "d_model": d, "layers": layers, "heads": heads,
                     "context": context, "norm": norm, "attn": attn}
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        if attn == "torch":
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=(norm == "pre"))
                for _ in range(layers))
        else:
            self.blocks = nn.ModuleList(CustomBlock(d, heads, norm) for _ in range(layers))
        self.custom = attn != "torch"
        self.ln_f = nn.LayerNorm(d) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", torch.triu(torch.full((context, context), float("-inf")), 1),
                             persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            nn.init.normal_(m.in_proj_weight, std=0.02)
            nn.init.zeros_(m.in_proj_bias)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        mask = self.mask[:t, :t]
        for block in self.blocks:
            x = block(x, mask) if self.custom else block(x, src_mask=mask)
        return self.head(self.ln_f(x))


def save_checkpoint(model: CharTransformer, path: str, step: int,
                    meta: Optional[dict] = None) -> None:
    """Writes the model atomically (temp file + rename), so a reader never sees half a file."""
    blob = {"format": CHECKPOINT_FORMAT, "config": dict(model.arch),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "step": int(step), "meta": json.dumps(dict(meta or {}), sort_keys=True)}
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str) -> tuple[CharTransformer, dict]:
    """(model in eval mode, the checkpoint's header without the weights)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise ValueError(f"{path}: not a readable torch checkpoint ({e})") from e
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an {CHECKPOINT_FORMAT} checkpoint "
                         "(save one with examples/pytorch/train.py --save)")
    c = blob["config"]
    model = CharTransformer(int(c["vocab"]), int(c["d_model"]), int(c["layers"]), int(c["heads"]),
                            int(c["context"]), str(c["norm"]), str(c["attn"]))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    header = {k: v for k, v in blob.items() if k != "state_dict"}
    header["meta"] = json.loads(blob.get("meta") or "{}")
    return model, header
