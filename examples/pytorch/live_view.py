#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Live one-line-per-run view of orbitd's telemetry (PUB socket), `orbit watch` style.

    live_view.py TELEMETRY_ENDPOINT [--until-file PATH] [--events PATH]

    run-a  step 1840  entropy 2.31  φ-prox 0.87  ███████░░░ DRIFTING  lr×0.50

On a terminal the lines are redrawn in place; otherwise a line is printed per run
every --every steps and on every state change. The bar is the run's health in
[0, 1] (metric `health`; else φ-proximity). State changes and burns (with their
reasons) are appended to --events as JSON lines. Stops when --until-file exists.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "adapters", "python"))
from orbit_adapter import protocol  # noqa: E402


def bar(value, width=10):
    if value is None:
        return "-" * width
    full = int(round(max(0.0, min(1.0, value)) * width))
    return "\u2588" * full + "\u2591" * (width - full)


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def line(t: dict, run_width: int) -> str:
    m = t.get("metrics", {})
    health = m.get("health", m.get("phi_proximity"))
    scale = t.get("lr_scale", 1.0)
    text = (f"{t['run']:<{run_width}}  step {t['step']:>5}  entropy {fmt(m.get('entropy'))}  "
            f"\u03c6-prox {fmt(m.get('phi_proximity'))}  {bar(health)} {t.get('state', '?'):<10}")
    if scale != 1.0:
        text += f"  lr\u00d7{scale:.2f}"
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("telemetry")
    ap.add_argument("--until-file")
    ap.add_argument("--events")
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args()
    tty = sys.stdout.isatty()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.set(zmq.LINGER, 0)
    sub.set(zmq.SUBSCRIBE, b"")
    sub.connect(args.telemetry)
    latest: dict = {}
    last_state: dict = {}
    last_printed: dict = {}
    drawn = 0
    events = open(args.events, "a") if args.events else None
    try:
        while not (args.until_file and os.path.exists(args.until_file)):
            if not sub.poll(100):
                continue
            while True:
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    t = protocol.decode(frames[-1])
                except protocol.ProtocolError:
                    continue
                run = t["run"]
                latest[run] = t
                changed = last_state.get(run) != t["state"]
                if events and (changed or t.get("burn_seq") is not None):
                    events.write(json.dumps({"run": run, "step": t["step"], "state": t["state"],
                                             "basin": t["basin"], "lr_scale": t["lr_scale"],
                                             "burn_seq": t.get("burn_seq"), "reason": t.get("reason", "")}) + "\n")
                    events.flush()
                last_state[run] = t["state"]
                if not tty and (changed or t["step"] - last_printed.get(run, -10**9) >= args.every):
                    last_printed[run] = t["step"]
                    print(line(t, max(len(r) for r in latest)), flush=True)
            if tty and latest:
                width = max(len(r) for r in latest)
                out = ("\x1b[%dA" % drawn if drawn else "") + "".join(
                    "\x1b[2K" + line(latest[r], width) + "\n" for r in sorted(latest))
                sys.stdout.write(out)
                sys.stdout.flush()
                drawn = len(latest)
    except KeyboardInterrupt:
        pass
    finally:
        if events:
            events.close()
        sub.close(0)


if __name__ == "__main__":
    main()
