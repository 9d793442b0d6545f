# SPDX-License-Identifier: Apache-2.0
"""orbit-basins: the command line of the basin tools.

  orbit-basins map MODEL... [--prompts P] [--config C] --out DIR
      basin map per model: DIR/LABEL.json and DIR/LABEL.basin_map.toml
  orbit-basins compare MAP.json... [--html R.html] [--json R.json] [--markdown R.md]
      basin distributions per model and category, changes, exact tests
  orbit-basins train-detector MAP.json... --out DETECTOR.json [--eval-json E.json]
      fits the prefill danger-zone detector; held-out prompts and models
  orbit-basins check --detector DETECTOR.json --model MODEL PROMPT...
      the predicted basin of each prompt, without generating
  orbit-basins curate MAP.json [--base JSON] --out WEIGHTS.json [--toml MAP.toml]
      per-domain mixture weights for DomainMixtureSampler

MODEL is a checkpoint of examples/pytorch/train.py --save, "hf:NAME" for a Hugging
Face causal LM (needs `transformers`), optionally labelled: "healthy=path.pt".
Bad input (missing file, malformed corpus or config) exits with status 2 and one line
naming the file and the problem.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

__all__ = ["main"]


def _threads(n: int) -> None:
    import torch
    torch.set_num_threads(max(1, n))


def _write_outputs(outputs) -> None:
    """Writes each (path, text producer) pair whose path was given on the command line."""
    for path, text in outputs:
        if path:
            with open(path, "w") as f:
                f.write(text())


def _dump_json(obj):
    return lambda: json.dumps(obj, indent=1)


def cmd_map(args) -> int:
    from .basin_config import load_basin_settings
    from .basin_map import basin_map_toml, map_model, write_map_json
    from .corpus import load_prompts
    from .models import load_model
    settings = load_basin_settings(args.config)
    prompts = load_prompts(args.prompts)
    _threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    for spec in args.models:
        lm = load_model(spec)
        m = map_model(lm, prompts, settings, corpus_path=args.prompts)
        base = os.path.join(args.out, lm.name)
        write_map_json(m, base + ".json")
        with open(base + ".basin_map.toml", "w") as f:
            f.write(basin_map_toml(m))
        counts = "  ".join(f"{b} {n}" for b, n in m["summary"]["basins"].items())
        print(f"{lm.name}: {counts}  ({m['wall_s']:.1f} s) -> {base}.json, {base}.basin_map.toml",
              flush=True)
    return 0


def cmd_compare(args) -> int:
    from .basin_map import read_map_json
    from .compare import compare_maps, comparison_markdown, comparison_table
    from .report_html import comparison_html
    maps = [read_map_json(p) for p in args.maps]
    report = compare_maps(maps, baseline=args.baseline)
    print(comparison_table(report))
    _write_outputs([(args.json, _dump_json(report)),
                    (args.markdown, lambda: comparison_markdown(report)),
                    (args.html, lambda: comparison_html(report, maps))])
    return 0


def cmd_train_detector(args) -> int:
    from .basin_map import read_map_json
    from .detector import evaluation_markdown, evaluate_detector, fit_detector_from_maps
    maps = [read_map_json(p) for p in args.maps]
    _threads(args.threads)
    det = fit_detector_from_maps(maps, args.prompts)
    det.save(args.out)
    print(f"detector fitted on {det.info['train_rows']} (prompt, model) rows -> {args.out}")
    if args.eval_json or args.eval_markdown:
        ev = evaluate_detector(maps, args.prompts)
        print(evaluation_markdown(ev))
        _write_outputs([(args.eval_json, _dump_json(ev)),
                        (args.eval_markdown, lambda: evaluation_markdown(ev))])
    return 0


def cmd_check(args) -> int:
    from .detector import DangerZoneDetector
    from .models import load_model
    det = DangerZoneDetector.load(args.detector)
    lm = load_model(args.model)
    for text in args.prompts:
        pred = det.check_prompt_safety(text, lm, category=args.category)
        print(json.dumps(pred.as_dict()) if args.json else pred.describe())
    return 0


def cmd_curate(args) -> int:
    from .basin_map import basin_map_toml, read_map_json
    from .curation import curated_weights, domain_scorecard
    m = read_map_json(args.map)
    card = domain_scorecard(m["prompts"])
    if not card:
        raise ValueError(f"{args.map}: no prompt carries a 'domain'; nothing to curate")
    base = None
    if args.base:
        text = open(args.base).read() if os.path.exists(args.base) else args.base
        base = json.loads(text)
    weights = curated_weights(card, base)
    out = {"map": args.map, "model": m["model"]["label"], "scorecard": card, "weights": weights}
    for d, c in card.items():
        print(f"{d:10s} {c['verdict']:8s} weight {weights[d]:.3f}  "
              + "  ".join(f"{b} {n}" for b, n in c["counts"].items()))
    _write_outputs([(args.out, _dump_json(out)), (args.toml, lambda: basin_map_toml(m))])
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .corpus import BUNDLED_PROMPTS
    p = argparse.ArgumentParser(prog="orbit-basins", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("map", help="map prompts to basins for one or more models")
    m.add_argument("models", nargs="+")
    m.add_argument("--prompts", default=BUNDLED_PROMPTS)
    m.add_argument("--config", default=None, help="basins TOML (configs/basins.toml); default: built-in")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--threads", type=int, default=1)
    m.set_defaults(func=cmd_map)
    c = sub.add_parser("compare", help="compare basin maps of several models")
    c.add_argument("maps", nargs="+")
    c.add_argument("--baseline", default=None, help="label of the reference model (default: the first)")
    c.add_argument("--json")
    c.add_argument("--markdown")
    c.add_argument("--html")
    c.set_defaults(func=cmd_compare)
    t = sub.add_parser("train-detector", help="fit the prefill danger-zone detector on basin maps")
    t.add_argument("maps", nargs="+")
    t.add_argument("--prompts", default=BUNDLED_PROMPTS)
    t.add_argument("--out", required=True)
    t.add_argument("--eval-json")
    t.add_argument("--eval-markdown")
    t.add_argument("--threads", type=int, default=1)
    t.set_defaults(func=cmd_train_detector)
    k = sub.add_parser("check", help="predict the basin of prompts from their prefill")
    k.add_argument("prompts", nargs="+")
    k.add_argument("--detector", required=True)
    k.add_argument("--model", required=True)
    k.add_argument("--category", default=None, help="category for the safer rephrasings")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=cmd_check)
    u = sub.add_parser("curate", help="basin map -> DomainMixtureSampler weights")
    u.add_argument("map")
    u.add_argument("--base", default=None, help="base weights: JSON object or file (default uniform)")
    u.add_argument("--out", default=None)
    u.add_argument("--toml", default=None, help="also write the controller's basin_map TOML")
    u.set_defaults(func=cmd_curate)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"orbit-basins {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
