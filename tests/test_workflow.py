"""The Snakemake workflow: the ingest chain runs on real pw.x output; config changes rerun only what depends on them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qe_util import pw_md  # noqa: F401  (fixture)
from wf_util import REPO, SNAKEMAKE, job_counts, run_snakemake

@pytest.fixture
def workdir(tmp_path, pw_md):
    shutil.copy(pw_md, tmp_path / "md.out")
    cfg = {"study": "wftest", "structures": {"Li2O": {"sources": [{"path": "md.out", "temperature": 600}]}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def test_ingest_chain_runs_and_config_change_reruns_only_dependents(workdir):
    target = "results/dataset/summary/summary.json"
    run_snakemake(workdir, target)
    assert (workdir / "results/dataset/dataset.extxyz").exists()
    assert (workdir / "logs/dataset/dataset.log").exists()
    assert list((workdir / "benchmarks/snakemake/dataset").glob("*.tsv"))
    # nothing to do on a rerun
    assert "Nothing to be done" in run_snakemake(workdir, "-n", target).stdout + run_snakemake(workdir, "-n", target).stderr
    # a new split seed reruns the dataset rule only, not the per-source parsing
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["ingest"] = {"split": {"seed": 99}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_snakemake(workdir, "-n", target)
    assert job_counts(res.stdout + res.stderr) == {"dataset": 1}


def test_invalid_config_is_rejected_naming_the_key(workdir):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["ingest"] = {"splitt": {}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_snakemake(workdir, "-n", check=False)
    assert res.returncode != 0
    assert "splitt" in res.stdout + res.stderr


def _repo_snakemake(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([str(SNAKEMAKE), *args], cwd=REPO, capture_output=True, text=True, env=env)


def test_lint_is_clean():
    res = _repo_snakemake("--lint")
    assert res.returncode == 0 and "good condition" in res.stdout + res.stderr, res.stdout[-4000:] + res.stderr[-2000:]


def test_demo_config_dry_run_plans_every_stage(tmp_path):
    # a scratch results dir so an existing demo run does not change the plan
    res = _repo_snakemake("-n", "--cores", "2", "--config", f"results_dir={tmp_path}/results")
    assert res.returncode == 0, res.stderr[-4000:]
    counts = job_counts(res.stdout + res.stderr)
    for rule in ("dataset", "closepairs", "label_sevennet", "merge_closepairs", "train_member", "validate_stability",
                 "validate_minimize", "md_run", "conductivity", "combine_models", "arrhenius", "pes_scan",
                 "pes_descriptors", "rank", "figures"):
        assert counts.get(rule, 0) >= 1, (rule, counts)
