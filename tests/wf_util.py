"""Running Snakemake from tests: one subprocess helper and the dry-run job-count parser."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def run_snakemake(workdir: Path, *args: str, snakefile: Path | None = None, check: bool = True,
                  show_logs: bool = False) -> subprocess.CompletedProcess:
    """`snakemake` in ``workdir`` with its config.yaml (default Snakefile: the repository's), 2 cores."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    cmd = [str(SNAKEMAKE), "--snakefile", str(snakefile or REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and res.returncode != 0:
        logs = ""
        if show_logs and (workdir / "logs").is_dir():
            logs = "\n".join(p.read_text()[-2000:] for p in sorted((workdir / "logs").rglob("*.log")))
        raise AssertionError(f"snakemake failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}\n{logs}")
    return res


def job_counts(dry_run_output: str) -> dict[str, int]:
    """{rule: number of jobs} from the Job stats table of a dry run (without the total and rule all)."""
    table = dry_run_output.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) not in ("total", "all")}


def planned_jobs(dry_run_output: str) -> list[dict[str, str]]:
    """[{"rule": ..., wildcard: value, ...}] of every job a dry run plans (rule all left out)."""
    jobs = []
    for block in re.split(r"\n(?=\[[A-Z][a-z]{2} )", dry_run_output):
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        if not rule or rule.group(1) == "all":
            continue
        job = {"rule": rule.group(1)}
        wc = re.search(r"^\s+wildcards: (.+)$", block, re.M)
        if wc:
            job.update(kv.split("=", 1) for kv in wc.group(1).split(", "))
        jobs.append(job)
    return jobs


def materialize(workdir: Path, *args: str) -> None:
    """Make ``workdir`` look like a finished run of its config without running anything: create
    every output the plan names (empty files), then `snakemake --touch` (timestamps in DAG order and
    the rerun metadata: params, code, input sets). A dry run then shows what a config change reruns."""
    res = run_snakemake(workdir, "-n", *args)
    outputs = set()
    for m in re.finditer(r"^\s+output: (.+)$", res.stdout + res.stderr, re.M):
        outputs.update(f.strip() for f in m.group(1).split(", "))
    for f in outputs:
        path = workdir / f
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    run_snakemake(workdir, "--touch", *args)
    res = run_snakemake(workdir, "-n", *args)
    assert "Nothing to be done" in res.stdout + res.stderr, res.stdout[-3000:]
