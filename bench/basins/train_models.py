#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Trains the example trainer's checkpoints that the basin reports map.

Three runs of 800 steps, each saved every 200 steps (examples/pytorch/train.py --save):
  healthy   pre-LN,  lr 1e-3                     (efficacy setting H)
  collapsed post-LN, lr 1e-2, no warmup, no control  (setting B, arm none)
  rescued   post-LN, lr 1e-2, no warmup, --control on against a real orbitd
            (configs/default.toml)                (setting B, arm orbitd)
and, for the curation experiment, two healthy-lr runs with a given base mixture:
  --curation WEIGHTS.json  trains `uniform` (every domain equal) and `curated`.

A checkpoint that already exists is kept (delete it to retrain).

    nice -n 10 /usr/bin/python3 bench/basins/train_models.py --out build/basins-models
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(REPO, "examples", "pytorch", "train.py")
sys.path.insert(0, os.path.join(REPO, "adapters", "python"))
from orbit_adapter.daemon_process import OrbitdProcess, find_orbitd  # noqa: E402

RUNS = {
    "healthy": ["--norm", "pre", "--lr", "1e-3"],
    "collapsed": ["--norm", "post", "--unstable", "--control", "off"],
    "rescued": ["--norm", "post", "--unstable", "--control", "on"],
}


def train(name, flags, out, steps, save_every, seed, endpoint=None):
    path = os.path.join(out, f"{name}.pt")
    if os.path.exists(path):
        print(f"{name}: kept {path}")
        return
    cmd = [sys.executable, TRAIN, *flags, "--steps", str(steps), "--seed", str(seed),
           "--save", path, "--save-every", str(save_every), "--eval-every", "0", "--log-every", "200",
           "--json-out", os.path.join(out, f"{name}.json")]
    if endpoint:
        cmd += ["--endpoint", endpoint, "--run", f"basins-{name}-s{seed}"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(REPO, "build", "basins-models"))
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="healthy,collapsed,rescued")
    p.add_argument("--curation", default=None, help="curated weights JSON: also train uniform and curated")
    p.add_argument("--orbitd", default=None)
    p.add_argument("--config", default=os.path.join(REPO, "configs", "default.toml"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    names = [n for n in args.runs.split(",") if n]
    for name in names:
        if name == "rescued":
            binary = find_orbitd(args.orbitd)
            if binary is None:
                sys.exit("train_models: the rescued run needs orbitd (cmake --build build --target orbitd)")
            with OrbitdProcess(binary, args.config) as daemon:
                train(name, RUNS[name], args.out, args.steps, args.save_every, args.seed, daemon.endpoint)
        else:
            train(name, RUNS[name], args.out, args.steps, args.save_every, args.seed)
    if args.curation:
        with open(args.curation) as f:
            curated = json.load(f)["weights"]
        uniform = {d: 1.0 for d in curated}
        for name, w in (("uniform", uniform), ("curated", curated)):
            train(name, ["--norm", "pre", "--lr", "1e-3", "--domain-weights", json.dumps(w)],
                  args.out, args.steps, args.save_every, args.seed)


if __name__ == "__main__":
    main()
