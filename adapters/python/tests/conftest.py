# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: paths, and real `orbitd` processes.

The daemon binary comes from $ORBITD (ctest sets it); without it `orbitd` on PATH
and this checkout's build*/daemon/orbitd are tried, and tests that need a daemon are skipped when that is absent
too. When $ORBITD is set, a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
VECTORS = REPO / "protocol" / "vectors"
sys.path.insert(0, str(HERE.parent))

from orbit_adapter.daemon_process import OrbitdError, OrbitdProcess, find_orbitd  # noqa: E402

DEFAULT_ORBITD = REPO / "build" / "daemon" / "orbitd"

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
    found = find_orbitd()  # orbitd on PATH, or build*/daemon/orbitd in this checkout
    if found is None:
        pytest.skip(f"no orbitd binary: set $ORBITD or build {DEFAULT_ORBITD}")
    return pathlib.Path(found)


class Daemon(OrbitdProcess):
    """One orbitd process with its own config, endpoints and log file (the package's
    launcher; a daemon that does not come up fails the test)."""

    def __init__(self, binary: pathlib.Path, workdir: pathlib.Path, transport: str = "ipc",
                 config: str = TEST_CONFIG):
        super().__init__(binary, config_text=config, workdir=workdir, transport=transport,
                         journal_dir="", log_level=None)

    def start(self, timeout: float = 20.0, same_endpoints: bool = False) -> "Daemon":
        try:
            return super().start(timeout, same_endpoints)
        except OrbitdError as e:
            pytest.fail(str(e))


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
