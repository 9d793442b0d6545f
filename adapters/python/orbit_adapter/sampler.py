# SPDX-License-Identifier: Apache-2.0
"""Domain-mixture batch sampler with live weights and curriculum gating.

Batches are drawn from several per-domain datasets. For every batch, the domain
of each sample is chosen by the current mixture weights; within a domain the
sampler walks a seeded permutation of its indices (no sample repeats before the
domain's epoch ends). Everything that decides the next batch is in
`state_dict()`: the number of batches drawn, and each domain's epoch and cursor.
Permutations and the per-batch choice generator are derived from
(seed, domain, epoch) and (seed, batch number), so a restored sampler continues
exactly where the saved one stopped: it neither repeats nor skips samples.
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["DomainMixtureSampler"]


class DomainMixtureSampler:
    """Draws batches of (domain, index) pairs from named domains.

    `sizes` maps each domain name to the number of samples in it (or to a sized
    dataset). `weights` is the base mixture (defaults to proportional to size);
    burns replace the live weights through `set_weights`, and `relax()` returns
    to the base. `phases` is an optional curriculum: a list of domain-name sets,
    where phase i allows only the domains in phases[i]; weights of gated domains
    are treated as zero.

    Iterating yields lists of *global* indices (domain offsets follow the order of
    `sizes`, as in `torch.utils.data.ConcatDataset`), so the sampler can serve as a
    DataLoader `batch_sampler`. `next_batch()` returns (domain, local index)
    pairs instead. With DataLoader workers, batches are drawn ahead of training;
    save state with `num_workers=0` when an exact resume matters.
    """

    def __init__(self, sizes: Mapping[str, object], batch_size: int, *,
                 weights: Optional[Mapping[str, float]] = None, seed: int = 0,
                 phases: Optional[Sequence[Sequence[str]]] = None,
                 num_batches: Optional[int] = None):
        if not sizes:
            raise ValueError("DomainMixtureSampler needs at least one domain")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.domains: List[str] = list(sizes)
        self.sizes: Dict[str, int] = {d: (s if isinstance(s, int) else len(s))
                                      for d, s in sizes.items()}
        for d, n in self.sizes.items():
            if n < 1:
                raise ValueError(f"domain {d!r} is empty")
        offsets, total = {}, 0
        for d in self.domains:
            offsets[d] = total
            total += self.sizes[d]
        self._offsets = offsets
        self.batch_size = batch_size
        self.seed = int(seed)
        self.num_batches = num_batches
        base = dict(weights) if weights else {d: float(self.sizes[d]) for d in self.domains}
        self.base_weights = self._normalized(base)
        self.weights = dict(self.base_weights)
        self.phases: Optional[List[frozenset]] = (
            [frozenset(p) for p in phases] if phases else None)
        if self.phases:
            for p in self.phases:
                unknown = set(p) - set(self.domains)
                if unknown:
                    raise ValueError(f"curriculum phase names unknown domains {sorted(unknown)}")
        self.phase: Optional[int] = 0 if self.phases else None
        self.batches_drawn = 0
        self._epoch = {d: 0 for d in self.domains}
        self._cursor = {d: 0 for d in self.domains}
        self._perm_cache: Dict[str, Tuple[int, np.ndarray]] = {}
        self._effective: Optional[Tuple[Dict[str, float], Optional[int], Dict[str, float]]] = None

    # ---- weights and curriculum -------------------------------------------------
    def _normalized(self, w: Mapping[str, float]) -> Dict[str, float]:
        unknown = set(w) - set(self.domains)
        if unknown:
            raise ValueError(f"weights name unknown domains {sorted(unknown)}")
        vals = {d: float(w.get(d, 0.0)) for d in self.domains}
        if any(v < 0 or not math.isfinite(v) for v in vals.values()):
            raise ValueError("domain weights must be finite and >= 0")
        s = sum(vals.values())
        if s <= 0:
            raise ValueError("domain weights must not all be zero")
        return {d: v / s for d, v in vals.items()}

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replaces the live mixture; domains left out keep their current share."""
        unknown = set(weights) - set(self.domains)
        if unknown:
            raise ValueError(f"weights name unknown domains {sorted(unknown)}")
        merged = dict(self.weights)
        merged.update({d: float(v) for d, v in weights.items()})
        self.weights = self._normalized(merged)

    def relax(self) -> None:
        """Returns to the base mixture."""
        self.weights = dict(self.base_weights)

    def set_phase(self, phase: Optional[int]) -> None:
        if self.phases is None:
            return
        if phase is None:
            self.phase = 0
            return
        self.phase = max(0, min(int(phase), len(self.phases) - 1))

    def effective_weights(self) -> Dict[str, float]:
        """The mixture actually drawn from: live weights gated by the phase (a new dict;
        computed again only when the weights or the phase changed: the adapter reads
        it on every step)."""
        cached = self._effective
        if cached is not None and cached[1] == self.phase and cached[0] == self.weights:
            return dict(cached[2])
        w = self._effective_weights()
        self._effective = (dict(self.weights), self.phase, dict(w))
        return w

    def _effective_weights(self) -> Dict[str, float]:
        w = dict(self.weights)
        if self.phases is not None:
            allowed = self.phases[self.phase or 0]
            w = {d: (v if d in allowed else 0.0) for d, v in w.items()}
            if sum(w.values()) <= 0:  # every allowed domain weighted zero: fall back to base
                w = {d: (self.base_weights[d] if d in allowed else 0.0) for d in self.domains}
        s = sum(w.values())
        return {d: v / s for d, v in w.items()}

    # ---- drawing ----------------------------------------------------------------
    def _perm(self, d: str) -> np.ndarray:
        epoch = self._epoch[d]
        cached = self._perm_cache.get(d)
        if cached is None or cached[0] != epoch:
            rng = np.random.Generator(np.random.PCG64(
                [self.seed, 0x0D0, self.domains.index(d), epoch]))
            cached = (epoch, rng.permutation(self.sizes[d]))
            self._perm_cache[d] = cached
        return cached[1]

    def _take(self, d: str) -> int:
        perm = self._perm(d)
        i = int(perm[self._cursor[d]])
        self._cursor[d] += 1
        if self._cursor[d] == self.sizes[d]:
            self._epoch[d] += 1
            self._cursor[d] = 0
        return i

    def next_batch(self) -> List[Tuple[str, int]]:
        w = self.effective_weights()
        names = [d for d in self.domains if w[d] > 0]
        probs = np.array([w[d] for d in names], dtype=np.float64)
        probs /= probs.sum()
        rng = np.random.Generator(np.random.PCG64([self.seed, 0xBA7C, self.batches_drawn]))
        picks = rng.choice(len(names), size=self.batch_size, p=probs)
        self.batches_drawn += 1
        return [(names[k], self._take(names[k])) for k in picks]

    def skip(self, n: int) -> None:
        """Draws and discards n batches (a rollback's `skip_batches`)."""
        for _ in range(max(0, int(n))):
            self.next_batch()

    def global_index(self, domain: str, index: int) -> int:
        return self._offsets[domain] + index

    def domain_of(self, global_index: int) -> Tuple[str, int]:
        for d in reversed(self.domains):
            if global_index >= self._offsets[d]:
                return d, global_index - self._offsets[d]
        raise IndexError(global_index)

    def __iter__(self) -> Iterator[List[int]]:
        while self.num_batches is None or self.batches_drawn < self.num_batches:
            yield [self.global_index(d, i) for d, i in self.next_batch()]

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("an endless DomainMixtureSampler has no length")
        return self.num_batches

    # ---- state ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "batches_drawn": self.batches_drawn,
            "epoch": dict(self._epoch),
            "cursor": dict(self._cursor),
            "weights": dict(self.weights),
            "phase": self.phase,
        }

    def load_state_dict(self, state: Mapping) -> None:
        if set(state["epoch"]) != set(self.domains):
            raise ValueError("sampler state names different domains")
        self.seed = int(state["seed"])
        self.batches_drawn = int(state["batches_drawn"])
        self._epoch = {d: int(v) for d, v in state["epoch"].items()}
        self._cursor = {d: int(v) for d, v in state["cursor"].items()}
        self.weights = self._normalized(state["weights"])
        self.phase = state.get("phase")
        self._perm_cache.clear()
