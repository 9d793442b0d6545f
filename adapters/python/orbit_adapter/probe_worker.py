# SPDX-License-Identifier: Apache-2.0
"""ProbeWorker: a probe step's spectra and snapshot, and a checkpoint's copies, beside
the training thread.

For a CPU model the adapter's client runs on the training thread: a ClientThread,
woken twice a step, costs more CPU than the ordinary step's work it would take over.
A probe step is different: its spectra (svdvals of the sampled attention maps,
eigvalsh of the hidden-state covariances) take milliseconds once every
`spectra_every` steps, and on the training thread they make every probe step a slow
step. The worker computes them, encodes the snapshot and sends it while the trainer
goes on with its next step. The training thread waits for the jobs (`wait`) before it
touches the client again, so the socket has one user at a time (the wait is the
memory barrier ZeroMQ asks for when a socket changes threads) and snapshots leave in
step order. The rollback ring's copies of the parameters and optimizer state go
there too; the next `optimizer.step` waits for them (the LrScaler's wrapper), as does
a restore. Jobs run in the order submitted. The work still costs CPU, on another
core: `cpu_s` counts it.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, List, Optional, Tuple

__all__ = ["ProbeWorker"]

Errors = List[Tuple[str, BaseException]]


class ProbeWorker:
    """One daemon thread that runs jobs in order; started on the first job."""

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue[Optional[Callable[[], Errors]]]" = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: Optional[threading.Thread] = None
        self._errors: Errors = []
        self._pending = 0
        self._lock = threading.Lock()
        self.cpu_s = 0.0   # the worker thread's CPU time over all jobs
        self.jobs = 0
        # A job was submitted and nobody waited for it yet (a plain attribute: the
        # training thread reads it on every step).
        self.unsettled = False

    def submit(self, job: Callable[[], Errors]) -> None:
        """Runs `job` on the worker thread after the jobs before it; it returns the
        (where, error) pairs to report."""
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self.unsettled = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="orbit-probes", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def wait(self) -> Errors:
        """Blocks until every submitted job is done; returns (and forgets) what they reported."""
        if not self._idle.is_set():
            self._idle.wait()
        self.unsettled = False
        errors, self._errors = self._errors, []
        return errors

    def close(self) -> Errors:
        """Waits for the job in flight and ends the thread."""
        errors = self.wait()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        return errors

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            t0 = time.thread_time()
            try:
                self._errors.extend(job())
            except Exception as e:  # a job reports its own errors; this is the last guard
                self._errors.append(("probe", e))
            finally:
                self.cpu_s += time.thread_time() - t0
                self.jobs += 1
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()

