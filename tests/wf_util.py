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
