#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Where the adapter's per-step time goes: manual timers around its per-step calls.

Runs the orbit arm of bench/overhead/run.py alone (same model, sampler, daemon in
monitor mode, default cadences) and wraps the adapter's functions with timers that
add up the training thread's CPU time and the wall time spent inside each. Timers
nest (a parent's time includes its children's). The plain step time (forward,
backward, optimizer) is timed the same way for scale. Work done by the adapter's
background sender thread is reported as that thread's own CPU time.

Steps are split by kind, since the median step is made of the common kind: probe
steps (every `spectra_every`, with the checkpoint of the same cadence), the other
snapshot steps, and steps without a snapshot (none at the daemon's default
`snapshot_every = 1`; `--snapshot-every N` runs orbitd with that cadence). Each kind
gets the median of its `orbit.step` training-thread CPU and the mean per call of
every timer.

    /usr/bin/python3 bench/overhead/profile.py [--steps 300] [--orbitd build/daemon/orbitd] [--client-thread auto|on|off]
        [--trainer-grad-norm] [--snapshot-every N] [--count-calls]

`--count-calls` runs without the timers and counts instead, with sys.setprofile, the
Python-level calls (Python functions and C functions called from Python) made inside
`orbit.step` on each kind of step: per step, and the most frequent ones.
"""
import argparse
import collections
import functools
import os
import statistics
import sys
import threading
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import run as overhead_run  # noqa: E402  (sets up the import paths)
import torch  # noqa: E402

import train  # noqa: E402
from orbitd_process import OrbitdProcess, find_orbitd  # noqa: E402
from orbit_adapter import Orbit, adapter, client, probes, protocol, rollback, snapshots  # noqa: E402

TOTALS = {}  # label -> [calls, thread cpu s, wall s]
KIND = {"now": None}  # the kind of the step being timed (None: warmup, not counted)
BY_KIND = {}  # kind -> label -> [calls, thread cpu s]


def timed(owner, name, label):
    """Replaces owner.name with a timing wrapper; only the training thread is counted."""
    inner = getattr(owner, name)
    main = threading.main_thread()

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not main:
            return inner(*args, **kwargs)
        c0, t0 = time.thread_time(), time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            cpu = time.thread_time() - c0
            entry = TOTALS.setdefault(label, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += cpu
            entry[2] += time.perf_counter() - t0
            if KIND["now"] is not None:
                kind = BY_KIND.setdefault(KIND["now"], {}).setdefault(label, [0, 0.0])
                kind[0] += 1
                kind[1] += cpu

    setattr(owner, name, wrapper)


def instrument():
    timed(adapter.Orbit, "step", "orbit.step (all)")
    timed(adapter.DaemonLink, "send_acks", "  send_acks")
    timed(rollback.CheckpointRing, "save", "  checkpoint ring save")
    timed(snapshots.SnapshotAssembler, "send", "  snapshot: assemble + send")
    timed(probes.ModelProbes, "collect", "    probes: collect (hidden eigvalsh, output entropy)")
    timed(snapshots, "cpu_grad_norm", "    grad norm (CPU float32: BLAS dots)")
    timed(snapshots, "grad_norm_tensor", "    grad norm tensor (other devices, dtypes)")
    timed(snapshots.SnapshotAssembler, "_domains", "    domain weights")
    timed(client.OrbitClient, "send_snapshot", "    client.send_snapshot")
    timed(protocol, "encode_snapshot", "      protocol.encode_snapshot")
    timed(protocol, "encode", "        protocol.encode (general path)")
    timed(client.OrbitClient, "_send", "      zmq send")
    timed(adapter.Orbit, "_poll", "  poll replies")
    timed(protocol, "decode", "      protocol.decode")
    timed(adapter.Orbit, "_advance_burns", "  advance burns")
    timed(probes.ModelProbes, "arm", "  probes: arm")
    timed(probes.ModelProbes, "disarm", "  probes: disarm")
    # Inside the training forward pass of probe steps (not inside orbit.step).
    timed(probes, "_mha_probabilities_on_device", "forward: MHA probability recompute")
    timed(probes, "attention_capture", "forward: attention sample + entropy")
    timed(probes, "attention_spectrum", "    probes: attention svdvals (deferred)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--norm", default="pre")
    ap.add_argument("--orbitd", default=None)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    ap.add_argument("--client-thread", choices=sorted(overhead_run.CLIENT_MODES), default="auto",
                    help="Orbit(client_thread=...): auto (the default; no thread for a CPU model), on, off")
    ap.add_argument("--trainer-grad-norm", action="store_true",
                    help="the trainer computes the gradient norm (clip_grad_norm_) and hands it "
                         "to orbit.step, as examples/pytorch/train.py does")
    ap.add_argument("--snapshot-every", type=int, default=None,
                    help="run orbitd with [daemon] snapshot_every = N (default: the config's)")
    ap.add_argument("--count-calls", action="store_true",
                    help="count the Python-level calls inside orbit.step per kind of step "
                         "(sys.setprofile) instead of timing them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = args.config
    if args.snapshot_every is not None:
        config = with_snapshot_every(args.config, args.snapshot_every)
    binary = find_orbitd(os.path.abspath(args.orbitd) if args.orbitd else None)
    if binary is None:
        sys.exit("profile: no orbitd binary (build it: cmake --build build --target orbitd)")
    corpus = train.Corpus(train.DEFAULT_CORPUS, 64)
    model, opt, sampler = overhead_run.make_arm(corpus, args)
    if args.count_calls:
        count_calls_in_step()
    else:
        instrument()
    step_cpu, step_wall = [], []
    inside = {}  # kind -> training-thread CPU inside orbit.step, per step
    with OrbitdProcess(binary, config, mode="monitor") as daemon:
        orbit = Orbit(endpoint=daemon.endpoint, run="profile", domains=corpus.domains,
                      client_thread=overhead_run.CLIENT_MODES[args.client_thread])
        orbit.attach(model, opt, sampler=sampler)
        for step in range(1, args.steps + args.warmup + 1):
            if step == args.warmup + 1:
                TOTALS.clear()
                worker_cpu0 = overhead_run.adapter_thread_cpu(orbit)
            kind = step_kind(orbit, step) if step > args.warmup else None
            KIND["now"] = kind
            dt, dc, _, di = overhead_run.one_step(model, opt, sampler, corpus, orbit, step,
                                                  args.trainer_grad_norm)
            KIND["now"] = None
            if step > args.warmup:
                step_wall.append(dt)
                step_cpu.append(dc)
                inside.setdefault(kind, []).append(di)
        worker_cpu = overhead_run.adapter_thread_cpu(orbit) - worker_cpu0
        orbit.close()
    n = args.steps
    adapter_cpu = TOTALS.get("orbit.step (all)", [0, 0.0, 0.0])[1] + sum(
        v[1] for k, v in TOTALS.items() if k.startswith("forward:"))
    print(f"{n} steps; step median {1e3 * statistics.median(step_cpu):.2f} ms thread cpu, "
          f"{1e3 * statistics.median(step_wall):.2f} ms wall (mean {1e3 * statistics.fmean(step_cpu):.2f} cpu)")
    print(f"{'per step, averaged over all steps':<56}{'calls':>6}{'cpu ms':>9}{'wall ms':>9}{'% step':>8}")
    base = statistics.fmean(step_cpu) - adapter_cpu / n
    for label, (calls, cpu_s, wall_s) in TOTALS.items():
        print(f"{label:<56}{calls:>6}{1e3 * cpu_s / n:>9.3f}{1e3 * wall_s / n:>9.3f}"
              f"{100 * cpu_s / n / base:>7.2f}%")
    print(f"{'background sender thread (its own cpu)':<56}{'':>6}{1e3 * worker_cpu / n:>9.3f}"
          f"{'':>9}{100 * worker_cpu / n / base:>7.2f}%")
    for kind in KINDS:
        if kind not in inside:
            continue
        ts = inside[kind]
        print(f"{kind}: {len(ts)} steps; orbit.step median {1e3 * statistics.median(ts):.3f} ms, "
              f"mean {1e3 * statistics.fmean(ts):.3f} ms training-thread cpu "
              f"({100 * statistics.median(ts) / base:.2f}% of the plain step)")
        for label, (calls, cpu_s) in BY_KIND.get(kind, {}).items():
            print(f"    {label:<56}{calls:>6}{1e3 * cpu_s / len(ts):>9.3f} ms per step")
    if args.count_calls:
        print_call_counts(inside)
    print(f"load average {os.getloadavg()[0]:.1f}")


CALLS = {}  # kind -> Counter of "python: file:function" / "c: name" -> calls


def count_calls_in_step():
    """Wraps Orbit.step so that the training thread's calls inside it are counted by
    the kind of the step being run (sys.setprofile sees Python and C calls)."""
    inner = adapter.Orbit.step

    def profiler(frame, event, arg):
        if event == "call":
            code = frame.f_code
            counter[f"python: {os.path.basename(code.co_filename)}:{code.co_name}"] += 1
        elif event == "c_call":
            counter[f"c: {getattr(arg, '__qualname__', None) or getattr(arg, '__name__', repr(arg))}"] += 1

    counter = collections.Counter()

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        if KIND["now"] is None:
            return inner(*args, **kwargs)
        counter.clear()
        sys.setprofile(profiler)
        try:
            return inner(*args, **kwargs)
        finally:
            sys.setprofile(None)
            CALLS.setdefault(KIND["now"], collections.Counter()).update(counter)

    adapter.Orbit.step = wrapper


def print_call_counts(inside, top=40):
    for kind in KINDS:
        if kind not in CALLS:
            continue
        n = len(inside[kind])
        calls = CALLS[kind]
        py = sum(v for k, v in calls.items() if k.startswith("python"))
        c = sum(v for k, v in calls.items() if k.startswith("c:"))
        print(f"{kind}: {n} steps; per step inside orbit.step {py / n:.1f} Python calls, {c / n:.1f} C calls "
              "(orbit.step itself included)")
        for label, count in calls.most_common(top):
            print(f"    {count / n:8.2f}  {label}")


KINDS = ("probe steps (spectra + checkpoint)", "other snapshot steps", "steps without a snapshot")


def step_kind(orbit, step):
    """Which kind `step` is, decided before it runs: a probe step has its probes armed
    (its forward captures), a snapshot step is on the daemon's cadence."""
    if orbit._snapshots.probes.armed:
        return KINDS[0]
    every = orbit._link.snapshot_every
    return KINDS[1] if step % every == 0 else KINDS[2]


def with_snapshot_every(config, every):
    """A copy of `config` with [daemon] snapshot_every = `every` (a temporary file)."""
    import re
    import tempfile
    with open(config) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^snapshot_every\s*=.*$", f"snapshot_every = {int(every)}", text)
    if n != 1:
        sys.exit(f"profile: no single snapshot_every line in {config}")
    out = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False, prefix="orbit-profile-")
    with out:
        out.write(text)
    return out.name


if __name__ == "__main__":
    main()
