#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Adapter overhead: the example trainer with and without Orbit attached, in one process.

Two identical models (same seed, same batches) train side by side; their steps are
interleaved (alternating which goes first) so machine noise hits both arms alike.
Arm `orbit` has the adapter attached with its defaults (snapshots every step as the
daemon asks, spectral probes every 10 steps, a checkpoint every 10 steps) talking
to a real orbitd in monitor mode (so no burn changes its training). The step time
covers forward, backward, optimizer step and, in the orbit arm, `orbit.step`.

    /usr/bin/python3 bench/overhead/run.py [--steps 300] [--orbitd build/daemon/orbitd]

Prints a table and writes bench/results/overhead.json.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "examples", "pytorch"))
sys.path.insert(0, os.path.join(REPO, "adapters", "python"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import train  # noqa: E402
from orbitd_process import OrbitdProcess, find_orbitd  # noqa: E402
from orbit_adapter import Orbit  # noqa: E402
from orbit_adapter.sampler import DomainMixtureSampler  # noqa: E402


def make_arm(corpus, args):
    torch.manual_seed(args.seed)
    model = train.CharTransformer(len(train.VOCAB), norm=args.norm)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    sampler = DomainMixtureSampler(corpus.sizes, 16, seed=args.seed)
    return model, opt, sampler


def one_step(model, opt, sampler, corpus, orbit, step):
    t0, c0 = time.perf_counter(), time.thread_time()
    x, y = corpus.batch(sampler.next_batch())
    loss = F.cross_entropy(model(x).reshape(-1, len(train.VOCAB)), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    value = loss.item()
    if orbit is not None:
        orbit.step(step, value)
    return time.perf_counter() - t0, time.thread_time() - c0


def summarize(xs):
    xs = sorted(xs)
    return {"median_ms": 1000 * statistics.median(xs), "mean_ms": 1000 * statistics.fmean(xs),
            "p90_ms": 1000 * xs[int(0.9 * (len(xs) - 1))]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20, help="steps per arm left out of the timing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--norm", default="pre")
    ap.add_argument("--orbitd", default=None)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    ap.add_argument("--json-out", default=os.path.join(REPO, "bench", "results", "overhead.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    binary = find_orbitd(args.orbitd)
    if binary is None:
        sys.exit("overhead: no orbitd binary (build it: cmake --build build --target orbitd)")

    corpus = train.Corpus(train.DEFAULT_CORPUS, 64)
    plain = make_arm(corpus, args)
    probed = make_arm(corpus, args)
    times = {"plain": [], "orbit": []}
    cpu = {"plain": [], "orbit": []}
    with OrbitdProcess(binary, args.config, mode="monitor") as daemon:
        orbit = Orbit(endpoint=daemon.endpoint, run="overhead", domains=corpus.domains)
        orbit.attach(probed[0], probed[1], sampler=probed[2])
        t_start = time.perf_counter()
        for step in range(1, args.steps + args.warmup + 1):
            order = [("plain", plain, None), ("orbit", probed, orbit)]
            if step % 2:
                order.reverse()
            for name, (model, opt, sampler), o in order:
                dt, dc = one_step(model, opt, sampler, corpus, o, step)
                if step > args.warmup:
                    times[name].append(dt)
                    cpu[name].append(dc)
        wall = time.perf_counter() - t_start
        summary = orbit.summary()
        orbit.close()
    same = all(torch.equal(a, b) for a, b in zip(plain[0].state_dict().values(), probed[0].state_dict().values()))
    res = {name: summarize(ts) for name, ts in times.items()}
    res_cpu = {name: summarize(ts) for name, ts in cpu.items()}
    keys = ("median_ms", "mean_ms", "p90_ms")
    overhead = {k: 100.0 * (res["orbit"][k] / res["plain"][k] - 1.0) for k in keys}
    overhead_cpu = {k: 100.0 * (res_cpu["orbit"][k] / res_cpu["plain"][k] - 1.0) for k in keys}
    out = {
        "what": "step time of the example trainer with and without the Orbit adapter (interleaved, one process)",
        "command": "/usr/bin/python3 bench/overhead/run.py " + " ".join(sys.argv[1:]),
        "steps_timed": args.steps, "seed": args.seed, "norm": args.norm, "lr": args.lr,
        "arms": res, "overhead_percent": overhead,
        # CPU time of the training thread: what the adapter itself costs, without the
        # time the scheduler hands to other processes on a busy machine.
        "arms_thread_cpu": res_cpu, "overhead_percent_thread_cpu": overhead_cpu,
        "snapshots_sent": summary["client"]["snapshots"] if summary["client"] else None,
        "models_identical_after_training": same,
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "python": platform.python_version(), "loadavg_at_end": os.getloadavg()},
        "wall_s": wall,
    }
    print(f"{'arm':<14}{'median ms':>11}{'mean ms':>10}{'p90 ms':>9}")
    for label, table in (("wall", res), ("thread cpu", res_cpu)):
        for name in ("plain", "orbit"):
            r = table[name]
            print(f"{name + ' ' + label:<14}{r['median_ms']:>11.2f}{r['mean_ms']:>10.2f}{r['p90_ms']:>9.2f}")
    for label, o in (("wall", overhead), ("thread cpu", overhead_cpu)):
        print(f"overhead ({label}): median {o['median_ms']:+.2f}%  mean {o['mean_ms']:+.2f}%  p90 {o['p90_ms']:+.2f}%")
    print(f"models identical after training: {same}; load average at the end {os.getloadavg()[0]:.1f}")
    os.makedirs(os.path.dirname(args.json_out), exist_ok=True)
    with open(args.json_out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {os.path.relpath(args.json_out, REPO)}")


if __name__ == "__main__":
    main()
