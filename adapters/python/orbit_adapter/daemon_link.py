# SPDX-License-Identifier: Apache-2.0
"""One rank's link to orbitd as the adapter sees it: the OrbitClient, the session the
daemon gave, whether anyone answered lately, and the ACKs owed for applied burns.

Fail-open: every client call is guarded; a failure is counted in FailOpen and the
training step goes on. Without an endpoint (offline, or a non-zero rank in rank0
mode) there is no client and every call here does nothing.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Dict, List, Optional

from .burn_schedule import AppliedBurn
from .client import OrbitClient
from .client_thread import ClientThread
from .failures import FailOpen
from .messages import Welcome

NO_ANSWER_WARN_S = 5.0  # seconds after attach without a welcome before the one warning
CONNECTED_S = 30.0      # a reply this recent means someone listens


class DaemonLink:
    def __init__(self, endpoint: Optional[str], run: str, failures: FailOpen,
                 client: Optional[OrbitClient] = None) -> None:
        self.endpoint = endpoint
        self.run = run
        self._failures = failures
        self.client: Optional[OrbitClient] = client
        self._own_client = client is None
        self.session: Optional[str] = None
        self.last_reply_time: Optional[float] = None
        self.unacked: List[AppliedBurn] = []
        self._attached_at: Optional[float] = None
        self._no_answer_warned = False
        self._typed_client: Optional[OrbitClient] = None
        self._deferred = False

    def open(self, make_client: Optional[Callable[[], OrbitClient]]) -> None:
        """Connects (unless a client was given) and starts the no-answer clock.
        make_client None: this rank does not talk to the daemon."""
        if self.client is None and make_client is not None:
            try:
                self.client = make_client()
            except Exception as e:  # a bad endpoint must not stop training either
                self._failures.fail("connect", e)
        self._attached_at = time.monotonic()

    def reopen(self) -> None:
        """Forgets the previous attachment (a second trainer.train())."""
        if self._own_client:
            self.client = None
        self.session = None
        self.last_reply_time = None
        self._no_answer_warned = False
        self.unacked = []

    # ---- what the daemon said ------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.last_reply_time is not None and time.monotonic() - self.last_reply_time < CONNECTED_S

    @property
    def snapshot_every(self) -> int:
        """The daemon's snapshot cadence (1 until a welcome says otherwise)."""
        every = self.client.snapshot_every if self.client is not None else 1
        return max(1, int(every or 1))

    @property
    def deferred(self) -> bool:
        """True when a ClientThread sends: snapshot values may stay tensors and a
        `prepare` callable may come along (both are finished on that thread)."""
        client = self.client
        if client is not self._typed_client:  # asked once per client, not on every step
            self._typed_client, self._deferred = client, isinstance(client, ClientThread)
        return self._deferred

    @property
    def registered(self) -> bool:
        return self.client is not None and self.client.registered

    def poll(self) -> List[Dict[str, Any]]:
        """Replies that have arrived (never waits), as decoded (`reply_from_dict` types
        them; the adapter reads the `state` reply of every snapshot as it is)."""
        client = self.client
        try:
            replies = client.poll()
        except Exception as e:
            self._failures.fail("poll", e)
            return []
        if client is not self._typed_client:  # the `deferred` property, inline (every step)
            self._typed_client, self._deferred = client, isinstance(client, ClientThread)
        if self._deferred:
            for where, err in client.take_errors():
                self._failures.fail(where, err)
        if replies:
            self.last_reply_time = time.monotonic()
        return replies or []

    def note_welcome(self, welcome: Welcome) -> bool:
        """Takes the session of `welcome`; True when it replaced one (the daemon
        restarted or dropped our session and we registered again)."""
        replaced = self.session is not None
        self.session = welcome.session
        return replaced

    def warn_if_unanswered(self, rank: int) -> None:
        """One RuntimeWarning when nobody answered NO_ANSWER_WARN_S after attach."""
        if self._no_answer_warned or self.last_reply_time is not None:
            return
        if self._attached_at is None or time.monotonic() - self._attached_at < NO_ANSWER_WARN_S:
            return
        self._no_answer_warned = True
        msg = (f"orbit: no answer from orbitd at {self.endpoint} {NO_ANSWER_WARN_S:.0f} s after "
               f"attach (run {self.run!r}, rank {rank}): training continues UNCONTROLLED. "
               "Start orbitd, or set the endpoint (Orbit(endpoint=...) or $ORBIT_ENDPOINT).")
        warnings.warn(msg, RuntimeWarning, stacklevel=4)

    # ---- what we tell it -------------------------------------------------------------
    def send_acks(self, step: int, lrs: Optional[List[float]], sends: bool,
                  final: bool = False) -> None:
        """ACKs every burn whose first step has run by `step` (all of them when
        `final`), reporting `lrs[0]` as the lr it ran with. sends False: this rank
        records the lr but the daemon hears from rank 0 (rank0 mode)."""
        if not self.unacked:
            return
        keep = []
        for ab in self.unacked:
            if not final and step < ab.applied_step:
                keep.append(ab)
                continue
            ab.lr = lrs[0] if lrs else None
            if self.client is not None and sends:
                try:
                    self.client.send_ack(**ab.ack())
                except Exception as e:
                    self._failures.fail("ack", e)
        self.unacked = keep

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception as e:
                self._failures.fail("close", e)
