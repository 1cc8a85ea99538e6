"""Teacher-student check (issue 8): SevenNet-0 (teacher) MD through `ionflow md --calculator`, the
student/teacher conductivity ratio with log-space errors, and the `teacher_student` workflow target."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, require_module
from ionflow.analysis import teacher_student as ts
from ionflow.cli import main
from wf_util import job_counts

SCHEMA = "ionflow.conductivity/1"


def _result(path: Path, *, model, tracer, full, T=1000.0, structure="S1", **extra) -> Path:
    """A minimal conductivity/combine result: sigma as (mean, sem) pairs."""
    res = {"schema": SCHEMA, "structure": structure, "model": model, "temperature_K": T,
           "sigma_tracer_S_cm": {"mean": tracer[0], "sem": tracer[1]},
           "sigma_full_S_cm": {"mean": full[0], "sem": full[1]},
           "converged": True, "trajectories": [{}], **extra}
    path.write_text(json.dumps(res))
    return path


@pytest.fixture
def pair(tmp_path):
    # student/teacher: tracer 2e-3/1.25e-3 = 1.6 (rel. errors 10 % and 20 %);
    # full 1e-3/4e-3 = 0.25 (rel. errors 30 % and 40 %)
    teacher = _result(tmp_path / "teacher.json", model="sevennet:7net-0", tracer=(1.25e-3, 2.5e-4),
                      full=(4e-3, 1.6e-3))
    student = _result(tmp_path / "student.json", model="ensemble", tracer=(2e-3, 2e-4), full=(1e-3, 3e-4),
                      models=[{}, {}])
    return teacher, student


def test_ratio_and_log_space_error_known_answer(pair, tmp_path):
    teacher, student = pair
    out, png = tmp_path / "out" / "S1_1000K.json", tmp_path / "out" / "S1_1000K.png"
    assert main(["teacher-student", "--teacher", str(teacher), "--student", str(student), "-o", str(out),
                 "--plot", str(png)]) == 0
    res = json.loads(out.read_text())
    assert res["status"] == "ok" and res["structure"] == "S1" and res["temperature_K"] == 1000.0
    assert res["teacher"]["model"] == "sevennet:7net-0" and res["student"]["n_models"] == 2
    tr, full = res["quantities"]["sigma_tracer_S_cm"], res["quantities"]["sigma_full_S_cm"]
    # tracer: r = 1.6, sem(ln r) = sqrt(0.1^2 + 0.2^2)
    slr = math.sqrt(0.1 ** 2 + 0.2 ** 2)
    assert tr["ratio"] == pytest.approx(1.6, rel=1e-12)
    assert tr["log_ratio"] == pytest.approx(math.log(1.6), rel=1e-12)
    assert tr["log_ratio_sem"] == pytest.approx(slr, rel=1e-12)
    assert tr["ratio_sem"] == pytest.approx(1.6 * slr, rel=1e-12)
    assert tr["ratio_1sigma"] == pytest.approx([1.6 * math.exp(-slr), 1.6 * math.exp(slr)], rel=1e-12)
    assert tr["within_factor"] is True
    assert tr["z_beyond_factor"] == pytest.approx((math.log(1.6) - math.log(2)) / slr, rel=1e-12)
    assert tr["conclusive"] is False  # |z| = 0.97 < 2
    assert tr["teacher"] == {"mean": 1.25e-3, "sem": 2.5e-4}
    # full: r = 0.25 (a factor 4 off), sem(ln r) = 0.5 -> outside by (ln 4 - ln 2) / 0.5 = 1.39 sigma
    assert full["ratio"] == pytest.approx(0.25, rel=1e-12)
    assert full["log_ratio_sem"] == pytest.approx(0.5, rel=1e-12)
    assert full["within_factor"] is False
    assert full["z_beyond_factor"] == pytest.approx(math.log(2) / 0.5, rel=1e-12)
    assert res["all_within_factor"] is False
    # a looser goal flips the full verdict
    out3 = tmp_path / "f5.json"
    assert main(["teacher-student", "--teacher", str(teacher), "--student", str(student), "-o", str(out3),
                 "--within-factor", "5"]) == 0
    assert json.loads(out3.read_text())["all_within_factor"] is True
    # provenance names both inputs; the figure exists
    assert set(res["provenance"]["inputs"]) == {str(teacher), str(student)}
    assert res["provenance"]["stage"] == "teacher-student"
    assert png.stat().st_size > 1000


def test_ratio_edge_cases():
    # no standard errors: ratio without uncertainty, verdict from the point estimate
    r = ts.log_ratio({"mean": 3.0, "sem": None}, {"mean": 1.0, "sem": 0.1})
    assert r["ratio"] == 3.0 and r["log_ratio_sem"] is None and r["ratio_1sigma"] is None
    v = ts.verdict(r, 2.0)
    assert v["within_factor"] is False and v["z_beyond_factor"] is None and v["conclusive"] is False
    # a non-positive mean: undefined in log space, no verdict
    r = ts.log_ratio({"mean": -1e-4, "sem": 1e-4}, {"mean": 1e-3, "sem": 1e-4})
    assert r["log_ratio"] is None and "not positive" in r["note"]
    assert ts.verdict(r, 2.0)["within_factor"] is None
    # exactly a factor 2 counts as within
    r = ts.log_ratio({"mean": 2.0, "sem": 0.2}, {"mean": 1.0, "sem": 0.1})
    assert ts.verdict(r, 2.0)["within_factor"] is True


def test_failed_teacher_gives_failed_result(tmp_path, pair):
    _, student = pair
    teacher = tmp_path / "failed.json"
    teacher.write_text(json.dumps({"schema": SCHEMA, "status": "failed", "reason": "all runs blew up",
                                   "temperature_K": 1000.0, "structure": "S1", "model": "sevennet:7net-0",
                                   "sigma_tracer_S_cm": {"mean": None, "sem": None},
                                   "sigma_full_S_cm": {"mean": None, "sem": None}}))
    out = tmp_path / "out.json"
    assert main(["teacher-student", "--teacher", str(teacher), "--student", str(student), "-o", str(out),
                 "--plot", str(tmp_path / "out.png")]) == 0
    res = json.loads(out.read_text())
    assert res["status"] == "failed" and "all runs blew up" in res["reason"]
    assert res["all_within_factor"] is None
    assert all(q["ratio"] is None for q in res["quantities"].values())


@pytest.mark.parametrize("case, field", [
    ("missing_file", None),
    ("no_sigma_full", "sigma_full_S_cm"),
    ("no_tracer_mean", "sigma_tracer_S_cm.mean"),
    ("sem_not_number", "sigma_full_S_cm.sem"),
    ("bad_json", None),
    ("wrong_schema", "schema"),
    ("other_temperature", "temperature_K"),
    ("other_structure", "structure"),
])
def test_bad_input_one_line_error_nothing_written(tmp_path, pair, capsys, case, field):
    teacher, student = pair
    bad = json.loads(teacher.read_text())
    if case == "missing_file":
        teacher = tmp_path / "nope.json"
    elif case == "bad_json":
        teacher.write_text("{not json")
    else:
        if case == "no_sigma_full":
            del bad["sigma_full_S_cm"]
        elif case == "no_tracer_mean":
            del bad["sigma_tracer_S_cm"]["mean"]
        elif case == "sem_not_number":
            bad["sigma_full_S_cm"]["sem"] = "large"
        elif case == "wrong_schema":
            bad["schema"] = "something/else"
        elif case == "other_temperature":
            bad["temperature_K"] = 850.0
        elif case == "other_structure":
            bad["structure"] = "S2"
        teacher.write_text(json.dumps(bad))
    out, png = tmp_path / "o" / "r.json", tmp_path / "o" / "r.png"
    rc = main(["teacher-student", "--teacher", str(teacher), "--student", str(student), "-o", str(out),
               "--plot", str(png)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("ionflow teacher-student: error: ")
    assert str(teacher) in err
    if field:
        assert f"[{field}]" in err
    assert not out.exists() and not png.exists()
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_md_cli_rejects_conflicting_model_sources(tmp_path, capsys):
    s = str(REPO / "data/demo/S1_ground_state.extxyz")
    base = ["md", "--structure-file", s, "--structure", "S1", "--temperature", "1000", "--seed", "1",
            "--out", str(tmp_path / "run")]
    for extra, words in ((["--calculator", "sevennet", "--member", "m0"], "--calculator replaces --member"),
                         (["--calculator", "mace"], "unknown calculator"),
                         (["--calculator", "sevennet", "--device", "tpu"], "--device"),
                         (["--calculator", "sevennet", "--engine", "lammps-command"], "python engine only")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "run").exists()


def test_config_section_defaults_and_rejections(tmp_path):
    from ionflow.config import load_config, validate_config
    from ionflow.errors import InputError

    demo = load_config(REPO / "config" / "config.yaml")["teacher_student"]
    assert demo["calculator"] == "sevennet:7net-0" and demo["device"] == "cpu"
    assert demo["structure"] is None and demo["temperature"] is None and demo["seeds"] == [1]
    # schema defaults (a config without the section) match the CLI's
    cfg = {"structures": {"S1": {"sources": [{"path": "x.out", "temperature": 300}]}}}
    validate_config(cfg, "cfg.yaml")
    d = cfg["teacher_student"]
    assert d["within_factor"] == ts.DEFAULT_WITHIN_FACTOR and d["calculator"] == "sevennet:7net-0"
    assert d["steps"] == 2500 and d["equilibration_steps"] == 250 and d["resources"]["runtime_min"] >= 120
    for bad, key in (({"calculator": "mace"}, "calculator"), ({"within_factor": 1.0}, "within_factor"),
                     ({"device": "tpu"}, "device"), ({"stepz": 10}, "stepz")):
        cfg = {"structures": {"S1": {"sources": [{"path": "x.out", "temperature": 300}]}}, "teacher_student": bad}
        with pytest.raises(InputError, match=key):
            validate_config(cfg, "cfg.yaml")


@pytest.mark.slow
def test_sevennet_md_run_records_the_teacher(tmp_path):
    """10 equilibration + 20 production steps of SevenNet-0 on the 132-atom S1 ground state (~1 min)."""
    require_module("sevenn", "sevenn")
    require_module("lammps", "lammps[mpi]")
    out = tmp_path / "seed1"
    env = dict(os.environ, OMP_NUM_THREADS="1", LD_LIBRARY_PATH=f"{Path(sys.prefix) / 'lib'}")
    cmd = [sys.executable, "-m", "ionflow.cli", "md", "--calculator", "sevennet",
           "--structure-file", str(REPO / "data/demo/S1_ground_state.extxyz"), "--structure", "S1",
           "--temperature", "1000", "--seed", "1", "--out", str(out), "--steps", "20",
           "--equilibration-steps", "10", "--dump-every", "2", "--thermo-every", "5", "--restart-every", "10"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    st = json.loads((out / "status.json").read_text())
    assert st["status"] == "ok", st.get("reason")
    assert st["model"] == "sevennet:7net-0" and st["member"] is None
    assert st["calculator"]["package"] == "sevenn" and st["calculator"]["device"] == "cpu"
    assert st["provenance"]["model"]["role"] == "teacher"
    assert "sevennet:7net-0" in st["provenance"]["engine"]
    assert sorted(st["species"]) == ["Li", "O", "P", "Si"]
    assert st["production_steps_completed"] == 20 and st["frames"] == 11 and st["natoms"] == 132
    assert st["model_calls"] >= 30
    # the dump is a normal trajectory: the conductivity stage reads it
    cond = tmp_path / "cond.json"
    assert main(["conductivity", str(out / "dump.lammpstrj"), "--temperature", "1000", "--blocks", "1",
                 "--model", "sevennet:7net-0", "--structure", "S1", "-o", str(cond)]) == 0
    c = json.loads(cond.read_text())
    assert c["model"] == "sevennet:7net-0" and c["trajectories"][0]["md_status"]["status"] == "ok"


def test_snakemake_dry_run_plans_the_teacher_student_target(tmp_path):
    """`snakemake -n teacher_student` on the demo config: 1 structure x highest T x 1 seed of teacher MD,
    its conductivity, the ensemble chain at that T only, and the comparison; rule all does not include it."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    snakemake = Path(sys.executable).with_name("snakemake")

    def dry(*args):
        res = subprocess.run([str(snakemake), *args, "-n", "--cores", "2", "--config",
                              f"results_dir={tmp_path}/results"], cwd=REPO, capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr[-4000:]
        return res.stdout + res.stderr

    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    out = dry("teacher_student")
    counts = job_counts(out)
    seeds, members = demo["md"]["seeds"], demo["train"]["ensemble"]
    assert counts["teacher_md"] == len(demo.get("teacher_student", {}).get("seeds", [1]))
    assert counts["teacher_conductivity"] == 1 and counts["teacher_student_compare"] == 1
    assert counts["teacher_student"] == 1
    # the student side: every member at the highest T of the first structure only
    assert counts["md_run"] == len(members) * len(seeds)
    assert counts["conductivity"] == len(members) and counts["combine_models"] == 1
    assert f"{tmp_path}/results/teacher_student/S1_{max(demo['md']['temperatures']):g}K.json" in out
    # the default target leaves it out (outside the demo's 20-minute budget)
    assert "teacher_md" not in job_counts(dry())
