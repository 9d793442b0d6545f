# SPDX-License-Identifier: Apache-2.0
"""Cross-model comparison of basin maps over the same prompt corpus.

Per model: basin counts with 95% Wilson intervals, per category counts. Per model
against the baseline (same prompts, paired): the transition table (baseline basin ->
model basin) and, per basin, an exact McNemar test on "prompt lands in this basin",
Holm-adjusted over the three basins. The unit is the prompt; see CAVEATS.
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, List, Optional, Sequence

from .classify import BASINS
from .stats import exact_mcnemar, holm, wilson_interval

__all__ = ["compare_maps", "comparison_table", "comparison_markdown", "CAVEATS"]

CAVEATS = (
    "What the counts can show: whether two models send the same prompts of this corpus to "
    "different basins more often in one direction than the other (exact McNemar on the "
    "discordant prompts). What they cannot show: how a model behaves on prompts in general "
    "(the corpus is a small hand-written set, not a sample of a population), differences "
    "within one category (6 prompts: even 6 of 6 discordant gives p = 0.03 before any "
    "correction, so category rows are descriptive only), or anything about another seed of "
    "the same training run (each model here is one training seed). With n discordant prompts "
    "the smallest two-sided exact p is 2^(1-n): fewer than 6 discordant prompts can never "
    "reach p < 0.05. Decoding is seeded, so the maps are deterministic for a given model and "
    "config; the intervals describe prompt-to-prompt variation only.")


def _label(m: dict) -> str:
    return m["model"]["label"]


def compare_maps(maps: Sequence[dict], baseline: Optional[str] = None) -> dict:
    if len(maps) < 2:
        raise ValueError("compare needs at least two basin maps")
    labels = [_label(m) for m in maps]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two maps share a model label: {labels}")
    ids = [p["id"] for p in maps[0]["prompts"]]
    for m in maps[1:]:
        if [p["id"] for p in m["prompts"]] != ids:
            raise ValueError(f"maps {labels[0]!r} and {_label(m)!r} were made from different prompt corpora")
    base = baseline or labels[0]
    if base not in labels:
        raise ValueError(f"baseline {base!r} is none of {labels}")
    base_map = maps[labels.index(base)]
    n = len(ids)
    models = []
    for m in maps:
        counts = Counter(p["basin"] for p in m["prompts"])
        header = m["model"].get("header", {})
        models.append({
            "label": _label(m), "path": m["model"]["path"], "step": header.get("step"),
            "meta": header.get("meta", {}),
            "counts": {b: counts[b] for b in BASINS},
            "shares": {b: counts[b] / n for b in BASINS},
            "wilson95": {b: wilson_interval(counts[b], n) for b in BASINS},
            "by_category": m["summary"]["by_category"],
            "mean_spectral": _mean_spectral(m["prompts"]),
        })
    changes = []
    for m in maps:
        if _label(m) == base:
            continue
        pairs = list(zip([p["basin"] for p in base_map["prompts"]], [p["basin"] for p in m["prompts"]]))
        transitions = {a: {b: sum(1 for x, y in pairs if x == a and y == b) for b in BASINS} for a in BASINS}
        tests = []
        for b in BASINS[:3]:
            lost = sum(1 for x, y in pairs if x == b and y != b)
            gained = sum(1 for x, y in pairs if x != b and y == b)
            tests.append({"basin": b, "lost": lost, "gained": gained, "p_exact_mcnemar": exact_mcnemar(lost, gained)})
        for t, adj in zip(tests, holm([t["p_exact_mcnemar"] for t in tests])):
            t["p_holm"] = adj
        moved = [{"id": pb["id"], "category": pb["category"], "from": pb["basin"], "to": pm["basin"]}
                 for pb, pm in zip(base_map["prompts"], m["prompts"]) if pb["basin"] != pm["basin"]]
        changes.append({"from": base, "to": _label(m), "prompts_changed": len(moved),
                        "transitions": transitions, "tests": tests, "moved": moved})
    categories = sorted(maps[0]["summary"]["by_category"])
    return {"prompts": n, "baseline": base, "models": models, "categories": categories,
            "changes": changes, "caveats": CAVEATS}


def _mean_spectral(prompts: List[dict]) -> Dict[str, float]:
    keys = ("hidden_effective_rank_min", "hidden_dominant_ratio_max", "attn_entropy_mean")
    out = {}
    for k in keys:
        vals = [p["spectral"][k] for p in prompts if k in p.get("spectral", {})]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out


def _short(b: str) -> str:
    return {"CREATIVE": "CREAT", "SEMANTIC_LOOP": "LOOP", "TOKEN_COLLAPSE": "COLL", "UNKNOWN": "UNK"}[b]


def comparison_table(r: dict) -> str:
    """Plain-text tables for the terminal."""
    lines = [f"basin distribution over {r['prompts']} prompts (count, share, 95% Wilson interval)",
             f"{'model':16s} {'step':>5s} " + " ".join(f"{_short(b):>17s}" for b in BASINS)
             + "   hid.rank  hid.dom  attn.H"]
    for m in r["models"]:
        cells = []
        for b in BASINS:
            lo, hi = m["wilson95"][b]
            cells.append(f"{m['counts'][b]:3d} [{lo:4.2f},{hi:4.2f}]".rjust(17))
        s = m["mean_spectral"]
        lines.append(f"{m['label']:16s} {str(m['step'] or ''):>5s} " + " ".join(cells)
                     + f"   {s.get('hidden_effective_rank_min', float('nan')):8.2f}"
                     + f"  {s.get('hidden_dominant_ratio_max', float('nan')):7.3f}"
                     + f"  {s.get('attn_entropy_mean', float('nan')):6.2f}")
    lines.append("")
    lines.append("per category (CREAT/LOOP/COLL/UNK)")
    lines.append(f"{'category':16s} " + " ".join(f"{m['label'][:14]:>14s}" for m in r["models"]))
    for c in r["categories"]:
        row = []
        for m in r["models"]:
            k = m["by_category"][c]
            row.append(f"{k['CREATIVE']}/{k['SEMANTIC_LOOP']}/{k['TOKEN_COLLAPSE']}/{k['UNKNOWN']}".rjust(14))
        lines.append(f"{c:16s} " + " ".join(row))
    lines.append("")
    lines.append(f"changes against {r['baseline']} (paired over prompts; exact McNemar, Holm over 3 basins)")
    for ch in r["changes"]:
        parts = [f"{_short(t['basin'])} -{t['lost']}/+{t['gained']} p={t['p_exact_mcnemar']:.2g} (Holm {t['p_holm']:.2g})"
                 for t in ch["tests"]]
        lines.append(f"  -> {ch['to']:14s} {ch['prompts_changed']:2d} prompts changed; " + "; ".join(parts))
    return "\n".join(lines)


def comparison_markdown(r: dict) -> str:
    out = [f"## Basin distribution over {r['prompts']} prompts", "",
           "| model | step | " + " | ".join(BASINS) + " | hidden eff. rank | hidden dominant ratio | attn entropy |",
           "|---|---|" + "---|" * len(BASINS) + "---|---|---|"]
    for m in r["models"]:
        cells = []
        for b in BASINS:
            lo, hi = m["wilson95"][b]
            cells.append(f"{m['counts'][b]} ({lo:.2f}-{hi:.2f})")
        s = m["mean_spectral"]
        out.append(f"| {m['label']} | {m['step'] or ''} | " + " | ".join(cells)
                   + f" | {s.get('hidden_effective_rank_min', float('nan')):.2f}"
                   + f" | {s.get('hidden_dominant_ratio_max', float('nan')):.3f}"
                   + f" | {s.get('attn_entropy_mean', float('nan')):.2f} |")
    out += ["", "Cells: count (95% Wilson interval of the share).", "",
            "## Per category (CREATIVE/SEMANTIC_LOOP/TOKEN_COLLAPSE/UNKNOWN)", "",
            "| category | " + " | ".join(m["label"] for m in r["models"]) + " |",
            "|---|" + "---|" * len(r["models"])]
    for c in r["categories"]:
        row = []
        for m in r["models"]:
            k = m["by_category"][c]
            row.append(f"{k['CREATIVE']}/{k['SEMANTIC_LOOP']}/{k['TOKEN_COLLAPSE']}/{k['UNKNOWN']}")
        out.append(f"| {c} | " + " | ".join(row) + " |")
    out += ["", f"## Changes against {r['baseline']}", "",
            "| to | prompts changed | " + " | ".join(f"{b} lost/gained, p (Holm)" for b in BASINS[:3]) + " |",
            "|---|---|---|---|---|"]
    for ch in r["changes"]:
        cells = [f"-{t['lost']}/+{t['gained']}, {t['p_exact_mcnemar']:.2g} ({t['p_holm']:.2g})" for t in ch["tests"]]
        out.append(f"| {ch['to']} | {ch['prompts_changed']} | " + " | ".join(cells) + " |")
    out += ["", "## What the counts can and cannot show", "", r["caveats"], ""]
    return "\n".join(out)
