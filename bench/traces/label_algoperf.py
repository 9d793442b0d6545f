#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Selects AlgoPerf training logs from a clone of mlcommons/submissions_algorithms,
labels their loss spikes with one mechanical rule, and writes the vendored copies
under tests/traces/<folder>/ and their labels under bench/traces/labels/.

The rule was written down (here) before any detector was run on these files:

  Training rows are the rows of measurements.csv whose `loss` is filled (eval rows
  are skipped), in step order. From the 11th training row on, the reference of a
  row is the median of the 10 finite training losses before it.
  - A loss event starts at a row whose loss is >= 1.5 x its reference, or is not
    finite. Its reference is frozen at that onset; the event lasts while the loss
    stays >= 1.5 x that reference (or not finite). peak = the row with the highest
    loss in the event (the first non-finite one if any), end = the event's last row.
    kind = "divergence" when the event holds a non-finite loss or runs to the last
    row, else "spike".
  - A run with at least one loss event is a SPIKE run. A run with none, every loss
    and grad norm finite, and no grad norm >= 10 x the median of its 10 previous
    ones is HEALTHY. Anything else (a grad-norm burst the loss does not show) is
    left out: neither a spike the labels could name nor a clean healthy run.

Selection: for each workload folder name listed in WORKLOADS, the files of the
given commit in path order; the first SPIKE run and the first two HEALTHY runs whose
measurements.csv is at most MAX_BYTES and whose last training row is at step
MIN_LAST_STEP or later (aborted 100-step runs say nothing about health). The split is by workload: a workload is in
the held-out part when listed in HELD_OUT (fixed here, before any scoring).

  label_algoperf.py REPO_GIT_DIR COMMIT            # prints what it would take
  label_algoperf.py REPO_GIT_DIR COMMIT --write    # vendors and labels
  label_algoperf.py REPO_GIT_DIR COMMIT --fresh [--write]
  label_algoperf.py REPO_GIT_DIR COMMIT --fresh2 [--write]
  label_algoperf.py REPO_GIT_DIR COMMIT --fresh3 [--write]
  label_algoperf.py REPO_GIT_DIR COMMIT --fresh4 [--write]
  label_algoperf.py REPO_GIT_DIR COMMIT --fresh5 [--write]

--fresh takes the same rule to the AlgoPerf v0.6 leaderboard's logs
(previous_leaderboards/algoperf_v06/: other submissions, baseline, shampoo and
schedule_free_adamw_v2, on the 16 base workloads), which no earlier selection reached.
They go to tests/traces/algoperf_fresh_v06_<workload>/, named v06_<...>, and are listed
in bench/traces/fresh.txt: a third part, vendored after the detector was frozen for issue
18's trace goal and scored only then (bench_traces --fresh).

--fresh2 takes the same rule (same labels, same per-workload selection) to the
self-tuning logs of both leaderboards (previous_leaderboards/algoperf_v05/logs/self_tuning/
and .../algoperf_v06/logs/self_tuning/: adamg, baseline, nadamw_sequential,
schedule_free_adamw, sinv6, sinv6_75, schedule_free_adamw_v2), which no earlier selection
took (the others stop at external_tuning/ in path order), over every workload folder
those hold (FRESH2_WORKLOADS). They go to tests/traces/algoperf_fresh2_<workload>/, named
self_v05_<...> / self_v06_<...>, and are listed in bench/traces/fresh2.txt: a fourth part,
written down and vendored before anyone looked at the four false alarms of the held-out and
fresh parts, scored first with the detector of main 134eac4, never tuned on.

--fresh3 takes the same rule (same labels, MAX_BYTES, MIN_LAST_STEP, WANT) to the v0.5
external-tuning logs of the two submissions the earlier selections barely reached
(FRESH3_SUBMISSIONS: nadamp, 2 files taken before; shampoo_submission, 4), over every
workload folder they hold, once per submission and workload (first SPIKE run and first
two HEALTHY runs in path order), skipping any file an earlier part already vendored (a
SOURCE.txt under tests/traces names it). They go to tests/traces/algoperf_fresh3_<workload>/,
named v05_<workload>_<submission>_<study>_<trial>_<VERDICT>, and are listed in
bench/traces/fresh3.txt: a fifth part, written down, labelled and committed before any
detector ran on them, scored once with the detector that comes out of issue 18's study of
the looked-at parts (tuned, held-out, fresh, fresh2).

--fresh4 takes the same rule and the same per-submission-and-workload selection as
--fresh3 (skipping every file an earlier part vendored) to the three v0.5 external-tuning
submissions whose runs only the per-workload selections (tuned, held-out) reached, one or
two trials each: FRESH4_SUBMISSIONS, baseline, caspr_adaptive and schedule_free_prodigy,
over every workload folder they hold. (The submissions no part took a file of, amos,
cyclic_lr, generalized_adam, lawa_ema, lawa_queue and schedule_free_adamw, log the training
loss for steps 0-99 only, so MIN_LAST_STEP leaves none of their runs; nadamp and
shampoo_submission went to fresh3.) They go to tests/traces/algoperf_fresh4_<workload>/,
named v05_<workload>_<submission>_<study>_<trial>_<VERDICT>, and are listed in
bench/traces/fresh4.txt: a sixth part, written down here before any of its runs' losses
were looked at, labelled and committed before any detector (Orbit's or a baseline's) ran
on them, scored once with the detector that comes out of issue 18's traces3 round (the
held-out and fresh false alarms).

--fresh5 takes the same rule and the same per-submission-and-workload selection as
--fresh3 (skipping every file an earlier part vendored) to the AlgoPerf v0.6 leaderboard's
external-tuning logs (FRESH5_PREFIX: baseline and shampoo, the two v0.6 external-tuning
submissions, over the 16 base workloads), of which the per-workload --fresh selection took
at most three runs per workload, so most trials of both submissions are untouched. They go
to tests/traces/algoperf_fresh5_<workload>/, named
v06_<workload>_<submission>_<study>_<trial>_<VERDICT>, and are listed in
bench/traces/fresh5.txt: a seventh part, written down here before any of its runs' losses
were looked at, labelled and committed before any detector (Orbit's or a baseline's) ran
on them, scored once with the detector that comes out of issue 18's traces4 round (the
fresh4 false alarms).
"""
import csv
import io
import math
import os
import statistics
import subprocess
import sys

WORKLOADS = [
    "imagenet_vit_pytorch", "librispeech_conformer_jax", "ogbg_pytorch", "wmt_pytorch",
    "fastmri_pytorch", "imagenet_resnet_jax", "criteo1tb_pytorch", "wmt_glu_tanh_jax",
    "librispeech_deepspeech_pytorch", "imagenet_vit_jax", "ogbg_model_size_jax", "wmt_jax",
]
# A second held-out batch, added after the detector was tuned, none of it scored before.
WORKLOADS += [
    "librispeech_conformer_pytorch", "fastmri_jax", "ogbg_jax", "criteo1tb_jax", "imagenet_resnet_pytorch",
    "wmt_glu_tanh_pytorch", "fastmri_tanh_pytorch", "ogbg_model_size_pytorch",
    "imagenet_resnet_large_bn_init_pytorch", "librispeech_conformer_layernorm_pytorch",
]
# A third batch, added after the grad-norm confirmation rule was set on the tuned part
# (issue 18), held out like the second: the remaining workload variants of the commit.
THIRD_BATCH = [
    "criteo1tb_embed_init_pytorch", "librispeech_deepspeech_jax", "fastmri_tanh_jax",
    "librispeech_conformer_layernorm_jax", "criteo1tb_embed_init_jax", "imagenet_resnet_large_bn_init_jax",
    "criteo1tb_layernorm_jax", "fastmri_model_size_jax", "imagenet_resnet_silu_jax", "wmt_post_ln_jax",
]
WORKLOADS += THIRD_BATCH
FRESH_PREFIX = "previous_leaderboards/algoperf_v06/"
FRESH_WORKLOADS = [
    "criteo1tb_jax", "criteo1tb_pytorch", "fastmri_jax", "fastmri_pytorch", "imagenet_resnet_jax",
    "imagenet_resnet_pytorch", "imagenet_vit_jax", "imagenet_vit_pytorch", "librispeech_conformer_jax",
    "librispeech_conformer_pytorch", "librispeech_deepspeech_jax", "librispeech_deepspeech_pytorch", "ogbg_jax",
    "ogbg_pytorch", "wmt_jax", "wmt_pytorch",
]
FRESH2_PREFIXES = ("previous_leaderboards/algoperf_v05/logs/self_tuning/",
                   "previous_leaderboards/algoperf_v06/logs/self_tuning/")
FRESH2_WORKLOADS = [
    "criteo1tb_embed_init_jax", "criteo1tb_embed_init_pytorch", "criteo1tb_jax", "criteo1tb_pytorch", "fastmri_jax",
    "fastmri_pytorch", "fastmri_tanh_jax", "fastmri_tanh_pytorch", "imagenet_resnet_jax",
    "imagenet_resnet_large_bn_init_jax", "imagenet_resnet_large_bn_init_pytorch", "imagenet_resnet_pytorch",
    "imagenet_vit_jax", "imagenet_vit_pytorch", "librispeech_conformer_jax", "librispeech_conformer_layernorm_jax",
    "librispeech_conformer_layernorm_pytorch", "librispeech_conformer_pytorch", "librispeech_deepspeech_jax",
    "librispeech_deepspeech_pytorch", "ogbg_jax", "ogbg_model_size_jax", "ogbg_model_size_pytorch", "ogbg_pytorch",
    "wmt_glu_tanh_jax", "wmt_glu_tanh_pytorch", "wmt_jax", "wmt_pytorch",
]
FRESH3_PREFIX = "previous_leaderboards/algoperf_v05/logs/external_tuning/"
FRESH3_SUBMISSIONS = ["nadamp", "shampoo_submission"]
FRESH4_SUBMISSIONS = ["baseline", "caspr_adaptive", "schedule_free_prodigy"]
FRESH5_PREFIX = "previous_leaderboards/algoperf_v06/logs/external_tuning/"
FRESH5_SUBMISSIONS = ["baseline", "shampoo"]
# Never tuned on: whole workloads (architectures, data) the tuned part does not have.
HELD_OUT = {"librispeech_conformer_pytorch", "fastmri_jax", "ogbg_jax", "criteo1tb_jax", "imagenet_resnet_pytorch",
            "wmt_glu_tanh_pytorch", "fastmri_tanh_pytorch", "ogbg_model_size_pytorch",
            "imagenet_resnet_large_bn_init_pytorch", "librispeech_conformer_layernorm_pytorch",
            "librispeech_conformer_jax", "ogbg_model_size_jax", "wmt_glu_tanh_jax", "imagenet_resnet_jax",
            "librispeech_deepspeech_pytorch", "fastmri_pytorch"} | set(THIRD_BATCH)
MAX_BYTES = 45000
MIN_LAST_STEP = 5000
WANT = {"spike": 1, "healthy": 2}
RATIO = 1.5
GN_RATIO = 10.0
WINDOW = 10


SOURCE_HEAD = """Repo:    github.com/mlcommons/submissions_algorithms  (MLCommons AlgoPerf submissions & logs; license: Apache-2.0, LICENSE.md)
Workload: AlgoPerf "{workload}". Split: {part} ({part_note}).
Selected and labelled by bench/traces/label_algoperf.py (selection and labelling rule in its docstring;
labels in bench/traces/labels/<file stem>.toml). Format: AlgoPerf measurements.csv (training rows carry
loss + grad_norm; eval rows have loss empty), copied verbatim.
Files (commit path -> copy):
"""
LICENSE_NOTE = """The files in this folder are verbatim copies of measurements.csv logs from
github.com/mlcommons/submissions_algorithms, licensed under the Apache License 2.0
(that repository's LICENSE.md). Nothing was changed; only the file names differ.
"""


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def training_rows(text):
    rows = {}
    for r in csv.DictReader(io.StringIO(text)):
        if not r.get("loss") or r.get("global_step") in (None, ""):
            continue
        loss = num(r["loss"])
        if loss is None:
            continue
        gn = num(r["grad_norm"]) if r.get("grad_norm") else None
        rows[int(float(r["global_step"]))] = (loss, gn)
    return sorted((s, l, g) for s, (l, g) in rows.items())


def label(rows):
    """(events, verdict): events as dicts onset/peak/end/kind; verdict spike|healthy|excluded."""
    events, finite, i = [], [], 0
    while i < len(rows):
        step, loss, _ = rows[i]
        ref = statistics.median(finite[-WINDOW:]) if len(finite) >= WINDOW else None
        if ref is not None and (not math.isfinite(loss) or loss >= RATIO * ref):
            j, peak, peak_loss, nonfinite = i, step, loss, not math.isfinite(loss)
            while j + 1 < len(rows) and (not math.isfinite(rows[j + 1][1]) or rows[j + 1][1] >= RATIO * ref):
                j += 1
                l = rows[j][1]
                if not math.isfinite(l):
                    if not nonfinite:
                        peak, nonfinite = rows[j][0], True
                elif not nonfinite and l > peak_loss:
                    peak, peak_loss = rows[j][0], l
            kind = "divergence" if nonfinite or j == len(rows) - 1 else "spike"
            events.append({"onset": step, "peak": peak, "end": rows[j][0], "kind": kind})
            for k in range(i, j + 1):
                if math.isfinite(rows[k][1]):
                    finite.append(rows[k][1])
            i = j + 1
            continue
        if math.isfinite(loss):
            finite.append(loss)
        i += 1
    if events:
        return events, "spike"
    gns = [g for _, _, g in rows if g is not None]
    if any(not math.isfinite(l) for _, l, _ in rows) or any(not math.isfinite(g) for g in gns):
        return events, "excluded"
    for k in range(WINDOW, len(gns)):
        if gns[k] >= GN_RATIO * statistics.median(gns[k - WINDOW:k]):
            return events, "excluded"
    return events, "healthy"


def main():
    git_dir, commit = sys.argv[1], sys.argv[2]
    write = "--write" in sys.argv
    fresh5 = "--fresh5" in sys.argv
    fresh4 = "--fresh4" in sys.argv
    fresh3 = "--fresh3" in sys.argv or fresh4 or fresh5
    part3 = "fresh5" if fresh5 else "fresh4" if fresh4 else "fresh3"
    submissions = FRESH5_SUBMISSIONS if fresh5 else FRESH4_SUBMISSIONS if fresh4 else FRESH3_SUBMISSIONS
    prefix3 = FRESH5_PREFIX if fresh5 else FRESH3_PREFIX
    fresh2 = "--fresh2" in sys.argv
    fresh = "--fresh" in sys.argv and not fresh2 and not fresh3
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    vendored = set()  # commit paths an earlier part already copied (fresh3 skips them)
    traces_dir = os.path.join(repo, "tests", "traces")
    for folder in os.listdir(traces_dir):
        source = os.path.join(traces_dir, folder, "SOURCE.txt")
        if folder.startswith("algoperf_") and os.path.isfile(source):
            for line in open(source):
                if " -> " in line and len(line.split()) > 2:
                    vendored.add(line.split()[1])
    listing = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r", "-l", commit], check=True,
                             capture_output=True, text=True).stdout.splitlines()
    files = []
    for line in listing:
        meta, path = line.split("\t", 1)
        size = meta.split()[3]
        if path.endswith("/measurements.csv") and size != "-" and int(size) <= MAX_BYTES:
            if fresh3:
                if path.startswith(prefix3) and path.split("/")[-5] in submissions and path not in vendored:
                    files.append(path)
            elif fresh2:
                if path.startswith(FRESH2_PREFIXES):
                    files.append(path)
            elif path.startswith(FRESH_PREFIX) == fresh:
                files.append(path)
    files.sort()
    if fresh3:  # one selection per submission and workload folder
        groups = [(w, sub) for sub in submissions
                  for w in sorted({p.split("/")[-3] for p in files if p.split("/")[-5] == sub})]
    else:
        groups = [(w, None) for w in (FRESH2_WORKLOADS if fresh2 else FRESH_WORKLOADS if fresh else WORKLOADS)]
    for workload, submission in groups:
        part = (part3 if fresh3 else "fresh2" if fresh2 else "fresh_v06" if fresh else
                "heldout" if workload in HELD_OUT else "tuned")
        folder = os.path.join(repo, "tests", "traces", f"algoperf_{part}_{workload}")
        if os.path.isdir(folder) and (submission is None or f"/{submission}/" in open(os.path.join(folder, "SOURCE.txt")).read()):
            print(f"{part:8} {workload} {submission or ''}: already vendored, kept")
            continue
        taken = {}
        for path in files:
            if path.split("/")[-3] != workload or (submission is not None and path.split("/")[-5] != submission):
                continue
            text = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], check=True,
                                  capture_output=True, text=True).stdout
            rows = training_rows(text)
            if len(rows) < 50 or rows[-1][0] < MIN_LAST_STEP:
                continue
            events, verdict = label(rows)
            if verdict == "excluded" or len([t for t in taken.values() if t[4] == verdict]) >= WANT[verdict]:
                continue
            taken[path] = (path, text, events, rows, verdict)
            if len(taken) == sum(WANT.values()):
                break
        for path, text, events, rows, verdict in taken.values():
            parts = path.split("/")
            trial = parts[-2]
            name = f"{workload}_{parts[-5]}_{parts[-4]}_{trial}_{verdict.upper()}".replace("-", "_")
            if fresh:
                name = "v06_" + name
            if fresh2:
                name = f"self_{parts[1].split('_')[-1]}_" + name
            if fresh3:
                name = ("v06_" if fresh5 else "v05_") + name
            print(f"{part:8} {verdict:8} {name} rows={len(rows)} steps={rows[0][0]}-{rows[-1][0]} "
                  f"events={[(e['onset'], e['peak'], e['end'], e['kind']) for e in events]}")
            if not write:
                continue
            if not os.path.isdir(folder):
                os.makedirs(folder)
                with open(os.path.join(folder, "SOURCE.txt"), "w") as f:
                    note = {"heldout": "never tuned on", "tuned": "thresholds may be tuned on it",
                            "fresh_v06": "AlgoPerf v0.6 logs, vendored after the detector was frozen; never tuned on",
                            "fresh2": "AlgoPerf v0.5/v0.6 self-tuning logs, vendored before the held-out and fresh false "
                                      "alarms were looked at; never tuned on",
                            "fresh3": "AlgoPerf v0.5 external-tuning logs of nadamp and shampoo_submission, labelled and "
                                      "committed before any detector ran on them; never tuned on",
                            "fresh4": "AlgoPerf v0.5 external-tuning logs of baseline, caspr_adaptive and schedule_free_prodigy, "
                                      "labelled and "
                                      "committed before any detector ran on them; never tuned on",
                            "fresh5": "AlgoPerf v0.6 external-tuning logs of baseline and shampoo that the fresh part did "
                                      "not take, labelled and committed before any detector ran on them; never tuned on"}
                    f.write(SOURCE_HEAD.format(workload=workload, part=part, part_note=note[part]))
                listing = f"{part3}.txt" if fresh3 else "fresh2.txt" if fresh2 else "fresh.txt" if fresh else "heldout.txt"
                with open(os.path.join(repo, "bench", "traces", listing), "a") as f:
                    if part != "tuned":
                        f.write(f"algoperf_{part}_{workload}\n")
                with open(os.path.join(folder, "LICENSE.txt"), "w") as f:
                    f.write(LICENSE_NOTE)
            with open(os.path.join(folder, name + ".csv"), "w") as f:
                f.write(text)
            with open(os.path.join(folder, "SOURCE.txt"), "a") as f:
                f.write(f"{commit} {path} -> {name}.csv ({verdict}; {len(rows)} training rows, steps "
                        f"{rows[0][0]}-{rows[-1][0]})\n")
            with open(os.path.join(repo, "bench", "traces", "labels", name + ".toml"), "w") as f:
                f.write("# SPDX-License-Identifier: Apache-2.0\n")
                f.write("# Labelled by bench/traces/label_algoperf.py (its mechanical rule), not by hand.\n")
                f.write(f'source = "tests/traces/algoperf_{part}_{workload}/SOURCE.txt"\n')
                if verdict == "healthy":
                    f.write("healthy = true\n")
                for e in events:
                    f.write(f'[[failure]]\nonset = {e["onset"]}\npeak = {e["peak"]}\nend = {e["end"]}\n'
                            f'kind = "{e["kind"]}"\n')


if __name__ == "__main__":
    main()
