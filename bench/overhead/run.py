#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Adapter overhead: the example trainer with and without Orbit attached, in one process.

Two identical models (same seed, same batches) train side by side in windows of
`--window` steps per arm (alternating which goes first), so machine noise hits both
arms alike; `--repeats` such runs (each with a fresh orbitd and fresh models) give
the result as the median of their ratios.
Arm `orbit` has the adapter attached with its defaults (snapshots every step as the
daemon asks, spectral probes every 10 steps, a checkpoint every 10 steps) talking
to a real orbitd in monitor mode (so no burn changes its training). The step time
covers forward, backward, optimizer step and, in the orbit arm, `orbit.step`.

    /usr/bin/python3 bench/overhead/run.py [--steps 300] [--repeats 3] [--orbitd build/daemon/orbitd]
        [--trainer-grad-norm] [--no-client-thread] [--probe-thread auto|on|off] [--aa] [--swap] [--with-aa]

Measured per step and arm, in the same run: wall time, the training thread's CPU
time, and the whole process's CPU time (training thread, the adapter's client thread
or probe worker when there is one, ZeroMQ's I/O thread); per run: the CPU of the
adapter's own threads (`client_thread_cpu_ms_per_step`: the client thread and the
probe worker together) and orbitd's CPU (a separate process, reported beside, not in
the ratio). On a loaded machine the wall figure is noise; the CPU figures are the
result then. `--client-thread` picks the adapter's client mode: auto (the default: no
thread for a CPU model), on, off; `--probe-thread` whether a probe step's spectra and
snapshot go to a worker thread: auto (the default: where the process may use two
CPUs), on, off. The probe worker's CPU runs beside the training thread, so the
training thread's figures do not hold it: the process CPU figures and
`overhead_percent_all_adapter_cpu_mean` do. `--aa` leaves the adapter out of the orbit arm too: what it
reports is how far two plain model instances differ, the method's own floor. `--swap`
runs each repeat in two halves with the adapter on one instance, then on the other.
`--with-aa` measures the floor in the same session: `--repeats` runs with the adapter
and as many A/A runs (no adapter in either arm), in the order AB, AA, AA, AB, ... so
that load changes hit both alike; the result gives both medians, their difference and
95% bootstrap intervals over the repeats.

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


def one_step(model, opt, sampler, corpus, orbit, step, trainer_grad_norm=False):
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    x, y = corpus.batch(sampler.next_batch())
    loss = F.cross_entropy(model(x).reshape(-1, len(train.VOCAB)), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = None
    if trainer_grad_norm:  # as examples/pytorch/train.py does, in both arms
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
    opt.step()
    value = loss.item()
    inside = 0.0
    if orbit is not None:
        s0 = time.thread_time()
        orbit.step(step, value, grad_norm=grad_norm)
        inside = time.thread_time() - s0
    return (time.perf_counter() - t0, time.thread_time() - c0, time.process_time() - p0, inside)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def adapter_thread_cpu(orbit) -> float:
    """CPU seconds used so far by the adapter's background threads: the client thread
    and the probe worker (0 without them)."""
    if orbit is None:
        return 0.0
    summary = orbit.summary()
    return sum(float((summary.get(name) or {}).get("cpu_s") or 0.0)
               for name in ("client_thread", "probe_thread"))


def git_commit() -> str:
    """The checkout's commit, "+dirty" when tracked files differ from it."""
    import subprocess
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "diff", "--quiet", "HEAD", "--"]).returncode != 0
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def scheduling() -> str:
    """This process's scheduling policy (a run under `chrt -r` says SCHED_RR)."""
    policy = os.sched_getscheduler(0)
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}
    return f"{names.get(policy, policy)} priority {os.sched_getparam(0).sched_priority}"


def summarize(xs):
    xs = sorted(xs)
    return {"median_ms": 1000 * statistics.median(xs), "mean_ms": 1000 * statistics.fmean(xs),
            "p90_ms": 1000 * xs[int(0.9 * (len(xs) - 1))]}


KEYS = ("median_ms", "mean_ms", "p90_ms")
CLIENT_MODES = {"auto": "auto", "on": True, "off": False}


def one_repeat(binary, corpus, args):
    """One interleaved run of both arms against a fresh orbitd; per-arm step times."""
    plain = make_arm(corpus, args)
    probed = make_arm(corpus, args)
    times = {"plain": [], "orbit": []}
    cpu = {"plain": [], "orbit": []}
    pcpu = {"plain": [], "orbit": []}
    inside = []  # training-thread CPU inside orbit.step, per orbit step
    probe_step = []  # per timed orbit step: whether its probes were armed (a probe step)
    with OrbitdProcess(binary, args.config, mode="monitor") as daemon:
        t_start = time.perf_counter()
        thread_cpu, daemon_cpu0 = 0.0, None
        done = {id(plain): 0, id(probed): 0}  # steps trained per model instance
        # --swap: the second half puts the adapter on the other instance, so a speed
        # difference between the two instances cancels out of the ratio.
        halves = [(plain, probed), (probed, plain)] if args.swap else [(plain, probed)]
        per_half = -(-args.steps // len(halves))
        summary, uses_thread = {"client": None, "errors": {}}, False
        for half, (bare, probed_now) in enumerate(halves):
            orbit = None
            if not args.aa:
                orbit = Orbit(endpoint=daemon.endpoint, run=f"overhead-{half}",
                              domains=corpus.domains, client_thread=CLIENT_MODES[args.client_thread],
                              probe_thread=CLIENT_MODES[args.probe_thread])
                orbit.attach(probed_now[0], probed_now[1], sampler=probed_now[2],
                             start_step=done[id(probed_now)] + args.window // 2)
            arms = {"plain": (bare, None), "orbit": (probed_now, orbit)}
            thread_cpu0 = None
            step = {"plain": 0, "orbit": 0}
            total = min(per_half, args.steps - half * per_half) + args.warmup
            window = 0
            # Windows of `window` steps per arm, alternating which arm goes first, so load
            # changes hit both arms alike and the client thread's work (right after each
            # orbit step) overlaps the orbit arm's own next step, not the plain arm's.
            while step["orbit"] < total:
                # The orbit arm first: its first step comes right after attach.
                order = ("plain", "orbit") if window % 2 else ("orbit", "plain")
                for name in order:
                    arm, o = arms[name]
                    model, opt, sampler = arm
                    for _ in range(min(args.window, total - step[name])):
                        step[name] += 1
                        done[id(arm)] += 1
                        if name == "orbit" and step[name] == args.warmup + 1:
                            thread_cpu0 = adapter_thread_cpu(orbit)
                            if daemon_cpu0 is None:
                                daemon_cpu0 = process_cpu_s(daemon.process.pid)
                        armed = o is not None and o._snapshots.probes.armed
                        # The step number orbit.step sees is offset by half a window, so a
                        # probe step (every 10th) falls inside its arm's window and the probe
                        # worker's job overlaps that arm's next step, not the other arm's.
                        dt, dc, dp, di = one_step(model, opt, sampler, corpus, o,
                                                  done[id(arm)] + args.window // 2,
                                                  args.trainer_grad_norm)
                        if step[name] > args.warmup:
                            times[name].append(dt)
                            cpu[name].append(dc)
                            pcpu[name].append(dp)
                            if name == "orbit":
                                inside.append(di)
                                probe_step.append(armed)
                window += 1
            thread_cpu += adapter_thread_cpu(orbit) - (thread_cpu0 or 0.0)
            if orbit is not None:
                part = orbit.summary()
                if summary["client"] is None:
                    summary = part
                elif part["client"]:
                    for k in ("snapshots", "dropped"):
                        summary["client"][k] += part["client"][k]
                    for k, v in part["errors"].items():
                        summary["errors"][k] = summary["errors"].get(k, 0) + v
                uses_thread = orbit.uses_client_thread()
                orbit.close()
        wall = time.perf_counter() - t_start
        daemon_cpu = process_cpu_s(daemon.process.pid) - daemon_cpu0
        if args.aa:
            inside = [0.0]  # A/A: nothing runs inside orbit.step
    same = all(torch.equal(a, b) for a, b in zip(plain[0].state_dict().values(),
                                                 probed[0].state_dict().values()))
    res = {name: summarize(ts) for name, ts in times.items()}
    res_cpu = {name: summarize(ts) for name, ts in cpu.items()}
    overhead = {k: 100.0 * (res["orbit"][k] / res["plain"][k] - 1.0) for k in KEYS}
    overhead_cpu = {k: 100.0 * (res_cpu["orbit"][k] / res_cpu["plain"][k] - 1.0) for k in KEYS}
    res_pcpu = {name: summarize(ts) for name, ts in pcpu.items()}
    overhead_pcpu = {k: 100.0 * (res_pcpu["orbit"][k] / res_pcpu["plain"][k] - 1.0) for k in KEYS}
    thread_ms = 1000.0 * thread_cpu / args.steps
    # The median step splits in two: what an ordinary (non-probe) step costs, and how far
    # the probe steps (1 in spectra_every, all in the slow tail) push the median up the
    # ordinary steps' distribution even where those cost nothing.
    ordinary = [c for c, p in zip(cpu["orbit"], probe_step) if not p] if not args.aa else cpu["orbit"]
    plain_sorted = sorted(cpu["plain"])
    share = 0.5 * len(cpu["orbit"]) / max(1, len(ordinary))  # the quantile of the ordinary steps at the median
    shift_q = plain_sorted[min(len(plain_sorted) - 1, int(share * len(plain_sorted)))]
    return {
        "arms": res, "overhead_percent": overhead,
        # CPU time of the training thread: what the adapter costs the trainer, without
        # the time the scheduler hands to other processes on a busy machine.
        "arms_thread_cpu": res_cpu, "overhead_percent_thread_cpu": overhead_cpu,
        # CPU time of the whole process per step: the training thread, the client thread
        # (its work for a step mostly runs during the next one, of the same arm except
        # at a window's edge) and ZeroMQ's I/O thread. Nothing of the adapter hides here.
        "arms_process_cpu": res_pcpu, "overhead_percent_process_cpu": overhead_pcpu,
        "client_thread_used": uses_thread,
        # Measured directly rather than as a difference of two noisy step times: the
        # training thread's CPU inside orbit.step (not the probes' capture inside the
        # forward of every 10th step, which the mean step figures hold).
        "orbit_step_cpu_ms": summarize(inside),
        "orbit_step_cpu_percent_of_plain_step": {
            k: 100.0 * summarize(inside)[k] / res_cpu["plain"][k] for k in ("median_ms", "mean_ms")},
        "orbitd_cpu_ms_per_step": 1000.0 * daemon_cpu / args.steps,
        "ordinary_steps": len(ordinary),
        # Ordinary steps of the orbit arm (no probes armed) against all plain steps, medians.
        "overhead_percent_thread_cpu_ordinary_steps_median": 100.0 * (
            statistics.median(ordinary) / res_cpu["plain"]["median_ms"] * 1000.0 - 1.0),
        # Where a median lands when 1 step in spectra_every sits in the tail: the plain arm's
        # quantile at that share, against its median (an estimate with zero-cost ordinary steps).
        "median_shift_percent_from_probe_steps_alone": 100.0 * (
            shift_q / res_cpu["plain"]["median_ms"] * 1000.0 - 1.0),
        # The adapter threads' own CPU per step (client thread, probe worker): work moved
        # off the training thread still runs on this machine; counted here so nothing hides.
        "client_thread_cpu_ms_per_step": thread_ms,
        "overhead_percent_all_adapter_cpu_mean": 100.0 * ((res_cpu["orbit"]["mean_ms"] + thread_ms)
                                                          / res_cpu["plain"]["mean_ms"] - 1.0),
        "snapshots_sent": summary["client"]["snapshots"] if summary["client"] else None,
        "snapshots_dropped": summary["client"]["dropped"] if summary["client"] else None,
        "adapter_errors": summary["errors"],
        "models_identical_after_training": same,
        "loadavg_after": os.getloadavg(),
        "wall_s": wall,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="timed steps per arm and repeat")
    ap.add_argument("--warmup", type=int, default=20, help="steps per arm left out of the timing")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs; the result is their median")
    ap.add_argument("--window", type=int, default=10, help="steps of one arm before switching")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--norm", default="pre")
    ap.add_argument("--trainer-grad-norm", action="store_true",
                    help="both arms compute the gradient norm and the orbit arm hands it over, "
                         "as examples/pytorch/train.py does (default: the adapter computes it)")
    ap.add_argument("--client-thread", choices=sorted(CLIENT_MODES), default="auto",
                    help="Orbit(client_thread=...): auto (the default; no thread for a CPU "
                         "model), on (ClientThread), off (every adapter step on the training thread)")
    ap.add_argument("--probe-thread", choices=sorted(CLIENT_MODES), default="auto",
                    help="Orbit(probe_thread=...): auto (the default; a probe step's spectra and "
                         "snapshot on a worker thread when the process may use two CPUs), on, off")
    ap.add_argument("--no-client-thread", dest="client_thread", action="store_const", const="off",
                    help="the same as --client-thread off")
    ap.add_argument("--aa", action="store_true",
                    help="A/A check of the method: the orbit arm trains without the adapter, so "
                         "what the run reports is the difference between two plain model "
                         "instances (the measurement's own floor)")
    ap.add_argument("--swap", action="store_true",
                    help="each repeat in two halves, the adapter on one model instance and then "
                         "on the other, so the instances' own speed difference cancels")
    ap.add_argument("--with-aa", action="store_true",
                    help="as many A/A runs as --repeats, interleaved with the adapter's (AB AA AA AB ...): "
                         "the method's floor measured in the same session")
    ap.add_argument("--orbitd", default=None)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    ap.add_argument("--json-out", default=os.path.join(REPO, "bench", "results", "overhead.json"))
    args = ap.parse_args()
    if args.aa and args.with_aa:
        ap.error("--aa and --with-aa exclude each other (--with-aa runs A/A repeats itself)")
    torch.set_num_threads(1)
    binary = find_orbitd(os.path.abspath(args.orbitd) if args.orbitd else None)
    if binary is None:
        sys.exit("overhead: no orbitd binary (build it: cmake --build build --target orbitd)")

    corpus = train.Corpus(train.DEFAULT_CORPUS, 64)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    repeats, aa_repeats = [], []
    kinds = [args.aa] * args.repeats
    if args.with_aa:  # AB AA AA AB AB AA AA AB ...: the adapter's runs and the A/A runs interleaved
        kinds = [(r % 4) in (1, 2) for r in range(2 * args.repeats)]
    for r, aa in enumerate(kinds):
        rep = one_repeat(binary, corpus, argparse.Namespace(**{**vars(args), "aa": aa}))
        if args.with_aa and aa:
            aa_repeats.append(rep)
            oc = rep["overhead_percent_thread_cpu"]
            print(f"repeat {r + 1} (A/A): thread cpu median {oc['median_ms']:+.2f}% mean {oc['mean_ms']:+.2f}%, "
                  f"wall median {rep['overhead_percent']['median_ms']:+.2f}% "
                  f"(load {rep['loadavg_after'][0]:.1f})", flush=True)
            continue
        repeats.append(rep)
        o, oc = rep["overhead_percent"], rep["overhead_percent_thread_cpu"]
        op = rep["overhead_percent_process_cpu"]
        print(f"repeat {r + 1}: median step plain {rep['arms']['plain']['median_ms']:.2f} ms, "
              f"orbit {rep['arms']['orbit']['median_ms']:.2f} ms: overhead wall median "
              f"{o['median_ms']:+.2f}%, thread cpu median {oc['median_ms']:+.2f}% mean "
              f"{oc['mean_ms']:+.2f}%, process cpu median {op['median_ms']:+.2f}% mean "
              f"{op['mean_ms']:+.2f}% (adapter threads {rep['client_thread_cpu_ms_per_step']:.3f} ms/step; "
              f"orbitd {rep['orbitd_cpu_ms_per_step']:.3f} ms/step; inside orbit.step "
              f"{rep['orbit_step_cpu_ms']['median_ms']:.3f} ms median, {rep['orbit_step_cpu_ms']['mean_ms']:.3f} "
              f"mean; ordinary steps {rep['overhead_percent_thread_cpu_ordinary_steps_median']:+.2f}%; "
              f"load {rep['loadavg_after'][0]:.1f})",
              flush=True)

    def med(path):
        vals = [rep[path[0]][path[1]] for rep in repeats]
        return statistics.median(vals)

    overhead = {k: med(("overhead_percent", k)) for k in KEYS}
    overhead_cpu = {k: med(("overhead_percent_thread_cpu", k)) for k in KEYS}
    overhead_pcpu = {k: med(("overhead_percent_process_cpu", k)) for k in KEYS}
    arms = {metric: {arm: {k: statistics.median(rep[metric][arm][k] for rep in repeats) for k in KEYS}
                     for arm in ("plain", "orbit")}
            for metric in ("arms", "arms_thread_cpu", "arms_process_cpu")}
    out = {
        "what": "step time of the example trainer's model with and without the Orbit adapter "
                "(interleaved windows in one process, median over repeats)",
        "command": "/usr/bin/python3 bench/overhead/run.py " + " ".join(sys.argv[1:]),
        "commit": git_commit(),
        "scheduling": scheduling(),
        "steps_timed_per_repeat": args.steps, "repeats": args.repeats, "window": args.window,
        "seed": args.seed, "norm": args.norm, "lr": args.lr,
        "grad_norm_by": "trainer" if args.trainer_grad_norm else "adapter",
        "aa_no_adapter_in_either_arm": args.aa,
        "swap_halves": args.swap,
        "client_thread": args.client_thread,
        "client_thread_used": repeats[0]["client_thread_used"],
        "probe_thread": args.probe_thread,
        "overhead_percent": overhead,
        "overhead_percent_thread_cpu": overhead_cpu,
        "overhead_percent_process_cpu": overhead_pcpu,
        "step_ms_median_of_repeats": arms,
        "orbitd_cpu_ms_per_step": statistics.median(rep["orbitd_cpu_ms_per_step"] for rep in repeats),
        "orbit_step_cpu_percent_of_plain_step": {
            k: statistics.median(rep["orbit_step_cpu_percent_of_plain_step"][k] for rep in repeats)
            for k in ("median_ms", "mean_ms")},
        "client_thread_cpu_ms_per_step": statistics.median(
            rep["client_thread_cpu_ms_per_step"] for rep in repeats),
        "overhead_percent_all_adapter_cpu_mean": statistics.median(
            rep["overhead_percent_all_adapter_cpu_mean"] for rep in repeats),
        "models_identical_after_training": all(rep["models_identical_after_training"] for rep in repeats),
        "overhead_percent_thread_cpu_ordinary_steps_median": statistics.median(
            rep["overhead_percent_thread_cpu_ordinary_steps_median"] for rep in repeats),
        "median_shift_percent_from_probe_steps_alone": statistics.median(
            rep["median_shift_percent_from_probe_steps_alone"] for rep in repeats),
        "median_step_overhead_ci95_percent": {
            "thread_cpu": bootstrap_median_ci([rep["overhead_percent_thread_cpu"]["median_ms"] for rep in repeats]),
            "wall": bootstrap_median_ci([rep["overhead_percent"]["median_ms"] for rep in repeats])},
        "per_repeat": repeats,
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_before": load_before, "loadavg_at_end": os.getloadavg()},
        "wall_s": time.perf_counter() - t0,
    }
    if aa_repeats:
        out["aa_same_session"] = aa_summary(repeats, aa_repeats)
    print(f"{'per step, ms (median of repeats)':<34}{'plain':>10}{'orbit':>10}{'median':>9}{'mean':>9}")
    for label, metric, o in (("wall", "arms", overhead), ("training thread cpu", "arms_thread_cpu", overhead_cpu),
                             ("process cpu", "arms_process_cpu", overhead_pcpu)):
        print(f"{label + ' (median step)':<34}{arms[metric]['plain']['median_ms']:>10.2f}"
              f"{arms[metric]['orbit']['median_ms']:>10.2f}{o['median_ms']:>+8.2f}%{o['mean_ms']:>+8.2f}%")
    for label, o in (("wall", overhead), ("thread cpu", overhead_cpu), ("process cpu", overhead_pcpu)):
        print(f"overhead ({label}), median of {args.repeats} repeats: median {o['median_ms']:+.2f}%  "
              f"mean {o['mean_ms']:+.2f}%  p90 {o['p90_ms']:+.2f}%")
    oi = out["orbit_step_cpu_percent_of_plain_step"]
    print(f"training-thread cpu inside orbit.step / plain step cpu: median {oi['median_ms']:.2f}%, "
          f"mean {oi['mean_ms']:.2f}%")
    print(f"adapter threads (client thread, probe worker) {out['client_thread_cpu_ms_per_step']:.3f} ms cpu "
          f"per step; all adapter cpu (training + adapter threads), mean: "
          f"{out['overhead_percent_all_adapter_cpu_mean']:+.2f}%")
    print(f"models identical after training: {out['models_identical_after_training']}; "
          f"load average before {load_before[0]:.1f}, at the end {os.getloadavg()[0]:.1f}")
    print(f"ordinary (non-probe) steps of the orbit arm vs the plain arm, thread cpu medians: "
          f"{out['overhead_percent_thread_cpu_ordinary_steps_median']:+.2f}%; the probe steps alone "
          f"(1 in 10, in the tail) move a median by {out['median_shift_percent_from_probe_steps_alone']:+.2f}% "
          f"(the plain arm's own quantile)")
    ci = out["median_step_overhead_ci95_percent"]["thread_cpu"]
    print(f"median step, thread cpu: 95% bootstrap interval of the median over repeats "
          f"{ci[0]:+.2f}% .. {ci[1]:+.2f}%")
    if aa_repeats:
        a = out["aa_same_session"]
        print(f"A/A in the same session ({len(aa_repeats)} repeats): thread cpu median step "
              f"{a['overhead_percent_thread_cpu_median']:+.2f}% (95% {a['ci95_thread_cpu'][0]:+.2f}% .. "
              f"{a['ci95_thread_cpu'][1]:+.2f}%), wall {a['overhead_percent_wall_median']:+.2f}%; adapter minus "
              f"A/A {a['adapter_minus_aa_thread_cpu']:+.2f} points (95% {a['ci95_adapter_minus_aa'][0]:+.2f} .. "
              f"{a['ci95_adapter_minus_aa'][1]:+.2f})")
    os.makedirs(os.path.dirname(args.json_out), exist_ok=True)
    with open(args.json_out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {os.path.relpath(args.json_out, REPO)}")


def write_json(path, out):
    """Writes a benchmark's result `out` to `path` (its folder made) and says where."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {os.path.relpath(path, REPO)}")


def bootstrap_median_ci(values, n=4000, seed=0):
    """95% percentile-bootstrap interval of the median of `values` (resampling repeats)."""
    import random
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n))
    return [meds[int(0.025 * n)], meds[int(0.975 * n) - 1]]


def aa_summary(repeats, aa_repeats, n=4000, seed=1):
    """The A/A runs of `--with-aa` beside the adapter's: medians over repeats of the
    median-step overhead, and the adapter's minus the A/A's with a bootstrap interval."""
    import random
    ab = [rep["overhead_percent_thread_cpu"]["median_ms"] for rep in repeats]
    aa = [rep["overhead_percent_thread_cpu"]["median_ms"] for rep in aa_repeats]
    rng = random.Random(seed)
    diffs = sorted(statistics.median(rng.choices(ab, k=len(ab))) - statistics.median(rng.choices(aa, k=len(aa)))
                   for _ in range(n))
    return {
        "repeats": len(aa_repeats),
        "overhead_percent_thread_cpu_median": statistics.median(aa),
        "overhead_percent_wall_median": statistics.median(
            rep["overhead_percent"]["median_ms"] for rep in aa_repeats),
        "ci95_thread_cpu": bootstrap_median_ci(aa),
        "per_repeat_thread_cpu_median_step": aa,
        "per_repeat_wall_median_step": [rep["overhead_percent"]["median_ms"] for rep in aa_repeats],
        "loadavg_after": [rep["loadavg_after"] for rep in aa_repeats],
        "adapter_minus_aa_thread_cpu": statistics.median(ab) - statistics.median(aa),
        "ci95_adapter_minus_aa": [diffs[int(0.025 * n)], diffs[int(0.975 * n) - 1]],
    }


if __name__ == "__main__":
    main()
