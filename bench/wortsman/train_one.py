#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""One run of the Wortsman-proxy benchmark: one architecture, one arm, one lr, one seed.

Arms: none | qknorm | zloss (1e-4 · log²Z added to the loss) | orbitd (the Python adapter
talking to a running orbitd) | orbitd+qknorm.

Recipe (the paper's, scaled down): AdamW β=(0.9, 0.95), ε=1e-8, no weight decay,
gradient clipping at global norm 1, linear warmup over the first 10% of steps then
cosine decay to 1e-5. Writes a JSON record (final and initial validation loss,
attention/output logit statistics, what orbitd did) to --json-out.

    /usr/bin/python3 bench/wortsman/train_one.py --arch serial --arm none --lr 3e-2 --steps 300
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

# One BLAS thread per run, set before torch loads: the benchmark runs two at a time.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "adapters", "python"))

from orbit_adapter.sampler import DomainMixtureSampler  # noqa: E402
from proxy_models import ARCHS, ProxyLM  # noqa: E402
from stdlib_corpus import VOCAB, StdlibCorpus  # noqa: E402

ARMS = ("none", "qknorm", "zloss", "orbitd", "orbitd+qknorm")
Z_LOSS_COEF = 1e-4
MIN_LR = 1e-5
# A run whose loss stays non-finite this long is over (its weights are NaN).
NONFINITE_PATIENCE = 20


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, default="serial")
    p.add_argument("--arm", choices=ARMS, default="none")
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup-frac", type=float, default=0.1)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--eval-windows", type=int, default=128)
    p.add_argument("--endpoint", default=None, help="orbitd's adapter endpoint (orbitd arms)")
    p.add_argument("--run", default=None, help="run id sent to orbitd")
    p.add_argument("--json-out", default=None)
    return p


@torch.no_grad()
def evaluate(model: ProxyLM, corpus: StdlibCorpus, windows: int, batch: int) -> dict:
    """Validation loss plus the logit statistics the paper looks at."""
    was_training = model.training
    model.eval()
    total, n, attn_max, out_max, log_z = 0.0, 0, -math.inf, -math.inf, []
    for x, y in corpus.val_batches(windows, batch):
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 reduction="sum").item()
        n += y.numel()
        attn_max = max(attn_max, float(model.attn_logit_max()))
        out_max = max(out_max, float(logits.abs().amax()))
        log_z.append(float(logits.logsumexp(-1).mean()))
    model.train(was_training)
    return {"loss": total / n, "attn_logit_max": attn_max, "output_logit_absmax": out_max,
            "log_z_mean": statistics.fmean(log_z)}


def lr_factor(step: int, steps: int, warmup: int, peak: float) -> float:
    """Linear warmup to 1, then cosine to MIN_LR/peak (step counts from 0)."""
    if step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    floor = min(1.0, MIN_LR / peak)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))


def finite_or_none(x: float):
    return x if math.isfinite(x) else None


def run(args) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    qk_norm = args.arm in ("qknorm", "orbitd+qknorm")
    use_z_loss = args.arm == "zloss"
    controlled = args.arm.startswith("orbitd")

    corpus = StdlibCorpus(args.context)
    model = ProxyLM(args.arch, len(VOCAB), args.d_model, args.layers, args.heads, args.context,
                    qk_norm)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    warmup = max(1, int(args.warmup_frac * args.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, args.steps, warmup, args.lr))
    sampler = DomainMixtureSampler(corpus.sizes, args.batch, seed=args.seed)
    initial = evaluate(model, corpus, args.eval_windows, args.batch)

    orbit = None
    if controlled:
        if not args.endpoint:
            raise SystemExit("the orbitd arms need --endpoint")
        from orbit_adapter import Orbit
        from orbit_adapter.adapter import domain_losses
        orbit = Orbit(endpoint=args.endpoint, run=args.run or f"wortsman-{os.getpid()}",
                      domains=corpus.domains)
        orbit.attach(model, opt, scheduler=sched, sampler=sampler)
        for attn in model.attention_modules():
            orbit.register_attention(attn)

    losses, lrs, step_times, attn_curve, logz_curve = [], [], [], [], []
    nonfinite_run, stopped_at = 0, None
    t_start = time.perf_counter()
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        picks = sampler.next_batch()
        x, y = corpus.batch(picks)
        logits = model(x)
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                    reduction="none").view(y.shape)
        loss = per_token.mean()
        log_z = logits.logsumexp(-1)
        objective = loss + Z_LOSS_COEF * log_z.pow(2).mean() if use_z_loss else loss
        opt.zero_grad(set_to_none=True)
        objective.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        lr_now = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        loss_value = loss.item()
        attn_max = float(model.attn_logit_max())
        with torch.no_grad():
            logz_mean = float(log_z.mean())
            out_max = float(logits.detach().abs().amax())
        if orbit is not None:
            orbit.step(step, loss_value, grad_norm=grad_norm,
                       domain_losses=domain_losses(per_token, [d for d, _ in picks]),
                       tokens=y.numel(),
                       scalars={"attn_logit_max": attn_max, "output_logit_max": out_max,
                                "output_log_z": logz_mean})
            if orbit.last_lr is not None:
                lr_now = orbit.last_lr
        losses.append(loss_value)
        lrs.append(lr_now)
        step_times.append(time.perf_counter() - t0)
        if step % 10 == 0 or step == args.steps:
            attn_curve.append([step, finite_or_none(attn_max)])
            logz_curve.append([step, finite_or_none(logz_mean)])
        nonfinite_run = 0 if math.isfinite(loss_value) else nonfinite_run + 1
        if nonfinite_run >= NONFINITE_PATIENCE:
            stopped_at = step
            break

    final = evaluate(model, corpus, args.eval_windows, args.batch)
    tail = [v for v in losses[-20:] if math.isfinite(v)]
    result = {
        "arch": args.arch, "arm": args.arm, "lr": args.lr, "seed": args.seed,
        "steps": args.steps, "warmup_steps": warmup, "stopped_nonfinite_at": stopped_at,
        "model": {"d_model": args.d_model, "layers": args.layers, "heads": args.heads,
                  "context": args.context, "batch": args.batch,
                  "params": sum(p.numel() for p in params)},
        "initial_val_loss": initial["loss"],
        "final_val_loss": finite_or_none(final["loss"]),
        "final_train_loss_last20": statistics.fmean(tail) if tail else None,
        "final_attn_logit_max": finite_or_none(final["attn_logit_max"]),
        "final_output_logit_absmax": finite_or_none(final["output_logit_absmax"]),
        "final_log_z_mean": finite_or_none(final["log_z_mean"]),
        "initial_attn_logit_max": initial["attn_logit_max"],
        "train_attn_logit_max_peak": max((v for _, v in attn_curve if v is not None), default=None),
        "attn_logit_max_every_10": attn_curve,
        "log_z_every_10": logz_curve,
        "lr_in_effect": {"min": min(lrs), "max": max(lrs), "last": lrs[-1]},
        "step_time_median_ms": 1000 * statistics.median(step_times),
        "wall_s": time.perf_counter() - t_start,
        "corpus_bytes": corpus.bytes,
    }
    if orbit is not None:
        s = orbit.summary()
        orbit.close()
        result["orbit"] = {k: s[k] for k in ("burns_applied", "first_burn_step", "rollbacks",
                                              "states_visited", "errors")}
        result["orbit"]["lr_scales"] = sorted({b["lr_scale"] for b in s["burns"]
                                               if b["lr_scale"] is not None})
        # The distinct values above are sorted, not in time order: the order is here.
        result["orbit"]["lr_scale_by_step"] = [[b["applied_step"], b["lr_scale"]] for b in s["burns"]
                                               if b["lr_scale"] is not None]
        result["orbit"]["reasons"] = sorted({str(b["reason"]) for b in s["burns"]})
        client = s["client"] or {}
        result["orbit"]["client"] = {k: client.get(k) for k in ("snapshots", "states", "burns",
                                                                 "welcomes", "errors", "dropped")}
        # An orbitd arm that never heard from orbitd measured nothing: refuse the record.
        if not client.get("welcomes") or not client.get("states"):
            raise RuntimeError(f"orbitd arm never reached orbitd at {args.endpoint}: "
                               f"client {client}, adapter errors {s['errors']}")
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
    return result


def main(argv=None):
    r = run(build_parser().parse_args(argv))
    print(f"{r['arch']} {r['arm']} lr {r['lr']:g}: val {r['initial_val_loss']:.3f} -> "
          f"{r['final_val_loss']}  attn_logit_max {r['final_attn_logit_max']}  "
          f"log Z {r['final_log_z_mean']}  ({r['wall_s']:.1f} s, "
          f"{r['step_time_median_ms']:.1f} ms/step)", flush=True)


if __name__ == "__main__":
    main()
