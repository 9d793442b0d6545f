#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The dashboard's cost on snapshot handling: p50 round trip of one run's snapshots
(64-value hidden spectrum, like a probe step) with 5 event-stream clients attached
(reading as a browser does), with 5 that never read (stalled browsers), and with
none, in alternating blocks of the same run so machine load drifts evenly over the
three. Writes bench/results/dashboard.json.

  ORBITD=build/daemon/orbitd /usr/bin/python3 bench/dashboard/overhead.py [--blocks 6] [--per-block 400]
"""

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "adapters", "python"), os.path.join(ROOT, "tests", "dashboard")]
from orbitd_harness import Orbitd, Trainer, spectrum  # noqa: E402
import numpy as np  # noqa: E402


class EventClient:
    """A raw GET /api/events; `reading` drains it on a thread like a browser, else it stalls."""

    def __init__(self, http, reading):
        host, port = http.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        if not reading:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.bytes = 0
        self.stop = False
        self.thread = threading.Thread(target=self._drain, daemon=True) if reading else None
        if self.thread:
            self.thread.start()

    def _drain(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.bytes += len(chunk)

    def close(self):
        self.stop = True
        if self.thread:
            self.thread.join()
        self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=6, help="blocks per condition (alternating)")
    ap.add_argument("--per-block", type=int, default=400, help="snapshots per block")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "dashboard.json"))
    args = ap.parse_args()
    os.environ.setdefault("ORBITD", os.path.join(ROOT, "build", "daemon", "orbitd"))

    orbitd = Orbitd("--mode", "active")
    rng = np.random.default_rng(0)
    trainer = Trainer(orbitd.endpoint, "bench-dashboard")
    conditions = {"none": [], "5_reading": [], "5_stalled": []}
    step = 0
    received = 0
    try:
        for _ in range(100):  # warm-up: the run's filters fill, the page's history grows
            trainer.snapshot(step, 2.5, 1.0, spectrum(rng, False))
            step += 1
        for _ in range(args.blocks):
            for name in conditions:
                clients = [] if name == "none" else [EventClient(orbitd.http, name == "5_reading") for _ in range(5)]
                time.sleep(0.2)  # attached before the block starts
                for _ in range(args.per_block):
                    _, seconds = trainer.snapshot(step, 2.5, 1.0, spectrum(rng, False))
                    conditions[name].append(seconds * 1e6)
                    step += 1
                for c in clients:
                    received += c.bytes
                    c.close()
        metrics = {}
        import urllib.request
        body = urllib.request.urlopen(orbitd.http + "/metrics", timeout=5).read().decode()
        for line in body.splitlines():
            if line.startswith("orbitd_dashboard_events_dropped_total "):
                metrics["events_dropped_total"] = float(line.split()[1])
    finally:
        trainer.close()
        orbitd.close()

    def summary(xs):
        xs = sorted(xs)
        return {"n": len(xs), "p50_us": round(statistics.median(xs), 1),
                "p90_us": round(xs[int(0.9 * (len(xs) - 1))], 1), "p99_us": round(xs[int(0.99 * (len(xs) - 1))], 1),
                "mean_us": round(statistics.fmean(xs), 1)}

    results = {name: summary(xs) for name, xs in conditions.items()}
    base = results["none"]["p50_us"]
    out = {
        "benchmark": "dashboard_overhead",
        "what": "round trip of one snapshot (hello'd run, 64-value hidden spectrum) over tcp loopback, "
                "python DEALER client; orbitd --http with 0 or 5 GET /api/events clients attached",
        "machine": f"{platform.node()} {os.cpu_count()} cpus, {platform.platform()}",
        "blocks": args.blocks, "per_block": args.per_block,
        "results": results,
        "p50_ratio_5_reading_vs_none": round(results["5_reading"]["p50_us"] / base, 3),
        "p50_ratio_5_stalled_vs_none": round(results["5_stalled"]["p50_us"] / base, 3),
        "event_bytes_read_by_reading_clients": received,
        **metrics,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"{'condition':<12} {'n':>6} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9}")
    for name, r in results.items():
        print(f"{name:<12} {r['n']:>6} {r['p50_us']:>9} {r['p90_us']:>9} {r['p99_us']:>9}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
