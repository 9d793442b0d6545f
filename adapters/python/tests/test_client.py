# SPDX-License-Identifier: Apache-2.0
"""OrbitClient against a real orbitd process (issue 2, section 4): round trip with
metrics checked against numpy, errors, telemetry, heartbeats, bye, drop counting
without a daemon, and the restart case."""

from __future__ import annotations

import gc
import json
import math
import os
import resource
import time

import msgpack
import numpy as np
import pytest
import zmq

from conftest import TEST_CONFIG, VECTORS, wait_for
from orbit_adapter import OrbitClient, protocol as P

PHI = (1 + 5 ** 0.5) / 2


def reference_metrics(values) -> dict:
    """protocol/SPEC.md 5.4.1, computed independently with numpy in float64."""
    v = np.asarray(values, dtype=np.float32).astype(np.float64)
    v = np.abs(v[np.isfinite(v)])
    p = v / v.sum()
    nz = p[p > 0]
    h = float(-(nz * np.log(nz)).sum())
    top = np.sort(v)[::-1]
    return {"entropy": h, "effective_rank": math.exp(h),
            "normalized_entropy": h / math.log(v.size) if v.size > 1 else 0.0,
            "dominant_ratio": float(top[0] / v.sum()),
            "phi_proximity": max(0.0, 1 - abs(top[0] / top[1] - PHI) / PHI)}


def poll_until(client: OrbitClient, predicate, timeout: float = 5.0) -> list[dict]:
    """Polls (without blocking in the client) until predicate(all replies so far)."""
    seen: list[dict] = []

    def step():
        seen.extend(client.poll())
        return predicate(seen)

    assert wait_for(step, timeout), f"gave up after {timeout} s; replies: {seen}"
    return seen


def of_type(replies, kind):
    return [r for r in replies if r["type"] == kind]


class RawDealer:
    """A bare DEALER for bytes the client would never send."""

    def __init__(self, endpoint: str):
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def ask(self, data: bytes, timeout: float = 5.0) -> dict:
        self.socket.send(data)
        if not self.socket.poll(int(timeout * 1000)):
            raise AssertionError(f"no reply to {data[:40]!r}")
        return P.decode(self.socket.recv())

    def close(self):
        self.socket.close()


@pytest.fixture
def raw(orbitd):
    dealer = RawDealer(orbitd.endpoint)
    yield dealer
    dealer.close()


# ------------------------------------------------------------ round trip

def test_hello_welcome(orbitd):
    with OrbitClient(orbitd.endpoint, "rt-hello", rank=1, world_size=2, domains=("web", "code"),
                     actuators=("lr", "domain_weights"), base_lr=3e-4) as client:
        replies = poll_until(client, lambda r: of_type(r, "welcome"))
        welcome = of_type(replies, "welcome")[0]
        assert (welcome["run"], welcome["rank"], welcome["version"]) == ("rt-hello", 1, 1)
        assert welcome["mode"] == "monitor"  # the test config's mode
        assert client.registered and client.session == welcome["session"]
        assert client.snapshot_every == welcome["snapshot_every"] == 1
        assert client.mode == "monitor"


def test_snapshots_get_state_replies_with_metrics(orbitd):
    rng = np.random.default_rng(3)
    spectra = [np.sort(rng.gamma(0.7, 1.0, 64))[::-1].astype(np.float32) for _ in range(5)]
    with OrbitClient(orbitd.endpoint, "rt-metrics") as client:
        for step, s in enumerate(spectra):
            assert client.send_snapshot(step, 2.5 - 0.1 * step, grad_norm=1.0, lr=1e-3,
                                        spectra={"hidden.0": s})
        replies = poll_until(client, lambda r: len(of_type(r, "state")) == len(spectra))
        states = of_type(replies, "state")
        assert [s["step"] for s in states] == list(range(len(spectra)))
        assert all(s["run"] == "rt-metrics" and s["rank"] == 0 for s in states)
        assert all(s["state"] and s["basin"] for s in states)
        for state, s in zip(states, spectra):
            expected = reference_metrics(s)
            for name, value in expected.items():
                # Per spectrum, and the aggregate over the `hidden` spectra (just one here).
                for key in (f"hidden.0.{name}", name):
                    assert key in state["metrics"], (key, sorted(state["metrics"]))
                    assert state["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        assert client.stats.states == len(spectra)
        assert client.stats.dropped == 0


def test_lists_and_arrays_give_the_same_metrics(orbitd):
    values = [4.0, 2.5, 1.5, 1.0, 0.5]
    with OrbitClient(orbitd.endpoint, "rt-lists") as client:
        client.send_snapshot(0, 1.0, spectra={"s": values})
        client.send_snapshot(1, 1.0, spectra={"s": np.array(values, dtype=np.float64)})
        states = of_type(poll_until(client, lambda r: len(of_type(r, "state")) == 2), "state")
    # The spectrum's metrics; scalar ones (loss_jump) need a history and differ by step.
    spectral = [{k: v for k, v in s["metrics"].items() if k.startswith("s.")} for s in states]
    assert len(spectral[0]) == 5 and spectral[0] == spectral[1]
    assert states[0]["metrics"]["s.dominant_ratio"] == pytest.approx(4.0 / 9.5)


def test_state_for_the_most_spectra_a_snapshot_may_carry_decodes(orbitd):
    # 64 spectra (limits.max_spectra) give the daemon 5 metrics each: the state
    # reply carries more than limits.max_scalars metrics and must still decode.
    spectra = {f"hidden.{i}": np.linspace(2.0, 0.1, 8) for i in range(64)}
    with OrbitClient(orbitd.endpoint, "rt-many") as client:
        client.send_snapshot(0, 1.0, spectra=spectra)
        states = of_type(poll_until(client, lambda r: of_type(r, "state")), "state")
        assert len(states[0]["metrics"]) > 5 * 64
        assert client.stats.decode_errors == 0


def test_scalar_only_snapshots_and_non_finite_loss(orbitd):
    with OrbitClient(orbitd.endpoint, "rt-scalars") as client:
        client.send_snapshot(0, 3.0, grad_norm=0.5)
        client.send_snapshot(1, float("nan"), grad_norm=float("inf"))
        client.send_snapshot(2, float("-inf"))
        states = of_type(poll_until(client, lambda r: len(of_type(r, "state")) == 3), "state")
        assert [s["step"] for s in states] == [0, 1, 2]
        assert client.stats.errors == 0


def test_tcp_transport(orbitd_tcp):
    assert orbitd_tcp.endpoint.startswith("tcp://127.0.0.1:")
    with OrbitClient(orbitd_tcp.endpoint, "rt-tcp") as client:
        client.send_snapshot(0, 1.0, spectra={"s": [3.0, 2.0, 1.0]})
        poll_until(client, lambda r: of_type(r, "state"))


# ------------------------------------------------------------ errors

def test_bad_field_is_an_error_reply_and_nothing_else(orbitd):
    with OrbitClient(orbitd.endpoint, "err-field") as client:
        client.send_snapshot(0, 1.0, loop_rate=1.5)
        client.send_snapshot(1, 1.0, spectra={"big": np.ones(5000, dtype=np.float32)})
        client.send_snapshot(2, 1.0)
        replies = poll_until(client, lambda r: of_type(r, "state"))
    errors = of_type(replies, "error")
    assert [(e["code"], e.get("ref")) for e in errors] == [("invalid_field", "loop_rate"),
                                                           ("too_large", "spectra.big")]
    assert all(e["message"] for e in errors)
    assert [s["step"] for s in of_type(replies, "state")] == [2]


def test_unknown_type_and_version(raw):
    reply = raw.ask(msgpack.packb({"v": 1, "type": "launch"}))
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "unknown_type", "type")
    reply = raw.ask(msgpack.packb({"v": 2, "type": "heartbeat"}))
    assert (reply["code"], reply["ref"]) == ("unsupported_version", "v")
    reply = raw.ask(b"\xc1not msgpack")
    assert reply["code"] == "bad_message"
    # A daemon-to-adapter type sent to the daemon.
    reply = raw.ask((VECTORS / "state.msgpack").read_bytes())
    assert (reply["code"], reply["ref"]) == ("unknown_type", "type")


def test_not_registered(raw):
    snap = P.encode({"type": "snapshot", "run": "never-said-hello", "rank": 0, "step": 1,
                     "time": time.time(), "loss": 1.0})
    reply = raw.ask(snap)
    assert (reply["type"], reply["code"]) == ("error", "not_registered")
    hello = P.encode({"type": "hello", "run": "never-said-hello", "rank": 0, "world_size": 1,
                      "adapter": "raw", "adapter_version": "0", "versions": [1]})
    assert raw.ask(hello)["type"] == "welcome"
    assert raw.ask(snap)["type"] == "state"


def test_every_invalid_vector_gets_its_error_from_the_daemon(raw):
    names = sorted(p.stem for p in (VECTORS / "invalid").glob("*.msgpack"))
    assert len(names) >= 40
    for name in names:
        data = (VECTORS / "invalid" / f"{name}.msgpack").read_bytes()
        meta = json.loads((VECTORS / "invalid" / f"{name}.json").read_text())
        if not data:
            continue  # an empty frame is still one frame, but see test_empty_frame
        reply = raw.ask(data)
        assert reply["type"] == "error", name
        assert (reply["code"], reply.get("ref")) == (meta["code"], meta["ref"]), name


def test_empty_frame(raw):
    reply = raw.ask(b"")
    assert reply["code"] == "bad_message"


def test_client_says_hello_again_after_not_registered(daemon_factory):
    # The session expires behind the client's back (0.3 s without a message). A bye
    # from another connection cannot close it: sessions belong to their connection.
    config = TEST_CONFIG.replace("session_timeout_s = 60.0", "session_timeout_s = 0.3")
    assert config != TEST_CONFIG
    orbitd = daemon_factory(config=config).start()
    with OrbitClient(orbitd.endpoint, "err-rehello") as client:
        client.send_snapshot(0, 1.0)
        poll_until(client, lambda r: of_type(r, "state"))
        time.sleep(1.0)
        client.send_snapshot(1, 1.0)
        # The welcome may arrive within the same poll() that answered the error.
        replies = poll_until(client, lambda r: of_type(r, "error") and of_type(r, "welcome"))
        assert of_type(replies, "error")[0]["code"] == "not_registered"
        assert client.stats.reconnect_hellos == 1
        assert client.registered
        client.send_snapshot(2, 1.0)
        states = of_type(poll_until(client, lambda r: of_type(r, "state")), "state")
        assert states[0]["step"] == 2


# ------------------------------------------------------------ heartbeat, bye, telemetry

def test_heartbeat_when_quiet(orbitd):
    with OrbitClient(orbitd.endpoint, "hb", heartbeat_interval=0.05) as client:
        poll_until(client, lambda r: of_type(r, "welcome"))
        time.sleep(0.08)
        replies = poll_until(client, lambda r: of_type(r, "heartbeat"), timeout=2.0)
        beat = of_type(replies, "heartbeat")[0]
        assert (beat.get("run"), beat.get("rank")) == ("hb", 0)
        assert client.stats.heartbeats_sent >= 1


def test_close_says_bye(orbitd):
    client = OrbitClient(orbitd.endpoint, "bye-run")
    poll_until(client, lambda r: of_type(r, "welcome"))
    for step in range(50):
        assert client.send_snapshot(step, 1.0, spectra={"s": np.ones(64)})
    client.close()
    assert client.closed
    # orbitd echoed the ping sent after the bye: it had every snapshot and the bye
    # when close returned, and the session is closed.
    assert client.stats.close_confirmed == 1
    stats = orbitd.command("status")["stats"]
    assert (stats["byes"], stats["sessions_closed"], stats["sessions_active"]) == (1, 1, 0)
    assert client.poll() == []
    with pytest.raises(RuntimeError):
        client.send_snapshot(0, 1.0)


def test_telemetry_is_published(orbitd):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"tele-run")
    sub.connect(orbitd.telemetry)
    try:
        with OrbitClient(orbitd.endpoint, "tele-run") as client:
            poll_until(client, lambda r: of_type(r, "welcome"))
            time.sleep(0.2)  # a SUB joins late: let the subscription reach the PUB

            def published():
                client.send_snapshot(7, 1.25, spectra={"s": [2.0, 1.0]})
                client.poll()
                if sub.poll(50):
                    return sub.recv_multipart()
                return None

            frames = wait_for(published, timeout=5.0)
        assert frames, "no telemetry"
        topic, body = frames
        assert topic == b"tele-run"
        t = P.decode(body)
        assert (t["type"], t["run"], t["step"], t["mode"]) == ("telemetry", "tele-run", 7, "monitor")
        assert t["metrics"]
    finally:
        sub.close()


# ------------------------------------------------------------ never blocking

class CallTimer:
    """Wall time of every client call, and what the thread's context switches say
    about it. A call that waits for anything (a blocking send, a lock, I/O) makes
    a *voluntary* switch; a call that is merely preempted because other processes
    want the CPU (a loaded 2-core CI machine) makes only *involuntary* ones, and
    time the hypervisor steals from a virtual machine shows as neither: so the
    call's own CPU time is kept too."""

    def __init__(self):
        # ms, voluntary, involuntary, name, thread CPU ms
        self.calls: list[tuple[float, int, int, str, float]] = []

    def __call__(self, fn, *args, **kwargs):
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter() - t0
        cpu = time.thread_time() - c0
        r1 = resource.getrusage(resource.RUSAGE_THREAD)
        self.calls.append((elapsed * 1e3, r1.ru_nvcsw - r0.ru_nvcsw, r1.ru_nivcsw - r0.ru_nivcsw,
                           getattr(fn, "__name__", "?"), cpu * 1e3))
        return result

    def summary(self) -> str:
        ms = np.array([c[0] for c in self.calls])
        slow = [c for c in self.calls if c[0] >= 1.0]
        return (f"{len(ms)} calls, p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms, "
                f"max {ms.max():.3f} ms; over 1 ms: {slow}")

    def assert_never_blocked(self, limit_ms: float = 1.0, wait_ms: float = 5.0,
                             stall_ms: float = 50.0) -> None:
        """No call blocked on the daemon, and calls stay under limit_ms.

        Blocking on the daemon (a send waiting for a dead or slow peer) lasts at
        least a reconnect interval (100 ms) and makes a voluntary context switch.
        A call may still switch voluntarily for microseconds without waiting on
        the daemon: libzmq's internal mailbox lock is shared with its I/O thread,
        which is busy reconnecting exactly when the daemon restarts (CI saw one
        1.2 ms send with 0.25 ms of CPU and one voluntary switch). So a voluntary
        switch fails the test only in a call that took wait_ms or more. On a
        shared virtual machine a call can take a few ms of wall time without
        waiting (the hypervisor or other test processes took the CPU), so the
        1 ms rule is checked on the 99th percentile, slow calls must stay rare,
        and no single call may stall for stall_ms."""
        ms = np.array([c[0] for c in self.calls])
        waited = [c for c in self.calls if c[1] > 0 and c[0] >= wait_ms]
        assert not waited, f"calls that waited: {waited}; {self.summary()}"
        # A call that made no voluntary switch cannot have waited on anything: its wall
        # time over its CPU time is preemption (seen at load 28: 1.7 ms wall, 0.12 ms
        # CPU, one involuntary switch). The 1 ms rule counts those calls by CPU time.
        own = np.array([c[0] if c[1] > 0 else c[4] for c in self.calls])
        assert np.percentile(own, 99) < limit_ms, self.summary()
        slow = [c for c, t in zip(self.calls, own) if t >= limit_ms]
        assert len(slow) <= max(5, len(self.calls) // 100), self.summary()  # slow calls stay rare
        assert ms.max() < stall_ms, self.summary()


def test_call_timer_catches_a_call_that_blocks():
    """The check above must fail when a call really waits: here a blocking recv
    on a socket nobody sends to, bounded by RCVTIMEO the way a blocking client
    would be stuck until the daemon answered."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.set(zmq.LINGER, 0)
    sock.set(zmq.RCVTIMEO, 20)
    sock.connect("tcp://127.0.0.1:9")
    timed = CallTimer()
    try:
        for _ in range(10):
            timed(lambda: None)

        def blocking_recv():
            try:
                sock.recv()
            except zmq.Again:
                pass
        timed(blocking_recv)
        with pytest.raises(AssertionError, match="calls that waited"):
            timed.assert_never_blocked()
    finally:
        sock.close(0)
        ctx.term()


@pytest.mark.parametrize("endpoint", ["ipc:///tmp/orbit-py-nobody-{pid}/a.sock", "tcp://127.0.0.1:9"])
def test_drops_are_counted_without_a_daemon(endpoint):
    endpoint = endpoint.format(pid=os.getpid())
    timed = CallTimer()
    client = OrbitClient(endpoint, "no-daemon", queue_limit=10)  # one-time setup, not a step call
    results = [timed(client.send_snapshot, i, 1.0, spectra={"s": np.ones(64)}) for i in range(200)]
    replies = timed(client.poll)
    timed(client.close)
    stats = client.stats
    assert replies == []
    assert results.count(False) > 150
    assert stats.dropped == results.count(False) + 1  # the bye finds the queue full too
    assert stats.sent + stats.dropped == 1 + 200 + 1  # hello, snapshots, bye (heartbeats: none due)
    assert stats.snapshots == results.count(True)
    timed.assert_never_blocked()


def test_restart(daemon_factory):
    """Kill -9 orbitd while the client streams: no call takes more than 1 ms, and
    streaming resumes with state replies once orbitd is back on the same endpoint."""
    daemon = daemon_factory().start()
    client = OrbitClient(daemon.endpoint, "restart-run", queue_limit=100, rehello_interval=0.2)
    timed = CallTimer()
    states_before, states_after = [], []
    step = 0
    killed_at_step = restarted_at = None
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection pause is not the client's doing
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            timed(client.send_snapshot, step, 2.0, spectra={"s": [3.0, 2.0, 1.0]})
            for r in timed(client.poll):
                if r["type"] == "state":
                    (states_after if killed_at_step is not None and r["step"] > killed_at_step
                     else states_before).append(r["step"])
            step += 1
            now = time.monotonic()
            if killed_at_step is None and len(states_before) >= 50:
                daemon.kill()
                killed_at_step, killed_time = step, now
            elif killed_at_step is not None and restarted_at is None and now - killed_time > 0.5:
                daemon.start(same_endpoints=True)  # blocks here, not inside a client call
                restarted_at = step
            elif states_after and len(states_after) >= 20:
                break
            time.sleep(0.002)
    finally:
        if gc_was_enabled:
            gc.enable()
        client.close()
    stats = client.stats
    summary = f"{timed.summary()}; {stats}"
    print(summary)
    assert killed_at_step is not None and restarted_at is not None, summary
    assert len(states_after) >= 20, summary
    assert stats.reconnect_hellos >= 1, summary
    assert stats.welcomes >= 2, summary
    timed.assert_never_blocked()


def test_a_message_over_the_daemons_limit_is_refused_locally(daemon_factory):
    """Issue 16 item 7: the daemon announces its limit in welcome; a larger message
    is not sent (far over it ZeroMQ would drop the connection unannounced), the
    call returns False with a reason and a counter, and the session keeps working."""
    config = TEST_CONFIG.replace("[limits]\n", "[limits]\nmax_message_bytes = 65536\n")
    daemon = daemon_factory(config=config).start()
    with OrbitClient(daemon.endpoint, "too-big") as client:
        welcome = of_type(poll_until(client, lambda r: of_type(r, "welcome")), "welcome")[0]
        assert welcome["max_message_bytes"] == 65536
        assert client.max_message_bytes == 65536
        big = np.linspace(1.0, 2.0, 4000, dtype=np.float32)  # 16 kB per spectrum
        spectra = {f"s{i}": big for i in range(8)}           # 128 kB in all
        assert client.send_snapshot(1, 2.0, spectra=spectra) is False
        assert client.stats.oversized == 1
        assert "65536" in client.last_error and "max_message_bytes" in client.last_error
        assert client.send_snapshot(2, 2.0, spectra={"s": [3.0, 2.0, 1.0]})
        states = of_type(poll_until(client, lambda r: of_type(r, "state")), "state")
        assert [s["step"] for s in states] == [2]  # nothing came back for the refused one
        assert client.stats.errors == 0
