#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Adapter overhead on a CUDA machine: a GPT-2-small-sized model (batch 16 x 1024) and a
# ~1B one (batch 8 x 1024), bf16 autocast, plain loop vs Orbit at its defaults, steps
# interleaved in windows (bench/overhead/gpu.py says how). Run from anywhere:
#
#     bench/overhead/gpu.sh                 # both models, 100 timed steps per arm
#     STEPS=200 bench/overhead/gpu.sh --models gpt2-small
#     ORBITD=build/daemon/orbitd bench/overhead/gpu.sh   # a real orbitd (needs pyzmq)
#
# Without ORBITD the adapter talks to a stand-in transport that encodes every snapshot
# with the real encoder and answers it (no daemon or pyzmq needed). Needs torch with
# CUDA; transformers is optional (GPT2LMHeadModel, else the same shape from
# nn.TransformerEncoderLayer). Writes bench/results/gpu_overhead.json; a CPU check
# that the harness runs: bench/overhead/gpu.sh --device cpu --tiny.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
args=(--steps "${STEPS:-100}" --json-out "${OUT:-bench/results/gpu_overhead.json}")
if [[ -n "${ORBITD:-}" ]]; then
  args+=(--orbitd "$ORBITD")
fi
if [[ " $* " != *" --device cpu "* ]]; then
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    { echo "gpu.sh: torch sees no CUDA device here (for a CPU check: gpu.sh --device cpu --tiny)" >&2; exit 2; }
  "$PY" -c 'import torch; print("gpu.sh:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
fi
exec "$PY" bench/overhead/gpu.py "${args[@]}" "$@"
