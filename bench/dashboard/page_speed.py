#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""How the dashboard page's charts hold up with long runs: in headless Chromium,
on the page orbitd serves, window.orbitBench(N) (web/app.js) builds a metric chart
of N points (zone bands, state bands, 50 burn markers) and times create,
setData + redraw, a cursor move and a zoom. Writes bench/results/dashboard_page.json.

  ORBITD=build/daemon/orbitd /usr/bin/python3 bench/dashboard/page_speed.py [--points 10000 100000 1000000]
"""

import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "adapters", "python"), os.path.join(ROOT, "tests", "dashboard")]
from orbitd_harness import Chromium, Orbitd  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, nargs="+", default=[10000, 100000, 1000000])
    ap.add_argument("--repeats", type=int, default=3, help="runs per size; the median of each figure is kept")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "dashboard_page.json"))
    args = ap.parse_args()
    os.environ.setdefault("ORBITD", os.path.join(ROOT, "build", "daemon", "orbitd"))
    orbitd = Orbitd()
    browser = Chromium()
    rows = []
    try:
        browser.navigate(orbitd.http + "/")
        browser.wait_for("typeof window.orbitBench === 'function' && typeof uPlot === 'function'")
        for n in args.points:
            runs = [browser.eval(f"orbitBench({n})", await_promise=True) for _ in range(args.repeats)]
            row = {"points": n}
            for k in ("create_ms", "setdata_redraw_ms", "cursor_move_ms", "zoom_ms"):
                row[k] = round(sorted(r[k] for r in runs)[len(runs) // 2], 2)
            rows.append(row)
            print(row)
        version = subprocess.run([browser.proc.args[0], "--version"], capture_output=True, text=True).stdout.strip()
    finally:
        browser.close()
        orbitd.close()
    out = {
        "benchmark": "dashboard_page",
        "what": "one uPlot metric chart (900 px wide) with zone bands, state bands and 50 burn markers, "
                "headless Chromium (software rendering); median of repeats",
        "browser": version,
        "machine": f"{platform.node()} {os.cpu_count()} cpus, {platform.platform()}",
        "results": rows,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
