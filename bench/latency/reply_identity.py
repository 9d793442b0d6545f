# SPDX-License-Identifier: Apache-2.0
"""Records one orbitd's replies and journal for a fixed pipelined input, so that two
builds can be compared byte for byte (their decisions must not change):

    /usr/bin/python3 bench/latency/reply_identity.py ORBITD OUTDIR
    cmp OUT_A/replies.bin OUT_B/replies.bin
    build/tools/orbit replay OUT_B/journal     # "all reproduced bit for bit"

The input: a hello and 4,000 snapshots (loss falling, a divergence at 1500-1700,
spikes, a moving spectrum, two domains), 64 in flight over ipc, journal on.
replies.bin holds every reply in order, each prefixed by its length (4 bytes, LE).
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "adapters", "python"))
from orbit_adapter import protocol as P  # noqa: E402

STEPS = 4000
WINDOW = 64


def snapshots():
    rng = np.random.default_rng(7)
    for step in range(STEPS):
        loss = 3.0 * math.exp(-step / 800) + 1.0 + 0.02 * rng.standard_normal()
        if 1500 <= step < 1700:
            loss += (step - 1500) * 0.02  # divergence
        if step in (2500, 2501, 3200):
            loss *= 4  # spikes
        grad_norm = 1.0 + 0.1 * rng.standard_normal() + (5.0 if step in (2500, 3300) else 0.0)
        spectrum = (1.0 / (np.arange(32) + 1.0) ** (1.0 + 0.3 * math.sin(step / 300))).astype(np.float32)
        yield P.encode_snapshot({
            "type": "snapshot", "run": "id", "rank": 0, "step": step, "time": 1.7e9 + step, "loss": loss,
            "grad_norm": grad_norm, "lr": 1e-3, "spectra": {"hidden.0": spectrum},
            "domains": {"web": {"loss": loss * 1.1}, "code": {"loss": loss * 0.9}}})


def main():
    orbitd, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="reply-identity-")
    ready = os.path.join(tmp, "ready")
    proc = subprocess.Popen([orbitd, "--endpoint", f"ipc://{tmp}/a.sock", "--telemetry", f"ipc://{tmp}/t.sock",
                             "--control", f"ipc://{tmp}/c.sock", "--journal-dir", os.path.join(out, "journal"),
                             "--log-level", "error", "--ready-file", ready])
    try:
        for _ in range(200):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"ipc://{tmp}/a.sock")
        s.send(P.encode({"type": "hello", "run": "id", "rank": 0, "world_size": 1, "adapter": "reply-identity",
                         "adapter_version": "0", "versions": [1], "domains": ["web", "code"],
                         "actuators": ["lr", "domain_weights"], "base_lr": 1e-3}))
        replies = [s.recv()]
        msgs = list(snapshots())
        sent = 0
        while len(replies) < STEPS + 1:
            while sent < STEPS and sent - (len(replies) - 1) < WINDOW:
                s.send(msgs[sent])
                sent += 1
            replies.append(s.recv())
        s.close()
        ctx.term()
    finally:
        proc.terminate()
        proc.wait()
    with open(os.path.join(out, "replies.bin"), "wb") as f:
        for r in replies:
            f.write(len(r).to_bytes(4, "little"))
            f.write(r)
    types = {}
    for r in replies:
        t = P.decode(r)["type"]
        types[t] = types.get(t, 0) + 1
    print(json.dumps(types))


if __name__ == "__main__":
    main()
