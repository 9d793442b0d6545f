# SPDX-License-Identifier: Apache-2.0
"""Fail-open bookkeeping: what went wrong where, counted, with one warning per run.

Nothing the daemon does may stop training, so the adapter's parts catch their errors
and report them here instead of raising; `Orbit.summary()["errors"]` shows the counts.
"""
from __future__ import annotations

import warnings
from typing import Dict


class FailOpen:
    def __init__(self) -> None:
        self.errors: Dict[str, int] = {}
        self._warned = False

    def count(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def fail(self, where: str, err: Exception) -> None:
        """Counts a failure at `where`; the first one of the run also warns."""
        self.count(where)
        if not self._warned:
            self._warned = True
            warnings.warn(f"orbit: {where} failed ({err!r}); training continues uncontrolled "
                          "where needed", RuntimeWarning, stacklevel=4)
