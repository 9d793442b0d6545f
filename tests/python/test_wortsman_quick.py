# SPDX-License-Identifier: Apache-2.0
"""The Wortsman-proxy benchmark (bench/wortsman) end to end, in its --quick form:
real training runs, a real orbitd, the paper's LR-sensitivity arithmetic."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench", "wortsman")
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(REPO, "adapters", "python"))

from orbit_adapter.daemon_process import find_orbitd  # noqa: E402


def test_lr_sensitivity_caps_at_initial_loss_and_subtracts_the_best():
    from run import lr_sensitivity
    # capped: 3.0, 2.5, 5.0 (diverged), 5.0 (worse than init); best 2.5
    got = lr_sensitivity([3.0, 2.5, math.nan, 6.0], [5.0, 5.0, 5.0, 5.0])
    assert got == pytest.approx((0.5 + 0.0 + 2.5 + 2.5) / 4)
    assert lr_sensitivity([2.0, None], [4.0, 4.0]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if find_orbitd() is None:
        pytest.skip("orbitd is not built")
    tmp_path = tmp_path_factory.mktemp("wortsman")
    out = tmp_path / "wortsman.json"
    env = dict(os.environ, ORBITD=find_orbitd())
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "run.py"), "--quick",
                           "--out", str(out), "--runs-dir", str(tmp_path / "runs"),
                           "--journal-dir", str(tmp_path / "journal")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(out.read_text()), tmp_path / "journal"


def ended_restored_to_step_0(run, steps):
    rollbacks = run.get("orbit", {}).get("rollbacks") or []
    return bool(rollbacks) and rollbacks[-1]["at_step"] == steps and rollbacks[-1]["restored_step"] == 0


def test_quick_benchmark_against_a_real_orbitd(quick_run):
    proc, res, _ = quick_run
    arms = ("none", "qknorm", "zloss", "orbitd", "orbitd+qknorm")
    assert set(res["sensitivity"]) == {f"serial/{a}" for a in arms}
    for v in res["sensitivity"].values():
        assert math.isfinite(v["lr_sensitivity"]) and v["lr_sensitivity"] >= 0
    runs = {(r["arm"], r["lr"]): r for r in res["runs"]}
    assert len(runs) == 10
    for (arm, lr), r in runs.items():
        assert r["final_val_loss"] is not None and math.isfinite(r["final_val_loss"])
        if ended_restored_to_step_0(r, res["steps"]):
            # orbitd's rollback landed on the last step and restored the step-0
            # checkpoint, i.e. the initial model: when a burn reaches the trainer
            # depends on the machine's load (the trainer never waits for orbitd),
            # so under load the orbitd arm at lr 0.3 sometimes ends here (at 9cf1d18:
            # second rollback at step 23 in one run, at step 30 in another).
            assert r["final_val_loss"] == r["initial_val_loss"], (arm, lr)
        else:
            assert r["final_val_loss"] < r["initial_val_loss"], (arm, lr)
        if arm.startswith("orbitd"):  # every step reached orbitd and it answered
            assert r["orbit"]["client"]["snapshots"] == res["steps"]
            assert r["orbit"]["client"]["states"] > 0
    # The paper's mechanism shows even in 30 steps: at lr 0.3 the attention logits
    # grow without qk-layernorm and stay small with it.
    assert runs[("none", 0.3)]["final_attn_logit_max"] > 10 * runs[("qknorm", 0.3)]["final_attn_logit_max"]
    assert "\nserial: orbitd " in proc.stdout and res["git_head"] and res["command"]


def test_journal_dir_keeps_each_orbitd_runs_journal(quick_run):
    # --journal-dir: the traces a diagnosis replays (orbit replay DIR/RUN) outlive the
    # benchmark's private orbitd; one journal per orbitd-arm run, none for the others.
    _, res, journal = quick_run
    runs = sorted(p.name for p in journal.iterdir() if p.is_dir())
    expected = sorted(f"w-serial-{arm.replace('+', '_')}-lr{lr:g}-s0-n{res['steps']}"
                      for arm in ("orbitd", "orbitd+qknorm") for lr in res["lrs"])
    assert [r.rsplit("-", 1)[0] for r in runs] == expected
    for r in runs:
        assert list((journal / r).glob("segment-*.orbj")), r


# This qk-normed run at lr 0.3 was a known loss: orbitd cut its lr from step 11 down
# to 0.05 by step 15, which froze a run already damaged at that lr, and it ended above
# its initial loss (7.24 vs 5.10 at commit e2702ea). Since attn_logit_growth in danger
# rolls back at once (rollback.on_attn_logit_growth) it is rolled back at step 10 and
# ends below it (2.99 vs 5.10 at commit 581a3cb).
def test_orbitd_with_qknorm_at_lr_0_3_improves_on_its_initial_loss(quick_run):
    _, res, _ = quick_run
    r = next(r for r in res["runs"] if (r["arm"], r["lr"]) == ("orbitd+qknorm", 0.3))
    assert r["orbit"]["rollbacks"], "rolled back, not only cut"
    if not ended_restored_to_step_0(r, res["steps"]):  # see test_quick_benchmark_against_a_real_orbitd
        assert r["final_val_loss"] < r["initial_val_loss"]
