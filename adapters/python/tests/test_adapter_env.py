# SPDX-License-Identifier: Apache-2.0
"""Where the adapter finds the daemon and its rank when the trainer does not say:
the environment (torchrun's RANK / WORLD_SIZE / LOCAL_RANK), the daemon's default
endpoint, and one warning when nobody answers."""
import json
import os
import socket
import subprocess
import time
import warnings

import pytest
import torch

import orbit_adapter.daemon_link as daemon_link_module
from conftest import TEST_CONFIG, orbitd_binary
from torch_fixtures import ScriptedDaemon, TinyLM
from orbit_adapter import Orbit
from orbit_adapter.adapter import default_endpoint
from orbit_adapter.rollback import CheckpointConfig


def test_rank_world_size_and_local_rank_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d = ScriptedDaemon()
    try:
        orbit = Orbit(endpoint=d.endpoint, run="env-rank", checkpoints=CheckpointConfig(every=0))
        assert (orbit.rank, orbit.world_size, orbit.local_rank) == (1, 2, 1)
        model = TinyLM()
        orbit.attach(model, torch.optim.SGD(model.parameters(), lr=0.1))
        d.wait_hello()
        assert (d.hellos[0]["rank"], d.hellos[0]["world_size"]) == (1, 2)
        orbit.close()
    finally:
        d.close()
    # Explicit arguments win over the environment; a framework's values do not.
    explicit = Orbit(endpoint=None, run="x", rank=0, world_size=1)
    assert (explicit.rank, explicit.world_size) == (0, 1)
    with pytest.warns(RuntimeWarning, match="keeping the given values"):
        explicit.set_topology(3, 4)
    assert (explicit.rank, explicit.world_size) == (0, 1)


def test_bad_rank_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RANK", "zero")
    with pytest.raises(ValueError, match=r"\$RANK='zero'"):
        Orbit(endpoint=None, run="x")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="rank 2 must be in"):
        Orbit(endpoint=None, run="x")


def test_the_default_endpoint_is_where_orbitd_listens_by_default(monkeypatch, short_tmp):
    monkeypatch.delenv("ORBIT_ENDPOINT", raising=False)
    runtime = short_tmp / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert Orbit(run="x").endpoint == default_endpoint() == f"ipc://{runtime}/orbit/orbitd.sock"
    (short_tmp / "orbitd.toml").write_text(TEST_CONFIG)
    ready = short_tmp / "ready.json"
    proc = subprocess.Popen([str(orbitd_binary()), "--config", str(short_tmp / "orbitd.toml"),
                             "--ready-file", str(ready)], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(0.05)
        assert json.loads(ready.read_text())["endpoint"] == default_endpoint()
    finally:
        proc.kill()
        proc.wait()
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_endpoint() == f"ipc:///tmp/orbit-{os.getuid()}/orbitd.sock"
    monkeypatch.setenv("ORBIT_ENDPOINT", "tcp://127.0.0.1:5555")
    assert Orbit(run="x").endpoint == "tcp://127.0.0.1:5555"
    assert Orbit(endpoint=None, run="x").endpoint is None       # explicitly offline


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(orbit, steps, pause=0.0):
    model = TinyLM()
    orbit.attach(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for step in range(1, steps + 1):
        orbit.step(step, 1.0)
        time.sleep(pause)
    orbit.close()


def test_one_warning_when_no_daemon_answers(monkeypatch):
    monkeypatch.setattr(daemon_link_module, "NO_ANSWER_WARN_S", 0.2)
    orbit = Orbit(endpoint=f"tcp://127.0.0.1:{free_port()}", run="nobody",
                  checkpoints=CheckpointConfig(every=0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(orbit, 20, pause=0.03)
    mine = [w for w in caught if "no answer from orbitd" in str(w.message)]
    assert len(mine) == 1 and "UNCONTROLLED" in str(mine[0].message)

    d = ScriptedDaemon()   # a daemon that answers: no warning
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(Orbit(endpoint=d.endpoint, run="somebody", checkpoints=CheckpointConfig(every=0)),
                  20, pause=0.03)
        assert not [w for w in caught if "no answer from orbitd" in str(w.message)]
    finally:
        d.close()
