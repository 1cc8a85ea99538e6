"""The screening rules (workflow/rules/screening.smk): scan -> descriptors -> ranking with a real
SevenNet-0 scan of a tiny grid; changed screening options rerun the scan."""

from __future__ import annotations


import pytest
import yaml

from conftest import require_module
from wf_util import REPO, job_counts as _jobs, run_snakemake


@pytest.fixture
def workdir(tmp_path):
    # only the common helpers and the screening rules (the full Snakefile includes every stage)
    (tmp_path / "Snakefile").write_text(
        f'include: "{REPO}/workflow/rules/common.smk"\n'
        f'include: "{REPO}/workflow/rules/screening.smk"\n\n'
        "rule all:\n    default_target: True\n    input: screening_targets(),\n")
    cfg = {"study": "screen-test",
           "structures": {"X": {"sources": [{"path": "unused.extxyz"}]}},
           "screening": {"calculator": "sevennet", "study_structures": False,
                         "structures": {"bLPO": "builtin:beta-Li3PO4"},
                         "grid_step_A": 1.5, "min_length_A": 0.0, "max_ions": 1, "top": 3}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _smk(workdir, *args, **kw):
    """Snakemake with the test's own Snakefile (it includes only the rule files under test)."""
    return run_snakemake(workdir, *args, snakefile=workdir / "Snakefile", **kw)


def test_dry_run_plans_scan_descriptors_rank(workdir):
    res = _smk(workdir, "-n")
    assert _jobs(res.stdout + res.stderr) == {"pes_scan": 1, "pes_descriptors": 1, "rank": 1}
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["screening"]["raw_cell_comparison"] = True
    cfg["screening"]["structures"]["gLPO"] = {"structure": "builtin:gamma-Li3PO4", "max_ions": 2}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = _smk(workdir, "-n")
    assert _jobs(res.stdout + res.stderr) == {"pes_scan": 2, "pes_scan_raw": 2,
                                              "pes_descriptors": 2, "pes_descriptors_raw": 2,
                                              "rank": 1, "rank_raw": 1}


def test_unknown_screening_key_is_rejected(workdir):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["screening"]["grid_stepp"] = 1.0
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = _smk(workdir, "-n", check=False)
    assert res.returncode != 0 and "grid_stepp" in res.stdout + res.stderr


@pytest.mark.slow
def test_screening_chain_runs_with_sevennet(workdir):
    require_module("sevenn", "sevenn")
    _smk(workdir)
    for rel in ("results/screening/bLPO/scan.npz", "results/screening/bLPO/descriptors.json",
                "results/screening/bLPO/level.cube", "results/screening/ranking.csv",
                "results/figures/screening/ranking.png", "results/figures/screening/bLPO_level.png",
                "logs/pes_scan/bLPO.log", "benchmarks/snakemake/pes_scan/bLPO.tsv"):
        assert (workdir / rel).exists(), rel
    assert "bLPO" in (workdir / "results/screening/ranking.csv").read_text()
    # a finer grid reruns the scan and everything downstream
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["screening"]["grid_step_A"] = 1.0
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = _smk(workdir, "-n")
    assert _jobs(res.stdout + res.stderr) == {"pes_scan": 1, "pes_descriptors": 1, "rank": 1}
