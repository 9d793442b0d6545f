# SPDX-License-Identifier: Apache-2.0
"""bench/efficacy/run.py's goal verdicts: H's "untouched" goal holds run by run."""
import importlib.util
import pathlib

_RUN = pathlib.Path(__file__).resolve().parents[2] / "bench" / "efficacy" / "run.py"
_spec = importlib.util.spec_from_file_location("efficacy_run", _RUN)
efficacy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(efficacy)


def _run(seed, arm, final, interventions):
    return {"setting": "H", "arm": arm, "seed": seed, "final_val_loss": final,
            "interventions": interventions, "first_intervention_step": None, "rollbacks": 0}


def _h_goals(records):
    rows = efficacy.summarize(records, ["H"])
    return efficacy.goals(rows, records, {})["H"]


def test_one_touched_healthy_seed_fails_h_though_the_median_is_untouched():
    # Five seeds, one of them burned (as fresh seed 2001 was): the median run has
    # 0 interventions and the median loss is unchanged, yet the goal is missed.
    records = [_run(s, "none", 1.97 + 0.001 * s, 0) for s in range(5)]
    records += [_run(s, "orbitd", 1.97 + 0.001 * s, 0) for s in range(5) if s != 1]
    records.append(_run(1, "orbitd", 2.272, 35))
    h = _h_goals(records)
    assert h["zero_interventions"] is False
    assert h["within_0.03_of_uncontrolled"] is False
    assert h["seeds_touched"] == [1]
    assert h["seeds_off_by_more_than_0.03"] == [1]


def test_untouched_healthy_runs_meet_h():
    records = [_run(s, arm, 1.97 + 0.001 * s, 0) for s in range(5) for arm in ("none", "orbitd")]
    h = _h_goals(records)
    assert h["zero_interventions"] and h["within_0.03_of_uncontrolled"]
    assert h["seeds_touched"] == [] and h["seeds_off_by_more_than_0.03"] == []
