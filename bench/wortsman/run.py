#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""External instability benchmark: the small-scale proxies of Wortsman et al. 2023
("Small-scale proxies for large-scale Transformer training instabilities",
arXiv:2309.14322), scored by the paper's learning-rate sensitivity.

For each architecture and arm, a sweep of peak learning rates (3e-4 ... 3e-1) is
trained from the same seed; LR sensitivity (the paper's §2.2) is

    E_{lr in sweep} [ min(final_loss(lr), initial_loss) - min_{lr in sweep} final_loss(lr) ]

with final_loss the validation loss after training (a diverged run counts as its
initial loss). Lower is better: 0 means every lr reached the sweep's best loss.

Arms: none | qknorm | zloss | orbitd | orbitd+qknorm (see train_one.py); the orbitd
arms talk to one real orbitd started here with configs/default.toml, untuned.

    /usr/bin/python3 bench/wortsman/run.py                  # the full benchmark (~25 min here)
    /usr/bin/python3 bench/wortsman/run.py --quick          # smoke run (under a minute)
    /usr/bin/python3 bench/wortsman/run.py --rerun-arms orbitd,orbitd+qknorm
    /usr/bin/python3 bench/wortsman/run.py --journal-dir J ...  # keep orbitd's journal:
        # one run's trace (state, lr scale, every metric per step): orbit replay J/RUN --out RUN.csv

Per-run records are cached in --runs-dir (a run with the same flags is reused), so
`--rerun-arms` redoes only the named arms, e.g. after a controller change.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "examples", "pytorch"))
from orbitd_process import OrbitdProcess, find_orbitd  # noqa: E402
import train_one  # noqa: E402

ARMS = ("none", "qknorm", "zloss", "orbitd", "orbitd+qknorm")
ARCHS = ("serial", "parallel")
# Seven half-decade steps from 3e-4 to 3e-1, log-spaced.
DEFAULT_LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
MODEL_FLAGS = {"d_model": 64, "layers": 2, "heads": 4, "context": 64, "batch": 8}


def lr_sensitivity(final_losses, initial_losses) -> float:
    """The paper's LR sensitivity over one sweep (lists aligned by lr). A missing or
    non-finite final loss counts as the run's initial loss."""
    capped = []
    for f, i in zip(final_losses, initial_losses):
        capped.append(i if f is None or not math.isfinite(f) else min(f, i))
    best = min(capped)
    return statistics.fmean(c - best for c in capped)


def csv(text, cast=str):
    return [cast(x) for x in text.split(",") if x]


def run_key(job, steps):
    return f"{job['arch']}-{job['arm']}-lr{job['lr']:g}-s{job['seed']}-n{steps}"


def run_id(job, steps):
    """orbitd's run id: [A-Za-z0-9._-] only, unique per run and invocation."""
    return f"w-{run_key(job, steps)}-{os.getpid()}".replace("+", "_")


def launch(job, args, endpoint, path):
    """Runs one training run in this (worker) process and returns its record."""
    argv = ["--arch", job["arch"], "--arm", job["arm"], "--lr", repr(job["lr"]),
            "--seed", str(job["seed"]), "--steps", str(args.steps),
            "--eval-windows", str(args.eval_windows), "--json-out", path]
    for k, v in MODEL_FLAGS.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    if job["arm"].startswith("orbitd"):
        argv += ["--endpoint", endpoint, "--run", run_id(job, args.steps)]
    return train_one.run(train_one.build_parser().parse_args(argv))


def git(*argv):
    try:
        return subprocess.run(["git", "-C", REPO, *argv], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def summarize(records, archs, arms, lrs, seeds):
    """Per arch and arm: LR sensitivity per seed and its mean, and per-lr details."""
    table = {}
    for arch in archs:
        for arm in arms:
            sens, per_lr = [], []
            for seed in seeds:
                rs = [records.get((arch, arm, lr, seed)) for lr in lrs]
                if any(r is None for r in rs):
                    continue
                sens.append(lr_sensitivity([r["final_val_loss"] for r in rs],
                                           [r["initial_val_loss"] for r in rs]))
            for lr in lrs:
                rs = [records[(arch, arm, lr, s)] for s in seeds if (arch, arm, lr, s) in records]
                if not rs:
                    continue
                per_lr.append({
                    "lr": lr,
                    "final_val_loss": [r["final_val_loss"] for r in rs],
                    "final_attn_logit_max": [r["final_attn_logit_max"] for r in rs],
                    "final_log_z_mean": [r["final_log_z_mean"] for r in rs],
                    "final_output_logit_absmax": [r["final_output_logit_absmax"] for r in rs],
                    "burns": [r.get("orbit", {}).get("burns_applied") for r in rs],
                    "rollbacks": [len(r.get("orbit", {}).get("rollbacks", [])) for r in rs]})
            if sens:
                table[f"{arch}/{arm}"] = {"arch": arch, "arm": arm, "lr_sensitivity_per_seed": sens,
                                          "lr_sensitivity": statistics.fmean(sens), "per_lr": per_lr}
    return table


def goals(table, archs):
    out = {}
    for arch in archs:
        s = {arm: table.get(f"{arch}/{arm}", {}).get("lr_sensitivity")
             for arm in ("qknorm", "orbitd", "orbitd+qknorm")}
        if None in s.values():
            continue
        out[arch] = {"orbitd_at_most_qknorm": s["orbitd"] <= s["qknorm"],
                     "combined_better_than_either": s["orbitd+qknorm"] < min(s["orbitd"], s["qknorm"]),
                     **{f"sensitivity_{k}": v for k, v in s.items()}}
    return out


def print_table(table, lrs):
    lr_head = "".join(f"{lr:>9.0e}" for lr in lrs)
    print(f"\n{'arch/arm':<24}{'LR sens':>9} |{lr_head}   (final val loss, seed mean)")
    for key, row in table.items():
        cells = {p["lr"]: p for p in row["per_lr"]}
        vals = "".join(
            f"{fmt(statistics.fmean(v for v in cells[lr]['final_val_loss'] if v is not None) if lr in cells and any(v is not None for v in cells[lr]['final_val_loss']) else None):>9}"
            for lr in lrs)
        print(f"{key:<24}{row['lr_sensitivity']:>9.3f} |{vals}")
    print(f"\n{'arch/arm':<24}{'':>9} |{lr_head}   (final max attention logit, seed max)")
    for key, row in table.items():
        cells = {p["lr"]: p for p in row["per_lr"]}
        vals = "".join(
            f"{fmt(max((v for v in cells[lr]['final_attn_logit_max'] if v is not None), default=None) if lr in cells else None, '.3g'):>9}"
            for lr in lrs)
        print(f"{key:<24}{'':>9} |{vals}")
    print(f"\n{'arch/arm':<24}{'':>9} |{lr_head}   (final mean log Z, seed mean)")
    for key, row in table.items():
        cells = {p["lr"]: p for p in row["per_lr"]}
        vals = "".join(
            f"{fmt(statistics.fmean(v for v in cells[lr]['final_log_z_mean'] if v is not None) if lr in cells and any(v is not None for v in cells[lr]['final_log_z_mean']) else None, '.2f'):>9}"
            for lr in lrs)
        print(f"{key:<24}{'':>9} |{vals}")
    orbit_rows = [(k, r) for k, r in table.items() if r["arm"].startswith("orbitd")]
    if orbit_rows:
        print(f"\n{'arch/arm':<24}{'':>9} |{lr_head}   (burns applied / rollbacks, seed sum)")
        for key, row in orbit_rows:
            cells = {p["lr"]: p for p in row["per_lr"]}
            vals = "".join(
                f"{(str(sum(b or 0 for b in cells[lr]['burns'])) + '/' + str(sum(cells[lr]['rollbacks']))) if lr in cells else '-':>9}"
                for lr in lrs)
            print(f"{key:<24}{'':>9} |{vals}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--lrs", default=",".join(f"{x:g}" for x in DEFAULT_LRS))
    p.add_argument("--seeds", default="0")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--eval-windows", type=int, default=128)
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    p.add_argument("--orbitd", default=None, help="orbitd binary (default: the build's)")
    p.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    p.add_argument("--runs-dir", default=os.path.join(REPO, "build", "wortsman-runs"))
    p.add_argument("--rerun-arms", default="", help="arms run again even when cached")
    p.add_argument("--journal-dir", default=None,
                   help="keep orbitd's journal here (default: a private temp dir, removed at the end)")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "results", "wortsman.json"))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: serial arch, lrs 1e-3 and 3e-1, 30 steps, not cached")
    args = p.parse_args(argv)
    if args.quick:
        args.archs, args.lrs, args.steps, args.eval_windows = "serial", "1e-3,3e-1", 30, 16
    archs, arms = csv(args.archs), csv(args.arms)
    lrs, seeds, rerun = csv(args.lrs, float), csv(args.seeds, int), set(csv(args.rerun_arms))
    for a in arms + list(rerun):
        if a not in ARMS:
            p.error(f"unknown arm {a!r} (arms: {', '.join(ARMS)})")
    for a in archs:
        if a not in ARCHS:
            p.error(f"unknown arch {a!r} (archs: {', '.join(ARCHS)})")

    runs_dir = os.path.join(args.runs_dir, "quick") if args.quick else args.runs_dir
    os.makedirs(runs_dir, exist_ok=True)
    jobs = [{"arch": a, "arm": m, "lr": lr, "seed": s}
            for a in archs for m in arms for s in seeds for lr in lrs]
    records, todo = {}, []
    for job in jobs:
        path = os.path.join(runs_dir, run_key(job, args.steps) + ".json")
        if os.path.exists(path) and job["arm"] not in rerun and not args.quick:
            with open(path) as f:
                records[(job["arch"], job["arm"], job["lr"], job["seed"])] = json.load(f)
        else:
            todo.append((job, path))
    print(f"{len(jobs)} runs, {len(todo)} to train, {len(jobs) - len(todo)} cached in {runs_dir}",
          flush=True)

    daemon = None
    if any(j["arm"].startswith("orbitd") for j, _ in todo):
        binary = find_orbitd(args.orbitd)
        if binary is None:
            raise SystemExit("orbitd not found: build it (cmake --build build --target orbitd) or pass --orbitd")
        daemon = OrbitdProcess(binary, args.config, journal_dir=args.journal_dir).start()
    t0 = time.time()
    try:
        endpoint = daemon.endpoint if daemon else None
        # A fresh process per run (no state carries over from one run to the next).
        ctx = multiprocessing.get_context("forkserver")
        pool_args = dict(max_workers=max(1, args.jobs), mp_context=ctx, max_tasks_per_child=1)
        with cf.ProcessPoolExecutor(**pool_args) as pool:
            futures = {pool.submit(launch, job, args, endpoint, path): job for job, path in todo}
            for fut in cf.as_completed(futures):
                job = futures[fut]
                r = fut.result()
                records[(job["arch"], job["arm"], job["lr"], job["seed"])] = r
                burns = r.get("orbit", {}).get("burns_applied")
                print(f"  {run_key(job, args.steps):<40} val {r['initial_val_loss']:.3f} -> "
                      f"{fmt(r['final_val_loss'])}  attn max {fmt(r['final_attn_logit_max'], '.3g')}  "
                      f"log Z {fmt(r['final_log_z_mean'], '.2f')}"
                      f"{'' if burns is None else f'  burns {burns}'}  ({r['wall_s']:.0f} s)", flush=True)
    finally:
        if daemon is not None:
            daemon.stop()
            daemon.cleanup()
    wall = time.time() - t0

    table = summarize(records, archs, arms, lrs, seeds)
    verdict = goals(table, archs)
    print_table(table, lrs)
    for arch, g in verdict.items():
        print(f"\n{arch}: orbitd {g['sensitivity_orbitd']:.3f} vs qknorm {g['sensitivity_qknorm']:.3f} "
              f"-> {'met' if g['orbitd_at_most_qknorm'] else 'NOT met'}; orbitd+qknorm "
              f"{g['sensitivity_orbitd+qknorm']:.3f} better than either -> "
              f"{'met' if g['combined_better_than_either'] else 'NOT met'}")
    out = {
        "benchmark": "Wortsman et al. 2023 small-scale proxies (arXiv:2309.14322), LR sensitivity",
        "definition": "mean over lrs of min(final_val_loss, initial_val_loss) - min over lrs of final_val_loss",
        "archs": archs, "arms": arms, "lrs": lrs, "seeds": seeds, "steps": args.steps,
        "model": MODEL_FLAGS, "eval_windows": args.eval_windows,
        "recipe": "AdamW(0.9, 0.95, eps 1e-8, wd 0), clip 1.0, 10% linear warmup, cosine to 1e-5; "
                  "z-loss 1e-4*log^2 Z; data: Python stdlib source, char-level",
        "orbitd_config": os.path.relpath(args.config, REPO) if args.config.startswith(REPO) else args.config,
        "sensitivity": {k: {"lr_sensitivity": v["lr_sensitivity"],
                            "lr_sensitivity_per_seed": v["lr_sensitivity_per_seed"]}
                        for k, v in table.items()},
        "goals": verdict,
        "table": table,
        "runs": [records[k] for k in sorted(records)],
        "machine": {"cpus": os.cpu_count(), "parallel_runs": args.jobs, "platform": platform.platform(),
                    "loadavg_at_end": os.getloadavg(), "python": platform.python_version()},
        "git_head": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
        "wall_s_this_invocation": wall,
    }
    if not args.quick or args.out != p.get_default("out"):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\nwrote {args.out}")
    return out


if __name__ == "__main__":
    main()
