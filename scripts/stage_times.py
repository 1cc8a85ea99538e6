"""Print the wall time per rule from Snakemake benchmark files (benchmarks/snakemake/<rule>/...tsv)."""

import csv
import sys
from collections import defaultdict
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/snakemake")
total_wall = float(sys.argv[2]) if len(sys.argv) > 2 else None
per_rule: dict[str, list[float]] = defaultdict(list)
for tsv in root.rglob("*.tsv"):
    rule = tsv.relative_to(root).parts[0]
    with open(tsv) as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            per_rule[rule].append(float(row["s"]))
print(f"{'rule':<24}{'jobs':>6}{'sum of job times (s)':>24}")
for rule, times in sorted(per_rule.items(), key=lambda kv: -sum(kv[1])):
    print(f"{rule:<24}{len(times):>6}{sum(times):>24.1f}")
if total_wall is not None:
    print(f"{'wall time of the run':<30}{total_wall:>24.0f} s")
