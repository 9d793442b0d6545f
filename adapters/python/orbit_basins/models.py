# SPDX-License-Identifier: Apache-2.0
"""Language models the basin tools can map, behind one small interface.

  - checkpoints of the example trainer (examples/pytorch/train.py --save): a path;
  - Hugging Face causal LMs: "hf:NAME_OR_PATH" (needs `transformers`, which is
    optional; without it this spec is a clear error, everything else works).
A spec may carry a label: "healthy=build/basins-models/healthy.pt".
"""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from orbit_adapter.probes import _ARMED_ATTENTION, _mha_probabilities, find_layers

from .char_lm import decode_ids, encode_text, load_checkpoint

__all__ = ["LanguageModel", "CharModel", "HFModel", "load_model", "split_label"]


class LanguageModel:
    """What the mapper needs: tokens in and out, logits, and the internals of a forward."""

    name: str
    module: nn.Module
    context: int
    vocab_size: int
    header: dict

    def encode(self, text: str) -> List[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, V) logits over the last `context` tokens."""
        raise NotImplementedError

    def internals(self, ids: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor]]:
        """One forward of a (T,) sequence: (logits (T, V), hidden states per layer (T, d),
        attention probabilities per attention module (H, T, T))."""
        raise NotImplementedError


class CharModel(LanguageModel):
    """A checkpoint of the example trainer's char-level transformer."""

    def __init__(self, path: str, name: str):
        self.module, self.header = load_checkpoint(path)
        self.name = name
        self.path = path
        self.context = self.module.context
        self.vocab_size = self.module.head.out_features

    def encode(self, text: str) -> List[int]:
        return encode_text(text).tolist()

    def decode(self, ids: Sequence[int]) -> str:
        return decode_ids(ids)

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.module(ids[:, -self.context:])

    def internals(self, ids: torch.Tensor):
        ids = ids[-self.context:].unsqueeze(0)
        hidden: List[torch.Tensor] = []
        attention: dict = {}
        handles, patched = [], []
        model = self.module
        for layer in find_layers(model):
            handles.append(layer.register_forward_hook(
                lambda m, i, o: hidden.append((o[0] if isinstance(o, (tuple, list)) else o)[0].detach())))
        for k, m in enumerate(model.modules()):
            if isinstance(m, nn.MultiheadAttention):
                original = m.forward

                def forward(*args, _m=m, _k=k, _orig=original, **kwargs):
                    probs, _ = _mha_probabilities(_m, args, kwargs, 1)
                    attention[_k] = probs[0].detach()
                    return _orig(*args, **kwargs)
                m.__dict__["forward"] = forward
                patched.append(m)
            elif hasattr(m, "qkv") and hasattr(m, "heads"):  # the hand-written attention
                _ARMED_ATTENTION[id(m)] = (lambda p, _k=k: attention.__setitem__(_k, p[0].detach()))
                patched.append(m)
        try:
            # Grad mode keeps nn.TransformerEncoderLayer off its fused inference path,
            # which would skip the attention module's Python forward.
            with torch.enable_grad():
                out = model(ids)[0].detach()
        finally:
            for h in handles:
                h.remove()
            for m in patched:
                m.__dict__.pop("forward", None)
                _ARMED_ATTENTION.pop(id(m), None)
        return out, hidden, [attention[k] for k in sorted(attention)]


class HFModel(LanguageModel):
    """A Hugging Face causal LM (AutoModelForCausalLM + AutoTokenizer)."""

    def __init__(self, name_or_path: str, name: str):
        try:
            import transformers
        except ImportError:
            raise ValueError(f"model spec 'hf:{name_or_path}' needs the optional `transformers` "
                             "package, which is not importable here") from None
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path)
        self.module = transformers.AutoModelForCausalLM.from_pretrained(name_or_path).eval()
        self.name = name
        self.path = name_or_path
        self.header = {"format": "hf", "config": self.module.config.to_dict()}
        self.context = int(getattr(self.module.config, "max_position_embeddings", 1024) or 1024)
        self.vocab_size = int(self.module.config.vocab_size)

    def encode(self, text: str) -> List[int]:
        return list(self.tokenizer(text)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.module(input_ids=ids[:, -self.context:]).logits

    @torch.no_grad()
    def internals(self, ids: torch.Tensor):
        out = self.module(input_ids=ids[-self.context:].unsqueeze(0),
                          output_hidden_states=True, output_attentions=True)
        hidden = [h[0] for h in out.hidden_states[1:]]
        attention = [a[0] for a in (out.attentions or ())]
        return out.logits[0], hidden, attention


def split_label(spec: str) -> Tuple[str, str]:
    """'label=path' -> (label, path); a bare path is labelled by its file name."""
    if "=" in spec and not spec.startswith("hf:"):
        label, path = spec.split("=", 1)
        return label, path
    if spec.startswith("hf:"):
        return spec[3:], spec
    return os.path.splitext(os.path.basename(spec))[0], spec


def load_model(spec: str) -> LanguageModel:
    label, path = split_label(spec)
    if path.startswith("hf:"):
        return HFModel(path[3:], label)
    if not os.path.exists(path):
        raise ValueError(f"model {path!r}: no such file")
    return CharModel(path, label)
