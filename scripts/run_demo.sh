#!/usr/bin/env bash
# Run the built-in demo (config/config.yaml) end to end, then print the results table and the time
# spent per stage (ionflow summary).
# usage: scripts/run_demo.sh [CORES]
set -euo pipefail
cd "$(dirname "$0")/.."
CORES=${1:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
t0=$(date +%s)
snakemake --cores "$CORES" --profile profiles/local
t1=$(date +%s)
ionflow summary --results results --benchmarks benchmarks/snakemake --since "$t0" --wall-s "$((t1 - t0))" | tee results/summary.txt
