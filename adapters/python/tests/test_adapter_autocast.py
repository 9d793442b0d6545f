# SPDX-License-Identifier: Apache-2.0
"""The adapter on mixed-precision and device paths that a CPU can exercise: bf16
autocast (probes upcast before eigvalsh/svdvals), and the checkpoint ring's pinned
host copies (CUDA only; skipped without it)."""
import contextlib
import math
import os
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon, TinyLM, tiny_batch
from orbit_adapter import Orbit
from orbit_adapter.probes import ProbeConfig
from orbit_adapter.rollback import CheckpointConfig, CheckpointRing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "examples", "pytorch"))


def _example_model(attn):
    from train import CharTransformer, VOCAB
    return CharTransformer(len(VOCAB), d=32, layers=2, heads=4, context=16, attn=attn), len(VOCAB)


def autocast(model_kind):
    if model_kind == "mha-bf16-weights":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("model_kind", ["mha", "custom", "mha-bf16-weights"])
@pytest.mark.parametrize("client_thread", [True, False])
def test_probes_cope_with_bf16_autocast_activations(model_kind, client_thread):
    torch.manual_seed(0)
    if model_kind == "mha":
        model, vocab = TinyLM(), 11
    elif model_kind == "mha-bf16-weights":  # every activation bf16, and no autocast to upcast
        model, vocab = TinyLM().to(torch.bfloat16), 11
    else:
        model, vocab = _example_model("custom")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    d = ScriptedDaemon()
    try:
        orbit = Orbit(endpoint=d.endpoint, run=f"bf16-{model_kind}", client_thread=client_thread,
                      probes=ProbeConfig(spectra_every=2, weights=None),
                      checkpoints=CheckpointConfig(every=2))
        orbit.attach(model, opt)
        if model_kind == "custom":
            for block in model.blocks:
                orbit.register_attention(block.attn)
        seen_dtypes = {}
        hooks = [m.register_forward_hook(
            lambda m, i, o, name=name: seen_dtypes.setdefault(name, set()).add(
                (o[0] if isinstance(o, tuple) else o).dtype))
            for name, m in (("hidden", model.blocks[0]), ("logits", model))]
        for step in range(1, 9):
            x, y = tiny_batch(step, context=8, vocab=vocab)
            with autocast(model_kind):
                logits = model(x)
                loss = nn.functional.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            with autocast(model_kind):  # a trainer that calls it inside
                orbit.step(step, loss.item())
            if step == 1:
                deadline = time.monotonic() + 20
                while not orbit.connected and time.monotonic() < deadline:
                    orbit.poll()
                    time.sleep(0.002)
        for hook in hooks:
            hook.remove()
        summary = orbit.summary()
        orbit.close()
        d.wait_for(lambda: len(d.byes) == 1)
        snaps = {s["step"]: s for s in d.snapshots}
    finally:
        d.close()
    # The probes really saw bf16 activations: logits always, hidden states with bf16 weights.
    assert torch.bfloat16 in seen_dtypes["logits"]
    if model_kind == "mha-bf16-weights":
        assert seen_dtypes["hidden"] == {torch.bfloat16}
    assert summary["errors"] == {}
    spectral = sorted(s for s, m in snaps.items() if m.get("spectra"))
    # Step 2 is armed only when the welcome came back within step 1.
    assert spectral in ([2, 4, 6, 8], [4, 6, 8])
    for s in spectral:
        spectra = snaps[s]["spectra"]
        assert {"attn.0", "attn.1", "hidden.0", "hidden.1"} <= set(spectra)
        for name, values in spectra.items():
            assert values.dtype == np.float32 and np.isfinite(values).all() and values.max() > 0, name
        sc = snaps[s]["scalars"]
        assert math.isfinite(sc["output_entropy"]) and math.isfinite(sc["attn_entropy_min"])
    assert math.isfinite(snaps[5]["grad_norm"])
    assert orbit.checkpoint_steps[-1] == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (pinned host memory)")
def test_the_ring_copies_a_cuda_model_into_pinned_host_memory_and_restores_it():
    torch.manual_seed(0)
    model = TinyLM().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ring = CheckpointRing(model, opt, config=CheckpointConfig(every=1, budget_bytes=64 << 20))
    x, y = (t.cuda() for t in tiny_batch(1))
    for _ in range(2):
        nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1)).backward()
        opt.step()
    saved = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ck = ring.save(2)
    assert all(t.is_pinned() for t in ck.model.values())
    opt.step()  # changes the parameters after the non_blocking copies were queued
    assert ring.restore(2) == 2
    for k, v in model.state_dict().items():
        assert v.is_cuda and torch.equal(v.cpu(), saved[k]), k
