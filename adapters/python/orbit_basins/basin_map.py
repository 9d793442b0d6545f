# SPDX-License-Identifier: Apache-2.0
"""Maps a model's prompts to basins, and writes the map as JSON and as the controller's TOML.

JSON (format "orbit-basin-map/1"): the model (label, path, checkpoint header), the
settings used, and per prompt its basin, the votes of its decodings, an evidence
sentence, every decoding's text, metrics, basin and reasons, and the spectral
summary of the forward pass over each decoding's last context window.

TOML: the data-quality scorecard orbitd reads (`[controller] basin_map`, see
configs/basin_map.toml): one [domains.NAME] table per training-data domain with
basins, verdict, weight and note.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .basin_config import BasinSettings
from .classify import BASINS, classify_decoding, classify_prompt
from .corpus import Prompt
from .curation import CurationSettings, curated_weights, domain_scorecard
from .generation import decode_prompts
from .models import LanguageModel
from .spectral import spectral_summary
from .text_metrics import sequence_metrics

__all__ = ["MAP_FORMAT", "map_model", "summarize", "write_map_json", "read_map_json", "basin_map_toml"]

MAP_FORMAT = "orbit-basin-map/1"


def _mean(records: List[Dict[str, float]]) -> Dict[str, float]:
    keys = set().union(*records) if records else set()
    return {k: sum(r[k] for r in records if k in r) / sum(1 for r in records if k in r) for k in sorted(keys)}


def map_prompt(lm: LanguageModel, prompt: Prompt, ids: List[int], generated: list,
               settings: BasinSettings) -> dict:
    """One prompt's record from its decodings (see decode_prompts)."""
    t = settings.thresholds
    decodings = []
    for d in generated:
        metrics = sequence_metrics(d.tokens, t.loop_n)
        metrics["predictive_entropy"] = d.predictive_entropy
        metrics["prediction_share"] = d.prediction_share
        basin, reasons = classify_decoding(metrics, t)
        with torch.no_grad():
            _, hidden, attention = lm.internals(torch.tensor(ids + d.tokens, dtype=torch.long))
        decodings.append({"kind": d.kind, "seed": d.seed, "text": d.text, "basin": basin,
                          "reasons": reasons, "metrics": metrics,
                          "spectral": spectral_summary(hidden, attention)})
    basin, votes, evidence = classify_prompt([d["basin"] for d in decodings], t)
    return {"id": prompt.id, "category": prompt.category, "domain": prompt.domain,
            "text": prompt.text, "basin": basin, "votes": votes, "evidence": evidence,
            "metrics": _mean([d["metrics"] for d in decodings]),
            "spectral": _mean([d["spectral"] for d in decodings]),
            "decodings": decodings}


def summarize(prompts: Sequence[dict]) -> dict:
    def counts(rows):
        c = Counter(r["basin"] for r in rows)
        return {b: c[b] for b in BASINS}
    by_cat: Dict[str, list] = {}
    by_dom: Dict[str, list] = {}
    for p in prompts:
        by_cat.setdefault(p["category"], []).append(p)
        if p.get("domain"):
            by_dom.setdefault(p["domain"], []).append(p)
    return {"prompts": len(prompts), "basins": counts(prompts),
            "by_category": {k: counts(v) for k, v in sorted(by_cat.items())},
            "by_domain": {k: counts(v) for k, v in sorted(by_dom.items())}}


def map_model(lm: LanguageModel, prompts: Sequence[Prompt], settings: BasinSettings,
              corpus_path: Optional[str] = None,
              progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """The basin map of one model over a prompt corpus."""
    t0 = time.perf_counter()
    encoded = []
    for p in prompts:
        ids = lm.encode(p.text)
        if not ids:
            raise ValueError(f"prompt {p.id}: encodes to no tokens")
        encoded.append(ids)
    generated = decode_prompts(lm, encoded, [p.id for p in prompts], settings.generation)
    records = []
    for i, p in enumerate(prompts):
        records.append(map_prompt(lm, p, encoded[i], generated[i], settings))
        if progress:
            progress(i + 1, len(prompts))
    header = {k: v for k, v in lm.header.items() if k in ("format", "step", "meta", "config")}
    return {"format": MAP_FORMAT,
            "model": {"label": lm.name, "path": lm.path, "header": header},
            "corpus": corpus_path, "settings": settings.as_dict(),
            "summary": summarize(records), "prompts": records,
            "wall_s": time.perf_counter() - t0}


def write_map_json(m: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(m, f, indent=1)


def read_map_json(path: str) -> dict:
    with open(path) as f:
        try:
            m = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e.msg})") from None
    if not isinstance(m, dict) or m.get("format") != MAP_FORMAT:
        raise ValueError(f"{path}: not an {MAP_FORMAT} basin map (write one with `orbit-basins map`)")
    return m


def _toml_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string for ASCII text


def basin_map_toml(m: dict, settings: CurationSettings = CurationSettings()) -> str:
    """The map's per-domain scorecard in the TOML form orbitd reads (`[controller] basin_map`)."""
    card = domain_scorecard(m["prompts"], settings)
    try:
        weights = curated_weights(card, None, settings) if card else {}
    except ValueError:  # every domain removed: the sampler has nothing left, the map still says so
        weights = {d: 0.0 for d in card}
    lines = ["# SPDX-License-Identifier: Apache-2.0",
             f"# Basin map written by orbit-basins from model {m['model']['label']!r}",
             f"# ({m['model']['path']}), {m['summary']['prompts']} prompts of {m.get('corpus') or 'a corpus'}.",
             "# Format: configs/basin_map.toml. Verdicts and weights: docs/basins.md (curation).",
             ""]
    for d, c in card.items():
        counts = ", ".join(f"{b} {c['counts'][b]}" for b in BASINS if c["counts"][b])
        lines.append(f"[domains.{d}]")
        lines.append("basins = [" + ", ".join(_toml_string(b) for b in c["basins"]) + "]")
        lines.append(f"verdict = {_toml_string(c['verdict'])}")
        # orbitd needs weight > 0: a removed domain keeps a token weight (the sampler's JSON has 0).
        lines.append(f"weight = {max(weights[d], 1e-6):.6g}")
        note = f"{c['prompts']} prompts: {counts}"
        lines.append(f"note = {_toml_string(note)}")
        lines.append("")
    return "\n".join(lines)
