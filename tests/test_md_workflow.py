"""md/validate Snakemake rules with the tiny ensemble: validation checkpoint -> production MD of the
accepted members only; a killed MD job resumes under Snakemake (which deletes the job's declared
outputs before rerunning it) and ends with the uninterrupted trajectory."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, require_module

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _workdir(root: Path, ensemble_json: Path, s1: Path, **sections) -> Path:
    root.mkdir(parents=True)
    (root / "results").mkdir()
    (root / "results" / "models").symlink_to(ensemble_json.parent.resolve(), target_is_directory=True)
    shutil.copy(s1, root / "S1_gs.extxyz")
    cfg = {
        "structures": {"S1": {"ground_state": "S1_gs.extxyz", "sources": [{"path": "unused.extxyz"}]}},
        "train": {"ensemble": [{"name": "m0", "preset": "tiny", "seed": 1},
                               {"name": "m1", "preset": "tiny", "seed": 2}]},
        "md": {"temperatures": [600], "seeds": [3], "timestep_fs": 1.0, "steps": 250, "equilibration_steps": 20,
               "dump_every": 10, "thermo_every": 10, "restart_every": 50,
               "disagreement": {"every": 50}},
        "validate": {"stability": {"steps": 100, "dump_every": 50}},
    }
    for key, value in sections.items():
        cfg[key].update(value)
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    (root / "Snakefile").write_text("".join(f'include: "{REPO}/workflow/rules/{r}.smk"\n'
                                            for r in ("common", "md", "validate")))
    return root


def _snakemake(root: Path, *args, background=False, cores=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(SNAKEMAKE), "-s", str(root / "Snakefile"), "-d", str(root), "--configfile",
           str(root / "config.yaml"), "--cores", str(cores), *args]
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def ensemble_json(ensemble_json) -> Path:
    """The shared ensemble (conftest), for tests that also drive Snakemake."""
    require_module("snakemake")
    return ensemble_json


def test_rule_commands_parse(ensemble_json, s1, tmp_path):
    """Every md/validate shell command of a dry run is valid `ionflow` command-line syntax."""
    from ionflow.cli import build_parser

    root = _workdir(tmp_path / "wf", ensemble_json, s1,
                    md={"engine": "lammps-command", "lammps_command": "srun lmp -k on g 1 -sf kk",
                        "seeds": 2, "temperatures": [600, 900]})
    res = _snakemake(root, "-n", "-p", "md_all", "results/validation/models.csv")
    out = res.stdout + res.stderr
    cmds = [ln.split("Shell command:", 1)[1].strip() for ln in out.splitlines() if "Shell command: ionflow" in ln]
    assert sum(c.startswith("ionflow md ") for c in cmds) == 2 * 2 * 2  # members x T x seeds 0,1
    assert sum(c.startswith("ionflow validate ") for c in cmds) == 2 + 2 + 1
    assert sum(c.startswith("ionflow md-disagreement ") for c in cmds) == 2 * 2 * 2
    parser = build_parser()
    for c in cmds:
        argv = shlex.split(c.split(" > ")[0])[1:]
        args = parser.parse_args(argv)
        if args.stage == "md-disagreement":
            assert len(args.manifests) == 2 and args.every == 50 and args.driver in ("m0", "m1")
        elif args.stage == "md":
            assert args.manifest is not None and args.ensemble is None   # its own member only
            assert args.engine == "lammps-command" and args.lammps_command == "srun lmp -k on g 1 -sf kk"
            assert args.seed in (0, 1) and args.temperature in (600.0, 900.0) and args.restart_every == 50
        elif args.check == "stability":
            assert args.temperature == 900 and args.steps == 100 and args.equilibration_steps == 0


def _pids(needle: str, cwd: Path) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if needle in cmd and "snakemake" not in cmd and os.readlink(p / "cwd") == str(cwd):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


@pytest.mark.slow
def test_validation_checkpoint_then_md_and_kill_resume_under_snakemake(ensemble_json, s1, tmp_path):
    """exclude_failed_models: the validation table (a checkpoint) decides which members run production
    MD. The first MD job is killed mid-run (SIGKILL); Snakemake is run again: it deletes the job's
    declared outputs and reruns it, and the run resumes from its last restart file and ends with
    the files of an uninterrupted run of the same command."""
    from ionflow.cli import main

    a = _workdir(tmp_path / "a", ensemble_json, s1, validate={"exclude_failed_models": True})
    sm = _snakemake(a, "md_all", background=True, cores=2)
    deadline, killed = time.time() + 600, None
    while time.time() < deadline and sm.poll() is None and killed is None:
        for partial in (a / "results/md/S1").glob("*/600K/seed3/dump.partial.lammpstrj"):
            if b"ITEM: TIMESTEP\n120\n" in partial.read_bytes():
                killed = partial.parent
                break
        time.sleep(0.02)
    assert killed is not None and sm.poll() is None, "no MD job could be killed mid-run"
    pids = _pids(f"--out {killed.relative_to(a)}", a)
    assert pids
    for p in pids:
        os.kill(p, signal.SIGKILL)
    sm.communicate(timeout=300)
    assert sm.returncode != 0 and not (killed / "status.json").exists()
    _snakemake(a, "md_all", cores=2)

    verdict = json.loads((a / "results/validation/models.json").read_text())
    runs = sorted(p.parent.parent.parent.name for p in (a / "results/md/S1").glob("*/600K/seed3/status.json"))
    assert runs == sorted(verdict["accepted"]) and runs
    for name in ("stability.csv", "minimize.csv", "models.csv", "models.md", "validation.png"):
        assert (a / "results/validation" / name).exists()
    member = killed.parent.parent.name
    st = json.loads((killed / "status.json").read_text())
    assert st["status"] == "ok" and st["frames"] == 26
    assert st["resumed_from"]["phase"] == "production" and st["resumed_from"]["step"] >= 100
    assert (a / f"logs/md_run/S1/{member}/600K/seed3.log").exists()
    assert list((a / "benchmarks/snakemake/md_run").rglob("*.tsv"))

    # the same command, uninterrupted
    ref = tmp_path / "ref"
    assert main(["md", "--manifest", str(a / f"results/models/{member}/manifest.json"),
                 "--structure-file", str(a / "S1_gs.extxyz"), "--structure", "S1", "--temperature", "600",
                 "--seed", "3", "--out", str(ref), "--timestep-fs", "1.0", "--steps", "250",
                 "--equilibration-steps", "20", "--dump-every", "10", "--thermo-every", "10",
                 "--restart-every", "50"]) == 0
    for name in ("dump.lammpstrj", "thermo.dat", "thermo_equilibration.dat"):
        assert (killed / name).read_bytes() == (ref / name).read_bytes(), name
    # the committee's post-hoc evaluation of the resumed run: every 50 steps of the 250
    dis = json.loads((killed / "disagreement.json").read_text())
    assert dis["frames_evaluated"] == 6 and dis["driver"] == member
