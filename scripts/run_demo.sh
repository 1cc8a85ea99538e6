#!/usr/bin/env bash
# Run the built-in demo (config/config.yaml) end to end and print the time spent per stage.
# usage: scripts/run_demo.sh [CORES]
set -euo pipefail
cd "$(dirname "$0")/.."
CORES=${1:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
t0=$(date +%s)
snakemake --cores "$CORES" --profile profiles/local
t1=$(date +%s)
python3 scripts/stage_times.py benchmarks/snakemake "$((t1 - t0))"
