# SPDX-License-Identifier: Apache-2.0
"""DomainMixtureSampler: determinism, live weights, curriculum, exact resume."""
import collections

import pytest
import torch

from orbit_adapter.sampler import DomainMixtureSampler

SIZES = {"prose": 50, "code": 30, "legal": 20}


def draw(s, n):
    return [s.next_batch() for _ in range(n)]


def test_same_seed_same_batches_other_seed_differs():
    a = draw(DomainMixtureSampler(SIZES, 8, seed=3), 20)
    b = draw(DomainMixtureSampler(SIZES, 8, seed=3), 20)
    c = draw(DomainMixtureSampler(SIZES, 8, seed=4), 20)
    assert a == b
    assert a != c


def test_no_sample_repeats_within_a_domain_epoch():
    s = DomainMixtureSampler(SIZES, 5, seed=1)
    seen = collections.defaultdict(list)
    for batch in draw(s, 12):  # 60 draws: below every epoch boundary except maybe legal's
        for d, i in batch:
            seen[d].append(i)
    for d, idx in seen.items():
        first_epoch = idx[:SIZES[d]]
        assert len(first_epoch) == len(set(first_epoch)), d
        assert all(0 <= i < SIZES[d] for i in idx)


def test_weights_steer_the_mixture_and_relax_returns_to_base():
    s = DomainMixtureSampler({"a": 10_000, "b": 10_000}, 100, seed=0)
    base = collections.Counter(d for b in draw(s, 20) for d, _ in b)
    assert 0.4 < base["a"] / 2000 < 0.6
    s.set_weights({"a": 0.9, "b": 0.1})
    steered = collections.Counter(d for b in draw(s, 20) for d, _ in b)
    assert steered["a"] / 2000 > 0.85
    s.relax()
    assert s.effective_weights() == pytest.approx({"a": 0.5, "b": 0.5})


def test_curriculum_phase_gates_domains():
    s = DomainMixtureSampler(SIZES, 16, seed=0, phases=[["prose"], ["prose", "code"], list(SIZES)])
    assert {d for b in draw(s, 10) for d, _ in b} == {"prose"}
    s.set_phase(1)
    assert {d for b in draw(s, 20) for d, _ in b} == {"prose", "code"}
    s.set_phase(7)  # clamped to the last phase
    assert s.phase == 2
    assert {d for b in draw(s, 30) for d, _ in b} == set(SIZES)


def test_resume_from_state_neither_repeats_nor_skips():
    straight = DomainMixtureSampler(SIZES, 7, seed=9)
    expected = draw(straight, 40)   # crosses epoch boundaries of every domain

    first = DomainMixtureSampler(SIZES, 7, seed=9)
    got = draw(first, 17)
    first.set_weights({"code": 1.0})  # live weights travel in the state too
    state = first.state_dict()
    # Reference continues with the same weight change.
    ref = DomainMixtureSampler(SIZES, 7, seed=9)
    ref_batches = draw(ref, 17)
    ref.set_weights({"code": 1.0})
    ref_batches += draw(ref, 23)

    resumed = DomainMixtureSampler(SIZES, 7, seed=0)  # the seed comes from the state
    resumed.load_state_dict(state)
    got += draw(resumed, 23)
    assert got == ref_batches
    assert got[:17] == expected[:17]


def test_global_indices_work_as_a_dataloader_batch_sampler():
    data = torch.utils.data.ConcatDataset([torch.arange(n) + 1000 * k for k, n in enumerate(SIZES.values())])
    s = DomainMixtureSampler(SIZES, 4, seed=2, num_batches=5)
    loader = torch.utils.data.DataLoader(data, batch_sampler=s)
    ref = DomainMixtureSampler(SIZES, 4, seed=2)
    names = list(SIZES)
    for batch in loader:
        for value, (d, i) in zip(batch.tolist(), ref.next_batch()):
            assert value == 1000 * names.index(d) + i
    assert s.batches_drawn == 5


def test_skip_draws_and_discards():
    a = DomainMixtureSampler(SIZES, 4, seed=5)
    b = DomainMixtureSampler(SIZES, 4, seed=5)
    draw(a, 3)
    b.skip(3)
    assert a.next_batch() == b.next_batch()


def test_bad_weights_are_rejected():
    s = DomainMixtureSampler(SIZES, 4)
    with pytest.raises(ValueError):
        s.set_weights({"nope": 1.0})
    with pytest.raises(ValueError):
        DomainMixtureSampler(SIZES, 4, weights={"prose": 0, "code": 0, "legal": 0})


def test_effective_weights_follow_every_change_of_weights_and_phase():
    """effective_weights is cached for the adapter's every-step read: each change of the
    weights (set_weights, relax, in place, a loaded state) or of the phase shows at once,
    and the dict handed out is the caller's own."""
    s = DomainMixtureSampler(SIZES, 4, seed=0, phases=[["prose"], list(SIZES)])

    def fresh():
        return s._effective_weights()

    first = s.effective_weights()
    assert first == fresh() == {"prose": 1.0, "code": 0.0, "legal": 0.0}
    first["prose"] = 7.0  # the caller's copy: the cache is untouched
    assert s.effective_weights() == fresh()
    s.set_phase(1)
    assert s.effective_weights() == fresh() == pytest.approx({"prose": 0.5, "code": 0.3, "legal": 0.2})
    s.set_weights({"code": 0.9})
    assert s.effective_weights() == fresh()
    s.weights["legal"] = 0.5  # in place
    assert s.effective_weights() == fresh()
    state = s.state_dict()
    s.relax()
    assert s.effective_weights() == fresh() == pytest.approx({"prose": 0.5, "code": 0.3, "legal": 0.2})
    s.load_state_dict(state)
    assert s.effective_weights() == fresh() and s.effective_weights()["code"] > 0.4
