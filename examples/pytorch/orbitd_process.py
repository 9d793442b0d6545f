# SPDX-License-Identifier: Apache-2.0
"""Starts and stops a private orbitd for the demo and the benchmarks.

    with OrbitdProcess("build/daemon/orbitd", "configs/default.toml") as d:
        print(d.endpoint, d.telemetry, d.control, d.journal_dir)

The daemon binds ipc sockets in a private temporary directory (mode 0700), writes
its ready file there, and journals to `journal_dir` (by default inside that
directory). Leaving the block sends SIGTERM, waits for the process (SIGKILL only if
it does not exit in time) and removes the private directory; pass a `journal_dir`
outside it to keep the journal.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Optional

import msgpack
import zmq

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_orbitd(explicit: Optional[str] = None) -> Optional[str]:
    """$ORBITD, then the usual build directories."""
    for cand in (explicit, os.environ.get("ORBITD"),
                 os.path.join(REPO, "build", "daemon", "orbitd"),
                 os.path.join(REPO, "build-torch", "daemon", "orbitd")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


class OrbitdProcess:
    def __init__(self, binary: str, config: str, *, workdir: Optional[str] = None,
                 journal_dir: Optional[str] = None, mode: Optional[str] = None,
                 log_level: str = "warn", log_path: Optional[str] = None):
        self.binary, self.config = binary, config
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="orbit-", dir="/tmp")
        os.chmod(self.workdir, 0o700)
        self.journal_dir = journal_dir or os.path.join(self.workdir, "journal")
        self.mode, self.log_level = mode, log_level
        self.log_path = log_path or os.path.join(self.workdir, "orbitd.log")
        self.process: Optional[subprocess.Popen] = None
        self.ready: dict = {}

    @property
    def endpoint(self) -> str:
        return self.ready["endpoint"]

    @property
    def telemetry(self) -> str:
        return self.ready["telemetry"]

    @property
    def control(self) -> str:
        return self.ready["control"]

    def start(self, timeout: float = 20.0) -> "OrbitdProcess":
        ready_file = os.path.join(self.workdir, "ready.json")
        cmd = [self.binary, "--config", self.config,
               "--endpoint", f"ipc://{self.workdir}/adapters.sock",
               "--telemetry", f"ipc://{self.workdir}/telemetry.sock",
               "--control", f"ipc://{self.workdir}/control.sock",
               "--journal-dir", self.journal_dir, "--log-level", self.log_level,
               "--ready-file", ready_file]
        if self.mode:
            cmd += ["--mode", self.mode]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(ready_file):
                try:
                    with open(ready_file) as f:
                        self.ready = json.load(f)
                    return self
                except json.JSONDecodeError:
                    pass
            if self.process.poll() is not None:
                raise RuntimeError(f"orbitd exited with {self.process.returncode}; see {self.log_path}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"orbitd did not get ready in {timeout} s; see {self.log_path}")

    def command(self, cmd: str, timeout_ms: int = 2000, **fields) -> dict:
        """One control-endpoint request; returns the decoded reply map."""
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.REQ)
        s.set(zmq.LINGER, 0)
        s.set(zmq.RCVTIMEO, timeout_ms)
        s.set(zmq.SNDTIMEO, timeout_ms)
        try:
            s.connect(self.control)
            s.send(msgpack.packb({"v": 1, "type": "control", "cmd": cmd, **fields}, use_bin_type=True))
            return msgpack.unpackb(s.recv(), raw=False)
        finally:
            s.close(0)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "OrbitdProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.cleanup()
