# SPDX-License-Identifier: Apache-2.0
"""One rank of the 2-process distributed adapter test (gloo on CPU, DDP).

    torch_dist_worker.py ENDPOINT MODE OUT.json BURN_STEPS   (RANK, WORLD_SIZE, MASTER_* in the env)

BURN_STEPS (comma-separated) are the steps whose snapshots the daemon answers with a
burn: ranks that talk to the daemon wait there until the burn has arrived, so a
loaded machine cannot make it late (the test is about same-step application).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn as nn  # noqa: E402

from orbit_adapter import Orbit  # noqa: E402
from orbit_adapter.rollback import CheckpointConfig  # noqa: E402

STEPS = 60


class Param(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self):
        return self.p.sum()


def main():
    endpoint, mode, out, burn_steps = sys.argv[1:5]
    burn_steps = {int(x) for x in burn_steps.split(",")}
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = nn.parallel.DistributedDataParallel(Param())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    mode, _, sync_every = mode.partition(":")  # "rank0:20": broadcast every 20 steps
    orbit = Orbit(endpoint=endpoint, run="dist-test", rank=rank, world_size=world,
                  distributed=mode, sync_every=int(sync_every or 1),
                  checkpoints=CheckpointConfig(every=0))
    orbit.attach(model, opt, scheduler=sched)
    used, reported, schedule = [], [], []
    for step in range(1, STEPS + 1):
        before = model.module.p.item()
        opt.zero_grad()
        model().backward()
        schedule.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        used.append(before - model.module.p.item())
        known = len(orbit.applied) + len(orbit.pending_burns)
        orbit.step(step, 1.0 + rank)
        reported.append(orbit.last_lr)
        if step in burn_steps and (mode == "per_rank" or rank == 0):
            expected = known + 1
            deadline = time.monotonic() + 30
            while len(orbit.applied) + len(orbit.pending_burns) < expected and time.monotonic() < deadline:
                orbit.poll()
                time.sleep(0.001)
        dist.barrier()
        time.sleep(0.005)
    summary = orbit.summary()
    orbit.close()
    with open(out, "w") as f:
        json.dump({"rank": rank, "used": used, "reported": reported, "schedule": schedule,
                   "applied": [(b["seq"], b["applied_step"], b["late"]) for b in summary["burns"]]}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
