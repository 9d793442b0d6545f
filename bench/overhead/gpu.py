#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Adapter overhead on a GPU training step: GPT-2-small-sized and ~1B models, bf16.

For a CUDA machine (run from the repository root):

    python3 bench/overhead/gpu.py                        # every model, CUDA, bf16 autocast
    python3 bench/overhead/gpu.py --models gpt2-small --steps 150
    /usr/bin/python3 bench/overhead/gpu.py --device cpu --tiny   # a check that it runs, anywhere

Two copies of each model (same seed) train side by side in windows of `--window`
steps per arm, alternating which goes first: the plain loop (forward under bf16
autocast, backward, fused AdamW, `loss.item()` as loops that log do) and the same
loop with Orbit attached at its defaults (snapshot every step, spectral probes every
10 steps, a rollback checkpoint every 10 steps into pinned host memory, the client
thread). Each step ends with `torch.cuda.synchronize()` so the time is the GPU's.

The transport is a stand-in by default (no daemon needed, no pyzmq needed): every
snapshot is encoded with the adapter's real protocol encoder on the client thread and
answered with a `state` reply, so the adapter runs exactly as under a daemon that
listens. `--orbitd PATH` talks to a real orbitd in monitor mode instead.

Models: `gpt2-small` (d 768, 12 layers, 12 heads, 1024 context, batch 16 x 1024;
Hugging Face GPT2LMHeadModel when transformers is installed, else the same shape
built from nn.TransformerEncoderLayer), `native-1b` (d 2048, 18 layers: ~1.0 B
parameters, batch 8 x 1024) and `--tiny` (d 64, 2 layers) for the CPU check.
Writes one JSON record per model to --json-out.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "adapters", "python"))
try:
    import zmq  # noqa: F401
except ImportError:  # the stand-in transport needs no ZeroMQ
    _zmq = types.ModuleType("zmq")
    _zmq.Context = object
    sys.modules["zmq"] = _zmq

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from orbit_adapter import Orbit, protocol  # noqa: E402
from orbit_adapter.client import ClientStats  # noqa: E402
from orbit_adapter.client_thread import ClientThread  # noqa: E402
from orbit_adapter.probes import ProbeConfig  # noqa: E402
from orbit_adapter.rollback import CheckpointConfig  # noqa: E402


class StandInClient:
    """Encodes each snapshot with the real encoder and answers it with a `state`."""

    snapshot_every = 1
    registered = True

    def __init__(self):
        self.snapshots = 0
        self.bytes = 0
        self.spectral = 0
        self.spectra_names = []
        self.nonfinite = 0
        self._replies = []
        self.stats = ClientStats()

    def send_snapshot(self, step, loss, **fields):
        data = protocol.encode({"type": "snapshot", "run": "gpu", "rank": 0, "step": step,
                                "loss": loss, **fields})
        self.snapshots += 1
        self.stats.snapshots += 1
        self.bytes += len(data)
        spectra = fields.get("spectra") or {}
        if spectra:
            self.spectral += 1
            self.spectra_names = sorted(spectra)
            self.nonfinite += sum(int(not torch.isfinite(torch.as_tensor(v)).all()) for v in spectra.values())
        self._replies.append({"type": "state", "run": "gpu", "rank": 0, "step": step,
                              "state": "STABLE", "basin": "CREATIVE", "metrics": {}})
        return True

    def send_ack(self, **fields):
        return True

    def poll(self, *args, **kwargs):
        out, self._replies = self._replies, []
        return out

    def close(self):
        pass


class NativeLM(nn.Module):
    """A GPT-shaped causal LM from nn.TransformerEncoderLayer (pre-LN, GELU)."""

    def __init__(self, d, layers, heads, context, vocab):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", torch.triu(torch.full((context, context), float("-inf")), 1),
                             persistent=False)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x, src_mask=self.mask[:t, :t])
        return self.head(self.ln_f(x))


def gpt2_small(context, vocab):
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return NativeLM(768, 12, 12, context, vocab), "native (transformers not installed)"
    cfg = GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=context, vocab_size=vocab)
    return GPT2LMHeadModel(cfg), "transformers GPT2LMHeadModel"


PLANS = {
    # name: (builder(context, vocab) -> (model, how), batch, context, vocab)
    "gpt2-small": (gpt2_small, 16, 1024, 50257),
    "native-1b": (lambda c, v: (NativeLM(2048, 18, 16, c, v), "native"), 8, 1024, 50257),
    "tiny": (lambda c, v: (NativeLM(64, 2, 2, c, v), "native"), 4, 64, 1000),
}


def logits_of(out):
    return out.logits if hasattr(out, "logits") else out


def bench(name, args, device, daemon):
    build, batch, context, vocab = PLANS[name]
    cuda = device.type == "cuda"
    models, opts = {}, {}
    for arm in ("plain", "orbit"):
        torch.manual_seed(0)
        model, how = build(context, vocab)
        models[arm] = model.to(device)
        kw = {"fused": True} if cuda else {}
        try:
            opts[arm] = torch.optim.AdamW(models[arm].parameters(), lr=3e-4, **kw)
        except TypeError:  # a torch without fused AdamW
            opts[arm] = torch.optim.AdamW(models[arm].parameters(), lr=3e-4)
    param_bytes = sum(p.numel() * p.element_size() for p in models["orbit"].parameters())
    # One checkpoint is the model plus AdamW's two moments; the ring keeps the start
    # and the newest (pinned host memory on CUDA).
    ring = CheckpointConfig(every=10, budget_bytes=int(2.2 * 3 * param_bytes) + (16 << 20))
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randint(0, vocab, (batch, context), generator=gen).to(device)
    orbit, stand_in = None, None
    step_of = {"plain": 0, "orbit": 0}
    times = {"plain": [], "orbit": []}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=not args.no_autocast)

    def one(arm):
        model, opt = models[arm], opts[arm]
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            logits = logits_of(model(x))
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                               x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step_of[arm] += 1
        value = loss.item()
        if arm == "orbit":
            orbit.step(step_of[arm], value)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        one("plain")
    # Attached after the plain arm's warm-up, so the first orbit step comes within the
    # adapter's no-answer warning time.
    if daemon is not None:
        orbit = Orbit(endpoint=daemon.endpoint, run=f"gpu-{name}", checkpoints=ring)
    else:
        stand_in = StandInClient()
        orbit = Orbit(endpoint=None, run=f"gpu-{name}", checkpoints=ring,
                      client=ClientThread(stand_in), probes=ProbeConfig())
    orbit.attach(models["orbit"], opts["orbit"])
    for _ in range(args.warmup):
        one("orbit")
    w = 0
    while len(times["orbit"]) < args.steps:
        for arm in (("plain", "orbit") if w % 2 == 0 else ("orbit", "plain")):
            for _ in range(args.window):
                times[arm].append(one(arm))
        w += 1
    summary = orbit.summary()
    orbit.close()
    p, q = times["plain"], times["orbit"]
    res = {
        "model": name, "built_as": how, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "autocast": None if args.no_autocast else "bfloat16",
        "batch": batch, "context": context,
        "params_M": round(sum(t.numel() for t in models["plain"].parameters()) / 1e6, 1),
        "steps_per_arm": len(q),
        "plain_median_ms": round(1e3 * statistics.median(p), 3),
        "orbit_median_ms": round(1e3 * statistics.median(q), 3),
        "median_overhead_percent": round(100 * (statistics.median(q) / statistics.median(p) - 1), 2),
        "mean_overhead_percent": round(100 * (statistics.mean(q) / statistics.mean(p) - 1), 2),
        "orbit_step_ms_max": round(1e3 * max(q), 3),
        "client_thread_cpu_s": (summary.get("client_thread") or {}).get("cpu_s"),
        "checkpoints": orbit.checkpoint_steps,
        "adapter_errors": summary["errors"],
    }
    if stand_in is not None:
        res.update({"snapshots": stand_in.snapshots, "spectral_snapshots": stand_in.spectral,
                    "snapshot_bytes_mean": round(stand_in.bytes / max(1, stand_in.snapshots)),
                    "spectra_names": stand_in.spectra_names,
                    "nonfinite_spectra": stand_in.nonfinite})
    if cuda:
        res["max_memory_allocated_GiB"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(res), flush=True)
    del models, opts, orbit
    if cuda:
        torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="gpt2-small,native-1b", help="comma-separated: " + ", ".join(PLANS))
    ap.add_argument("--tiny", action="store_true", help="only the tiny model (a check that the harness runs)")
    ap.add_argument("--steps", type=int, default=100, help="timed steps per arm")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--no-autocast", action="store_true")
    ap.add_argument("--orbitd", default=None, help="a real orbitd binary (monitor mode); default: stand-in")
    ap.add_argument("--json-out", default=os.path.join(REPO, "bench", "results", "gpu_overhead.json"))
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu.py: CUDA is not available here; use --device cpu --tiny for a check that it runs")
    names = ["tiny"] if args.tiny else [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        if n not in PLANS:
            sys.exit(f"gpu.py: unknown model {n!r}; known: {', '.join(PLANS)}")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a shared CPU: one thread per arm step, as bench/overhead/run.py
    daemon = None
    if args.orbitd:
        from orbit_adapter.daemon_process import OrbitdProcess
        daemon = OrbitdProcess(os.path.abspath(args.orbitd), os.path.join(REPO, "configs", "default.toml"),
                               mode="monitor").start()
    results = []
    try:
        for n in names:
            try:
                results.append(bench(n, args, device, daemon))
            except Exception as e:  # one model out of memory must not lose the others
                import traceback
                traceback.print_exc()
                results.append({"model": n, "error": repr(e)[:500]})
    finally:
        if daemon is not None:
            daemon.stop()
    out = {"what": "Orbit adapter overhead on a training step (bench/overhead/gpu.py)",
           "command": "bench/overhead/gpu.py " + " ".join(sys.argv[1:]),
           "torch": torch.__version__, "python": platform.python_version(),
           "cuda": torch.version.cuda, "transport": "orbitd" if daemon else "stand-in (real encoder)",
           "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
    with open(args.json_out, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", args.json_out)


if __name__ == "__main__":
    main()
