# SPDX-License-Identifier: Apache-2.0
"""What Orbit sends: cadences, spectra names, scalars, domains, loop rate; and training unchanged."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from torch_fixtures import ScriptedDaemon, TinyLM, tiny_batch
from orbit_adapter import Orbit
from orbit_adapter.probes import ProbeConfig
from orbit_adapter.rollback import CheckpointConfig


def generate(model):
    # Draws from the global RNG on purpose: Orbit must put it back.
    return [torch.randint(0, 3, (40,)).tolist()]


def train(daemon=None, steps=24, snapshot_every=1, probes=None):
    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    orbit = None
    if daemon is not None:
        orbit = Orbit(endpoint=daemon.endpoint, run="snapshots", domains=("even", "odd"),
                      probes=probes or ProbeConfig(spectra_every=6, loop_every=12, weights=None),
                      generate=generate, checkpoints=CheckpointConfig(every=0))
        orbit.attach(model, opt)
        daemon.wait_hello()
    for step in range(1, steps + 1):
        x, y = tiny_batch(step)
        per = nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1), reduction="none")
        loss = per.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if orbit is not None:
            orbit.step(step, loss.item(), domain_losses={"even": float(per[::2].mean()),
                                                         "odd": float(per[1::2].mean())},
                       tokens=y.numel())
            if step == 1:
                daemon.wait_replied(1)
                daemon.wait_for(lambda: (orbit.poll(), orbit.connected)[1])  # probes may arm now
    if orbit is not None:
        orbit.close()
    return model.state_dict(), torch.rand(2)


def test_spectra_on_their_cadence_with_the_controllers_names():
    d = ScriptedDaemon()
    try:
        train(d)
        d.wait_for(lambda: len(d.snapshots) == 24)
        snaps = {s["step"]: s for s in d.snapshots}
    finally:
        d.close()
    with_spectra = sorted(s for s, m in snaps.items() if m.get("spectra"))
    assert with_spectra == [6, 12, 18, 24]
    names = set(snaps[6]["spectra"])
    assert names == {"attn.0", "attn.1", "hidden.0", "hidden.1",
                     "weight.blocks.0.self_attn.in_proj_weight", "weight.blocks.1.self_attn.in_proj_weight"}
    assert snaps[6]["spectra"]["hidden.0"].dtype == np.float32
    assert snaps[6]["spectra"]["hidden.0"].shape == (16,)
    assert snaps[6]["spectra"]["attn.0"].shape == (8,)
    sc = snaps[6]["scalars"]
    assert {"attn_entropy.0", "attn_entropy.1", "attn_entropy_min", "output_entropy"} <= set(sc)
    assert [s for s, m in snaps.items() if "loop_rate" in m] == [12, 24]
    assert 0.0 <= snaps[12]["loop_rate"] <= 1.0
    assert snaps[3]["domains"]["even"]["loss"] > 0 and "grad_norm" in snaps[3] and snaps[3]["tokens"] == 32
    assert snaps[3]["lr"] == pytest.approx(1e-2)


def test_snapshot_every_from_welcome_is_respected():
    d = ScriptedDaemon(snapshot_every=4)
    try:
        train(d, steps=24, probes=ProbeConfig(spectra_every=6))
        d.wait_for(lambda: any(m["step"] == 24 for m in d.snapshots))
        snaps = {s["step"]: s for s in d.snapshots}
    finally:
        d.close()
    # Step 1 goes out before the welcome arrives (the default is every step); then every 4th.
    assert sorted(snaps) == [1, 4, 8, 12, 16, 20, 24]
    # Spectral cadence 6 rounded up to a multiple of 4: every 8 steps.
    assert sorted(s for s, m in snaps.items() if m.get("spectra")) == [8, 16, 24]


def test_training_is_bit_for_bit_the_same_with_orbit_attached():
    plain, rng_plain = train(None)
    d = ScriptedDaemon()
    try:
        probed, rng_probed = train(d, probes=ProbeConfig(spectra_every=2, loop_every=3, weights=None))
    finally:
        d.close()
    assert torch.equal(rng_plain, rng_probed)
    for k in plain:
        assert torch.equal(plain[k], probed[k]), k


def test_domain_losses_groups_batch_items_by_label():
    from orbit_adapter.adapter import domain_losses
    per_token = torch.tensor([[1.0, 3.0], [2.0, 2.0], [5.0, 7.0], [0.0, 4.0]])
    assert domain_losses(per_token, ["a", "b", "a", "c"]) == pytest.approx({"a": 4.0, "b": 2.0, "c": 2.0})


@pytest.mark.parametrize("case", ["float32", "non_contiguous", "huge", "nan", "mixed_dtype", "sparse",
                                  "some_none"])
def test_the_adapter_grad_norm_is_the_total_norm_torch_reports(case):
    """grad_norm_tensor and its CPU float32 shortcut cpu_grad_norm (None where it does
    not apply) give what clip_grad_norm_ gives."""
    from orbit_adapter.snapshots import cpu_grad_norm, grad_norm_tensor
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n, m)) for n, m in ((64, 32), (7, 5), (300, 1))]
    for p in params:
        p.grad = torch.randn_like(p) * 3.0
    if case == "non_contiguous":
        params[0].grad = torch.randn(32, 64).t()
    elif case == "huge":  # a float32 sum of squares overflows
        params[1].grad[0, 0] = 1e30
    elif case == "nan":
        params[2].grad[5, 0] = float("nan")
    elif case == "mixed_dtype":
        params[1].data = params[1].data.double()
        params[1].grad = params[1].grad.double()
    elif case == "sparse":
        params[2].grad = params[2].grad.to_sparse()
    elif case == "some_none":
        params[1].grad = None
    opt = torch.optim.SGD(params, lr=0.1)
    want = float(torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], float("inf")))
    fast = cpu_grad_norm(opt)
    assert (fast is None) is (case in ("huge", "nan", "mixed_dtype", "sparse"))
    for got in (float(grad_norm_tensor(opt)), fast):
        if got is None:
            continue
        if case == "nan":
            assert math.isnan(got) and math.isnan(want)
        elif case == "huge":  # torch says inf, the stacked norm of an inf says nan
            assert math.isinf(want) and not math.isfinite(got)
        else:
            assert math.isclose(got, want, rel_tol=1e-5), (got, want)
    for p in params:
        p.grad = None
    assert cpu_grad_norm(opt) is None and grad_norm_tensor(opt) is None
