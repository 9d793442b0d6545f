# SPDX-License-Identifier: Apache-2.0
"""Context windows over token streams: the batches of the example trainer's corpus
(examples/pytorch/train.py) and of the external benchmark's (bench/wortsman).

A subclass sets `context` (tokens per window), `train` (domain -> 1-D token tensor)
and `val` (one 1-D token tensor); a sample is a window start, and each window holds
context + 1 tokens (inputs and their next-token targets).
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, Tuple

import numpy as np
import torch


class WindowCorpus:
    context: int
    train: Dict[str, torch.Tensor]
    val: torch.Tensor

    def window_sizes(self) -> Dict[str, int]:
        """Window starts per domain (the sampler's domain sizes)."""
        return {d: len(t) - self.context - 1 for d, t in self.train.items()}

    def batch(self, picks: Iterable[Tuple[str, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        picks = list(picks)
        x = torch.stack([self.train[d][i:i + self.context] for d, i in picks])
        y = torch.stack([self.train[d][i + 1:i + 1 + self.context] for d, i in picks])
        return x, y

    def val_batches(self, windows: int, batch: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """`windows` evenly spaced windows of the val stream, `batch` at a time."""
        starts = np.linspace(0, len(self.val) - self.context - 2, windows).astype(np.int64)
        for k in range(0, windows, batch):
            s = starts[k:k + batch]
            x = torch.stack([self.val[i:i + self.context] for i in s])
            y = torch.stack([self.val[i + 1:i + 1 + self.context] for i in s])
            yield x, y
