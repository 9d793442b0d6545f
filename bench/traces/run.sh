#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regenerates bench/results/traces.md and traces.json: builds bench_traces, then runs it
# from the repository root over tests/traces (the vendored public traces).
#   bench/traces/run.sh [BUILD_DIR] [bench_traces options...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${1:-$repo/build}"
shift || true
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$repo" -B "$build" -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
fi
cmake --build "$build" --target bench_traces -j2 >/dev/null
cd "$repo"
exec "$build/bench/traces/bench_traces" "$@"
