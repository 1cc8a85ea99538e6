"""The SLURM path for real: a local single-node SLURM cluster (Debian slurm-wlm + munge, fake GPUs),
the workflow run through `snakemake --profile` with snakemake-executor-plugin-slurm, every job via sbatch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import IN_CI, require_tool
from qe_util import pw_md  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = os.environ.get("LOCAL_SLURM_DIR", "/tmp/ionflow_slurm")
ENV = dict(os.environ, LOCAL_SLURM_DIR=SLURM_DIR, LOCAL_SLURM_FAKE_GPUS="2",
           LOCAL_SLURM_EXTRA_PARTITIONS="cpu gpu")

pytestmark = pytest.mark.needs_slurm


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        msg = "the local SLURM cluster needs root (apt-get, /etc/slurm)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    start = subprocess.run(["bash", str(REPO / "scripts/slurm/start_local_slurm.sh")], env=ENV,
                           capture_output=True, text=True)
    if start.returncode != 0:
        require_tool("slurmctld", "slurm-wlm")  # names the package if it is simply missing
        pytest.fail(f"could not start the local SLURM cluster:\n{start.stderr[-3000:]}")
    yield
    subprocess.run(["bash", str(REPO / "scripts/slurm/stop_local_slurm.sh")], env=ENV, capture_output=True)


def cluster_profile(tmp_path: Path) -> Path:
    """The shipped profile, with sizes shrunk to fit a 2-CPU test node (names and structure unchanged)."""
    prof = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    prof["slurm-init-seconds-before-status-checks"] = 2
    prof["default-resources"].update(runtime=10, mem_mb=1000)
    for res in prof["set-resources"].values():
        for key in ("cpus_per_gpu",):
            if key in res:
                res[key] = 1
        if "tasks" in res:
            res["tasks"] = 1
        res.pop("mem_mb_per_cpu", None)
        res.update(mem_mb=1000, runtime=10)
    out = tmp_path / "profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(prof))
    return out


def test_profile_requests_gpus_for_gpu_stages():
    prof = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert prof["executor"] == "slurm"
    for rule in ("train_member", "md_run", "pes_scan"):
        assert prof["set-resources"][rule]["gpu"] == 1, rule
    assert prof["set-resources"]["label_frame"]["mpi"] == "srun"


def test_ingest_chain_runs_through_sbatch(cluster, tmp_path, pw_md):
    shutil.copy(pw_md, tmp_path / "md.out")
    cfg = {"study": "slurmtest", "structures": {"Li2O": {"sources": [{"path": "md.out", "temperature": 600}]}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    profile = cluster_profile(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    res = subprocess.run(
        ["timeout", "--signal=INT", "--kill-after=30", "600", str(Path(sys.executable).with_name("snakemake")),
         "results/dataset/summary/summary.json", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--profile", str(profile)],
        capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "results/dataset/dataset.extxyz").exists()
    # every job went through sbatch: one SLURM log per job, and the rule logs carry the SLURM job id
    slurm_logs = list((tmp_path / ".snakemake/slurm_logs").rglob("*.log"))
    assert len(slurm_logs) == 2
    rule_log = (tmp_path / "logs/dataset/dataset.log").read_text()
    assert "SLURM job" in rule_log
