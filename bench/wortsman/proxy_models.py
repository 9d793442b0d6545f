# SPDX-License-Identifier: Apache-2.0
"""The small decoder-only transformers of the benchmark (after Wortsman et al. 2023, §2).

Two architectures, both unlike the example trainer's (post/pre-LN
nn.TransformerEncoderLayer with learned positions):
  - `serial`:   pre-LN blocks x + attn(ln(x)); x + mlp(ln(x)), learned positions;
  - `parallel`: PaLM/GPT-J style parallel blocks x + attn(ln(x)) + mlp(ln(x)),
                rotary position embeddings, no position table.
Both: no biases in linear layers, untied output head, init N(0, 1/fan_in) for
linear layers (the paper's 1/sqrt(fan_in) std) and N(0, 1) for the embedding.

The attention is written out so that its q·k logits are visible: every training
forward records the largest attention logit of the step (`attn_logit_max`, the
paper's attention-logit-growth signal), and `qk_norm=True` applies LayerNorm to
queries and keys per head before the dot product (qk-layernorm). The probabilities
go to Orbit's probe through `report_attention`.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Optional

import torch
import torch.nn as nn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "adapters", "python"))
from orbit_adapter.probes import report_attention  # noqa: E402

ARCHS = ("serial", "parallel")


def rotary_tables(context: int, head_dim: int):
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    ang = torch.outer(torch.arange(context).float(), inv)
    return ang.cos(), ang.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class LogitAttention(nn.Module):
    """Causal multi-head attention that keeps the step's largest q·k logit."""

    def __init__(self, d: int, heads: int, qk_norm: bool, rotary: bool, context: int):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else None
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else None
        self.rotary = rotary
        if rotary:
            cos, sin = rotary_tables(context, self.head_dim)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
        # Largest logit seen by the latest forward (a 0-d tensor; read it when needed).
        self.logit_max: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rotary:
            q = apply_rotary(q, self.cos[:t], self.sin[:t])
            k = apply_rotary(k, self.cos[:t], self.sin[:t])
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        # The causal mask is -inf above the diagonal; the max is over visible pairs.
        self.logit_max = (logits.detach() + mask).amax()
        probs = (logits + mask).softmax(dim=-1)
        report_attention(self, probs)  # no-op unless Orbit armed a probe for this step
        y = (probs @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.up = nn.Linear(d, 4 * d, bias=False)
        self.down = nn.Linear(4 * d, d, bias=False)
        self.act = nn.GELU()

    def forward(self, x):
        return self.down(self.act(self.up(x)))


class SerialBlock(nn.Module):
    def __init__(self, d, heads, qk_norm, context):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = LogitAttention(d, heads, qk_norm, rotary=False, context=context)
        self.mlp = Mlp(d)

    def forward(self, x, mask):
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class ParallelBlock(nn.Module):
    def __init__(self, d, heads, qk_norm, context):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = LogitAttention(d, heads, qk_norm, rotary=True, context=context)
        self.mlp = Mlp(d)

    def forward(self, x, mask):
        h = self.ln(x)
        return x + self.attn(h, mask) + self.mlp(h)


class ProxyLM(nn.Module):
    """Character LM; forward returns logits (B, T, vocab)."""

    def __init__(self, arch: str, vocab: int, d: int, layers: int, heads: int, context: int,
                 qk_norm: bool):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, not {arch!r}")
        self.arch, self.context = arch, context
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d) if arch == "serial" else None
        block = SerialBlock if arch == "serial" else ParallelBlock
        self.blocks = nn.ModuleList(block(d, heads, qk_norm, context) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", torch.triu(torch.full((context, context), float("-inf")), 1),
                             persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=1.0)

    def attention_modules(self):
        return [b.attn for b in self.blocks]

    def attn_logit_max(self) -> torch.Tensor:
        """Largest attention logit of the latest forward, over layers and heads."""
        return torch.stack([a.logit_max for a in self.attention_modules()]).amax()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx)
        if self.pos is not None:
            x = x + self.pos(torch.arange(t, device=idx.device))
        mask = self.mask[:t, :t]
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))
