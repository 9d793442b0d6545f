# SPDX-License-Identifier: Apache-2.0
"""orbit_basins: corpus, mapper, comparison, detector and curation on real small models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import torch

from basins_fixtures import LOOP_TEXT, tiny_model, write_models
from conftest import REPO
from orbit_adapter.daemon_process import find_orbitd
from orbit_adapter.sampler import DomainMixtureSampler
from orbit_basins.basin_config import BasinSettings, load_basin_settings
from orbit_basins.basin_map import basin_map_toml, map_model, read_map_json, write_map_json
from orbit_basins.char_lm import VOCAB, load_checkpoint, save_checkpoint
from orbit_basins.classify import classify_decoding, classify_prompt
from orbit_basins.compare import compare_maps, comparison_table
from orbit_basins.corpus import BUNDLED_PROMPTS, Prompt, load_prompts
from orbit_basins.curation import curated_weights, domain_scorecard
from orbit_basins.detector import DangerZoneDetector, evaluate_detector, fit_detector_from_maps
from orbit_basins.generation import decode_prompts
from orbit_basins.models import load_model
from orbit_basins.report_html import comparison_html
from orbit_basins.stats import auroc, exact_mcnemar, holm, wilson_interval
from orbit_basins.text_metrics import sequence_metrics

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PKG = str(REPO / "adapters" / "python")

PROMPTS = [Prompt("p-loop", "the cat sat", "creative", "prose"),
           Prompt("p-mat", "a cat sat. the", "creative", "prose"),
           Prompt("p-code", "def f(x):", "code", "code"),
           Prompt("p-data", "1,2,3,4,", "data", "data")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("basin-models"))


def small_settings(**gen) -> BasinSettings:
    s = BasinSettings()
    s.generation.new_tokens = 48
    for k, v in gen.items():
        setattr(s.generation, k, v)
    return s


@pytest.fixture(scope="module")
def maps(models):
    out = {}
    for label in ("looping", "collapsed"):
        out[label] = map_model(load_model(f"{label}={models[label]}"), PROMPTS, small_settings())
    # The untrained model judged on hot samples only: near-uniform text.
    out["random"] = map_model(load_model(f"random={models['random']}"), PROMPTS,
                              small_settings(greedy=False, sampled_seeds=[0, 1, 2], temperature=1.5))
    return out


# ---- corpus ------------------------------------------------------------------------
def test_bundled_corpus_fits_the_char_models():
    prompts = load_prompts()
    assert len(prompts) >= 50
    cats = {p.category for p in prompts}
    assert {"creative", "embodied", "philosophical", "factual_simple", "factual_complex", "code"} <= cats
    for p in prompts:
        assert all(c in VOCAB for c in p.text), p.id     # the example trainer's charset
    # a 64-token context holds the prompt and the start of the answer (longer is cropped)
    assert sum(len(p.text) <= 64 for p in prompts) >= len(prompts) - 1
    assert {p.domain for p in prompts if p.domain} == {"prose", "docs", "code", "legal", "data"}


@pytest.mark.parametrize("line,message", [
    ("{not json", "not JSON"),
    ('{"id": "a", "category": "c"}', "'text' must be a non-empty string"),
    ('{"id": "a", "text": "x", "category": "c", "domain": 3}', "'domain'"),
])
def test_corpus_errors_name_the_line(tmp_path, line, message):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "ok", "text": "fine", "category": "c"}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"p\.jsonl:2: .*{message}"):
        load_prompts(str(f))


def test_corpus_rejects_duplicate_ids(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "a", "text": "x", "category": "c"}\n' * 2)
    with pytest.raises(ValueError, match="duplicate id"):
        load_prompts(str(f))


# ---- metrics and rules ---------------------------------------------------------------
def test_sequence_metrics_see_loops_and_collapse():
    loop = sequence_metrics(list(b"abcdefgh" * 8), loop_n=8)
    assert loop["loop_rate"] > 0.8 and loop["distinct_tokens"] == 8
    varied = sequence_metrics(list(range(64)), loop_n=8)
    assert varied["loop_rate"] == 0.0 and varied["entropy_bits"] == pytest.approx(6.0)
    flat = sequence_metrics([7] * 60 + [1, 2, 3, 4], loop_n=8)
    assert flat["dominant_share"] == pytest.approx(60 / 64) and flat["distinct_tokens"] == 5


def test_decoding_rules_and_prompt_vote():
    t = BasinSettings().thresholds
    base = {"loop_rate": 0.0, "entropy_bits": 4.0, "dominant_share": 0.1, "distinct_tokens": 30,
            "prediction_share": 0.3}
    assert classify_decoding(base, t)[0] == "CREATIVE"
    assert classify_decoding(dict(base, loop_rate=0.9), t)[0] == "SEMANTIC_LOOP"
    basin, reasons = classify_decoding(dict(base, loop_rate=0.9, dominant_share=0.8), t)
    assert basin == "TOKEN_COLLAPSE" and "dominant_share" in reasons[0]
    assert classify_decoding(dict(base, prediction_share=0.95), t)[0] == "TOKEN_COLLAPSE"
    assert classify_decoding(dict(base, loop_rate=0.4), t)[0] == "UNKNOWN"
    assert classify_decoding(dict(base, entropy_bits=1.0), t)[0] == "UNKNOWN"
    assert classify_prompt(["SEMANTIC_LOOP", "SEMANTIC_LOOP", "CREATIVE"], t)[0] == "SEMANTIC_LOOP"
    assert classify_prompt(["SEMANTIC_LOOP", "UNKNOWN", "CREATIVE"], t)[0] == "UNKNOWN"


def test_settings_file_is_the_defaults_and_rejects_unknown_keys(tmp_path):
    documented = load_basin_settings(str(REPO / "configs" / "basins.toml"))
    defaults = BasinSettings()
    assert documented.generation == defaults.generation
    assert documented.thresholds == defaults.thresholds
    bad = tmp_path / "b.toml"
    bad.write_text("[thresholds]\nloop_min_rat = 0.4\n")
    with pytest.raises(ValueError, match="loop_min_rat: unknown key"):
        load_basin_settings(str(bad))
    bad.write_text("[thresholds]\nloop_min_rate = 0.1\ncreative_max_loop_rate = 0.2\n")
    with pytest.raises(ValueError, match="creative_max_loop_rate"):
        load_basin_settings(str(bad))
    ok = tmp_path / "o.toml"
    ok.write_text("[generation]\nnew_tokens = 32\n[thresholds]\nloop_min_rate = 0.6\n")
    s = load_basin_settings(str(ok))
    assert s.generation.new_tokens == 32 and s.thresholds.loop_min_rate == 0.6


# ---- checkpoints ----------------------------------------------------------------------
def test_checkpoint_round_trip_keeps_the_logits(tmp_path):
    model = tiny_model(3).eval()
    path = str(tmp_path / "m.pt")
    save_checkpoint(model, path, step=7, meta={"lr": 0.001})
    loaded, header = load_checkpoint(path)
    x = torch.randint(0, len(VOCAB), (2, 20))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert header["step"] == 7 and header["meta"] == {"lr": 0.001}
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_checkpoint(str(tmp_path / "junk.pt"))


def test_train_py_saves_checkpoints_every_n_steps(tmp_path):
    out = tmp_path / "run.pt"
    subprocess.run([PY, str(REPO / "examples" / "pytorch" / "train.py"), "--steps", "4", "--d-model", "16",
                    "--layers", "1", "--heads", "2", "--context", "16", "--batch", "4", "--eval-every", "0",
                    "--final-eval-windows", "8", "--quiet", "--save", str(out), "--save-every", "2",
                    "--domain-weights", '{"prose": 1, "code": 1, "docs": 1, "legal": 0, "data": 0}'],
                   check=True, timeout=120)
    model, header = load_checkpoint(str(out))
    assert header["step"] == 4 and model.context == 16
    _, mid = load_checkpoint(str(tmp_path / "run.step2.pt"))
    assert mid["step"] == 2
    assert json.loads(header["meta"]["domain_weights"])["legal"] == 0.0


# ---- mapping --------------------------------------------------------------------------
def test_real_models_land_in_their_basins(maps):
    assert maps["looping"]["summary"]["basins"]["SEMANTIC_LOOP"] >= 3
    assert maps["collapsed"]["summary"]["basins"]["TOKEN_COLLAPSE"] == len(PROMPTS)
    assert maps["random"]["summary"]["basins"]["CREATIVE"] >= 3
    rec = maps["looping"]["prompts"][0]
    assert rec["evidence"] and rec["decodings"][0]["reasons"]
    assert LOOP_TEXT.strip()[:8] in rec["decodings"][0]["text"]   # it recites its training text
    collapsed = maps["collapsed"]["prompts"][0]
    assert set(collapsed["decodings"][0]["text"]) == {"z"}
    # the spectra see the collapse too: one direction dominates the hidden states
    assert collapsed["spectral"]["hidden_dominant_ratio_max"] > maps["random"]["prompts"][0]["spectral"]["hidden_dominant_ratio_max"]


def test_decoding_is_seeded_and_rows_are_independent(models):
    lm = load_model(models["random"])
    g = small_settings(greedy=True, sampled_seeds=[5])
    ids = [lm.encode(p.text) for p in PROMPTS]
    keys = [p.id for p in PROMPTS]
    together = decode_prompts(lm, ids, keys, g.generation)
    alone = decode_prompts(lm, ids[2:3], keys[2:3], g.generation)
    assert [d.tokens for d in together[2]] == [d.tokens for d in alone[0]]
    assert together[0][1].tokens != together[1][1].tokens   # prompts do not share draws


def test_cli_map_writes_json_and_a_toml_orbitd_accepts(models, tmp_path):
    corpus = tmp_path / "p.jsonl"
    corpus.write_text("".join(json.dumps({"id": p.id, "text": p.text, "category": p.category,
                                          "domain": p.domain}) + "\n" for p in PROMPTS))
    cfg = tmp_path / "b.toml"
    cfg.write_text("[generation]\nnew_tokens = 24\nsampled_seeds = [0]\n")
    env = dict(os.environ, PYTHONPATH=PKG)
    r = subprocess.run([PY, "-m", "orbit_basins", "map", f"loop={models['looping']}", "--prompts", str(corpus),
                        "--config", str(cfg), "--out", str(tmp_path / "maps")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = read_map_json(str(tmp_path / "maps" / "loop.json"))
    assert m["settings"]["generation"]["new_tokens"] == 24
    assert len(m["prompts"][0]["decodings"]) == 2
    toml_path = tmp_path / "maps" / "loop.basin_map.toml"
    doc = tomllib.loads(toml_path.read_text())
    assert set(doc) == {"domains"} and set(doc["domains"]) == {"prose", "code", "data"}
    for d in doc["domains"].values():
        assert set(d) <= {"basins", "verdict", "weight", "note"}
        assert d["verdict"] in ("increase", "reduce", "remove", "analyse") and d["weight"] > 0
    # the real reader: orbitd --check-config on a config that points at the map
    orbitd = find_orbitd()
    if orbitd is None:
        if os.environ.get("ORBITD"):
            pytest.fail("ORBITD is set but no orbitd binary was found")
        pytest.skip("no orbitd binary")
    conf = tmp_path / "orbitd.toml"
    conf.write_text(f'[controller]\nbasin_map = "{toml_path.name}"\n')
    os.replace(conf, tmp_path / "maps" / "orbitd.toml")
    r = subprocess.run([orbitd, "--check-config", str(tmp_path / "maps" / "orbitd.toml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    # bad input: a clear one-line error and status 2
    r = subprocess.run([PY, "-m", "orbit_basins", "map", str(tmp_path / "missing.pt"), "--out", str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such file" in r.stderr


# ---- comparison -----------------------------------------------------------------------
def test_stats_known_values():
    assert exact_mcnemar(0, 6) == pytest.approx(2 / 64)
    assert exact_mcnemar(3, 3) == 1.0 and exact_mcnemar(0, 0) == 1.0
    lo, hi = wilson_interval(0, 54)
    assert lo == 0.0 and hi == pytest.approx(0.0664, abs=1e-3)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0 and auroc([0.1, 0.2, 0.9], [1, 1, 0]) == 0.0


def test_compare_pairs_prompts_and_tests_changes(maps):
    r = compare_maps([maps["random"], maps["looping"], maps["collapsed"]])
    assert r["baseline"] == "random" and len(r["changes"]) == 2
    to_collapsed = r["changes"][1]
    coll = next(t for t in to_collapsed["tests"] if t["basin"] == "TOKEN_COLLAPSE")
    assert coll["gained"] == len(PROMPTS) - maps["random"]["summary"]["basins"]["TOKEN_COLLAPSE"]
    assert coll["p_exact_mcnemar"] == pytest.approx(exact_mcnemar(coll["lost"], coll["gained"]))
    assert sum(sum(row.values()) for row in to_collapsed["transitions"].values()) == len(PROMPTS)
    text = comparison_table(r)
    assert "collapsed" in text and "McNemar" in text
    page = comparison_html(r, [maps["random"], maps["looping"], maps["collapsed"]])
    assert page.count("<svg") >= 3 and "cannot show" in page and "http" not in page.replace("http://www.w3.org", "")
    with pytest.raises(ValueError, match="different prompt corpora"):
        other = dict(maps["looping"], prompts=maps["looping"]["prompts"][:2])
        compare_maps([maps["random"], other])


def test_cli_compare_writes_each_report_it_is_asked_for(maps, tmp_path):
    paths = []
    for label in ("random", "collapsed"):
        paths.append(str(tmp_path / f"{label}.json"))
        write_map_json(maps[label], paths[-1])
    env = dict(os.environ, PYTHONPATH=PKG)
    out = {k: tmp_path / f"r.{k}" for k in ("json", "md", "html")}
    r = subprocess.run([PY, "-m", "orbit_basins", "compare", *paths, "--json", str(out["json"]),
                        "--markdown", str(out["md"])], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(out["json"].read_text())["baseline"] == "random"
    assert "collapsed" in out["md"].read_text()
    assert not out["html"].exists()   # not asked for, not written


# ---- detector -------------------------------------------------------------------------
def test_detector_predicts_from_the_prefill_and_suggests_creative_prompts(maps, models, tmp_path):
    ms = [maps["random"], maps["looping"], maps["collapsed"]]
    det = fit_detector_from_maps(ms)
    path = str(tmp_path / "det.json")
    det.save(path)
    det = DangerZoneDetector.load(path, model=load_model(models["collapsed"]))
    pred = det.check_prompt_safety("the cat sat")
    assert pred.basin == "TOKEN_COLLAPSE" and pred.danger > 0.5
    assert len(pred.drivers) == 3 and all("feature" in d for d in pred.drivers)
    safe = det.check_prompt_safety("the cat", model=load_model(models["random"]), category="creative")
    assert safe.danger < 0.5
    # every prompt was CREATIVE in one map of three: none qualifies at a majority, all at 1/3
    assert safe.safer_rephrasings == []
    alternatives = det.safer_rephrasings("the cat", "creative", 3, min_creative_share=0.3)
    assert [r["id"] for r in alternatives] == ["p-loop", "p-mat"]   # most similar first
    ev = evaluate_detector(ms)
    assert ev["rows"] == 3 * len(PROMPTS)
    for block in ("held_out_prompts", "held_out_models"):
        assert 0.0 <= ev[block]["auroc_danger"] <= 1.0
        assert sum(sum(r.values()) for r in ev[block]["confusion"].values()) <= ev["rows"]
    assert ev["held_out_prompts"]["auroc_danger"] >= 0.9   # models this different are easy


# ---- curation -------------------------------------------------------------------------
def test_curation_turns_a_map_into_sampler_weights():
    rows = ([{"domain": "prose", "basin": "CREATIVE"}] * 5 + [{"domain": "prose", "basin": "UNKNOWN"}]
            + [{"domain": "legal", "basin": "SEMANTIC_LOOP"}] * 4 + [{"domain": "legal", "basin": "CREATIVE"}] * 2
            + [{"domain": "data", "basin": "TOKEN_COLLAPSE"}] * 3 + [{"domain": "data", "basin": "CREATIVE"}] * 3
            + [{"domain": "code", "basin": "UNKNOWN"}] * 6 + [{"domain": None, "basin": "TOKEN_COLLAPSE"}])
    card = domain_scorecard(rows)
    assert {d: c["verdict"] for d, c in card.items()} == {
        "prose": "increase", "legal": "reduce", "data": "remove", "code": "analyse"}
    assert card["legal"]["basins"] == ["SEMANTIC_LOOP", "CREATIVE"]
    w = curated_weights(card)
    assert w["data"] == 0.0 and w["prose"] > w["code"] > w["legal"] > 0
    assert sum(w.values()) == pytest.approx(1.0)
    sampler = DomainMixtureSampler({"prose": 10, "legal": 10, "data": 10, "code": 10}, 64, weights=w)
    drawn = {d for d, _ in sampler.next_batch()}
    assert "data" not in drawn and "prose" in drawn
    with pytest.raises(ValueError, match="removed every domain"):
        curated_weights(domain_scorecard([{"domain": "x", "basin": "TOKEN_COLLAPSE"}]))


def test_map_toml_carries_verdicts_and_weights(maps):
    doc = tomllib.loads(basin_map_toml(maps["collapsed"]))
    assert all(d["verdict"] == "remove" and d["basins"] == ["TOKEN_COLLAPSE"] for d in doc["domains"].values())
