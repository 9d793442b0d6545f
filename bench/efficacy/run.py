#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Efficacy: the collapse suite. Does orbitd keep unstable runs on orbit, and at what cost?

Settings (the example trainer, 800 steps by default):
  A  pre-LN,  lr 1e-2, no warmup        (collapses without control)
  B  post-LN, lr 1e-2, no warmup        (collapses without control)
  C  pre-LN,  lr 3e-2, 300-step warmup  (collapses more slowly)
  H  pre-LN,  lr 1e-3, no warmup        (healthy control: nothing should happen)
Arms: none | plateau (ReduceLROnPlateau on the smoothed training loss) |
      zclip (EWMA z-score gradient clipping, z = 2.5) | orbitd (configs/default.toml,
      the adapter's default probes, rollback ring on).
Plus a fixed-lr sweep per architecture (no control) giving the best fixed lr.
Every run gets the same step budget; steps lost to rollbacks count.

    /usr/bin/python3 bench/efficacy/run.py                      # the full suite, 2 runs at a time
    /usr/bin/python3 bench/efficacy/run.py --settings A,H --seeds 0-1 --arms none,orbitd

Per-run records go to --runs-dir (reused when a run with the same flags is there,
so a suite can be built up in pieces); the summary table is printed and written
with every run's record to --out (bench/results/efficacy.json).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(REPO, "examples", "pytorch", "train.py")
sys.path.insert(0, os.path.join(REPO, "examples", "pytorch"))
from orbitd_process import OrbitdProcess, find_orbitd  # noqa: E402

SETTINGS = {
    "A": {"norm": "pre", "lr": 1e-2, "warmup": 0},
    "B": {"norm": "post", "lr": 1e-2, "warmup": 0},
    "C": {"norm": "pre", "lr": 3e-2, "warmup": 300},
    "H": {"norm": "pre", "lr": 1e-3, "warmup": 0},
}
ARMS = ("none", "plateau", "zclip", "orbitd")
GOOD_LOSS = 2.0


def parse_seeds(text: str):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def parse_sweep(text: str):
    """"pre:1e-3,2e-3;post:1e-3,3e-3" -> {"pre": [...], "post": [...]}"""
    sweep = {}
    for block in filter(None, text.split(";")):
        norm, lrs = block.split(":")
        sweep[norm] = [float(x) for x in lrs.split(",")]
    return sweep


def run_name(kind, norm, lr, warmup, arm, seed, steps):
    return f"{kind}-{norm}-lr{lr:g}-w{warmup}-{arm}-s{seed}-n{steps}"


def launch(job, args, endpoint):
    out = os.path.join(args.runs_dir, job["name"] + ".json")
    if os.path.exists(out) and not args.rerun:
        with open(out) as f:
            return job, json.load(f), 0.0
    cmd = [sys.executable, TRAIN, "--norm", job["norm"], "--lr", repr(job["lr"]),
           "--warmup", str(job["warmup"]), "--seed", str(job["seed"]), "--steps", str(args.steps),
           "--quiet", "--eval-every", "0", "--json-out", out]
    if job["arm"] in ("plateau", "zclip"):
        cmd += ["--guard", job["arm"]]
    if job["arm"] == "orbitd":
        cmd += ["--control", "on", "--endpoint", endpoint, "--run", job["name"]]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.time()
    # Its own session: on a shared machine with autogrouped scheduling each trainer
    # then gets its own CPU share instead of all trainers splitting one.
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, start_new_session=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{job['name']} failed:\n{proc.stderr[-3000:]}")
    with open(out) as f:
        return job, json.load(f), time.time() - t0


def git_head():
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain"], capture_output=True,
                               text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(records, settings):
    rows = []
    for s in settings:
        for arm in ARMS:
            rs = [r for r in records if r["setting"] == s and r["arm"] == arm]
            if not rs:
                continue
            finals = [r["final_val_loss"] for r in rs]
            rows.append({
                "setting": s, "arm": arm, "runs": len(rs),
                "median_val": median(finals), "min_val": min(finals), "max_val": max(finals),
                "share_le_2": sum(f <= GOOD_LOSS for f in finals) / len(rs),
                "median_first_intervention": median([r["first_intervention_step"] for r in rs]),
                "median_interventions": median([r["interventions"] for r in rs]),
                "median_rollbacks": median([r.get("rollbacks", 0) for r in rs]),
            })
    return rows


def goals(rows, records, sweep_best):
    by = {(r["setting"], r["arm"]): r for r in rows}
    out = {}
    for s in ("A", "B", "C"):
        o = by.get((s, "orbitd"))
        if not o:
            continue
        norm = SETTINGS[s]["norm"]
        best = sweep_best.get(norm)
        out[s] = {
            "orbitd_share_le_2_ge_90pct": o["share_le_2"] >= 0.9,
            "orbitd_median_within_5pct_of_best_fixed_lr": (o["median_val"] <= 1.05 * best["val"]) if best else None,
            "first_intervention_within_50_steps": (o["median_first_intervention"] is not None
                                                   and o["median_first_intervention"] <= 50) if s in ("A", "B") else None,
            "beats_plateau": (o["median_val"] < by[(s, "plateau")]["median_val"]) if (s, "plateau") in by else None,
            "beats_zclip": (o["median_val"] < by[(s, "zclip")]["median_val"]) if (s, "zclip") in by else None,
        }
    # H's goal holds run by run (every healthy run untouched), not for the median:
    # each orbitd run is compared with the uncontrolled run of its own seed.
    ctrl = {r["seed"]: r for r in records if r["setting"] == "H" and r["arm"] == "orbitd"}
    free = {r["seed"]: r for r in records if r["setting"] == "H" and r["arm"] == "none"}
    seeds = sorted(set(ctrl) & set(free))
    if seeds:
        touched = [k for k in seeds if ctrl[k]["interventions"] != 0]
        off = [k for k in seeds if abs(ctrl[k]["final_val_loss"] - free[k]["final_val_loss"]) > 0.03]
        out["H"] = {"within_0.03_of_uncontrolled": not off, "zero_interventions": not touched,
                    "seeds_touched": touched, "seeds_off_by_more_than_0.03": off}
    return out


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="A,B,C,H")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sweep", default="pre:1e-3,2e-3,3e-3;post:1e-3,3e-3,5e-3",
                    help="fixed-lr sweep per architecture ('' to skip)")
    ap.add_argument("--sweep-seeds", default="0")
    ap.add_argument("--orbitd", default=None)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    ap.add_argument("--runs-dir", default="/tmp/orbit-efficacy-runs")
    ap.add_argument("--journal-dir", default=None, help="orbitd journal (default: a private temp dir)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "efficacy.json"))
    ap.add_argument("--rerun", action="store_true", help="ignore existing per-run records")
    ap.add_argument("--cached-only", action="store_true",
                    help="train nothing: summarize the runs already in --runs-dir (the rest are listed as missing)")
    args = ap.parse_args()

    settings = [s for s in args.settings.split(",") if s]
    arms = [a for a in args.arms.split(",") if a]
    for a in arms:
        if a not in ARMS:
            ap.error(f"unknown arm {a}")
    seeds = parse_seeds(args.seeds)
    jobs = []
    for s in settings:
        cfg = SETTINGS[s]
        for arm in arms:
            for seed in seeds:
                jobs.append(dict(kind=s, setting=s, arm=arm, seed=seed, **cfg,
                                 name=run_name(s, cfg["norm"], cfg["lr"], cfg["warmup"], arm, seed, args.steps)))
    for norm, lrs in parse_sweep(args.sweep).items():
        for lr in lrs:
            for seed in parse_seeds(args.sweep_seeds):
                jobs.append(dict(kind="sweep", setting="sweep", arm="none", seed=seed, norm=norm, lr=lr,
                                 warmup=0, name=run_name("sweep", norm, lr, 0, "none", seed, args.steps)))
    os.makedirs(args.runs_dir, exist_ok=True)
    missing = []
    if args.cached_only:
        missing = [j["name"] for j in jobs if not os.path.exists(os.path.join(args.runs_dir, j["name"] + ".json"))]
        jobs = [j for j in jobs if j["name"] not in missing]

    daemon = None
    binary = find_orbitd(args.orbitd)
    if any(j["arm"] == "orbitd" for j in jobs):
        if binary is None:
            sys.exit("efficacy: the orbitd arm needs an orbitd binary (cmake --build build --target orbitd)")
        daemon = OrbitdProcess(binary, args.config, journal_dir=args.journal_dir).start()
    t_start = time.time()
    records = []
    try:
        with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(launch, j, args, daemon.endpoint if daemon else None) for j in jobs]
            for fut in cf.as_completed(futures):
                job, res, took = fut.result()
                orbit = res.get("orbit") or {}
                rec = {
                    "name": job["name"], "setting": job["setting"], "arm": job["arm"], "seed": job["seed"],
                    "norm": job["norm"], "lr": job["lr"], "warmup": job["warmup"], "steps": args.steps,
                    "final_val_loss": res["final_val_loss"],
                    "first_intervention_step": res["first_intervention_step"],
                    "interventions": res["interventions"],
                    "rollbacks": len(orbit.get("rollbacks", [])),
                    "states_visited": orbit.get("states_visited"),
                    "lr_trajectory": res["lr"],
                    "val_curve": res["val_curve"],
                    "step_time_median_ms": res["step_time_median_ms"],
                    "wall_s": res["wall_s"],
                }
                records.append(rec)
                print(f"  {job['name']:<44} val {rec['final_val_loss']:.3f}  interventions "
                      f"{rec['interventions']:>4}  first {fmt(rec['first_intervention_step'], 'd'):>4}"
                      f"  ({took:.0f} s)" if took else f"  {job['name']:<44} val {rec['final_val_loss']:.3f} (cached)",
                      flush=True)
    finally:
        if daemon is not None:
            daemon.stop()
            daemon.cleanup()
    records.sort(key=lambda r: (r["setting"], r["arm"], r["lr"], r["seed"]))
    sweep_best = {}
    for norm in ("pre", "post"):
        by_lr = {}
        for r in records:
            if r["setting"] == "sweep" and r["norm"] == norm:
                by_lr.setdefault(r["lr"], []).append(r["final_val_loss"])
        if by_lr:
            lr, vals = min(by_lr.items(), key=lambda kv: statistics.median(kv[1]))
            sweep_best[norm] = {"lr": lr, "val": statistics.median(vals),
                                "all": {f"{k:g}": statistics.median(v) for k, v in sorted(by_lr.items())}}
    rows = summarize(records, settings)
    result = {
        "what": "collapse suite: final validation loss of the example trainer per setting and arm",
        "command": "/usr/bin/python3 bench/efficacy/run.py " + " ".join(sys.argv[1:]),
        "steps": args.steps, "seeds": seeds, "settings": {s: SETTINGS[s] for s in settings},
        "config": os.path.relpath(args.config, REPO), "wall_s": time.time() - t_start,
        "machine": {"cpus": os.cpu_count(), "parallel_runs": args.jobs},
        "orbitd": ({"binary": binary, "built": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(binary)))}
                   if binary else None),
        "git_head": git_head(),
        "missing_runs": missing,
        "best_fixed_lr": sweep_best, "summary": rows, "goals": goals(rows, records, sweep_best),
        "runs": records,
    }
    print()
    print(f"{'set':<4}{'arm':<9}{'runs':>5}{'median val':>11}{'min':>7}{'max':>7}{'<=2.0':>7}"
          f"{'1st int.':>9}{'interv.':>8}{'rollb.':>7}")
    for r in rows:
        print(f"{r['setting']:<4}{r['arm']:<9}{r['runs']:>5}{r['median_val']:>11.3f}{r['min_val']:>7.3f}"
              f"{r['max_val']:>7.3f}{100 * r['share_le_2']:>6.0f}%{fmt(r['median_first_intervention'], '.0f'):>9}"
              f"{fmt(r['median_interventions'], '.0f'):>8}{fmt(r['median_rollbacks'], '.0f'):>7}")
    for norm, b in sweep_best.items():
        print(f"best fixed lr, {norm}-LN: {b['lr']:g} (val {b['val']:.3f}; sweep {b['all']})")
    for s, g in result["goals"].items():
        print(f"goals {s}: " + ", ".join(f"{k}={v}" for k, v in g.items()))
    if missing:
        print(f"missing (not run): {len(missing)} runs: {', '.join(missing)}")
    print(f"suite wall time {result['wall_s'] / 60:.1f} min")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {os.path.relpath(args.out, REPO)}")


if __name__ == "__main__":
    main()
