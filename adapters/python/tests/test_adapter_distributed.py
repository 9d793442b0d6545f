# SPDX-License-Identifier: Apache-2.0
"""Two gloo ranks (DDP on CPU) apply every burn at the same step, in both modes."""
import json
import os
import socket
import subprocess
import sys

import pytest

from torch_fixtures import ScriptedDaemon

HERE = os.path.dirname(os.path.abspath(__file__))
BURNS = [dict(for_step=5, apply_at_step=20, lr_scale=0.5, expires_after_steps=15),
         dict(for_step=30, apply_at_step=45, lr_scale=0.25, expires_after_steps=100)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_ranks(mode, tmp_path):
    daemon = ScriptedDaemon()
    try:
        for b in BURNS:
            daemon.burn_at(**b)
        port = free_port()
        procs, outs = [], []
        for rank in range(2):
            out = tmp_path / f"{mode.replace(':', '-')}-{rank}.json"
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
            procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "torch_dist_worker.py"),
                                           daemon.endpoint, mode, str(out),
                                           ",".join(str(b["for_step"]) for b in BURNS)], env=env))
            outs.append(out)
        for p in procs:
            assert p.wait(timeout=120) == 0
        hellos = list(daemon.hellos)
    finally:
        daemon.close()
    return [json.loads(o.read_text()) for o in outs], hellos


# (mode, first step under burn 1, whether it is late). With broadcasts every 20 steps
# burn 1 (due at 20) reaches the other rank at step 20's sync: every rank applies it
# at step 21, late, together.
MODES = [("per_rank", 20, False), ("rank0", 20, False), ("rank0:20", 21, True)]


@pytest.mark.parametrize("mode,first,late", MODES)
def test_every_rank_applies_each_burn_at_the_same_step(mode, first, late, tmp_path):
    results, hellos = run_ranks(mode, tmp_path)
    if mode == "per_rank":
        assert sorted((h["rank"], h["world_size"]) for h in hellos) == [(0, 2), (1, 2)]
    else:
        assert [(h["rank"], h["world_size"]) for h in hellos] == [(0, 1)]  # only rank 0 talks
    r0, r1 = results
    for step in range(1, 61):
        scale = 0.5 if first <= step < 35 else 0.25 if 45 <= step else 1.0
        expected = r0["schedule"][step - 1] * scale
        for r in (r0, r1):
            assert r["used"][step - 1] == pytest.approx(expected, rel=1e-9), (mode, r["rank"], step)
            assert r["reported"][step - 1] == pytest.approx(expected, rel=1e-12), (mode, r["rank"], step)
    assert r0["applied"] == r1["applied"] == [[1, first, late], [2, 45, False]]
