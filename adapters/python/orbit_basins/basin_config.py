# SPDX-License-Identifier: Apache-2.0
"""Settings of the basin mapper: generation and the per-basin thresholds.

Read from a TOML file (configs/basins.toml documents every key; the defaults below
are the same values). Unknown sections or keys are errors, as in orbitd's config.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from typing import List, Optional

__all__ = ["GenerationSettings", "BasinThresholds", "BasinSettings", "load_basin_settings"]


@dataclass
class GenerationSettings:
    new_tokens: int = 64            # tokens generated per prompt and decoding
    greedy: bool = True             # one greedy decoding per prompt
    sampled_seeds: List[int] = field(default_factory=lambda: [0, 1])  # one sampled decoding per seed
    temperature: float = 0.7        # sampling temperature
    top_k: int = 0                  # sample from the k most likely tokens; 0 = all


@dataclass
class BasinThresholds:
    loop_n: int = 8                         # n-gram length (tokens) of the loop rate
    loop_min_rate: float = 0.5              # loop rate >= this: SEMANTIC_LOOP
    creative_max_loop_rate: float = 0.25    # CREATIVE needs loop rate <= this ...
    creative_min_entropy_bits: float = 3.0  # ... and output entropy >= this
    collapse_dominant_share: float = 0.5    # one token >= this share of the output: TOKEN_COLLAPSE
    collapse_max_distinct_tokens: int = 3   # <= this many different tokens: TOKEN_COLLAPSE
    collapse_prediction_share: float = 0.9  # the model's top-1 prediction is the same token at
                                            # >= this share of positions: TOKEN_COLLAPSE
    min_agreement: float = 0.5              # a basin must win > this share of the decodings,
                                            # else the prompt is UNKNOWN


@dataclass
class BasinSettings:
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    thresholds: BasinThresholds = field(default_factory=BasinThresholds)
    source: Optional[str] = None

    def as_dict(self) -> dict:
        return {"generation": dataclasses.asdict(self.generation),
                "thresholds": dataclasses.asdict(self.thresholds), "source": self.source}


def _fill(obj, table: dict, where: str) -> None:
    known = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in table.items():
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        current = getattr(obj, key)
        if isinstance(current, bool):
            ok = isinstance(value, bool)
        elif isinstance(current, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(current, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        elif isinstance(current, list):
            ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        else:
            ok = True
        if not ok:
            raise ValueError(f"{where}.{key}: expected {type(current).__name__}, got {value!r}")
        setattr(obj, key, value)


def _validate(s: BasinSettings, where: str) -> None:
    g, t = s.generation, s.thresholds
    checks = [
        (g.new_tokens >= 8, "generation.new_tokens must be >= 8"),
        (g.greedy or g.sampled_seeds, "generation: at least one decoding (greedy or a sampled seed)"),
        (g.temperature > 0, "generation.temperature must be > 0"),
        (g.top_k >= 0, "generation.top_k must be >= 0"),
        (t.loop_n >= 1, "thresholds.loop_n must be >= 1"),
        (0 < t.loop_min_rate <= 1, "thresholds.loop_min_rate must be in (0, 1]"),
        (0 <= t.creative_max_loop_rate < t.loop_min_rate,
         "thresholds.creative_max_loop_rate must be in [0, loop_min_rate)"),
        (t.creative_min_entropy_bits >= 0, "thresholds.creative_min_entropy_bits must be >= 0"),
        (0 < t.collapse_dominant_share <= 1, "thresholds.collapse_dominant_share must be in (0, 1]"),
        (t.collapse_max_distinct_tokens >= 0, "thresholds.collapse_max_distinct_tokens must be >= 0"),
        (0 < t.collapse_prediction_share <= 1, "thresholds.collapse_prediction_share must be in (0, 1]"),
        (0 <= t.min_agreement < 1, "thresholds.min_agreement must be in [0, 1)"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(f"{where}: {msg}")


def load_basin_settings(path: Optional[str] = None) -> BasinSettings:
    """The defaults, overridden by the [generation] and [thresholds] tables of `path`."""
    s = BasinSettings(source=path)
    if path is None:
        return s
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
    for section, value in doc.items():
        if section not in ("generation", "thresholds") or not isinstance(value, dict):
            raise ValueError(f"{path}: unknown section [{section}] (known: [generation], [thresholds])")
        _fill(getattr(s, section), value, f"{path}: {section}")
    _validate(s, path)
    return s
