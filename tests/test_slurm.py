"""The SLURM path for real: a local single-node SLURM cluster (Debian slurm-wlm + munge, fake GPUs),
the reduced demo (config/smoke.yaml) run through `snakemake --profile` with
snakemake-executor-plugin-slurm, every job via sbatch, and the same numbers as a local run."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import IN_CI, require_tool
from wf_util import job_counts

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SMOKE = REPO / "config" / "smoke.yaml"
SLURM_DIR = os.environ.get("LOCAL_SLURM_DIR", "/tmp/ionflow_slurm")
# MinJobAge 3600 s: finished jobs stay visible to `scontrol show job` until the test inspects them
# (the run takes minutes; the default 300 s would forget the first jobs)
ENV = dict(os.environ, LOCAL_SLURM_DIR=SLURM_DIR, LOCAL_SLURM_FAKE_GPUS="2",
           LOCAL_SLURM_EXTRA_PARTITIONS="cpu gpu", LOCAL_SLURM_MIN_JOB_AGE="3600")
#: wall-clock limit of one smoke run (SIGINT: Snakemake cancels its SLURM jobs and exits)
RUN_TIMEOUT_S = 1500

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


# ---------------------------------------------------------------------------------------------
# the reduced demo, locally and through SLURM

def _smoke_workdir(root: Path) -> Path:
    """An empty working directory for config/smoke.yaml (its data/demo paths are relative)."""
    root.mkdir()
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    return root


def _smoke_cmd(workdir: Path, *args: str) -> tuple[list[str], dict]:
    """`snakemake` on the repository Snakefile with config/smoke.yaml in ``workdir`` (under a timeout).

    Each run gets its own TorchInductor cache (sbatch --export=ALL passes it on to the jobs): the two
    runs compile bit-identical models at the same time, and nequip-compile of one then loaded a
    half-written package of the other from the shared cache (/tmp/torchinductor_$USER):
    "AOTIModelPackageLoader: parse error ... attempting to parse an empty input"."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="1",
               TORCHINDUCTOR_CACHE_DIR=str(workdir.with_suffix(".torchinductor")))
    cmd = ["timeout", "--signal=INT", "--kill-after=60", str(RUN_TIMEOUT_S), str(SNAKEMAKE),
           "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(SMOKE),
           *args]
    return cmd, env


def _smoke(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd, env = _smoke_cmd(workdir, *args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


class _Background:
    """A smoke run in the background, its output in a file; ``wait()`` gives a CompletedProcess."""

    def __init__(self, workdir: Path, *args: str):
        cmd, env = _smoke_cmd(workdir, *args)
        self.args, self.out = cmd, workdir.with_suffix(".out")
        with open(self.out, "w") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, text=True)

    def wait(self, timeout: float | None = None) -> subprocess.CompletedProcess:
        rc = self.proc.wait(timeout)
        return subprocess.CompletedProcess(self.args, rc, self.out.read_text(), "")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # `timeout` passes it on; Snakemake stops its jobs
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _failure(res: subprocess.CompletedProcess, workdir: Path) -> str:
    logs = "\n".join(f"--- {p.relative_to(workdir)}\n{p.read_text(errors='replace')[-1500:]}"
                     for p in sorted((workdir / "logs").rglob("*.log"))[-8:]) if (workdir / "logs").is_dir() else ""
    return f"rc={res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}\n{logs}"


def _results_dir(workdir: Path) -> Path:
    return workdir / yaml.safe_load(SMOKE.read_text())["results_dir"]


#: keys whose values describe how a result was produced, not what it is: provenance (versions,
#: timestamps, hostnames, SLURM job ids, input hashes), wall-clock timings, and the file hashes of
#: model artifacts (nequip checkpoints and packages embed the absolute run directory and a random
#: serialization id, so they differ between any two runs although the weights are bit-identical)
RUN_KEYS = {"provenance", "wall_s", "train_wall_s", "ns_per_day", "callback_s", "calculator_s",
            "sha256", "model_sha256"}


def _numbers(obj, where: str = ""):
    """Flatten a JSON document to {path: leaf}, without RUN_KEYS."""
    if isinstance(obj, dict):
        out = {}
        for key, val in obj.items():
            if key not in RUN_KEYS:
                out.update(_numbers(val, f"{where}/{key}"))
        return out
    if isinstance(obj, list):
        out = {f"{where}/#": len(obj)}
        for i, val in enumerate(obj):
            out.update(_numbers(val, f"{where}/{i}"))
        return out
    return {where: obj}


def _csv_cells(path: Path) -> dict:
    rows = [r for r in csv.reader(line for line in path.read_text().splitlines() if not line.startswith("#"))]
    out = {}
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            try:
                out[f"/{i}/{rows[0][j] if j < len(rows[0]) else j}"] = float(cell)
            except ValueError:
                out[f"/{i}/{rows[0][j] if j < len(rows[0]) else j}"] = cell
    return out


def _result_values(results: Path) -> dict[str, dict]:
    """{relative file: flattened values} of every JSON and CSV result (figures and models are binary)."""
    out = {}
    for path in sorted(results.rglob("*")):
        rel = str(path.relative_to(results))
        if path.suffix == ".json":
            out[rel] = _numbers(json.loads(path.read_text()))
        elif path.suffix == ".csv" and "/run/" not in f"/{rel}":  # nequip's own per-epoch CSV has timings
            out[rel] = _csv_cells(path)
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and (math.isnan(a) or math.isnan(b)):
        return math.isnan(a) and math.isnan(b)
    return a == b


def _differences(local: dict[str, dict], other: dict[str, dict]) -> list[str]:
    diffs = []
    for rel in sorted(set(local) | set(other)):
        if rel not in local or rel not in other:
            diffs.append(f"{rel}: only in the {'SLURM' if rel in other else 'local'} run")
            continue
        a, b = local[rel], other[rel]
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b or not _same(a[key], b[key]):
                diffs.append(f"{rel}{key}: local {a.get(key, '<missing>')!r} != SLURM {b.get(key, '<missing>')!r}")
    return diffs


def _planned_jobs(workdir: Path, profile: Path) -> Counter:
    """{rule: jobs} of the SLURM run, from its own dry run (without rule all)."""
    res = _smoke(workdir, "-n", "--profile", str(profile))
    assert res.returncode == 0, _failure(res, workdir)
    return Counter(job_counts(res.stdout + res.stderr))


def _provenance_job_ids(results: Path) -> set:
    """SLURM job ids recorded in the provenance of the result JSONs (None: not run under SLURM)."""
    docs = (json.loads(p.read_text()) for p in results.rglob("*.json"))
    return {doc["provenance"].get("slurm_job_id") for doc in docs if isinstance(doc, dict) and "provenance" in doc}


def _scontrol_jobs() -> dict[str, dict[str, str]]:
    """{job id: fields} of every job slurmctld still remembers (MinJobAge), with allocated GRES."""
    res = subprocess.run(["scontrol", "-d", "-o", "show", "job"], capture_output=True, text=True, env=ENV)
    jobs = {}
    for line in res.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def test_smoke_config_plans_every_stage_of_the_demo(tmp_path):
    """config/smoke.yaml is valid and its dry run plans every rule that the demo's plans."""
    from ionflow.config import load_config

    assert load_config(SMOKE)["results_dir"] != load_config(REPO / "config/config.yaml")["results_dir"]
    plans = {}
    for name, config in (("smoke", SMOKE), ("demo", REPO / "config/config.yaml")):
        workdir = _smoke_workdir(tmp_path / name)
        cmd, env = _smoke_cmd(workdir, "-n", "--cores", "2")
        cmd[cmd.index(str(SMOKE))] = str(config)
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert res.returncode == 0, _failure(res, workdir)
        plans[name] = job_counts(res.stdout + res.stderr)
    assert set(plans["demo"]) <= set(plans["smoke"]), set(plans["demo"]) - set(plans["smoke"])
    assert sum(plans["smoke"].values()) < sum(plans["demo"].values())


@pytest.mark.slow
def test_smoke_demo_through_slurm_matches_local_run(cluster, tmp_path):
    """config/smoke.yaml (every stage of the demo) run twice from scratch, locally with `--cores 2`
    and through `snakemake --profile <the shipped profile, shrunk>`: every job of the SLURM run went
    through sbatch, the GPU rules got a (fake) GPU from the scheduler, and every number of the
    results is the same as in the local run."""
    profile = cluster_profile(tmp_path)
    gpu_rules = {rule for rule, res in yaml.safe_load((profile / "config.yaml").read_text())["set-resources"].items()
                 if res.get("gpu")}
    local, slurm = _smoke_workdir(tmp_path / "local"), _smoke_workdir(tmp_path / "slurm")
    planned = _planned_jobs(slurm, profile)
    assert {"train_member", "md_run", "pes_scan", "figures"} <= set(planned), planned

    # the local reference run goes in the background: the SLURM run mostly waits (sbatch, Snakemake
    # starting twice per job, the plugin's status polling), so together they take little longer
    # than the SLURM run alone (both: ~5 min locally, ~7 min through SLURM, one after the other)
    t0 = time.monotonic()
    background = _Background(local, "--cores", "2")
    try:
        res = _smoke(slurm, "--profile", str(profile), "--verbose")
        t_slurm = time.monotonic() - t0
        (tmp_path / "slurm.out").write_text(res.stdout + res.stderr)
        assert res.returncode == 0, _failure(res, slurm)
        local_res = background.wait(RUN_TIMEOUT_S + 120)
    finally:
        background.stop()  # only if still running (the SLURM run failed)
    print(f"smoke demo, local run in parallel: SLURM run {t_slurm:.0f} s, both {time.monotonic() - t0:.0f} s")
    assert local_res.returncode == 0, _failure(local_res, local)
    out = res.stdout + res.stderr
    # jobs of local rules (rule all, `localrules:`) run in the main process ("localrule X:"), no others
    for rule in set(re.findall(r"^localrule (\w+):", out, re.M)):
        planned.pop(rule, None)

    # every job went through sbatch: one SLURM log per planned job, named by its SLURM job id, ...
    slurm_logs = sorted((slurm / ".snakemake/slurm_logs").rglob("*.log"))
    submitted = Counter(p.relative_to(slurm / ".snakemake/slurm_logs").parts[0].removeprefix("rule_")
                        for p in slurm_logs)
    assert submitted == planned
    job_ids = {p.stem for p in slurm_logs}
    assert all(i.isdigit() for i in job_ids) and len(job_ids) == len(slurm_logs)
    assert set(re.findall(r"has been submitted with SLURM jobid (\d+)", out)) == job_ids
    # ... the rule logs say which SLURM job wrote them, and every result's provenance names one
    rule_log_ids = set(re.findall(r"running in SLURM job (\d+)", "".join(
        p.read_text(errors="replace") for p in (slurm / "logs").rglob("*.log"))))
    assert rule_log_ids and rule_log_ids <= job_ids
    assert "SLURM job" in (slurm / "logs/dataset/dataset.log").read_text()
    prov_ids = _provenance_job_ids(_results_dir(slurm))
    assert prov_ids and prov_ids <= job_ids, prov_ids - job_ids
    assert _provenance_job_ids(_results_dir(local)) == {None}

    # the GPU rules asked for a GPU (sbatch call) and the scheduler gave them one on the gpu partition
    for rule in gpu_rules & set(planned):
        calls = [c for c in re.findall(r"sbatch call: (.*)", out)
                 if re.search(rf"--comment '?rule_{rule}(_wildcards_\S*)?'? ", c)]
        assert len(calls) == planned[rule] and all("--gpus=1" in c and "-p gpu" in c for c in calls), rule
    jobs = _scontrol_jobs()
    assert job_ids <= set(jobs), "slurmctld forgot jobs (MinJobAge)"
    for job_id in job_ids:
        job = jobs[job_id]
        rule = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        assert job["JobState"] == "COMPLETED", (rule, job)
        if rule in gpu_rules:  # JOB_GRES: what the scheduler allocated (gpu:<type>:<count>)
            assert job["Partition"] == "gpu" and job["JOB_GRES"] == "gpu:fake:1", (rule, job)
        else:
            assert job["Partition"] == "cpu" and "gpu" not in job.get("JOB_GRES", "(null)"), (rule, job)

    # the same results: every number of every JSON/CSV result, bit for bit (provenance and timings aside)
    values_local, values_slurm = _result_values(_results_dir(local)), _result_values(_results_dir(slurm))
    for must in ("models/m0/metrics.json", "arrhenius/S1.json", "screening/ranking.csv"):
        assert must in values_local, sorted(values_local)
    diffs = _differences(values_local, values_slurm)
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs[:40])
