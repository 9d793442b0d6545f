# SPDX-License-Identifier: Apache-2.0
"""CURVE against a real orbitd on tcp: a client whose key is on the adapter
allow-list is served; an unknown key and a plain client get no answer and the
daemon counts the refusal; keys come from arguments or the environment."""
import os
import time

import pytest
import zmq

from conftest import TEST_CONFIG, wait_for
from orbit_adapter.client import OrbitClient
from orbit_adapter import curve_keys


def write_pair(path, public, secret):
    path.write_text(f'public-key = "{public}"\nsecret-key = "{secret}"\n')
    os.chmod(path, 0o600)


@pytest.fixture
def keys(short_tmp):
    made = {}
    for name in ("orbitd", "adapter", "operator", "stranger"):
        public, secret = (k.decode() for k in zmq.curve_keypair())
        write_pair(short_tmp / f"{name}.key", public, secret)
        (short_tmp / f"{name}.pub").write_text(f'public-key = "{public}"\n')
        made[name] = (public, secret)
    (short_tmp / "adapters.allow").write_text((short_tmp / "adapter.pub").read_text())
    (short_tmp / "operators.allow").write_text(made["operator"][0] + "\n")
    made["dir"] = short_tmp
    return made


@pytest.fixture
def curve_daemon(daemon_factory, keys):
    d = keys["dir"]
    config = TEST_CONFIG + (f'\n[security]\ncurve_secret_key_file = "{d}/orbitd.key"\n'
                            f'adapter_keys_file = "{d}/adapters.allow"\n'
                            f'control_keys_file = "{d}/operators.allow"\n')
    return daemon_factory("tcp", config).start()


def registered(client, timeout):
    return wait_for(lambda: client.poll() is not None and client.registered, timeout)


def counter(daemon, keys, name):
    reply = daemon.command("status", curve_server_key=keys["orbitd"][0],
                           curve_key=str(keys["dir"] / "operator.key"))
    return reply["stats"][name]


def test_allowed_key_is_served_unknown_and_plain_clients_are_not(curve_daemon, keys):
    server = str(keys["dir"] / "orbitd.pub")
    good = OrbitClient(curve_daemon.endpoint, "curve-py", curve_server_key=server,
                       curve_key=str(keys["dir"] / "adapter.key"))
    stranger = OrbitClient(curve_daemon.endpoint, "curve-py-stranger", curve_server_key=server,
                           curve_key=keys["stranger"])
    plain = OrbitClient(curve_daemon.endpoint, "curve-py-plain")
    try:
        assert good.curve and not plain.curve
        assert registered(good, 5.0), curve_daemon.log()
        good.send_snapshot(1, 2.5)
        assert wait_for(lambda: any(r["type"] == "state" for r in good.poll()), 5.0)
        assert not registered(stranger, 1.5)
        assert not registered(plain, 0.5)
        assert stranger.stats.replies == 0 and plain.stats.replies == 0
        assert counter(curve_daemon, keys, "auth_refused_adapters") >= 1
        assert counter(curve_daemon, keys, "runs_opened") == 1
    finally:
        for c in (good, stranger, plain):
            c.close()


def test_keys_come_from_the_environment(curve_daemon, keys, monkeypatch):
    monkeypatch.setenv("ORBIT_CURVE_SERVER_KEY", str(keys["dir"] / "orbitd.pub"))
    monkeypatch.setenv("ORBIT_CURVE_KEY", str(keys["dir"] / "adapter.key"))
    client = OrbitClient(curve_daemon.endpoint, "curve-env")
    try:
        assert client.curve
        assert registered(client, 5.0), curve_daemon.log()
    finally:
        client.close()


def test_half_a_key_set_and_readable_secret_keys_are_refused(keys, monkeypatch):
    monkeypatch.delenv("ORBIT_CURVE_SERVER_KEY", raising=False)
    monkeypatch.delenv("ORBIT_CURVE_KEY", raising=False)
    with pytest.raises(ValueError, match="server's public key"):
        OrbitClient("tcp://127.0.0.1:1", "half", curve_key=str(keys["dir"] / "adapter.key"))
    os.chmod(keys["dir"] / "adapter.key", 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        curve_keys.read_key_pair(str(keys["dir"] / "adapter.key"))
