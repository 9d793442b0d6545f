# SPDX-License-Identifier: Apache-2.0
"""Probes on real modules: MHA recomputation, custom attention, hidden spectra, no side effects."""
import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from torch_fixtures import TinyLM, tiny_batch
from orbit_adapter.probes import (ModelProbes, ProbeConfig, covariance_eigenvalues, loop_rate,
                                  topk_singular_values, _mha_probabilities)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "examples", "pytorch"))


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_recomputation_matches_need_weights(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first)
    x = torch.randn(3, 7, 16) if batch_first else torch.randn(7, 3, 16)
    mask = torch.triu(torch.full((7, 7), float("-inf")), 1)
    kpm = torch.zeros(3, 7, dtype=torch.bool)
    kpm[1, -2:] = True
    _, ref = mha(x, x, x, attn_mask=mask, key_padding_mask=kpm, need_weights=True,
                 average_attn_weights=False)
    got, logit_max = _mha_probabilities(mha, (x, x, x), {"attn_mask": mask, "key_padding_mask": kpm})
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert math.isfinite(logit_max)
    # Only the sampled batch items are recomputed (the probe's cost stays small).
    mask3 = mask.expand(3 * 4, 7, 7)
    some, _ = _mha_probabilities(mha, (x, x, x), {"attn_mask": mask3, "key_padding_mask": kpm}, samples=2)
    torch.testing.assert_close(some, ref[:2], rtol=1e-5, atol=1e-6)


def test_encoder_and_decoder_layers_are_probed_and_layers_found():
    torch.manual_seed(0)

    class EncDec(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.dec = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True)

        def forward(self, x):
            return self.dec(x, self.enc(x))

    m = EncDec()
    probes = ModelProbes(m, ProbeConfig())
    assert len(probes.attention) == 3  # encoder self, decoder self, decoder cross
    assert probes.layers == [m.enc, m.dec]
    probes.arm()
    m(torch.randn(2, 5, 16))
    spectra, scalars = probes.collect()
    assert {"attn.0", "attn.1", "attn.2", "hidden.0", "hidden.1"} <= set(spectra)
    for i in range(3):
        # Unmasked attention over 5 keys: row entropy between 0 and ln 5.
        assert 0 < scalars[f"attn_entropy.{i}"] <= math.log(5) + 1e-6
    assert spectra["attn.0"].shape == (5,)
    assert spectra["hidden.0"].shape == (16,)


def test_probe_values_match_independent_computation():
    torch.manual_seed(1)
    model = TinyLM()
    x, _ = tiny_batch(0)
    probes = ModelProbes(model, ProbeConfig(weights=None))
    captured = {}
    hook = model.blocks[0].register_forward_hook(lambda m, i, o: captured.setdefault("h", o.detach()))
    probes.arm()
    logits = model(x)
    hook.remove()
    spectra, scalars = probes.collect()
    h = captured["h"].reshape(-1, 16).double().numpy()
    ref = np.sort(np.linalg.eigvalsh(np.cov(h, rowvar=False)))[::-1]
    np.testing.assert_allclose(spectra["hidden.0"].numpy(), ref, rtol=1e-3, atol=1e-5)
    lp = torch.log_softmax(logits.detach(), -1)
    assert scalars["output_entropy"] == pytest.approx(float(-(lp.exp() * lp).sum(-1).mean()), rel=1e-5)
    w = model.blocks[1].self_attn.in_proj_weight.detach()
    np.testing.assert_allclose(spectra["weight.blocks.1.self_attn.in_proj_weight"].numpy(),
                               torch.linalg.svdvals(w)[:16].numpy(), rtol=1e-5)
    # Causal attention: the first query row attends only to itself.
    assert scalars["attn_entropy_min"] >= 0
    assert "attn_logit_max" in scalars


def test_custom_attention_registration_path():
    from train import CharTransformer  # the example trainer's hand-written attention
    torch.manual_seed(0)
    model = CharTransformer(20, d=16, layers=2, heads=2, context=8, attn="custom")
    probes = ModelProbes(model, ProbeConfig())
    assert probes.attention == []  # nothing to find automatically
    for block in model.blocks:
        probes.register_attention(block.attn)
    assert probes.layers == list(model.blocks)  # found through the `blocks` ModuleList
    probes.arm()
    model(torch.randint(0, 20, (3, 8)))
    spectra, scalars = probes.collect()
    assert {"attn.0", "attn.1", "hidden.0", "hidden.1"} <= set(spectra)
    # Unarmed: report_attention is a no-op and nothing is collected.
    model(torch.randint(0, 20, (3, 8)))
    spectra2, _ = probes.collect()
    assert not any(k.startswith("attn.") for k in spectra2)


def test_probes_do_not_change_training_bit_for_bit():
    def train(with_probes):
        torch.manual_seed(0)
        model = TinyLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        probes = ModelProbes(model, ProbeConfig(weights=None)) if with_probes else None
        for step in range(6):
            if probes:
                probes.arm()
            x, y = tiny_batch(step)
            loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if probes:
                probes.collect()
        return model.state_dict(), torch.rand(1)  # global RNG must be untouched too

    (a, ra), (b, rb) = train(False), train(True)
    assert torch.equal(ra, rb)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_eval_forwards_do_not_overwrite_the_training_capture():
    torch.manual_seed(0)
    model = TinyLM()
    probes = ModelProbes(model, ProbeConfig())
    probes.arm()
    model(tiny_batch(0)[0])
    model.eval()
    with torch.no_grad():
        model(torch.zeros(4, 8, dtype=torch.long))  # degenerate input, would collapse spectra
    model.train()
    spectra, _ = probes.collect()
    assert float(spectra["hidden.0"][1]) > 1e-6


def test_loop_rate_counts_repeated_ngrams():
    assert loop_rate([[1, 2, 3, 4, 5, 6, 7, 8]], n=4) == 0.0
    assert loop_rate(["abababababab"], n=2) == pytest.approx(9 / 11)
    assert loop_rate([[]], n=4) is None


def test_randomized_singular_values_close_to_exact():
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(600, 600))
    v, _ = torch.linalg.qr(torch.randn(500, 500))
    s = torch.logspace(2, -2, 500)
    w = u[:, :500] @ torch.diag(s) @ v.T
    approx = topk_singular_values(w, 8, exact_limit=1000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(approx, s[:8], rtol=2e-2, atol=1e-3)


def test_covariance_eigenvalues_of_rank_one_states():
    x = torch.randn(64, 1) @ torch.randn(1, 8)
    ev = covariance_eigenvalues(x, 1024)
    assert ev[0] > 0 and float(ev[1:].sum()) < 1e-4 * float(ev[0])
