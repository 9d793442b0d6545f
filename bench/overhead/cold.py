#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What a call costs on the training thread right after a training step (cold caches).

`orbit.step` runs after ~45 ms of forward, backward and optimizer work that evicts
what the adapter touched a step before, so its calls cost several times their warm
price. This measures, on the training thread's CPU clock, one thing per step right
after run.py's training step (the things take turns, steps of each kind interleaved):

- calls: nothing (the clock's own cost), a small Python function, `time.time()`,
  one system call (`os.getppid`), pyzmq's `getsockopt(ZMQ_EVENTS)` on an idle socket;
- `zeromq`: the ZeroMQ calls of an ordinary step against a real orbitd in monitor
  mode, as the client makes them (read the previous snapshot's reply, RCVMORE, ask
  ZMQ_EVENTS for more, send the next snapshot), with no adapter code around them;
- `orbit.step`: an ordinary step of the adapter talking to that orbitd (the gradient
  norm handed over, as run.py's `--trainer-grad-norm` and the example trainer do), and the same
  step with the client's socket replaced by a stand-in that hands over a `state`
  reply recorded from orbitd and sends nothing (the adapter's Python without ZeroMQ).

    /usr/bin/python3 bench/overhead/cold.py [--steps 800] [--json-out bench/results/overhead_cold.json]
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import run as overhead_run  # noqa: E402  (sets up the import paths and thread counts)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import zmq  # noqa: E402

import train  # noqa: E402
from orbitd_process import OrbitdProcess, find_orbitd  # noqa: E402
from orbit_adapter import Orbit, client as client_module  # noqa: E402


class _Holder:
    def __init__(self):
        self.x, self.y = 1, 2


def training_step(model, opt, sampler, corpus):
    x, y = corpus.batch(sampler.next_batch())
    loss = F.cross_entropy(model(x).reshape(-1, len(train.VOCAB)), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    # as run.py --trainer-grad-norm and the example trainer: the norm is handed over
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
    opt.step()
    return loss.item(), grad_norm


class RecordedReplies:
    """Stands in for the client's DEALER: hands over one recorded `state` reply after
    each snapshot and sends nothing."""

    def __init__(self, reply: bytes):
        self.reply, self.pending = reply, []

    def getsockopt(self, option):
        return int(zmq.POLLIN) if option == int(zmq.EVENTS) and self.pending else 0

    def recv(self, flags=0):
        if not self.pending:
            raise zmq.Again()
        return self.pending.pop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=800, help="training steps in all (the kinds take turns)")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--norm", default="pre")
    ap.add_argument("--orbitd", default=None)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    ap.add_argument("--json-out", default=os.path.join(REPO, "bench", "results", "overhead_cold.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    binary = find_orbitd(os.path.abspath(args.orbitd) if args.orbitd else None)
    if binary is None:
        sys.exit("cold: no orbitd binary (build it: cmake --build build --target orbitd)")
    corpus = train.Corpus(train.DEFAULT_CORPUS, 64)
    load_before = os.getloadavg()
    ctx = zmq.Context.instance()
    idle = ctx.socket(zmq.DEALER)
    idle.bind("inproc://orbit-cold-idle")
    holder = _Holder()
    events = int(zmq.EVENTS)
    model, opt, sampler = overhead_run.make_arm(corpus, args)
    with OrbitdProcess(binary, args.config, mode="monitor") as daemon:
        # The adapter's arm; its client's socket is swapped for the stand-in on some steps.
        orbit = Orbit(endpoint=daemon.endpoint, run="cold", domains=corpus.domains)
        orbit.attach(model, opt, sampler=sampler)
        spectra_every = orbit.probe_config.spectra_every
        client = orbit._link.client
        real_socket = client._socket
        # A bare client beside it for the ZeroMQ calls alone (its own session).
        bare = client_module.OrbitClient(daemon.endpoint, "cold-zeromq", domains=corpus.domains)
        sock, raw_send = bare.socket, client_module._RAW_SEND
        rcvmore, noblock, pollin = int(zmq.RCVMORE), int(zmq.NOBLOCK), int(zmq.POLLIN)
        bare_step = [0]

        def zeromq_calls():
            try:  # the reply to the snapshot of its turn before (there by now)
                frames = [sock.recv(noblock)]
                while sock.getsockopt(rcvmore):
                    frames.append(sock.recv(noblock))
            except zmq.Again:
                pass
            while sock.getsockopt(events) & pollin:
                sock.recv(noblock)
            bare_step[0] += 1
            raw_send(sock, bare.template.pack(bare_step[0], time.time(), 2.0, None, 1e-3, 1e-3,
                                              None, None, ()), noblock)

        # One reply of orbitd to this run's snapshot, for the stand-in (read off the
        # socket here, so the adapter never sees it).
        value, grad_norm = training_step(model, opt, sampler, corpus)
        orbit.step(1, value, grad_norm=grad_norm)
        time.sleep(0.05)
        stand_in = RecordedReplies(real_socket.recv())

        def no_send(sock_, data, flags):
            return None

        kinds = {
            "nothing": None,
            "small Python function": lambda: holder.x + holder.y,
            "time.time()": time.time,
            "one system call (os.getppid)": os.getppid,
            "pyzmq getsockopt(ZMQ_EVENTS), idle socket": lambda: idle.getsockopt(events),
            "zeromq: an ordinary step's calls against orbitd": zeromq_calls,
            "orbit.step, ordinary step": "orbit",
            "orbit.step, ordinary step, ZeroMQ stood in for": "orbit-stand-in",
        }
        times = {k: [] for k in kinds}
        names = list(kinds)
        bare.poll()  # its welcome
        raw_send(sock, bare.template.pack(0, time.time(), 2.0, None, 1e-3, 1e-3, None, None, ()), noblock)
        time.sleep(0.05)
        # Every step trains and then runs the thing of its turn, timed; the adapter sees
        # every step (untimed, after that thing, where the turn is not its own).
        for n in range(2, args.steps + args.warmup + 2):
            name = names[n % len(names)]
            kind = kinds[name]
            value, grad_norm = training_step(model, opt, sampler, corpus)
            ordinary = not orbit._snapshots.probes.armed and n % spectra_every != 1
            if kind in ("orbit", "orbit-stand-in"):
                stood_in = kind == "orbit-stand-in"
                if stood_in:
                    client._socket, client_module._RAW_SEND = stand_in, no_send
                    stand_in.pending = [stand_in.reply]
                c0 = time.thread_time()
                orbit.step(n, value, grad_norm=grad_norm)
                dt = time.thread_time() - c0
                if stood_in:
                    client._socket, client_module._RAW_SEND = real_socket, raw_send
                if n > args.warmup and ordinary:
                    times[name].append(dt)
                continue
            c0 = time.thread_time()
            if kind is not None:
                kind()
            dt = time.thread_time() - c0
            orbit.step(n, value, grad_norm=grad_norm)
            if n > args.warmup:
                times[name].append(dt)
        bare.close()
        orbit.close()
    errors = orbit.summary()["errors"]
    results = {k: {"steps": len(v), "median_us": 1e6 * statistics.median(v), "mean_us": 1e6 * statistics.fmean(v)}
               for k, v in times.items() if v}
    print(f"{'right after a training step, training-thread cpu':<52}{'steps':>6}{'median us':>11}{'mean us':>9}")
    for k, r in results.items():
        print(f"{k:<52}{r['steps']:>6}{r['median_us']:>11.1f}{r['mean_us']:>9.1f}")
    print(f"adapter errors: {errors}; load average before {load_before[0]:.1f}, at the end {os.getloadavg()[0]:.1f}")
    out = {"what": "training-thread CPU of one call right after a training step (cold caches), by kind",
           "command": "/usr/bin/python3 bench/overhead/cold.py " + " ".join(sys.argv[1:]),
           "commit": overhead_run.git_commit(), "results": results, "adapter_errors": errors,
           "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "zmq": zmq.zmq_version(),
                       "pyzmq": zmq.__version__, "loadavg_before": load_before, "loadavg_at_end": os.getloadavg()}}
    overhead_run.write_json(args.json_out, out)


if __name__ == "__main__":
    main()
