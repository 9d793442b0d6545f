#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The adapter of another commit against this checkout's, in one process: what a change
to the adapter did to its per-step cost, without the run-to-run spread of run.py.

The package `adapters/python/orbit_adapter` of `--base` is extracted (git archive) and
imported under another name; two identical models (run.py's) train in windows of
`--window` steps, alternating which goes first, one with the base adapter and one with
this checkout's, both talking to one orbitd in monitor mode. Per step: the training
thread's CPU inside `orbit.step` (split into probe steps, every `spectra_every`, and
the other steps, which make the median step) and of the whole step; per arm, the probe
worker's CPU per step (it runs beside the training thread, so those figures miss it). The two models
swap adapters halfway through each repeat, so the instances' own speed difference
cancels.

    /usr/bin/python3 bench/overhead/compare.py --base REV [--steps 200] [--repeats 3]
        [--trainer-grad-norm] [--base-probe-thread auto|on|off] [--probe-thread auto|on|off]
        [--json-out bench/results/overhead_compare.json]

`--base this` puts this checkout's adapter in both arms (to compare settings, e.g. the
probe worker on against off: `--base this --base-probe-thread off --probe-thread on`);
`--base none` trains the base arm without any adapter (a plain model, the overhead
benchmark's other arm). Besides the medians, per arm: the whole step's CPU on ordinary
steps and on the steps right after a probe step (where a probe worker's job runs
beside the training thread), and over the repeats a 95 % bootstrap interval of the
difference of the median steps.

`--busy-orbitd` (with `--base none` and `--this-none`: both arms plain) measures what
orbitd and an adapter's traffic cost a training thread that runs none of the adapter's
code: a separate process sends orbitd a snapshot every 45 ms (spectra every 10th, the
probes' sizes) and reads the replies, and runs only during the `this` arm's windows
(SIGCONT / SIGSTOP at each switch), so `this` trains beside a busy orbitd and `base`
beside an idle one.

`--this-transport` isolates what the adapter's ZeroMQ traffic and orbitd cost the
training thread outside `orbit.step` (with `--base this`: the same adapter in both arms).
`zeromq` (the default): as the adapter runs. `sink`: once registered with orbitd, the
`this` arm's messages go to a process that reads and drops them and never answers
(the adapter's I/O thread still wakes for each send, the sink's threads for each
receive), and the client reads a recorded `state` reply from a stand-in in place of
orbitd's (so the reply chain, orbitd's work and its two thread wake-ups per snapshot
are gone). `stand-in`: nothing is sent at all and the recorded reply is handed over:
no ZeroMQ call and no other thread wakes. Per arm, the ordinary steps' CPU outside
`orbit.step` (whole step minus inside) says what is left beside the training thread.
"""
import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import run as overhead_run  # noqa: E402  (sets up the import paths and thread counts)
import torch  # noqa: E402

import train  # noqa: E402
from orbitd_process import OrbitdProcess, find_orbitd  # noqa: E402
from orbit_adapter import Orbit  # noqa: E402
from orbit_adapter.probes import ProbeConfig  # noqa: E402

ARMS = ("base", "this")


def import_base(rev, into):
    """Orbit of `rev`'s adapter package, imported as orbit_adapter_base."""
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "adapters/python/orbit_adapter"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    os.rename(os.path.join(into, "adapters", "python", "orbit_adapter"),
              os.path.join(into, "orbit_adapter_base"))
    sys.path.insert(0, into)
    from orbit_adapter_base import Orbit as BaseOrbit
    return BaseOrbit


def make_orbit(cls, probe_thread, replies=None, **kwargs):
    """An Orbit of `cls` (None: no adapter), with `probe_thread` where it is not the
    default and the client's `replies` where one is given."""
    if cls is None:
        return None
    if probe_thread != "auto":
        kwargs["probe_thread"] = overhead_run.CLIENT_MODES[probe_thread]
    if replies is not None:
        kwargs["client_options"] = {"replies": replies}
    return cls(**kwargs)


def involuntary_switches() -> int:
    """Times the calling thread was preempted so far (Linux RUSAGE_THREAD)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def busy_client(endpoint):
    """The traffic of an adapter without the adapter (--busy-orbitd's other process)."""
    import numpy as np
    from orbit_adapter import OrbitClient
    rng = np.random.default_rng(0)
    spectra = {"attn.0": 64, "attn.1": 64, "hidden.0": 128, "hidden.1": 128}
    client = OrbitClient(endpoint, "busy", domains=("a", "b"))
    step = 0
    while True:
        step += 1
        client.poll()
        client.send_snapshot(step, 2.0 + rng.random(), grad_norm=1.0, lr=1e-3,
                             domains={"a": {"weight": 0.5}, "b": {"weight": 0.5}},
                             spectra={k: rng.random(n).astype(np.float32) for k, n in spectra.items()}
                             if step % 10 == 0 else None)
        time.sleep(0.045)


def sink(endpoint):
    """--this-transport sink's other process: reads and drops every message, answers none."""
    import zmq
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(endpoint)
    while True:
        sock.recv_multipart()


class StandInSocket:
    """Stands in for a client's DEALER (--this-transport): hands over a recorded `state`
    reply once per message the client sent (like orbitd's answer to each snapshot)."""

    def __init__(self, reply: bytes):
        self.reply, self.pending = reply, 0

    def getsockopt(self, option):
        import zmq
        return int(zmq.POLLIN) if option == int(zmq.EVENTS) and self.pending else 0

    def recv(self, flags=0):
        import zmq
        if not self.pending:
            raise zmq.Again()
        self.pending -= 1
        return self.reply


def recorded_state_reply(endpoint, domains):
    """One real `state` reply of orbitd to an ordinary snapshot (a throwaway session)."""
    from orbit_adapter import OrbitClient
    client = OrbitClient(endpoint, "compare-record", domains=domains)
    deadline = time.monotonic() + 10
    while not client.registered and time.monotonic() < deadline:
        client.poll()
        time.sleep(0.01)
    client.send_snapshot(1, 2.0, grad_norm=1.0, lr=1e-3, domains={d: {"weight": 1.0 / len(domains)}
                                                                   for d in domains})
    sock = client.socket
    if not sock.poll(10000):
        sys.exit("compare: orbitd did not answer the recording snapshot")
    reply = sock.recv_multipart()[-1]
    client.close()
    return reply


def stand_in_transport(orbit, reply, sink_socket):
    """Swaps the registered client's transport for the stand-in (see --this-transport);
    returns a function that puts the real one back (before close)."""
    client = orbit._link.client
    deadline = time.monotonic() + 10
    while not client.registered and time.monotonic() < deadline:
        orbit.poll()  # the welcome, read the adapter's way
        time.sleep(0.01)
    if not client.registered:
        sys.exit("compare: orbitd did not welcome the stand-in arm")
    import zmq
    real_socket, stand_in = client._socket, StandInSocket(reply)
    raw_send, noblock = zmq.backend.Socket.send, int(zmq.NOBLOCK)

    def send(data):
        if sink_socket is not None:
            raw_send(sink_socket, data, noblock)
        stand_in.pending += 1
        client._stats.sent += 1
        client._last_send = client._clock()
        return True

    client._socket, client._send = stand_in, send

    def restore():
        del client._send
        client._socket = real_socket
    return restore


def one_repeat(classes, binary, corpus, args):
    models = [overhead_run.make_arm(corpus, args), overhead_run.make_arm(corpus, args)]
    inside = {arm: {"probe": [], "other": []} for arm in ARMS}
    # the ordinary steps' training-thread CPU outside orbit.step (whole step minus inside)
    outside = {arm: [] for arm in ARMS}
    # the training thread's involuntary context switches per ordinary step
    preempted = {arm: [] for arm in ARMS}
    whole = {arm: [] for arm in ARMS}
    # the whole step's CPU by kind: ordinary steps, and those right after a probe step
    whole_kind = {arm: {"ordinary": [], "after_probe": []} for arm in ARMS}
    done = [0, 0]
    worker = {arm: [0.0, 0] for arm in ARMS}  # the probe worker's CPU seconds and steps run
    per_half = args.steps // 2
    probe_thread = {"base": args.base_probe_thread, "this": args.probe_thread}
    replies = {"base": args.base_replies, "this": args.replies}
    every = ProbeConfig().spectra_every
    with OrbitdProcess(binary, args.config, mode="monitor") as daemon:
        busy = None
        if args.busy_orbitd:
            busy = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--base", "none",
                                     "--busy-client", daemon.endpoint])
        reply, sink_proc, sink_socket = None, None, None
        if args.this_transport != "zeromq":
            reply = recorded_state_reply(daemon.endpoint, corpus.domains)
        if args.this_transport == "sink":
            import zmq
            sink_endpoint = "ipc://" + os.path.join(tempfile.gettempdir(), f"orbit-compare-sink-{os.getpid()}")
            sink_proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--base", "none",
                                          "--sink", sink_endpoint])
            sink_socket = zmq.Context.instance().socket(zmq.DEALER)
            sink_socket.setsockopt(zmq.LINGER, 0)
            sink_socket.connect(sink_endpoint)
        for half in range(2):
            # The first half: model 0 with the base adapter; the second, model 1.
            owners = {"base": half, "this": 1 - half}
            orbits, restore = {}, None
            for arm in ARMS:
                m = models[owners[arm]]
                orbits[arm] = make_orbit(classes[arm], probe_thread[arm], replies[arm], endpoint=daemon.endpoint,
                                         run=f"compare-{arm}-{half}", domains=corpus.domains)
                if orbits[arm] is not None:
                    orbits[arm].attach(m[0], m[1], sampler=m[2],
                                       start_step=done[owners[arm]] + args.window // 2)
                    if arm == "this" and reply is not None:
                        restore = stand_in_transport(orbits[arm], reply, sink_socket)
            counted = {arm: 0 for arm in ARMS}
            window = 0
            while counted["this"] < per_half + args.warmup:
                for arm in (ARMS if window % 2 else ARMS[::-1]):
                    i, o = owners[arm], orbits[arm]
                    if busy is not None:
                        busy.send_signal(signal.SIGCONT if arm == "this" else signal.SIGSTOP)
                    for _ in range(args.window):
                        done[i] += 1
                        counted[arm] += 1
                        # Offset by half a window, as in run.py: a probe step's worker job
                        # overlaps its own arm's next step.
                        number = done[i] + args.window // 2
                        # A plain arm's steps are sorted as the adapter's would be.
                        probe = o._snapshots.probes.armed if o is not None else number % every == 0
                        n0 = involuntary_switches()
                        _, dc, _, di = overhead_run.one_step(*models[i], corpus, o, number,
                                                             args.trainer_grad_norm)
                        switches = involuntary_switches() - n0
                        if counted[arm] > args.warmup:
                            inside[arm]["probe" if probe else "other"].append(di)
                            whole[arm].append(dc)
                            if not probe:
                                whole_kind[arm]["ordinary"].append(dc)
                                outside[arm].append(dc - di)
                                preempted[arm].append(switches)
                                if number % every == 1:
                                    whole_kind[arm]["after_probe"].append(dc)
                window += 1
            if busy is not None:
                busy.send_signal(signal.SIGSTOP)
            if restore is not None:
                restore()
            for arm, o in orbits.items():
                worker[arm][1] += counted[arm]
                if o is None:
                    continue
                summary = o.summary()
                errors = summary["errors"]
                if summary["probe_thread"] is not None:
                    worker[arm][0] += summary["probe_thread"]["cpu_s"]
                o.close()
                if errors:
                    sys.exit(f"compare: adapter errors {errors}")
        for proc in (busy, sink_proc):
            if proc is not None:
                proc.kill()
                proc.wait()
        if sink_socket is not None:
            sink_socket.close()
    med = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    res = {arm: {"inside_other_steps_median_ms": med(inside[arm]["other"]),
                 "inside_probe_steps_median_ms": med(inside[arm]["probe"]),
                 "inside_all_steps_mean_ms": 1000 * statistics.fmean(inside[arm]["other"] + inside[arm]["probe"]),
                 "step_median_ms": med(whole[arm]),
                 "ordinary_step_median_ms": med(whole_kind[arm]["ordinary"]),
                 "after_probe_step_median_ms": med(whole_kind[arm]["after_probe"]),
                 "ordinary_outside_median_ms": med(outside[arm]),
                 "ordinary_preemptions_per_step": statistics.fmean(preempted[arm]),
                 # all of its steps, warmup included: the worker runs beside them
                 "probe_worker_cpu_ms_per_step": 1000 * worker[arm][0] / max(1, worker[arm][1])}
           for arm in ARMS}
    base_inside = res["base"]["inside_other_steps_median_ms"]
    res["this_over_base_inside_other_steps"] = (res["this"]["inside_other_steps_median_ms"] / base_inside
                                                if base_inside else float("nan"))  # nan: a plain base
    res["step_median_this_minus_base_percent"] = 100 * (res["this"]["step_median_ms"]
                                                        / res["base"]["step_median_ms"] - 1)
    res["ordinary_step_median_this_minus_base_percent"] = 100 * (res["this"]["ordinary_step_median_ms"]
                                                                 / res["base"]["ordinary_step_median_ms"] - 1)
    res["after_probe_step_median_this_minus_base_percent"] = 100 * (
        res["this"]["after_probe_step_median_ms"] / res["base"]["after_probe_step_median_ms"] - 1)
    res["ordinary_outside_this_minus_base_percent_of_base_step"] = 100 * (
        (res["this"]["ordinary_outside_median_ms"] - res["base"]["ordinary_outside_median_ms"])
        / res["base"]["ordinary_step_median_ms"])
    res["loadavg_after"] = os.getloadavg()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True,
                    help="git revision whose adapter is the baseline; 'this': this checkout's adapter "
                         "in both arms; 'none': no adapter in the base arm")
    ap.add_argument("--base-probe-thread", choices=sorted(overhead_run.CLIENT_MODES), default="auto",
                    help="Orbit(probe_thread=...) of the base arm (auto: the adapter's default)")
    ap.add_argument("--probe-thread", choices=sorted(overhead_run.CLIENT_MODES), default="auto",
                    help="Orbit(probe_thread=...) of this checkout's arm")
    ap.add_argument("--this-none", action="store_true",
                    help="no adapter in this checkout's arm either (with --base none: an A/A run)")
    ap.add_argument("--busy-orbitd", action="store_true",
                    help="another process sends orbitd an adapter's traffic during this arm's windows only")
    ap.add_argument("--busy-client", metavar="ENDPOINT", help=argparse.SUPPRESS)
    ap.add_argument("--this-transport", choices=("zeromq", "sink", "stand-in"), default="zeromq",
                    help="the this arm's transport once registered: zeromq (as the adapter runs), sink "
                         "(sends go to a process that never answers; a recorded reply is read), stand-in "
                         "(nothing sent, the recorded reply read): see the module doc")
    ap.add_argument("--sink", metavar="ENDPOINT", help=argparse.SUPPRESS)
    ap.add_argument("--base-replies", choices=("every", "news"), default=None,
                    help="the base arm's OrbitClient(replies=...) (default: its adapter's own)")
    ap.add_argument("--replies", choices=("every", "news"), default=None,
                    help="this arm's OrbitClient(replies=...) (default: the adapter's own, news)")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per arm and repeat")
    ap.add_argument("--warmup", type=int, default=20, help="steps per arm and half left out")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--norm", default="pre")
    ap.add_argument("--trainer-grad-norm", action="store_true",
                    help="the trainer computes the gradient norm and hands it over (the example trainer)")
    ap.add_argument("--orbitd", default=None)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    ap.add_argument("--json-out", default=os.path.join(REPO, "bench", "results", "overhead_compare.json"))
    args = ap.parse_args()
    if args.busy_client:
        busy_client(args.busy_client)
        return
    if args.sink:
        sink(args.sink)
        return
    torch.set_num_threads(1)
    binary = find_orbitd(os.path.abspath(args.orbitd) if args.orbitd else None)
    if binary is None:
        sys.exit("compare: no orbitd binary (build it: cmake --build build --target orbitd)")
    base_rev = args.base if args.base in ("this", "none") else subprocess.run(
        ["git", "-C", REPO, "rev-parse", "--short", args.base], capture_output=True, text=True,
        check=True).stdout.strip()
    corpus = train.Corpus(train.DEFAULT_CORPUS, 64)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orbit-compare-") as tmp:
        base_class = {"this": Orbit, "none": None}.get(args.base) if args.base in ("this", "none") \
            else import_base(args.base, tmp)
        classes = {"base": base_class, "this": None if args.this_none else Orbit}
        repeats = []
        for r in range(args.repeats):
            rep = one_repeat(classes, binary, corpus, args)
            repeats.append(rep)
            b, t = rep["base"], rep["this"]
            print(f"repeat {r + 1}: inside orbit.step, median of the non-probe steps: base "
                  f"{b['inside_other_steps_median_ms']:.3f} ms, this {t['inside_other_steps_median_ms']:.3f} ms "
                  f"(x{rep['this_over_base_inside_other_steps']:.3f}); probe steps {b['inside_probe_steps_median_ms']:.2f}"
                  f" / {t['inside_probe_steps_median_ms']:.2f} ms; median step {b['step_median_ms']:.2f} / "
                  f"{t['step_median_ms']:.2f} ms ({rep['step_median_this_minus_base_percent']:+.2f}%; ordinary "
                  f"steps {rep['ordinary_step_median_this_minus_base_percent']:+.2f}%, after a probe step "
                  f"{rep['after_probe_step_median_this_minus_base_percent']:+.2f}%); probe "
                  f"worker {b['probe_worker_cpu_ms_per_step']:.3f} / {t['probe_worker_cpu_ms_per_step']:.3f} ms cpu "
                  f"per step; ordinary steps outside orbit.step {b['ordinary_outside_median_ms']:.2f} / "
                  f"{t['ordinary_outside_median_ms']:.2f} ms "
                  f"({rep['ordinary_outside_this_minus_base_percent_of_base_step']:+.2f}% of a step); "
                  f"preempted {b['ordinary_preemptions_per_step']:.2f} / {t['ordinary_preemptions_per_step']:.2f} "
                  f"times per ordinary step; "
                  f"load {rep['loadavg_after'][0]:.1f}", flush=True)
    diffs = ("step_median_this_minus_base_percent", "ordinary_step_median_this_minus_base_percent",
             "after_probe_step_median_this_minus_base_percent",
             "ordinary_outside_this_minus_base_percent_of_base_step")
    summary = {k: statistics.median(rep[k] for rep in repeats)
               for k in ("this_over_base_inside_other_steps",) + diffs}
    for k in diffs:
        summary[k + "_ci95"] = overhead_run.bootstrap_median_ci([rep[k] for rep in repeats])
    for arm in ARMS:
        for k in ("inside_other_steps_median_ms", "inside_probe_steps_median_ms", "inside_all_steps_mean_ms",
                  "step_median_ms", "ordinary_step_median_ms", "after_probe_step_median_ms",
                  "probe_worker_cpu_ms_per_step", "ordinary_outside_median_ms",
                  "ordinary_preemptions_per_step"):
            summary[f"{arm}_{k}"] = statistics.median(rep[arm][k] for rep in repeats)
    out = {
        "what": "training-thread CPU inside orbit.step and of the whole step, the adapter of --base against "
                "this checkout's, in one process (interleaved windows, adapters swapped halfway)",
        "command": "/usr/bin/python3 bench/overhead/compare.py " + " ".join(sys.argv[1:]),
        "commit": overhead_run.git_commit(), "base": base_rev,
        "probe_thread": {"base": args.base_probe_thread, "this": args.probe_thread},
        "this_arm_adapter": not args.this_none, "busy_orbitd_in_this_arm": args.busy_orbitd,
        "this_arm_transport": args.this_transport,
        "replies": {"base": args.base_replies, "this": args.replies},
        "scheduling": overhead_run.scheduling(),
        "grad_norm_by": "trainer" if args.trainer_grad_norm else "adapter",
        "steps_timed_per_arm_and_repeat": args.steps, "repeats": args.repeats, "window": args.window,
        "median_of_repeats": summary,
        "per_repeat": repeats,
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "loadavg_before": load_before,
                    "loadavg_at_end": os.getloadavg()},
        "wall_s": time.perf_counter() - t0,
    }
    print(f"median of {args.repeats} repeats: inside orbit.step on non-probe steps base "
          f"{summary['base_inside_other_steps_median_ms']:.3f} ms, this {summary['this_inside_other_steps_median_ms']:.3f}"
          f" ms (x{summary['this_over_base_inside_other_steps']:.3f}); median step this vs base "
          f"{summary['step_median_this_minus_base_percent']:+.2f}% (95% "
          f"{summary['step_median_this_minus_base_percent_ci95'][0]:+.2f} .. "
          f"{summary['step_median_this_minus_base_percent_ci95'][1]:+.2f}); ordinary steps "
          f"{summary['ordinary_step_median_this_minus_base_percent']:+.2f}% (95% "
          f"{summary['ordinary_step_median_this_minus_base_percent_ci95'][0]:+.2f} .. "
          f"{summary['ordinary_step_median_this_minus_base_percent_ci95'][1]:+.2f}), after a probe step "
          f"{summary['after_probe_step_median_this_minus_base_percent']:+.2f}%; ordinary steps outside "
          f"orbit.step {summary['ordinary_outside_this_minus_base_percent_of_base_step']:+.2f}% of a step (95% "
          f"{summary['ordinary_outside_this_minus_base_percent_of_base_step_ci95'][0]:+.2f} .. "
          f"{summary['ordinary_outside_this_minus_base_percent_of_base_step_ci95'][1]:+.2f})")
    overhead_run.write_json(args.json_out, out)


if __name__ == "__main__":
    main()
