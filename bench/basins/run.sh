#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The basin reports in bench/results/basins/, end to end (CPU; tens of minutes on a
# loaded 2-core box, most of it generation). Checkpoints go to build/basins-models/.
#   nice -n 10 sh bench/basins/run.sh
set -eu
cd "$(dirname "$0")/../.."
R=bench/results/basins
M=build/basins-models
B="/usr/bin/python3 -m orbit_basins"
export PYTHONPATH=adapters/python

# 1. checkpoints: healthy (pre-LN lr 1e-3), collapsed (post-LN lr 1e-2), rescued
#    (post-LN lr 1e-2 under a real orbitd), saved every 200 of 800 steps
/usr/bin/python3 bench/basins/train_models.py --out $M

# 2. basin maps (JSON + the controller's TOML) of seven checkpoints
$B map healthy-200=$M/healthy.step200.pt healthy-800=$M/healthy.pt \
       collapsed-200=$M/collapsed.step200.pt collapsed-800=$M/collapsed.pt \
       rescued-200=$M/rescued.step200.pt rescued-400=$M/rescued.step400.pt rescued-800=$M/rescued.pt \
       --config configs/basins.toml --out $R/maps

# 3. cross-model comparison against the healthy model
$B compare $R/maps/healthy-800.json $R/maps/healthy-200.json $R/maps/collapsed-200.json \
       $R/maps/collapsed-800.json $R/maps/rescued-200.json $R/maps/rescued-400.json $R/maps/rescued-800.json \
       --json $R/comparison.json --markdown $R/comparison.md --html $R/comparison.html | tee $R/comparison.txt

# 4. danger-zone detector: fitted on all seven maps; evaluated with prompts and models held out
$B train-detector $R/maps/healthy-200.json $R/maps/healthy-800.json $R/maps/collapsed-200.json \
       $R/maps/collapsed-800.json $R/maps/rescued-200.json $R/maps/rescued-400.json $R/maps/rescued-800.json \
       --out $R/detector.json --eval-json $R/detector_eval.json --eval-markdown $R/detector_eval.md
$B check --detector $R/detector.json --model $M/collapsed.pt --category creative \
       "The rain on the tin roof sounded like" "aaaaaaaaaaaaaaaaaaaaaaaa" | tee $R/check_collapsed.txt
$B check --detector $R/detector.json --model $M/healthy.pt --category code \
       "def bisect_left(a, x, lo=0, hi=None):" "the the the the the the the the" | tee $R/check_healthy.txt

# 5. curation: the healthy map's scorecard -> weights; train uniform vs curated; map and compare
$B curate $R/maps/healthy-800.json --out $R/curation/weights.json --toml $R/curation/basin_map.toml
/usr/bin/python3 bench/basins/train_models.py --out $M --runs "" --curation $R/curation/weights.json
$B map uniform=$M/uniform.pt curated=$M/curated.pt --config configs/basins.toml --out $R/curation
$B compare $R/curation/uniform.json $R/curation/curated.json \
       --json $R/curation/comparison.json --markdown $R/curation/comparison.md \
       --html $R/curation/comparison.html | tee $R/curation/comparison.txt
