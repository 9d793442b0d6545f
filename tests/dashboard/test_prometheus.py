# SPDX-License-Identifier: Apache-2.0
"""deploy/prometheus.yml and deploy/grafana/orbit.json against a real orbitd:
Debian's prometheus scrapes it for a bounded time (under 30 s) and its HTTP API
must return the run's series; promtool checks the config and the exposition; every
query of the Grafana dashboard must evaluate and name only families orbitd serves."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from orbitd_harness import Orbitd, Trainer, stream_collapse

SOURCE = os.environ.get("ORBIT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = pytest.mark.skipif(not shutil.which("prometheus") or not shutil.which("promtool"),
                                reason="Debian's prometheus is not installed (scripts/deps installs it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.load(urllib.request.urlopen(url, timeout=5))


def test_prometheus_scrapes_orbitd_and_the_grafana_queries_evaluate():
    orbitd = Orbitd("--mode", "active")
    work = tempfile.mkdtemp(prefix="orbit-prom-")
    prom = None
    try:
        trainer = Trainer(orbitd.endpoint, "scraped")
        stream_collapse(trainer, healthy=40, collapsed=4)  # the collapse begins: a trend heads for danger
        body = urllib.request.urlopen(orbitd.http + "/metrics", timeout=5).read()
        forecast = re.search(rb'^orbit_run_steps_to_danger\{run="scraped"\} (\S+)$', body, re.M)
        assert forecast, body.decode()
        last = json.load(urllib.request.urlopen(orbitd.http + "/api/runs/scraped/history", timeout=5))["points"][-1]
        assert float(forecast.group(1)) == pytest.approx(last["metrics"]["steps_to_danger"]), last
        served = set(re.findall(rb"^# TYPE (\w+) ", body, re.M))  # a family without samples is not listed later
        check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=20)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        stream_collapse(trainer, healthy=0, collapsed=36, first_step=244)
        body = urllib.request.urlopen(orbitd.http + "/metrics", timeout=5).read()
        check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=20)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        served |= set(re.findall(rb"^# TYPE (\w+) ", body, re.M))
        # Deep in the collapse no trend is heading for a danger line any more: the
        # forecast is the last step's only, never held from an earlier one.
        assert b"orbit_run_steps_to_danger{" not in body

        # The shipped config, pointed at this orbitd and scraping every second.
        shipped = open(os.path.join(SOURCE, "deploy", "prometheus.yml")).read()
        check = subprocess.run(["promtool", "check", "config", os.path.join(SOURCE, "deploy", "prometheus.yml")],
                               capture_output=True, timeout=20)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        assert "127.0.0.1:9464" in shipped
        config = shipped.replace("127.0.0.1:9464", orbitd.http.removeprefix("http://"))
        config = config.replace("scrape_interval: 5s", "scrape_interval: 1s")
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(config)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        prom = subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml",
                                 f"--storage.tsdb.path={work}/data", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
        deadline = time.monotonic() + 25
        result = []
        while time.monotonic() < deadline:
            try:
                result = query(base, 'orbit_run_step{run="scraped"}')["data"]["result"]
                if result:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert result, "prometheus did not scrape orbit_run_step within 25 s; log in " + work
        assert float(result[0]["value"][1]) == 279.0  # the scenario's last step
        up = query(base, 'up{job="orbitd"}')["data"]["result"]
        assert up and up[0]["value"][1] == "1"
        entropy = query(base, 'orbit_run_spectral_entropy_nats{run="scraped",spectrum="aggregate"}')["data"]["result"]
        assert entropy and float(entropy[0]["value"][1]) < 1.5  # collapsed by the end

        dashboard = json.load(open(os.path.join(SOURCE, "deploy", "grafana", "orbit.json")))
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        assert len(exprs) >= 10
        for expr in exprs:
            for name in set(re.findall(r"\b(orbitd?_\w+)", expr)):
                assert name.encode() in served, f"dashboard query names {name}, which orbitd does not serve"
            reply = query(base, expr.replace("$run", ".*"))
            assert reply["status"] == "success", (expr, reply)
    finally:
        if prom:
            prom.terminate()
            prom.wait(10)
        orbitd.close()
        shutil.rmtree(work, ignore_errors=True)
