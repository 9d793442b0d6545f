#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small char-level causal transformer LM on the bundled corpus, with or without Orbit.

Defaults (the efficacy suite's model): d=128, 2 layers, 4 heads, context 64,
batch 16, AdamW(0.9, 0.99) without weight decay or clipping, init std 0.02,
constant lr after an optional linear warmup. `--unstable` is lr 1e-2 with no
warmup, where uncontrolled runs collapse onto a high-loss plateau.

    /usr/bin/python3 examples/pytorch/train.py --steps 800 --lr 1e-3
    /usr/bin/python3 examples/pytorch/train.py --unstable --control on --endpoint tcp://127.0.0.1:5555

Baseline guards for the efficacy benchmark: `--guard plateau` (ReduceLROnPlateau on
the smoothed training loss) and `--guard zclip` (z-score gradient-norm clipping with
EWMA statistics, in the style of ZClip). `--json-out` writes the run's record.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time


def _threads_flag(argv) -> str:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# BLAS reads its thread count at load time, so --threads is applied before torch is
# imported. One thread by default: the benchmark runs two trainers on two cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_flag(sys.argv))
os.environ.setdefault("OMP_NUM_THREADS", _threads_flag(sys.argv))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "adapters", "python"))

from orbit_adapter.sampler import DomainMixtureSampler  # noqa: E402
from orbit_basins.windows import WindowCorpus  # noqa: E402

DEFAULT_CORPUS = os.path.join(REPO, "examples", "corpus", "corpus.jsonl")

# ---- data -----------------------------------------------------------------------
class Corpus(WindowCorpus):
    """Per-domain token streams of the train split and one stream of the val split."""

    def __init__(self, path: str, context: int):
        train, val = {}, []
        with open(path, encoding="ascii") as f:
            for line in f:
                rec = json.loads(line)
                if rec["split"] == "val":
                    val.append(rec["text"])
                else:
                    train.setdefault(rec["domain"], []).append(rec["text"])
        self.context = context
        self.domains = sorted(train)
        self.train = {d: encode_text("".join(train[d])) for d in self.domains}
        self.val = encode_text("".join(val))
        # A sample is a window start; each window holds context + 1 tokens.
        self.sizes = self.window_sizes()


# ---- model ----------------------------------------------------------------------
# The model lives in orbit_basins so saved checkpoints load without this script.
from orbit_basins.char_lm import (VOCAB, CharTransformer, CausalSelfAttention,  # noqa: E402,F401
                                  CustomBlock, decode_ids, encode_text, save_checkpoint)


def make_generate(model: CharTransformer, prompt: str, new_tokens: int, seed: int):
    """Sampling for the loop-rate probe; its own generator, so training RNG is untouched."""
    prompt_ids = encode_text(prompt)

    def generate(_model=None):
        gen = torch.Generator().manual_seed(seed)
        was_training = model.training
        model.eval()
        ids = prompt_ids.clone()
        with torch.no_grad():
            for _ in range(new_tokens):
                logits = model(ids[-model.context:].unsqueeze(0))[0, -1]
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=gen)
                ids = torch.cat([ids, nxt])
        model.train(was_training)
        return [ids[len(prompt_ids):].tolist()]

    return generate


@torch.no_grad()
def evaluate(model, corpus: Corpus, windows: int, batch: int) -> float:
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    for x, y in corpus.val_batches(windows, batch):
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 reduction="sum").item()
        n += y.numel()
    model.train(was_training)
    return total / n


# ---- baseline guards --------------------------------------------------------------
class ZClip:
    """Gradient-norm clipping at z-score `z` against EWMA mean and variance."""

    def __init__(self, alpha: float = 0.97, z: float = 2.5, warmup: int = 25):
        self.alpha, self.z, self.warmup = alpha, z, warmup
        self.mean, self.var, self.seen = 0.0, 0.0, 0

    def __call__(self, params, norm: float) -> bool:
        clipped = False
        if self.seen >= self.warmup and math.isfinite(norm):
            std = math.sqrt(max(self.var, 1e-12))
            limit = self.mean + self.z * std
            if norm > limit:
                torch.nn.utils.clip_grad_norm_(params, limit)
                norm, clipped = limit, True
        if math.isfinite(norm):
            if self.seen == 0:
                self.mean = norm
            else:
                delta = norm - self.mean
                self.mean += (1 - self.alpha) * delta
                self.var = self.alpha * (self.var + (1 - self.alpha) * delta * delta)
            self.seen += 1
        return clipped


# ---- training -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=800, help="step budget (steps lost to rollbacks count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--norm", choices=("pre", "post"), default="pre")
    p.add_argument("--warmup", type=int, default=0, help="linear warmup steps")
    p.add_argument("--unstable", action="store_true", help="lr 1e-2 and no warmup")
    p.add_argument("--control", choices=("on", "off"), default="off")
    p.add_argument("--endpoint", default=None,
                   help="orbitd's endpoint (default: $ORBIT_ENDPOINT, else orbitd's default socket)")
    p.add_argument("--run", default=None, help="run id sent to orbitd (default: derived from the flags)")
    p.add_argument("--guard", choices=("none", "plateau", "zclip"), default="none",
                   help="baseline stabilizer for the efficacy benchmark")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-windows", type=int, default=256)
    p.add_argument("--final-eval-windows", type=int, default=1024)
    p.add_argument("--json-out", default=None)
    p.add_argument("--attn", choices=("torch", "custom"), default="torch",
                   help="nn.TransformerEncoderLayer or the hand-written attention")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--corpus", default=DEFAULT_CORPUS)
    p.add_argument("--loop-every", type=int, default=200, help="loop-rate generation cadence under control (0: off)")
    p.add_argument("--spectra-every", type=int, default=10, help="spectral probe cadence under control")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--save", default=None,
                   help="write the final model here (orbit-char-lm/1 checkpoint, loadable by orbit-basins)")
    p.add_argument("--save-every", type=int, default=0,
                   help="also save every N steps, as PATH with the step before the suffix (x.pt -> x.step200.pt)")
    p.add_argument("--domain-weights", default=None,
                   help="base data mixture: JSON object {domain: weight} or a file holding one "
                        "(e.g. from `orbit-basins curate`); default: proportional to domain size")
    return p


def checkpoint_path(path: str, step: int) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}.step{step}{ext or '.pt'}"


def read_domain_weights(spec: str) -> dict:
    text = open(spec).read() if os.path.exists(spec) else spec
    weights = json.loads(text)
    if isinstance(weights, dict) and "weights" in weights:  # a curation report
        weights = weights["weights"]
    if not isinstance(weights, dict):
        raise SystemExit(f"--domain-weights: expected a JSON object of domain weights, got {text[:80]!r}")
    return {str(k): float(v) for k, v in weights.items()}


def run(args) -> dict:
    if args.unstable:
        args.lr, args.warmup = 1e-2, 0
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    corpus = Corpus(args.corpus, args.context)
    model = CharTransformer(len(VOCAB), args.d_model, args.layers, args.heads, args.context,
                            args.norm, args.attn)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    schedulers = []
    if args.warmup > 0:
        schedulers.append(torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / args.warmup)))
    plateau = None
    if args.guard == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=0.5, patience=50, threshold=1e-3, min_lr=args.lr * 1e-3)
        schedulers.append(plateau)
    zclip = ZClip() if args.guard == "zclip" else None
    weights = read_domain_weights(args.domain_weights) if args.domain_weights else None
    sampler = DomainMixtureSampler(corpus.sizes, args.batch, seed=args.seed, weights=weights)
    save_meta = {"lr": args.lr, "norm": args.norm, "seed": args.seed, "control": args.control,
                 "steps": args.steps, "warmup": args.warmup,
                 "domain_weights": json.dumps(sampler.base_weights, sort_keys=True)}

    orbit = None
    if args.control == "on":
        from orbit_adapter import Orbit
        from orbit_adapter.adapter import ProbeConfig, domain_losses
        run_id = args.run or f"train-{args.norm}-lr{args.lr:g}-s{args.seed}-{os.getpid()}"
        probes = ProbeConfig(spectra_every=args.spectra_every, loop_every=args.loop_every)
        orbit = Orbit(endpoint=args.endpoint, run=run_id, domains=corpus.domains, probes=probes,
                      generate=make_generate(model, "The ", 64, args.seed) if args.loop_every else None)
        orbit.attach(model, opt, scheduler=schedulers or None, sampler=sampler)
        if model.custom:  # the hand-written attention hands its probabilities over
            for block in model.blocks:
                orbit.register_attention(block.attn)

    ewma, lrs, train_curve, val_curve, step_times = None, [], [], [], []
    interventions, first_intervention = 0, None
    t_start = time.perf_counter()
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        picks = sampler.next_batch()
        x, y = corpus.batch(picks)
        logits = model(x)
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                    reduction="none").view(y.shape)
        loss = per_token.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf")))
        if zclip is not None and zclip(params, grad_norm):
            interventions += 1
            first_intervention = first_intervention or step
        lr_before = opt.param_groups[0]["lr"]
        opt.step()
        loss_value = loss.item()
        ewma = loss_value if ewma is None or not math.isfinite(ewma) else 0.95 * ewma + 0.05 * loss_value
        for s in schedulers:
            if s is plateau:
                s.step(ewma)
            else:
                s.step()
        if plateau is not None and opt.param_groups[0]["lr"] < lr_before * 0.999 and step > 1:
            interventions += 1
            first_intervention = first_intervention or step
        lr_in_effect = lr_before
        if orbit is not None:
            orbit.step(step, loss_value, grad_norm=grad_norm,
                       domain_losses=domain_losses(per_token, [d for d, _ in picks]),
                       tokens=y.numel())
            lr_in_effect = orbit.last_lr if orbit.last_lr is not None else lr_before
        lrs.append(lr_in_effect)
        step_times.append(time.perf_counter() - t0)
        if step % 10 == 0:
            train_curve.append([step, ewma])
        if args.eval_every and step % args.eval_every == 0 and step < args.steps:
            v = evaluate(model, corpus, args.eval_windows, args.batch)
            val_curve.append([step, v])
            if not args.quiet:
                print(f"step {step:5d}  train {ewma:.3f}  val {v:.3f}  lr {lr_in_effect:.2e}", flush=True)
        elif not args.quiet and args.log_every and step % args.log_every == 0:
            print(f"step {step:5d}  train {ewma:.3f}  lr {lr_in_effect:.2e}", flush=True)
        if args.save and args.save_every and step % args.save_every == 0 and step < args.steps:
            save_checkpoint(model, checkpoint_path(args.save, step), step,
                            dict(save_meta, train_loss=float(ewma)))

    final = evaluate(model, corpus, args.final_eval_windows, args.batch)
    val_curve.append([args.steps, final])
    wall = time.perf_counter() - t_start
    if args.save:
        save_checkpoint(model, args.save, args.steps,
                        dict(save_meta, train_loss=float(ewma), val_loss=float(final)))
    result = {
        "args": vars(args),
        "final_val_loss": final,
        "final_train_loss": ewma,
        "val_curve": val_curve,
        "train_curve": train_curve,
        "lr": {"first": lrs[0], "last": lrs[-1], "min": min(lrs), "max": max(lrs),
               "mean": statistics.fmean(lrs),
               "every_50": [[i + 1, lrs[i]] for i in range(49, len(lrs), 50)]},
        "interventions": interventions,
        "first_intervention_step": first_intervention,
        "step_time_median_ms": 1000 * statistics.median(step_times),
        "wall_s": wall,
    }
    if orbit is not None:
        result["orbit"] = orbit.summary()
        result["interventions"] = result["orbit"]["burns_applied"]
        result["first_intervention_step"] = result["orbit"]["first_burn_step"]
        orbit.close()
    if not args.quiet:
        print(f"final val loss {final:.4f}  ({args.steps} steps, {wall:.1f} s, "
              f"median step {result['step_time_median_ms']:.1f} ms)", flush=True)
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
    return result


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.endpoint is None:
        from orbit_adapter.endpoints import default_endpoint
        args.endpoint = os.environ.get("ORBIT_ENDPOINT") or default_endpoint()
    run(args)


if __name__ == "__main__":
    main()
