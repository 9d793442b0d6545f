# SPDX-License-Identifier: Apache-2.0
"""Danger-zone detector: a prompt's basin predicted from its prefill alone.

A multinomial logistic regression (numpy, L2-regularized, standardized features) over
the prefill features (prefill.FEATURE_NAMES), trained on basin maps: one row per
(prompt, model), labelled with the prompt's basin in that model's map. "Danger" is
P(SEMANTIC_LOOP) + P(TOKEN_COLLAPSE).

    det = DangerZoneDetector.load("detector.json", model=load_model("m.pt"))
    pred = det.check_prompt_safety("The rain on the roof")
    pred.basin, pred.probability, pred.drivers, pred.safer_rephrasings

Evaluation (evaluate_detector): out-of-fold predictions with prompts held out (5
folds over prompt ids, every model's row of a prompt in the same fold) and with
models held out (leave one model out); AUROC of the danger score against the
label "SEMANTIC_LOOP or TOKEN_COLLAPSE", a confusion table, and the same AUROC for
two single-feature baselines (prompt repetition, prompt-end entropy).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .classify import BASINS
from .corpus import load_prompts
from .models import LanguageModel, load_model
from .prefill import FEATURE_NAMES, prefill_features
from .stats import auroc

__all__ = ["BasinPrediction", "DangerZoneDetector", "fit_detector_from_maps", "evaluate_detector",
           "evaluation_markdown", "check_prompt_safety"]

DANGER = ("SEMANTIC_LOOP", "TOKEN_COLLAPSE")
DETECTOR_FORMAT = "orbit-basin-detector/1"


@dataclass
class BasinPrediction:
    basin: str                          # most likely basin
    probability: float                  # its probability
    probabilities: Dict[str, float]     # every basin
    danger: float                       # P(SEMANTIC_LOOP) + P(TOKEN_COLLAPSE)
    drivers: List[dict]                 # features that pushed most towards `basin`
    safer_rephrasings: List[dict] = field(default_factory=list)  # CREATIVE prompts, same category

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        lines = [f"{self.basin} p={self.probability:.2f} (danger {self.danger:.2f}); drivers: "
                 + ", ".join(f"{d['feature']}={d['value']:.3g} ({d['contribution']:+.2f})" for d in self.drivers)]
        for r in self.safer_rephrasings:
            lines.append(f"  safer: [{r['id']}] {r['text']!r} (CREATIVE in {r['creative_share']:.0%} of maps)")
        return "\n".join(lines)


def _trigrams(s: str) -> Counter:
    s = f"  {s.lower()} "
    return Counter(s[i:i + 3] for i in range(len(s) - 2))


def _cosine(a: Counter, b: Counter) -> float:
    num = sum(v * b.get(k, 0) for k, v in a.items())
    den = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))
    return num / den if den else 0.0


def _fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, l2: float, steps: int = 800,
                 lr: float = 0.5) -> np.ndarray:
    """Weights (features + 1, classes) by full-batch gradient descent on the mean log loss."""
    xb = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros((xb.shape[1], classes))
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        z = xb @ w
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        grad = xb.T @ (p - onehot) / len(y)
        grad[:-1] += l2 * w[:-1]
        w -= lr * grad
    return w


class DangerZoneDetector:
    def __init__(self, classes: List[str], mean: np.ndarray, std: np.ndarray, weights: np.ndarray,
                 prompts: List[dict], info: dict, model: Optional[LanguageModel] = None):
        self.classes, self.mean, self.std, self.weights = classes, mean, std, weights
        self.prompts = prompts   # [{id, text, category, creative_share}] from the training maps
        self.info = info
        self.model = model

    # ---- fitting ----------------------------------------------------------------
    @classmethod
    def fit(cls, rows: np.ndarray, labels: Sequence[str], prompts: List[dict], info: dict,
            l2: float = 0.05) -> "DangerZoneDetector":
        classes = [b for b in BASINS if b in set(labels)]
        if len(classes) < 2:
            raise ValueError(f"the training maps hold only {classes}: a detector needs two basins at least")
        mean = rows.mean(0)
        std = rows.std(0)
        std[std < 1e-9] = 1.0
        y = np.array([classes.index(b) for b in labels])
        w = _fit_softmax((rows - mean) / std, y, len(classes), l2)
        return cls(classes, mean, std, w, prompts, dict(info, train_rows=len(labels), l2=l2))

    # ---- prediction -------------------------------------------------------------
    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        x = (np.atleast_2d(rows) - self.mean) / self.std
        z = np.hstack([x, np.ones((x.shape[0], 1))]) @ self.weights
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    def danger(self, rows: np.ndarray) -> np.ndarray:
        p = self.probabilities(rows)
        idx = [i for i, c in enumerate(self.classes) if c in DANGER]
        return p[:, idx].sum(1) if idx else np.zeros(len(p))

    def check_prompt_safety(self, prompt: str, model: Optional[LanguageModel] = None,
                            category: Optional[str] = None, rephrasings: int = 3) -> BasinPrediction:
        """The predicted basin of `prompt` on `model` (default: the one given at load)."""
        lm = model or self.model
        if lm is None:
            raise ValueError("check_prompt_safety needs a model (DangerZoneDetector.load(path, model=...))")
        feats = prefill_features(lm, prompt)
        row = np.array([feats[k] for k in FEATURE_NAMES])
        p = self.probabilities(row)[0]
        k = int(p.argmax())
        x = (row - self.mean) / self.std
        contrib = x * (self.weights[:-1, k] - self.weights[:-1].mean(1))
        order = np.argsort(-contrib)[:3]
        drivers = [{"feature": FEATURE_NAMES[j], "value": float(row[j]), "contribution": float(contrib[j])}
                   for j in order]
        probs = {c: float(p[i]) for i, c in enumerate(self.classes)}
        danger = sum(probs.get(c, 0.0) for c in DANGER)
        return BasinPrediction(self.classes[k], float(p[k]), probs, danger, drivers,
                               self.safer_rephrasings(prompt, category, rephrasings))

    def safer_rephrasings(self, prompt: str, category: Optional[str], n: int,
                          min_creative_share: float = 0.5) -> List[dict]:
        """The most similar (character trigrams) prompts that were CREATIVE in at least
        `min_creative_share` of the training maps, from `category` (default: the category
        of the most similar prompt)."""
        q = _trigrams(prompt)
        scored = sorted(((_cosine(q, _trigrams(p["text"])), p) for p in self.prompts), key=lambda t: -t[0])
        if category is None and scored:
            category = scored[0][1]["category"]
        out = []
        for sim, p in scored:
            if p["category"] == category and p["creative_share"] >= min_creative_share and p["text"] != prompt:
                out.append({"id": p["id"], "text": p["text"], "category": p["category"],
                            "similarity": sim, "creative_share": p["creative_share"]})
            if len(out) == n:
                break
        return out

    # ---- persistence ------------------------------------------------------------
    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"format": DETECTOR_FORMAT, "features": list(FEATURE_NAMES), "classes": self.classes,
                       "mean": self.mean.tolist(), "std": self.std.tolist(),
                       "weights": self.weights.tolist(), "prompts": self.prompts, "info": self.info}, f, indent=1)

    @classmethod
    def load(cls, path: str, model: Optional[LanguageModel] = None) -> "DangerZoneDetector":
        with open(path) as f:
            d = json.load(f)
        if d.get("format") != DETECTOR_FORMAT:
            raise ValueError(f"{path}: not an {DETECTOR_FORMAT} file (fit one with orbit-basins train-detector)")
        if d["features"] != list(FEATURE_NAMES):
            raise ValueError(f"{path}: fitted on other features ({d['features']}); refit it")
        return cls(d["classes"], np.array(d["mean"]), np.array(d["std"]), np.array(d["weights"]),
                   d["prompts"], d["info"], model)


def check_prompt_safety(prompt: str, detector: DangerZoneDetector, model: Optional[LanguageModel] = None,
                        category: Optional[str] = None) -> BasinPrediction:
    """Module-level form of DangerZoneDetector.check_prompt_safety."""
    return detector.check_prompt_safety(prompt, model, category)


# ---- training data from basin maps ---------------------------------------------------
def map_rows(maps: Sequence[dict], prompts_path: Optional[str] = None) -> dict:
    """Prefill features and labels of every (prompt, model) pair of the maps.
    Each map's model is loaded from the path recorded in it."""
    texts = {p.id: p for p in load_prompts(prompts_path)} if prompts_path else {}
    rows, labels, prompt_ids, model_ids = [], [], [], []
    for m in maps:
        lm = load_model(f"{m['model']['label']}={m['model']['path']}")
        for p in m["prompts"]:
            text = p.get("text") or texts[p["id"]].text
            f = prefill_features(lm, text)
            rows.append([f[k] for k in FEATURE_NAMES])
            labels.append(p["basin"])
            prompt_ids.append(p["id"])
            model_ids.append(m["model"]["label"])
    return {"x": np.array(rows), "labels": labels, "prompts": prompt_ids, "models": model_ids}


def _prompt_table(maps: Sequence[dict], keep=None) -> List[dict]:
    table = {}
    for m in maps:
        if keep is not None and m["model"]["label"] not in keep:
            continue
        for p in m["prompts"]:
            t = table.setdefault(p["id"], {"id": p["id"], "text": p["text"], "category": p["category"], "n": 0, "c": 0})
            t["n"] += 1
            t["c"] += p["basin"] == "CREATIVE"
    return [{"id": t["id"], "text": t["text"], "category": t["category"], "creative_share": t["c"] / t["n"]}
            for t in table.values()]


def fit_detector_from_maps(maps: Sequence[dict], prompts_path: Optional[str] = None,
                           data: Optional[dict] = None) -> DangerZoneDetector:
    data = data or map_rows(maps, prompts_path)
    info = {"maps": [m["model"]["label"] for m in maps], "label_counts": dict(Counter(data["labels"]))}
    return DangerZoneDetector.fit(data["x"], data["labels"], _prompt_table(maps), info)


def _confusion(truth: Sequence[str], pred: Sequence[str]) -> Dict[str, Dict[str, int]]:
    return {t: {p: sum(1 for a, b in zip(truth, pred) if a == t and b == p) for p in BASINS} for t in BASINS}


def _score_block(truth, danger, pred, baselines) -> dict:
    y = [int(b in DANGER) for b in truth]
    out = {"rows": len(y), "danger_rows": sum(y), "auroc_danger": auroc(list(danger), y),
           "accuracy": sum(a == b for a, b in zip(truth, pred)) / max(1, len(y)),
           "confusion": _confusion(truth, pred)}
    out["baselines"] = {name: auroc(list(s), y) for name, s in baselines.items()}
    return out


def evaluate_detector(maps: Sequence[dict], prompts_path: Optional[str] = None, folds: int = 5,
                      data: Optional[dict] = None) -> dict:
    """Held-out prompts (grouped k-fold over prompt ids) and held-out models (leave one out)."""
    data = data or map_rows(maps, prompts_path)
    x, labels = data["x"], np.array(data["labels"])
    pids, mids = np.array(data["prompts"]), np.array(data["models"])
    baselines_all = {"prompt_repetition": x[:, FEATURE_NAMES.index("prompt_repetition")],
                     "-end_entropy": -x[:, FEATURE_NAMES.index("end_entropy")]}

    def run(split_masks):
        danger = np.full(len(labels), np.nan)
        pred = np.array(["UNKNOWN"] * len(labels), dtype=object)
        used = np.zeros(len(labels), dtype=bool)
        for test in split_masks:
            train = ~test
            if len(set(labels[train])) < 2:
                continue
            det = DangerZoneDetector.fit(x[train], list(labels[train]), [], {})
            p = det.probabilities(x[test])
            danger[test] = det.danger(x[test])
            pred[test] = [det.classes[i] for i in p.argmax(1)]
            used |= test
        return danger, pred, used

    unique_prompts = sorted(set(pids))
    rng = np.random.Generator(np.random.PCG64(0))
    order = rng.permutation(len(unique_prompts))
    fold_of = {unique_prompts[i]: k % folds for k, i in enumerate(order)}
    prompt_masks = [np.array([fold_of[p] == f for p in pids]) for f in range(folds)]
    model_names = sorted(set(mids))
    model_masks = [mids == m for m in model_names]

    result = {"rows": len(labels), "models": model_names, "prompts": len(unique_prompts),
              "label_counts": dict(Counter(labels.tolist())), "features": list(FEATURE_NAMES)}
    for name, masks in (("held_out_prompts", prompt_masks), ("held_out_models", model_masks)):
        danger, pred, used = run(masks)
        block = _score_block(list(labels[used]), danger[used], list(pred[used]),
                             {k: v[used] for k, v in baselines_all.items()})
        if name == "held_out_models":
            block["per_model"] = {}
            for m in model_names:
                sel = used & (mids == m)
                block["per_model"][m] = {
                    "rows": int(sel.sum()), "danger_rows": int(sum(b in DANGER for b in labels[sel])),
                    "auroc_danger": auroc(list(danger[sel]), [int(b in DANGER) for b in labels[sel]]),
                    "accuracy": float(np.mean(pred[sel] == labels[sel])) if sel.any() else float("nan")}
        result[name] = block
    return result


def evaluation_markdown(ev: dict) -> str:
    def fmt(v):
        return "n/a (one class)" if isinstance(v, float) and math.isnan(v) else f"{v:.3f}"
    out = [f"Detector evaluation: {ev['rows']} (prompt, model) rows, {ev['prompts']} prompts, "
           f"models {', '.join(ev['models'])}; labels {ev['label_counts']}.", ""]
    for name in ("held_out_prompts", "held_out_models"):
        b = ev[name]
        out += [f"### {name.replace('_', ' ')}", "",
                f"AUROC (danger = SEMANTIC_LOOP or TOKEN_COLLAPSE): **{fmt(b['auroc_danger'])}** over "
                f"{b['rows']} rows ({b['danger_rows']} danger); accuracy of the argmax basin {b['accuracy']:.3f}.",
                "Baselines (same rows): " + ", ".join(f"{k} AUROC {fmt(v)}" for k, v in b["baselines"].items()), "",
                "| true \\ predicted | " + " | ".join(BASINS) + " |", "|---|" + "---|" * len(BASINS)]
        for t in BASINS:
            out.append(f"| {t} | " + " | ".join(str(b["confusion"][t][p]) for p in BASINS) + " |")
        if "per_model" in b:
            out += ["", "| held-out model | rows | danger rows | AUROC | accuracy |", "|---|---|---|---|---|"]
            for m, s in b["per_model"].items():
                out.append(f"| {m} | {s['rows']} | {s['danger_rows']} | {fmt(s['auroc_danger'])} | {s['accuracy']:.3f} |")
        out.append("")
    return "\n".join(out)
