# SPDX-License-Identifier: Apache-2.0
"""A real orbitd with HTTP on loopback, a raw protocol client that streams a
collapse scenario into it, and a headless Chromium driven over the DevTools
protocol: the parts the dashboard's browser test and page measurements share."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import numpy as np
import websocket  # Debian python3-websocket (websocket-client)
import zmq

from orbit_adapter import protocol as P


class Orbitd:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="orbit-dash-")
        ready = os.path.join(self.dir, "ready.json")
        cmd = [os.environ["ORBITD"], "--ready-file", ready, "--log-level", "warn", "--http", "127.0.0.1:0",
               "--allow-exposed-control"]
        for flag in ("--endpoint", "--telemetry", "--control"):
            cmd += [flag, "tcp://127.0.0.1:*"]
        self.log = open(os.path.join(self.dir, "orbitd.log"), "w")
        self.proc = subprocess.Popen(cmd + list(args), stderr=self.log)
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("orbitd did not start; log in " + self.log.name)
            time.sleep(0.02)
        time.sleep(0.05)  # the file is written whole before it is renamed; read it once complete
        info = json.load(open(ready))
        self.endpoint, self.http = info["endpoint"], info["http"]

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def spectrum(rng, collapsed):
    """64 eigenvalues: a healthy power law, or one direction that took over."""
    v = 1.0 / np.arange(1, 65) ** 0.6
    if collapsed:
        v = v * 0.02
        v[0] = 1.0
    return (v * (1 + 0.03 * rng.standard_normal(64))).astype(np.float32).clip(1e-6)


class Trainer:
    """A DEALER that says hello and sends snapshots, one reply each (like an adapter, minus torch)."""

    def __init__(self, endpoint, run):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.run = run
        self.call({"type": "hello", "run": run, "rank": 0, "world_size": 1, "adapter": "dashboard-test",
                   "adapter_version": "0", "versions": [1], "actuators": ["lr"]})

    def call(self, message):
        t0 = time.perf_counter()
        self.sock.send(P.encode(message))
        if not self.sock.poll(10000):
            raise RuntimeError("orbitd did not reply within 10 s")
        reply = P.decode(self.sock.recv())
        return reply, time.perf_counter() - t0

    def snapshot(self, step, loss, grad_norm, spec=None):
        m = {"type": "snapshot", "run": self.run, "rank": 0, "step": step, "time": 1.7e9 + step,
             "loss": loss, "grad_norm": grad_norm}
        if spec is not None:
            m["spectra"] = {"hidden.0": spec}
        return self.call(m)

    def close(self):
        self.sock.close()


def stream_collapse(trainer, healthy=120, collapsed=80, first_step=200, probe_every=1, pause=0.0, seed=0):
    """Healthy steps, then a token collapse (one eigenvalue takes over, loss and
    grad norm climb). Returns the replies."""
    rng = np.random.default_rng(seed)
    replies = []
    for i in range(healthy + collapsed):
        step = first_step + i
        bad = i >= healthy
        spec = spectrum(rng, bad) if i % probe_every == 0 else None
        loss = 2.5 - 0.002 * i + (0.05 * (i - healthy) if bad else 0) + 0.01 * rng.standard_normal()
        grad = 1.0 + (0.2 * (i - healthy) if bad else 0) + 0.05 * abs(rng.standard_normal())
        replies.append(trainer.snapshot(step, loss, grad, spec)[0])
        if pause:
            time.sleep(pause)
    return replies


class Chromium:
    """Headless Debian chromium with a DevTools websocket to its one page."""

    def __init__(self, width=1400, height=1500):
        self.profile = tempfile.mkdtemp(prefix="orbit-chromium-")
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if not binary:
            raise RuntimeError("chromium is not installed (scripts/deps installs it)")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(open(port_file).read().split()[0])
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(p for p in pages if p.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.console = []
        self.send("Runtime.enable")
        self.send("Page.enable")

    def send(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(msg["params"]["exceptionDetails"].get("text", "") + " " +
                                    json.dumps(msg["params"]["exceptionDetails"].get("exception", {}).get("description", "")))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def navigate(self, url):
        self.send("Page.navigate", url=url)

    def eval(self, expression, await_promise=False):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page never satisfied: {expression}")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
