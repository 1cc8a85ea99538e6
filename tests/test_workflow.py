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
from wf_util import REPO, SNAKEMAKE, job_counts, materialize, planned_jobs, run_snakemake

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


# ------------------------------------------------------------------------------------------ reruns
@pytest.fixture(scope="module")
def _finished_demo_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished_demo")
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    shutil.copy(REPO / "config/config.yaml", root / "config.yaml")
    materialize(root)
    return root


@pytest.fixture
def finished_demo(_finished_demo_template, tmp_path):
    """A working directory with the demo config whose every output exists and is up to date (no job
    was run: see wf_util.materialize); a copy per test, timestamps and Snakemake metadata kept."""
    work = tmp_path / "demo"
    shutil.copytree(_finished_demo_template, work, symlinks=True)   # copy2: modification times kept
    return work


def _rerun_plan(workdir: Path, edit) -> tuple[dict[str, int], list[dict[str, str]]]:
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    edit(cfg)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_snakemake(workdir, "-n")
    out = res.stdout + res.stderr
    return job_counts(out), planned_jobs(out)


def _demo_sizes() -> tuple[int, int, int, int]:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    return (len(cfg["structures"]), len(cfg["train"]["ensemble"]), len(cfg["md"]["temperatures"]),
            len(cfg["md"]["seeds"]))


#: rules a change of the MD plan (temperatures, seeds) may rerun: the new runs and the analysis
MD_AND_ANALYSIS = {"md_run", "md_disagreement", "conductivity", "combine_models", "arrhenius", "figures",
                   "rank_vs_md"}


@pytest.mark.slow
def test_rerun_new_temperature_runs_only_new_md_and_affected_analysis(finished_demo):
    ns, nm, nt, nseed = _demo_sizes()
    counts, jobs = _rerun_plan(finished_demo, lambda c: c["md"]["temperatures"].append(1150))
    assert set(counts) <= MD_AND_ANALYSIS, counts
    assert counts["md_run"] == counts["md_disagreement"] == ns * nm * 1 * nseed
    assert {j["T"] for j in jobs if j["rule"] in ("md_run", "md_disagreement", "conductivity")} == {"1150"}
    assert counts["conductivity"] == ns * nm and counts["combine_models"] == ns
    assert counts["arrhenius"] == ns   # the fits take every temperature


@pytest.mark.slow
def test_rerun_more_seeds_runs_only_new_md_and_affected_analysis(finished_demo):
    ns, nm, nt, nseed = _demo_sizes()
    counts, jobs = _rerun_plan(finished_demo, lambda c: c["md"]["seeds"].append(max(c["md"]["seeds"]) + 1))
    assert set(counts) <= MD_AND_ANALYSIS, counts
    assert counts["md_run"] == counts["md_disagreement"] == ns * nm * nt   # one new seed per (s, m, T)
    assert {j["seed"] for j in jobs if j["rule"] == "md_run"} == {str(nseed + 1)}
    # every (structure, member, T) now averages one more seed
    assert counts["conductivity"] == ns * nm * nt and counts["combine_models"] == ns * nt


@pytest.mark.slow
def test_rerun_member_hyperparameter_retrains_only_that_member_and_dependents(finished_demo):
    ns, nm, nt, nseed = _demo_sizes()

    def edit(cfg):
        cfg["train"]["ensemble"][0].setdefault("overrides", {})["max_epochs"] = 7

    counts, jobs = _rerun_plan(finished_demo, edit)
    changed = yaml.safe_load((REPO / "config/config.yaml").read_text())["train"]["ensemble"][0]["name"]
    # upstream of training: nothing
    assert not {"ingest_source", "dataset", "closepairs", "label_sevennet", "merge_closepairs"} & set(counts)
    assert counts["train_member"] == 1 and {j["member"] for j in jobs if j["rule"] == "train_member"} == {changed}
    # that member's checks, MD and per-member analysis only
    for rule, n in (("validate_stability", ns), ("validate_minimize", ns), ("md_run", ns * nt * nseed),
                    ("conductivity", ns * nt)):
        assert counts[rule] == n, (rule, counts)
        assert {j["member"] for j in jobs if j["rule"] == rule} == {changed}, rule
    # what genuinely depends on every member: the committee's disagreement, ensemble averages,
    # tables, screening with the ensemble calculator
    assert counts["md_disagreement"] == ns * nm * nt * nseed
    assert counts["combine_models"] == ns * nt and counts["arrhenius"] == ns
    assert counts["metrics_table"] == 1 and counts["validation_table"] == 1


@pytest.mark.slow
def test_rerun_disagreement_threshold_reevaluates_without_rerunning_md(finished_demo):
    ns, nm, nt, nseed = _demo_sizes()
    counts, _ = _rerun_plan(finished_demo, lambda c: c["md"]["disagreement"].update(threshold_eV_A=0.5))
    assert counts == {"md_disagreement": ns * nm * nt * nseed}
