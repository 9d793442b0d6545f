# SPDX-License-Identifier: Apache-2.0
"""basin_aware_loss: exact CE at zero weights, penalty values, gradients, weights from burns."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_fixtures import ScriptedDaemon, TinyLM, tiny_batch
from orbit_adapter import Orbit
from orbit_adapter.loss import PHI, basin_aware_loss, covariance_spectrum
from orbit_adapter.rollback import CheckpointConfig


def test_zero_weights_is_plain_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5))
    spectra = {"hidden.0": torch.tensor([5.0, 1.0, 0.1])}
    ce = F.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1))
    assert torch.equal(basin_aware_loss(logits, labels, spectra, {}), ce)
    assert torch.equal(basin_aware_loss(logits, labels, spectra, None), ce)
    assert torch.equal(basin_aware_loss(logits, labels, spectra, {"collapse": 0.0, "phi": 0.0}), ce)


def test_penalty_values():
    logits, labels = torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long)
    ce = math.log(3)
    collapsed = torch.tensor([10.0, 0.0, 0.0, 0.0])       # entropy 0
    uniform = torch.ones(16)                               # entropy ln 16 = 2.77 > h0
    parts = {}
    out = basin_aware_loss(logits, labels, {"a": collapsed, "b": uniform}, {"collapse": 2.0}, h0=2.0,
                           parts=parts)
    # mean over spectra of max(0, 2 - H): (2 + 0) / 2 = 1, times weight 2.
    assert float(out) == pytest.approx(ce + 2.0 * 1.0, rel=1e-6)
    assert float(parts["collapse"]) == pytest.approx(1.0, rel=1e-6)
    golden = torch.tensor([PHI, 1.0, 0.5])                 # l1/l2 = phi: no drift
    off = torch.tensor([3 * PHI, 1.0])                     # drift |3phi - phi| / phi = 2 -> capped at 1
    half = torch.tensor([1.5 * PHI, 1.0])                  # drift 0.5
    assert float(basin_aware_loss(logits, labels, {"g": golden}, {"phi": 1.0})) == pytest.approx(ce, rel=1e-6)
    assert float(basin_aware_loss(logits, labels, {"o": off, "h": half}, {"phi": 1.0})) == \
        pytest.approx(ce + (1.0 + 0.5) / 2, rel=1e-6)


def test_gradients_flow_through_eigvalsh_and_svdvals():
    torch.manual_seed(0)
    model = TinyLM()
    x, y = tiny_batch(0)
    hidden = {}
    model.blocks[0].register_forward_hook(lambda m, i, o: hidden.setdefault("h", o))
    logits = model(x)
    spectra = {"hidden.0": covariance_spectrum(hidden["h"]),
               "weight.head": torch.linalg.svdvals(model.head.weight)}
    loss = basin_aware_loss(logits, y, spectra, {"collapse": 1.0, "phi": 1.0}, h0=10.0)
    loss.backward()
    # The penalties reach parameters CE alone would not move this way.
    model2 = TinyLM()
    model2.load_state_dict(model.state_dict())
    F.cross_entropy(model2(x).reshape(-1, 11), y.reshape(-1)).backward()
    diff = (model.blocks[0].linear1.weight.grad - model2.blocks[0].linear1.weight.grad).abs().max()
    assert float(diff) > 1e-6
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()


def test_weights_come_from_the_latest_burn_and_expire_to_zero():
    d = ScriptedDaemon()
    try:
        d.burn_at(for_step=2, apply_at_step=4, lr_scale=0.8, expires_after_steps=5,
                  loss_weights={"collapse": 0.3, "phi": 0.1})
        model = nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        orbit = Orbit(endpoint=d.endpoint, run="loss-weights", use_loss_weights=True,
                      checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt)
        d.wait_hello()
        assert "loss_weights" in d.hellos[0]["actuators"]
        seen = {}
        for step in range(1, 12):
            seen[step] = orbit.loss_weights  # what the forward of `step` would use
            opt.step()
            orbit.step(step, 1.0)
            if step == 2:
                d.wait_replied(2, orbit)
        orbit.close()
    finally:
        d.close()
    assert seen[3] == {}                                         # zero until one arrives
    assert seen[4] == {"collapse": 0.3, "phi": 0.1} == seen[8]   # steps 4..8 under the burn
    assert seen[9] == {}                                         # expired: back to zero
