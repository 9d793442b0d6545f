# SPDX-License-Identifier: Apache-2.0
"""Prompt corpora: JSONL, one prompt per line.

Each line is a JSON object with
  id        string, unique in the file
  text      string, the prompt (non-empty)
  category  string, what kind of prompt (creative, code, ...); reports group by it
  domain    string, optional: the training-data domain the prompt stands for; the
            curation step turns per-domain basin counts into mixture weights
Other keys are kept in `extra` and ignored. The bundled corpus (BUNDLED_PROMPTS, 54
prompts in 9 categories) is written for the example trainer's char-level models:
printable ASCII, all but one within a 64-character context (the model sees
the last `context` tokens of a longer prompt).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

__all__ = ["Prompt", "load_prompts", "BUNDLED_PROMPTS"]

BUNDLED_PROMPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prompts.jsonl")


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str
    domain: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict, compare=False, hash=False)


def load_prompts(path: str = BUNDLED_PROMPTS) -> List[Prompt]:
    """Reads a prompt corpus; a malformed line raises ValueError naming file and line."""
    prompts: List[Prompt] = []
    seen = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: expected a JSON object")
            for key in ("id", "text", "category"):
                if not isinstance(rec.get(key), str) or not rec[key]:
                    raise ValueError(f"{where}: '{key}' must be a non-empty string")
            domain = rec.get("domain")
            if domain is not None and (not isinstance(domain, str) or not domain):
                raise ValueError(f"{where}: 'domain' must be a non-empty string when present")
            if rec["id"] in seen:
                raise ValueError(f"{where}: duplicate id {rec['id']!r}")
            seen.add(rec["id"])
            extra = {k: v for k, v in rec.items() if k not in ("id", "text", "category", "domain")}
            prompts.append(Prompt(rec["id"], rec["text"], rec["category"], domain, extra))
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts
