# SPDX-License-Identifier: Apache-2.0
"""hello.replies "news" (protocol/SPEC.md 3) against a real orbitd: a client that asks
gets every burn and every change of state, basin and forecast that a client with one
reply per snapshot gets, at the same steps, and no `state` reply that says nothing new
beyond a refresh every 10 snapshots; a client that does not ask (an older adapter)
still gets one reply per snapshot; a client takes news-only replies only from a
welcome that grants them."""

from __future__ import annotations

import msgpack

from conftest import wait_for
from orbit_adapter import OrbitClient, protocol as P
from test_controller_live import ACTIVE_CONFIG, control_status, drifting_spectrum
from test_ordinary_step import Router

STEPS = 400
REFRESH_SNAPSHOTS = 10  # daemon/sessions.hpp kNewsRefreshSnapshots


def snapshot(client: OrbitClient, step: int) -> None:
    """The drifting run of test_controller_live, with spectra on probe steps only (every
    10th, as the adapter sends them) and a loss that jumps for a while (scalar alarms)."""
    loss = 2.0 + 0.001 * step + (1.5 if 150 <= step < 170 else 0.0)
    client.send_snapshot(step, loss=loss, grad_norm=1.0 + (4.0 if 150 <= step < 170 else 0.0),
                         spectra={"hidden.0": drifting_spectrum(step)} if step % 10 == 0 else None)


def step_of(answer: dict) -> int:
    return answer.get("step", answer.get("for_step"))


def news_steps(answers: list[dict]) -> set[int]:
    """The steps whose answer must reach a news-only client: every burn, a state or
    basin other than the previous answer's, and a forecast (steps_to_danger) that
    appears or goes after a `state` answer (a burn carries no metrics to compare)."""
    out, last = set(), None
    for a in answers:
        forecast = "steps_to_danger" in a["metrics"] if a["type"] == "state" else None
        if (a["type"] == "burn" or last is None or (a["state"], a["basin"]) != last[:2]
                or None not in (forecast, last[2]) and forecast != last[2]):
            out.add(step_of(a))
        last = (a["state"], a["basin"], forecast)
    return out


def test_a_news_client_gets_every_burn_and_state_change_of_a_client_answered_every_snapshot(daemon_factory):
    orbitd = daemon_factory("tcp", ACTIVE_CONFIG).start()
    every = OrbitClient(orbitd.endpoint, "every", actuators=("lr",), base_lr=1e-3)
    news = OrbitClient(orbitd.endpoint, "news", actuators=("lr",), base_lr=1e-3, replies="news")
    got: dict[str, list[dict]] = {"every": [], "news": []}
    try:
        assert wait_for(lambda: [got[n].extend(c.poll()) for n, c in (("every", every), ("news", news))]
                        and every.registered and news.registered)
        assert news.news_only and not every.news_only
        for step in range(STEPS):
            snapshot(every, step)
            snapshot(news, step)

            def answered(step=step):
                got["every"].extend(every.poll())
                got["news"].extend(news.poll())
                return any(r.get("step", r.get("for_step")) == step for r in got["every"]
                           if r["type"] in ("state", "burn"))
            assert wait_for(answered), f"no answer to the every client's snapshot {step}"
        assert wait_for(lambda: control_status(orbitd.control)["stats"]["snapshots"] == 2 * STEPS)
        # Every snapshot is decided; what was sent for them arrives within a moment.
        wait_for(lambda: got["news"].extend(news.poll()), 0.5)
        status = control_status(orbitd.control)["stats"]
    finally:
        every.close()
        news.close()
    answers = {n: [r for r in rs if r["type"] in ("state", "burn")] for n, rs in got.items()}
    # One answer per snapshot for the client that did not ask.
    assert sorted(r.get("step", r.get("for_step")) for r in answers["every"]) == list(range(STEPS))
    burns = {n: [{k: v for k, v in r.items() if k != "run"} for r in rs if r["type"] == "burn"]
             for n, rs in answers.items()}
    assert burns["every"], "the drifting run got no burn: the test says nothing about burns"
    assert burns["news"] == burns["every"]
    required = news_steps(answers["every"])
    assert len({answers["every"][i]["state"] for i in range(STEPS)}) > 1, \
        "the state never changed: the test says nothing about changes"
    by_step = {step_of(a): a for a in answers["every"]}
    got_steps = {step_of(a) for a in answers["news"]}
    assert required <= got_steps, sorted(required - got_steps)
    for a in answers["news"]:  # and what it got is what the other client got at that step
        b = by_step[step_of(a)]
        assert (a["type"], a["state"], a["basin"]) == (b["type"], b["state"], b["basin"]), (a, b)
    # Fewer replies, but never more than REFRESH_SNAPSHOTS snapshots apart.
    steps = [step_of(r) for r in answers["news"]]
    assert len(steps) < STEPS // 2
    assert steps[0] == 0 and max(b - a for a, b in zip(steps, steps[1:])) <= REFRESH_SNAPSHOTS
    assert status["states_withheld"] == STEPS - len(steps)
    assert status["errors_sent"] == 0


def test_the_client_asks_for_news_only_when_told_and_takes_them_only_when_granted():
    for replies, granted, news_only in (("every", "news", False), ("news", None, False), ("news", "every", False),
                                        ("news", "news", True)):
        router = Router()
        client = OrbitClient(router.endpoint, "r", close_linger=0, replies=replies)
        try:
            hello = router.take()
            assert hello.get("replies") == (None if replies == "every" else "news")
            welcome = {"type": "welcome", "run": "r", "rank": 0, "session": "s", "version": 1,
                       "mode": "active", "snapshot_every": 1, "replies": granted}
            router.reply(P.encode(welcome))
            assert wait_for(lambda: client.poll() or client.registered)
            assert client.news_only is news_only, (replies, granted)
        finally:
            client.close()
            router.close()


def test_a_hello_without_replies_is_the_hello_of_before():
    """An adapter that does not ask sends the map it always sent (no `replies` key)."""
    router = Router()
    client = OrbitClient(router.endpoint, "r", close_linger=0)
    try:
        assert router.sock.poll(5000)
        hello = msgpack.unpackb(router.sock.recv_multipart()[-1], raw=False)
        assert hello["type"] == "hello" and "replies" not in hello
    finally:
        client.close()
        router.close()


def test_a_news_reply_refresh_keeps_the_adapter_connected(daemon_factory):
    """Scalar snapshots that never change anything still get a reply every 10th, so the
    adapter's liveness clock (a reply within 30 s) and its metrics keep up."""
    orbitd = daemon_factory("tcp").start()
    client = OrbitClient(orbitd.endpoint, "quiet", replies="news")
    try:
        assert wait_for(lambda: client.poll() is not None and client.registered)
        assert client.news_only
        seen = []
        for step in range(1, 31):
            client.send_snapshot(step, loss=2.0, grad_norm=1.0)
            assert wait_for(lambda: control_status(orbitd.control)["stats"]["snapshots"] == step)
            seen.extend(r["step"] for r in client.poll() if r["type"] == "state")
        wait_for(lambda: seen.extend(r["step"] for r in client.poll() if r["type"] == "state"), 0.5)
        assert seen == [1, 11, 21], seen
        assert client.stats.states == 3 and client.stats.snapshots == 30
    finally:
        client.close()


def test_orbit_asks_for_news_and_an_old_style_orbit_is_answered_every_snapshot(orbitd):
    """Orbit asks by default (and orbitd grants it); `client_options={"replies": "every"}`
    keeps one reply per snapshot."""
    import torch
    from torch_fixtures import TinyLM
    from orbit_adapter import Orbit
    for replies, news_only in ((None, True), ("every", False)):
        model = TinyLM()
        orbit = Orbit(endpoint=orbitd.endpoint, run=f"default-{replies}",
                      client_options={} if replies is None else {"replies": replies})
        orbit.attach(model, torch.optim.SGD(model.parameters(), lr=0.1))
        try:
            assert wait_for(lambda: (orbit.poll(), orbit._link.client.registered)[1])
            assert orbit._link.client.news_only is news_only
        finally:
            orbit.close()


def test_replies_is_every_or_news():
    import pytest
    hello = {"type": "hello", "run": "r", "rank": 0, "world_size": 1, "adapter": "a",
             "adapter_version": "0", "versions": [1]}
    assert P.decode(P.encode({**hello, "replies": "news"}))["replies"] == "news"
    assert "replies" not in P.decode(P.encode(hello))
    with pytest.raises(P.ProtocolError) as e:
        P.decode(P.encode({**hello, "replies": "some"}))
    assert (e.value.code, e.value.ref) == ("invalid_field", "replies")
    with pytest.raises(ValueError):
        OrbitClient("inproc://nowhere", "r", replies="some")
