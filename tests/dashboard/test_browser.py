# SPDX-License-Identifier: Apache-2.0
"""The dashboard in a real browser: headless Chromium opens orbitd's page while a
client streams a token-collapse scenario, and the DevTools protocol checks what the
page drew: the charts, the state band turning CRITICAL, burn markers carrying their
reasons; then a scalar-only run and two runs side by side. Set
ORBIT_DASHBOARD_SCREENSHOT=PATH to keep a screenshot (docs/dashboard.png is one)."""

import os
import signal
import subprocess
import tempfile
import threading

import pytest

from orbitd_harness import Chromium, Orbitd, Trainer, stream_collapse

CHARTS = "Array.from(document.querySelectorAll('#charts .chart')).map(c => c.dataset.metric)"


@pytest.fixture
def orbitd():
    d = Orbitd("--mode", "active")
    yield d
    d.close()


@pytest.fixture
def browser():
    b = Chromium()
    yield b
    b.close()


def test_live_page_shows_collapse_critical_band_and_burn_markers(orbitd, browser):
    trainer = Trainer(orbitd.endpoint, "collapse")
    stream_collapse(trainer, healthy=60, collapsed=0)  # the page opens mid-run: these come from history
    browser.navigate(orbitd.http + "/?run=collapse")
    browser.wait_for("window.orbitDashboard && orbitDashboard.charts.length >= 5")
    browser.wait_for("document.getElementById('connection').textContent == 'live'")

    # The collapse arrives live, over the event stream.
    replies = []
    worker = threading.Thread(target=lambda: replies.extend(
        stream_collapse(trainer, healthy=0, collapsed=80, first_step=260, pause=0.01)))
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert any(r["type"] == "burn" for r in replies), "the scenario should make orbitd burn"

    bands = browser.wait_for("document.getElementById('timeline').dataset.bands.includes('CRITICAL') && "
                             "document.getElementById('timeline').dataset.bands")
    assert bands.startswith("STABLE:200-"), bands  # backfilled history first, then the live points
    browser.wait_for("document.querySelectorAll('#charts .burn-marker').length > 0")
    reasons = browser.eval("Array.from(document.querySelectorAll('#timeline .burn-marker')).map(m => m.dataset.reason)")
    assert reasons and all(reasons), reasons
    assert any("CRITICAL" in r or "WARNING" in r for r in reasons), reasons
    charts = browser.eval(CHARTS)
    for metric in ("entropy", "effective_rank", "dominant_ratio", "phi_proximity", "loss", "grad_norm", "lr_scale"):
        assert metric in charts, charts
    # Every point of the run reached the page, history and live together.
    assert browser.eval("orbitDashboard.runs.get('collapse').steps.length") == 140
    basin = browser.eval("document.querySelector('#summary [data-role=basin]').textContent")
    assert basin == "TOKEN_COLLAPSE", basin
    assert browser.eval("document.querySelectorAll('#spectrum .uplot').length") == 1
    assert browser.console == []

    shot = os.environ.get("ORBIT_DASHBOARD_SCREENSHOT") or os.path.join(tempfile.gettempdir(), "orbit-dashboard.png")
    browser.screenshot(shot)
    assert os.path.getsize(shot) > 10000


def test_scalar_only_run_and_side_by_side_comparison(orbitd, browser):
    scalars = Trainer(orbitd.endpoint, "scalars-only")
    for step in range(50):
        scalars.snapshot(step, 3.0 - 0.01 * step, 1.0)
    spectral = Trainer(orbitd.endpoint, "spectral")
    stream_collapse(spectral, healthy=50, collapsed=0, first_step=0)

    browser.navigate(orbitd.http + "/?run=scalars-only")
    browser.wait_for("window.orbitDashboard && orbitDashboard.charts.length >= 3")
    charts = browser.eval(CHARTS)
    assert charts == ["loss", "grad_norm", "lr_scale"], charts
    assert browser.eval("document.querySelector('#summary [data-role=basin]').textContent") == "UNKNOWN"
    assert browser.eval("document.getElementById('spectrum-box').hidden") is True

    browser.navigate(orbitd.http + "/?run=spectral&compare=scalars-only,spectral")
    browser.wait_for("window.orbitDashboard && orbitDashboard.charts.length >= 3 && "
                     "document.querySelectorAll('#summary .card').length == 2")
    loss_series = browser.eval("orbitDashboard.charts.find(c => c.def.key == 'loss').plot.series.map(s => s.label)")
    assert loss_series == ["step", "scalars-only", "spectral"], loss_series
    assert "entropy" in browser.eval(CHARTS)
    assert browser.console == []


@pytest.mark.skipif(not os.environ.get("ORBIT_TOOL"), reason="the orbit tool is not built")
def test_replay_serves_the_same_page_over_a_finished_journal(browser, tmp_path):
    # The live test's scenario (healthy steps, then an abrupt collapse at step 260:
    # the loss steps up and the spectrum's noise changes), which reaches CRITICAL. A
    # continuous 60 + 60 stream only reaches WARNING, live and replayed alike.
    journal = tmp_path / "journal"
    live = Orbitd("--mode", "active", "--journal-dir", str(journal))
    try:
        trainer = Trainer(live.endpoint, "finished")
        stream_collapse(trainer, healthy=60, collapsed=0)
        stream_collapse(trainer, healthy=0, collapsed=80, first_step=260)
        trainer.close()
        browser.navigate(live.http + "/?run=finished")
        browser.wait_for("window.orbitDashboard && orbitDashboard.charts.length >= 5")
        live_bands = browser.wait_for("document.getElementById('timeline').dataset.bands")
        live_burns = browser.eval("Array.from(document.querySelectorAll('#timeline .burn-marker')).map(m => m.dataset.reason)")
    finally:
        live.close()  # the run is over; only its journal is left
    assert "CRITICAL" in live_bands, live_bands

    server = subprocess.Popen([os.environ["ORBIT_TOOL"], "replay", str(journal), "--quiet", "--no-progress",
                               "--serve", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("serving http://"), line + server.stderr.read()
        url = line.split()[1]
        browser.navigate(url + "/?run=finished")
        browser.wait_for("window.orbitDashboard && orbitDashboard.charts.length >= 5")
        bands = browser.wait_for("document.getElementById('timeline').dataset.bands")
        assert bands == live_bands, (bands, live_bands)  # the replayed states are the journaled run's
        assert "CRITICAL" in bands, bands
        burns = browser.eval("Array.from(document.querySelectorAll('#timeline .burn-marker')).map(m => m.dataset.reason)")
        assert burns and burns == live_burns, (burns, live_burns)
        assert browser.eval("orbitDashboard.runs.get('finished').steps.length") == 140
        assert browser.eval("document.querySelectorAll('#spectrum .uplot').length") == 1
        assert "orbit replay" in browser.eval("document.getElementById('source').textContent")
        assert browser.console == []
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
