# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: paths, and real `orbitd` processes.

The daemon binary comes from $ORBITD (ctest sets it); without it the default build
directory is tried, and tests that need a daemon are skipped when that is absent
too. When $ORBITD is set, a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
VECTORS = REPO / "protocol" / "vectors"
sys.path.insert(0, str(HERE.parent))

DEFAULT_ORBITD = REPO / "build-py" / "daemon" / "orbitd"

# Monitor mode (replies are always `state`), small spectrum limit for the too_large
# test, no journal.
TEST_CONFIG = """\
# SPDX-License-Identifier: Apache-2.0
[daemon]
mode = "monitor"
snapshot_every = 1
session_timeout_s = 60.0

[limits]
max_spectrum_length = 4096

[logging]
level = "warn"

[journal]
dir = ""
"""


def orbitd_binary() -> pathlib.Path:
    configured = os.environ.get("ORBITD")
    if configured:
        path = pathlib.Path(configured)
        if not path.is_file():
            pytest.fail(f"$ORBITD={configured} does not exist")
        return path
    if not DEFAULT_ORBITD.is_file():
        pytest.skip(f"no orbitd binary: set $ORBITD or build {DEFAULT_ORBITD}")
    return DEFAULT_ORBITD


class Daemon:
    """One orbitd process with its own config, endpoints and log file."""

    def __init__(self, binary: pathlib.Path, workdir: pathlib.Path, transport: str = "ipc",
                 config: str = TEST_CONFIG):
        self.binary = binary
        self.workdir = workdir
        self.config_path = workdir / "orbitd.toml"
        self.config_path.write_text(config)
        if transport == "ipc":
            # Short paths: ipc endpoints are limited to ~107 bytes.
            self.requested = {"endpoint": f"ipc://{workdir}/a.sock",
                              "telemetry": f"ipc://{workdir}/t.sock",
                              "control": f"ipc://{workdir}/c.sock"}
        else:
            self.requested = {k: "tcp://127.0.0.1:*" for k in ("endpoint", "telemetry", "control")}
        self.process: subprocess.Popen | None = None
        self.ready: dict = {}
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return self.ready["endpoint"]

    @property
    def telemetry(self) -> str:
        return self.ready["telemetry"]

    @property
    def control(self) -> str:
        return self.ready["control"]

    def start(self, timeout: float = 20.0, same_endpoints: bool = False) -> "Daemon":
        """Start orbitd and wait until it has bound. same_endpoints: rebind what the
        previous start got (a TCP port included), as a restarted daemon would."""
        assert self.process is None or self.process.poll() is not None
        endpoints = dict(self.ready) if same_endpoints and self.ready else dict(self.requested)
        endpoints.pop("pid", None)
        self.starts += 1
        ready_file = self.workdir / f"ready-{self.starts}.json"
        self.log_path = self.workdir / f"orbitd-{self.starts}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(self.binary), "--config", str(self.config_path),
             "--endpoint", endpoints["endpoint"], "--telemetry", endpoints["telemetry"],
             "--control", endpoints["control"], "--ready-file", str(ready_file)]
            # tcp control on loopback for the tcp fixtures; orbitd refuses it otherwise
            + (["--allow-exposed-control"] if endpoints["control"].startswith("tcp") else []),
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready_file.exists():
                try:
                    self.ready = json.loads(ready_file.read_text())
                    return self
                except json.JSONDecodeError:
                    pass  # still being written
            if self.process.poll() is not None:
                pytest.fail(f"orbitd exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.01)
        self.kill()
        pytest.fail(f"orbitd did not write {ready_file} within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except (OSError, AttributeError):
            return ""

    def kill(self) -> None:
        """SIGKILL: the daemon gets no chance to say anything."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode if self.process else 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def short_tmp():
    """A temporary directory with a short path (for ipc endpoints)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="orbit-py-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_factory(short_tmp):
    binary = orbitd_binary()
    made: list[Daemon] = []

    def make(transport: str = "ipc", config: str = TEST_CONFIG) -> Daemon:
        workdir = short_tmp / f"d{len(made)}"
        workdir.mkdir(mode=0o700)  # orbitd refuses ipc sockets in a directory others can enter
        d = Daemon(binary, workdir, transport, config)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


@pytest.fixture
def orbitd(daemon_factory) -> Daemon:
    """A running orbitd on ipc endpoints in a private temporary directory."""
    return daemon_factory().start()


@pytest.fixture
def orbitd_tcp(daemon_factory) -> Daemon:
    return daemon_factory("tcp").start()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.002):
    """Calls predicate until it returns something truthy; returns that, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    return None
