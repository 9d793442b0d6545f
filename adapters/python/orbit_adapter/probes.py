# SPDX-License-Identifier: Apache-2.0
"""Probes: what the adapter measures inside the model on probe steps.

Spectra (named by the prefixes the controller keys on):
  - `attn.<i>`   mean singular values of the attention maps of attention module i;
  - `hidden.<i>` eigenvalues of the covariance of the hidden states leaving layer i
                 (the spectrum behind RankMe's effective rank);
  - `weight.<name>` top-k singular values of a chosen weight matrix (randomized
                 range finder for large ones).
Scalars: `attn_entropy.<i>`, `attn_entropy_min`, `attn_logit_max`, `output_entropy`.

Nothing here runs on a non-probe step: hooks are installed when a probe step is
armed and removed as soon as they fired. All probe work runs under
`torch.no_grad()` on detached tensors and never touches the autograd graph, the
parameters or the global RNG, so training is bit-for-bit the same with or
without probes.

`torch.nn.MultiheadAttention` (also inside `nn.TransformerEncoderLayer` and
`nn.TransformerDecoderLayer`, which call it with `need_weights=False`) is probed by
recomputing the probabilities from the captured query/key inputs, the masks and the
module's own projection weights. A custom attention module is registered with
`Orbit.register_attention(module)` and hands its probabilities over with one call,
`report_attention(self, probs)`, which costs a dictionary lookup when no probe is armed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ProbeConfig", "ModelProbes", "ProbeCapture", "report_attention", "spectral_entropy",
           "loop_rate", "topk_singular_values"]

# id(module) -> callback(probs). Filled only while a probe step is armed.
_ARMED_ATTENTION: Dict[int, Callable[[torch.Tensor], None]] = {}


def report_attention(module: nn.Module, probs: torch.Tensor) -> None:
    """Called by custom attention modules with their probabilities (..., T_q, T_k)."""
    cb = _ARMED_ATTENTION.get(id(module))
    if cb is not None:
        cb(probs)


@dataclass
class ProbeConfig:
    """Which probes run and how often. Cadences are in training steps.

    Snapshots go out every `snapshot_every` steps as the daemon's `welcome` asks;
    spectral probes run every `spectra_every` steps, rounded up to a multiple of the
    snapshot interval; loop-rate generation every `loop_every` steps (0: off).
    """
    spectra_every: int = 10
    attention: bool = True
    hidden: bool = True
    output_entropy: bool = True
    # Weight spectra are opt-in (the default controller does not read them): parameter
    # names, or None for every attention input projection.
    weights: Optional[Sequence[str]] = ()
    weight_topk: int = 16
    weight_exact_limit: int = 512 * 512     # larger matrices use a randomized range finder
    grad_norm: bool = True
    loop_every: int = 0
    loop_n: int = 4
    max_rows: int = 512                     # hidden-state (token) rows used for the covariance
    attention_samples: int = 2              # batch items whose attention maps are probed


def spectral_entropy(values: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of |values| normalized to a distribution; differentiable."""
    p = values.abs()
    p = p / p.sum().clamp_min(1e-30)
    return -(p * torch.log(p.clamp_min(1e-30))).sum()


def loop_rate(sequences: Sequence[Sequence], n: int = 4) -> Optional[float]:
    """Share of repeated n-grams (rep-n) over generated sequences (tokens or strings)."""
    total, repeated = 0, 0
    for seq in sequences:
        seq = list(seq)
        grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
        if not grams:
            continue
        total += len(grams)
        repeated += len(grams) - len(set(grams))
    return repeated / total if total else None


def topk_singular_values(w: torch.Tensor, k: int, exact_limit: int,
                         generator: Optional[torch.Generator] = None,
                         power_iterations: int = 2) -> torch.Tensor:
    """Top-k singular values; a randomized range finder (Halko et al.) for large matrices."""
    w = w.detach().float().reshape(w.shape[0], -1)
    k = min(k, *w.shape)
    if w.numel() <= exact_limit:
        return torch.linalg.svdvals(w)[:k]
    width = min(max(2 * k, k + 20), min(w.shape))
    # Drawn on the CPU (the generator's device) and moved: the same draw on any device.
    omega = torch.randn(w.shape[1], width, generator=generator, dtype=w.dtype).to(w.device)
    q, _ = torch.linalg.qr(w @ omega)
    for _ in range(power_iterations):  # subspace iterations sharpen slowly decaying spectra
        q, _ = torch.linalg.qr(w.T @ q)
        q, _ = torch.linalg.qr(w @ q)
    return torch.linalg.svdvals(q.T @ w)[:k]


def _mha_probabilities(mha: nn.MultiheadAttention, args, kwargs, samples: Optional[int] = None):
    """Recomputes the attention probabilities of one MultiheadAttention call,
    for the first `samples` batch items (all when None): ((B, H, Tq, Tk), max logit)."""
    probs, logits_max = _mha_probabilities_on_device(mha, args, kwargs, samples)
    return probs, logits_max.item()


def _mha_probabilities_on_device(mha: nn.MultiheadAttention, args, kwargs,
                                 samples: Optional[int] = None):
    """As `_mha_probabilities`, with the max logit left a 0-d tensor on the device:
    nothing here waits for the device (the probe runs inside the training forward)."""
    return _mha_probabilities_of(*_mha_inputs(mha, args, kwargs, samples))


def _mha_inputs(mha: nn.MultiheadAttention, args, kwargs, samples: Optional[int] = None,
                copy_weights: bool = False):
    """What `_mha_probabilities_of` needs from one MultiheadAttention call: the sampled
    query/key inputs (views of the call's own tensors), the masks, the query/key
    projection weights (copies with `copy_weights`, for use after the optimizer has
    changed the module's) and the head count. No arithmetic."""
    names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask")
    call = dict(zip(names, args))
    call.update(kwargs)
    q_in, k_in = call["query"], call.get("key", call["query"])
    if mha.batch_first and q_in.dim() == 3:
        q_in, k_in = q_in.transpose(0, 1), k_in.transpose(0, 1)
    if q_in.dim() == 2:  # unbatched (T, E)
        q_in, k_in = q_in.unsqueeze(1), k_in.unsqueeze(1)
    full_b = q_in.shape[1]
    b = full_b if samples is None else min(samples, full_b)
    q_in, k_in = q_in[:, :b], k_in[:, :b]
    e = q_in.shape[2]
    if mha._qkv_same_embed_dim:
        w_q, w_k = mha.in_proj_weight[:e], mha.in_proj_weight[e:2 * e]
    else:
        w_q, w_k = mha.q_proj_weight, mha.k_proj_weight
    b_q = b_k = None
    if mha.in_proj_bias is not None:
        b_q, b_k = mha.in_proj_bias[:e], mha.in_proj_bias[e:2 * e]
    weights = (w_q, w_k, b_q, b_k)
    if copy_weights:
        weights = tuple(None if w is None else w.detach().clone() for w in weights)
    return (q_in, k_in, call.get("attn_mask"), call.get("key_padding_mask"), full_b, mha.num_heads,
            *weights)


def _mha_probabilities_of(q_in, k_in, mask, kpm, full_b, h, w_q, w_k, b_q, b_k):
    """((B, H, Tq, Tk) probabilities, max finite logit as a 0-d tensor) from `_mha_inputs`."""
    tq, b, e = q_in.shape
    tk = k_in.shape[0]
    hd = e // h
    q = F.linear(q_in, w_q, b_q)            # (Tq, B, E)
    k = F.linear(k_in, w_k, b_k)            # (Tk, B, E)
    q = q.reshape(tq, b * h, hd).transpose(0, 1)
    k = k.reshape(tk, b * h, hd).transpose(0, 1)
    logits = (q @ k.transpose(1, 2)) / math.sqrt(hd)   # (B*H, Tq, Tk)
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros_like(mask, dtype=logits.dtype).masked_fill(mask, float("-inf"))
        if mask.dim() == 3:  # (B*H, Tq, Tk): keep the sampled items
            mask = mask.reshape(full_b, h, tq, tk)[:b].reshape(b * h, tq, tk)
        logits = logits + mask
    if kpm is not None:
        kpm = kpm[:b]
        if kpm.dtype == torch.bool:
            kpm = torch.zeros_like(kpm, dtype=logits.dtype).masked_fill(kpm, float("-inf"))
        logits = logits + kpm.reshape(b, 1, 1, tk).expand(b, h, 1, tk).reshape(b * h, 1, tk)
    logits_max = logits.masked_fill(torch.isinf(logits), float("-inf")).amax().float()
    probs = logits.softmax(dim=-1).reshape(b, h, tq, tk)
    return probs, logits_max


def attention_stats(probs: torch.Tensor, samples: int):
    """(mean singular values over sampled maps, mean row entropy) of (..., Tq, Tk) maps."""
    p, entropy = attention_capture(probs, samples)
    return attention_spectrum(p), float(entropy)


def attention_capture(probs: torch.Tensor, samples: int):
    """(the sampled maps in float32, their mean row entropy as a 0-d tensor): what the
    training forward keeps of a probe step's attention. Queued on the device, no sync:
    `attention_spectrum` (svdvals, which syncs a CUDA device) runs later, elsewhere."""
    p = probs.detach().float()
    if p.dim() == 3:
        p = p.unsqueeze(0)
    p = p.reshape(-1, p.shape[-3], p.shape[-2], p.shape[-1])[:samples]
    p = torch.nan_to_num(p, nan=0.0)
    row_entropy = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    return p, row_entropy.mean()


def attention_spectrum(p: torch.Tensor) -> torch.Tensor:
    """Mean singular values over the maps of (..., Tq, Tk) float32 attention maps."""
    return torch.linalg.svdvals(p.reshape(-1, p.shape[-2], p.shape[-1])).mean(0)


def covariance_eigenvalues(x: torch.Tensor, max_rows: int) -> torch.Tensor:
    """Descending eigenvalues of the covariance of the rows of x (..., d)."""
    x = x.detach().float().reshape(-1, x.shape[-1])[:max_rows]
    x = x - x.mean(0, keepdim=True)
    cov = (x.T @ x) / max(1, x.shape[0] - 1)
    return torch.linalg.eigvalsh(cov).flip(0).clamp_min(0.0)


def find_layers(model: nn.Module) -> List[nn.Module]:
    """The model's transformer layers: nn.Transformer*Layer, else the first ModuleList of blocks."""
    layers = [m for m in model.modules()
              if isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer))]
    if layers:
        return layers
    for name in ("blocks", "layers", "h", "layer", "transformer.h", "model.layers"):
        m = model
        try:
            for part in name.split("."):
                m = getattr(m, part)
        except AttributeError:
            continue
        if isinstance(m, nn.ModuleList) and len(m) > 0:
            return list(m)
    return []


class ModelProbes:
    """Arms hooks for one forward pass and turns what they saw into spectra and scalars."""

    def __init__(self, model: nn.Module, config: ProbeConfig,
                 layers: Optional[Sequence[nn.Module]] = None):
        self.model = model
        self.config = config
        self.layers = list(layers) if layers is not None else find_layers(model)
        self.attention: List[nn.Module] = [m for m in model.modules()
                                           if isinstance(m, nn.MultiheadAttention)]
        self.custom_attention: set = set()
        self.weights: Dict[str, nn.Parameter] = {}
        params = dict(model.named_parameters())
        names = config.weights
        if names is None:
            names = [n for n, p in params.items() if n.endswith("in_proj_weight") and p.dim() == 2]
        for n in names:
            if n not in params:
                raise ValueError(f"probe weight {n!r} is not a parameter of the model")
            self.weights[n] = params[n]
        self._handles: list = []
        self._patched: list = []
        self._spectra: Dict[str, torch.Tensor] = {}
        # Scalars stay 0-d tensors on the model's device until `finish` (no sync in the
        # forward); the sampled attention maps wait there for their svdvals.
        self._scalars: Dict[str, torch.Tensor] = {}
        self._attention: Dict[int, torch.Tensor] = {}
        self._hidden: Dict[int, torch.Tensor] = {}
        self._logits: Optional[torch.Tensor] = None
        # defer_attention: the forward keeps only what an MHA call's probabilities are
        # computed from (`_mha_inputs`, with copies of the projection weights), and
        # `finish` computes them: for a `finish` on a worker thread (ProbeWorker), which
        # then takes that work off the training thread too. Same values.
        self.defer_attention = False
        self._mha_calls: Dict[int, tuple] = {}
        self._armed = False
        self._gen = torch.Generator().manual_seed(0x0B17)

    def register_attention(self, module: nn.Module) -> None:
        if module not in self.attention:
            self.attention.append(module)
        self.custom_attention.add(module)

    @property
    def armed(self) -> bool:
        return self._armed

    def arm(self) -> None:
        """Installs capture hooks for the next training forward pass."""
        if self._armed:
            return
        self._armed = True
        self._spectra, self._scalars, self._hidden, self._logits = {}, {}, {}, None
        self._attention, self._mha_calls = {}, {}
        cfg = self.config
        if cfg.attention:
            for i, m in enumerate(self.attention):
                if m in self.custom_attention:
                    _ARMED_ATTENTION[id(m)] = self._attention_sink(i, m)
                elif isinstance(m, nn.MultiheadAttention):
                    self._patch_mha(i, m)
        if cfg.hidden:
            for i, layer in enumerate(self.layers):
                self._handles.append(layer.register_forward_hook(self._hidden_hook(i)))
        if cfg.output_entropy:
            self._handles.append(self.model.register_forward_hook(self._output_hook))

    def disarm(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for m, previous in self._patched:
            if previous is None:
                m.__dict__.pop("forward", None)
            else:
                m.__dict__["forward"] = previous
        self._patched.clear()
        for m in self.attention:
            _ARMED_ATTENTION.pop(id(m), None)
        self._armed = False

    # Hooks only look at training forwards: evaluation and generation in between
    # must not overwrite what the training step saw.
    def _attention_sink(self, i: int, module: nn.Module):
        def sink(probs):
            if module.training:
                with torch.no_grad():
                    maps, ent = attention_capture(probs, self.config.attention_samples)
                self._attention[i] = maps
                self._scalars[f"attn_entropy.{i}"] = ent
        return sink

    def _patch_mha(self, i: int, mha: nn.MultiheadAttention) -> None:
        original = mha.__dict__.get("forward") or type(mha).forward.__get__(mha)

        def forward(*args, **kwargs):
            if mha.training and self.defer_attention:
                with torch.no_grad():
                    inputs = _mha_inputs(mha, args, kwargs, self.config.attention_samples,
                                         copy_weights=True)
                # The inputs' version counters: `finish` refuses inputs changed in place since.
                versions = tuple(t._version for t in inputs[:4] if isinstance(t, torch.Tensor))
                self._mha_calls[i] = (inputs, versions)
                # Placeholders keep the scalars in the order the forward met them.
                self._scalars[f"attn_entropy.{i}"] = None
                self._scalars.setdefault("attn_logit_max", None)
            elif mha.training:
                with torch.no_grad():
                    probs, logit_max = _mha_probabilities_on_device(
                        mha, args, kwargs, self.config.attention_samples)
                    maps, ent = attention_capture(probs, self.config.attention_samples)
                    previous = self._scalars.get("attn_logit_max")
                    if previous is not None:
                        logit_max = torch.maximum(previous, logit_max.to(previous.device))
                self._attention[i] = maps
                self._scalars[f"attn_entropy.{i}"] = ent
                self._scalars["attn_logit_max"] = logit_max
            return original(*args, **kwargs)

        self._patched.append((mha, mha.__dict__.get("forward")))
        mha.__dict__["forward"] = forward

    def _hidden_hook(self, i: int):
        def hook(module, inputs, output):
            if module.training:
                out = output[0] if isinstance(output, (tuple, list)) else output
                if isinstance(out, torch.Tensor):
                    self._hidden[i] = out.detach()
        return hook

    def _output_hook(self, module, inputs, output):
        if module.training:
            out = output
            if isinstance(out, dict):
                out = out.get("logits")
            elif isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, torch.Tensor) and out.dim() >= 2:
                self._logits = out.detach()

    def collect(self) -> tuple[Dict[str, torch.Tensor], Dict[str, float]]:
        """Finishes the armed probe step: returns (spectra, scalars) and disarms."""
        return self.finish(self.take())

    def take(self) -> "ProbeCapture":
        """Ends the armed probe step on the training thread: disarms and keeps what the
        hooks captured, cheaply (weights are copied: the next update changes them).
        `finish` turns it into spectra and scalars, on any thread, at any later time."""
        self.disarm()
        with torch.no_grad():
            weights = {n: w.detach().clone() for n, w in self.weights.items()}
        capture = ProbeCapture(self._spectra, self._scalars, self._hidden, self._logits, weights,
                               self._attention, self._mha_calls)
        self._spectra, self._scalars, self._hidden, self._logits = {}, {}, {}, None
        self._attention, self._mha_calls = {}, {}
        return capture

    def finish(self, capture: "ProbeCapture") -> tuple[Dict[str, torch.Tensor], Dict[str, float]]:
        """(spectra, scalars) of a captured probe step. Touches nothing of the model."""
        cfg = self.config
        spectra = dict(capture.spectra)
        raw = capture.scalars
        if capture.mha_calls:
            raw = dict(raw)
            attention = capture.attention = dict(capture.attention)
            with torch.no_grad():
                for i, (inputs, versions) in capture.mha_calls.items():  # in the forward's order
                    if versions != tuple(t._version for t in inputs[:4] if isinstance(t, torch.Tensor)):
                        raise RuntimeError(f"the inputs of attention module {i} changed in place "
                                           "after the probe step's forward")
                    probs, logit_max = _mha_probabilities_of(*inputs)
                    attention[i], raw[f"attn_entropy.{i}"] = attention_capture(probs, cfg.attention_samples)
                    previous = raw.get("attn_logit_max")
                    if previous is not None:
                        logit_max = torch.maximum(previous, logit_max.to(previous.device))
                    raw["attn_logit_max"] = logit_max
        # Device values come to the host here (a CUDA sync on the calling thread: the
        # client thread's, where there is one).
        scalars = {k: float(v) for k, v in raw.items()}
        with torch.no_grad():
            for i, maps in sorted(capture.attention.items()):
                spectra[f"attn.{i}"] = attention_spectrum(maps)
            for i, h in sorted(capture.hidden.items()):
                spectra[f"hidden.{i}"] = covariance_eigenvalues(h, cfg.max_rows)
            if capture.logits is not None:
                logits = capture.logits
                lg = logits.float().reshape(-1, logits.shape[-1])[:cfg.max_rows]
                lp = lg.log_softmax(-1)
                scalars["output_entropy"] = float(-(lp.exp() * lp).sum(-1).mean())
            for name, w in capture.weights.items():
                spectra[f"weight.{name}"] = topk_singular_values(
                    w, cfg.weight_topk, cfg.weight_exact_limit, self._gen)
        ents = [v for k, v in scalars.items() if k.startswith("attn_entropy.")]
        if ents:
            scalars["attn_entropy_min"] = min(ents)
        if "attn_logit_max" in scalars and not math.isfinite(scalars["attn_logit_max"]):
            del scalars["attn_logit_max"]
        return spectra, scalars


@dataclass
class ProbeCapture:
    """What one armed forward pass left behind, before the spectra are computed."""
    spectra: Dict[str, torch.Tensor]
    scalars: Dict[str, float]
    hidden: Dict[int, torch.Tensor]
    logits: Optional[torch.Tensor]
    weights: Dict[str, torch.Tensor]
    attention: Dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)  # sampled maps
    # defer_attention: per MHA module, `_mha_inputs` and the inputs' version counters
    mha_calls: Dict[int, tuple] = dataclasses.field(default_factory=dict)
