# SPDX-License-Identifier: Apache-2.0
"""BurnSchedule: when burns start, stop, supersede each other and count as late.

Case for case the twin of tests/libtorch/burn_schedule_test.cpp (each test names the
C++ test it mirrors), then the Python adapter's own rules (rank0 readiness, a failed
apply, re-registration, persistence). `step` is the next training step to run, as in
C++: Orbit.step(n) advances the schedule to n + 1.
"""
from orbit_adapter.burn_schedule import AppliedBurn, BurnSchedule
from orbit_adapter.messages import Burn


def make_burn(seq, apply_at, expires, scale, **fields):
    return Burn(run="r", seq=seq, apply_at_step=apply_at, expires_after_steps=expires,
                lr_scale=scale, **fields)


def test_governs_from_apply_at_step_for_its_window():
    # Mirrors BurnSchedule.GovernsFromApplyAtStepForItsWindow
    s = BurnSchedule()
    s.add(make_burn(1, 5, 3, 0.5))
    for step in range(5):
        assert s.advance(step) == []
        assert s.lr_scale == 1.0, step
    applied = s.advance(5)
    assert len(applied) == 1
    assert applied[0].applied_step == 5
    assert not applied[0].late
    assert s.lr_scale == 0.5
    assert s.advance(6) == []
    assert s.lr_scale == 0.5
    s.advance(7)
    assert s.lr_scale == 0.5
    s.advance(8)  # 5 + 3: expired
    assert s.lr_scale == 1.0
    assert s.active is None
    assert s.expired is not None and s.expired.seq == 1


def test_late_burn_applies_at_once_and_keeps_its_scheduled_end():
    # Mirrors BurnSchedule.LateBurnAppliesAtOnceAndKeepsItsScheduledEnd
    s = BurnSchedule()
    s.add(make_burn(1, 3, 4, 0.25))
    applied = s.advance(5)
    assert len(applied) == 1
    assert applied[0].late
    assert applied[0].applied_step == 5
    assert s.lr_scale == 0.25
    s.advance(6)
    assert s.lr_scale == 0.25
    s.advance(7)  # 3 + 4
    assert s.lr_scale == 1.0


def test_newer_burn_replaces_older_scale_without_compounding():
    # Mirrors BurnSchedule.NewerBurnReplacesOlderScaleWithoutCompounding
    s = BurnSchedule()
    s.add(make_burn(1, 1, 100, 0.5))
    s.advance(1)
    assert s.lr_scale == 0.5
    s.add(make_burn(2, 3, 100, 0.8))
    s.advance(3)
    assert s.lr_scale == 0.8  # not 0.4


def test_duplicates_and_overtaken_burns_are_ignored():
    # Mirrors BurnSchedule.DuplicatesAndOvertakenBurnsAreIgnored
    s = BurnSchedule()
    assert s.add(make_burn(2, 1, 10, 0.5))
    assert not s.add(make_burn(2, 1, 10, 0.5))
    assert len(s.pending) == 1
    assert len(s.advance(1)) == 1
    assert not s.add(make_burn(2, 1, 10, 0.5))  # re-delivered after it was applied
    assert not s.add(make_burn(1, 2, 10, 0.1))  # older seq arriving late
    assert len(s.pending) == 0
    assert s.advance(2) == []
    assert s.lr_scale == 0.5


def test_a_pending_burn_overtaken_by_a_newer_one_is_dropped():
    # Mirrors BurnSchedule.APendingBurnOvertakenByANewerOneIsDropped
    s = BurnSchedule()
    assert s.add(make_burn(1, 5, 10, 0.5, rollback_to_step=0))  # due later
    assert s.add(make_burn(2, 2, 10, 0.8))                      # newer, due first
    assert [a.seq for a in s.advance(2)] == [2]
    assert s.pending == [1]
    assert s.advance(5) == []       # seq 1 was overtaken: not applied, no rollback
    assert s.pending == []
    assert s.lr_scale == 0.8


def test_burns_due_together_apply_in_seq_order_and_the_newest_governs():
    # Mirrors BurnSchedule.BurnsDueTogetherApplyInSeqOrderAndTheNewestGoverns
    s = BurnSchedule()
    s.add(make_burn(4, 2, 10, 0.3))
    s.add(make_burn(3, 2, 10, 0.6))
    applied = s.advance(2)
    assert [a.seq for a in applied] == [3, 4]
    assert s.lr_scale == 0.3


def test_zero_expiry_is_one_shot():
    # Mirrors BurnSchedule.ZeroExpiryIsOneShot
    s = BurnSchedule()
    s.add(make_burn(1, 2, 0, 0.5, rollback_to_step=0))
    applied = s.advance(2)
    assert len(applied) == 1      # still applied (its rollback happens) ...
    assert s.lr_scale == 1.0      # ... but its scale governs no step


# ---- the Python adapter's own rules ---------------------------------------------------

def test_the_ack_reports_the_first_step_lateness_and_lr():
    s = BurnSchedule()
    s.add(make_burn(7, 3, 10, 0.5))
    (ab,) = s.advance(4)
    ab.lr = 0.05
    assert ab.ack() == {"seq": 7, "step": 4, "late": True, "lr": 0.05, "restored_step": None}
    assert ab.received_step == 3 and ab.expires_at_step == 13


def test_only_burns_every_rank_has_wait_for_readiness():
    # rank0 mode: a burn not yet broadcast to every rank waits, even when due.
    s = BurnSchedule()
    s.add(make_burn(1, 1, 10, 0.5))
    s.add(make_burn(2, 1, 10, 0.25))
    assert [a.seq for a in s.advance(1, ready={1})] == [1]
    assert s.pending == [2]
    assert [a.seq for a in s.advance(2, ready={1, 2})] == [2]
    assert s.lr_scale == 0.25


def test_a_burn_that_could_not_be_applied_is_consumed_without_governing():
    s = BurnSchedule()
    s.add(make_burn(1, 1, 10, 0.5))
    seen = []
    assert s.advance(1, apply=lambda burn, ab: seen.append(burn.seq) or False) == []
    assert seen == [1] and s.pending == [] and s.active is None and s.lr_scale == 1.0
    assert not s.add(make_burn(1, 1, 10, 0.5))  # it still counts as seen


def test_garbage_scale_never_scales():
    s = BurnSchedule()
    s.add(make_burn(1, 1, 10, float("nan")))
    s.advance(1)
    assert s.lr_scale == 1.0


def test_after_reregistration_seqs_start_over():
    s = BurnSchedule()
    s.add(make_burn(3, 1, 100, 0.5))
    s.advance(1)
    assert not s.add(make_burn(1, 5, 100, 0.8))
    s.forget_seqs()  # a restarted daemon numbers burns from 1 again
    assert s.add(make_burn(1, 5, 100, 0.8))
    s.advance(5)
    assert s.lr_scale == 0.8


def test_state_round_trip_keeps_pending_and_active_burns():
    s = BurnSchedule()
    s.add(make_burn(1, 2, 10, 0.5, domain_weights={"code": 2.0}))
    s.add(make_burn(2, 20, 10, 0.8))
    s.advance(2)
    state = s.state_dict()
    assert state["pending"][2]["lr_scale"] == 0.8 and "run" not in state["pending"][2]

    t = BurnSchedule()
    t.load_state_dict(state)
    assert t.pending == [2] and t.last_seq == 1
    assert isinstance(t.active, AppliedBurn) and t.lr_scale == 0.5
    t.advance(12)  # 2 + 10: the loaded burn keeps its scheduled end
    assert t.lr_scale == 1.0
    assert [a.seq for a in t.advance(20)] == [2] and t.lr_scale == 0.8


def test_busy_says_when_advance_has_something_to_do():
    # Orbit.step skips advance() on the steps where busy is False (most steps).
    s = BurnSchedule()
    assert not s.busy
    s.add(make_burn(1, 3, 2, 0.5))
    assert s.busy                      # waiting
    s.advance(3)
    assert s.busy and s.active is not None
    s.advance(5)                       # 3 + 2: expired at this step
    assert s.busy and s.expired is not None
    s.advance(6)                       # what was left to do is done
    assert not s.busy and s.expired is None and s.active is None
