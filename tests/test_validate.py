"""`ionflow validate`: relaxation measures (known answers), the acceptance table, and stability +
minimize + tables for the session's 2-member tiny ensemble through LAMMPS."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from ionflow.cli import main
from ionflow.md.validate import model_table, relaxation_measures


# ----------------------------------------------------------------------------------- no model
def test_relaxation_measures_known_answers():
    rng = np.random.default_rng(1)
    cell0 = np.array([[10.0, 0.0, 0.0], [0.5, 6.0, 0.0], [-0.2, 0.3, 5.0]])
    frac = rng.random((20, 3))
    pos0 = frac @ cell0
    # a pure cell strain moves no atom in fractional coordinates; dV is the determinant ratio
    strain = np.eye(3) + np.array([[0.02, 0.01, 0.0], [0.01, -0.01, 0.0], [0.0, 0.0, 0.03]])
    cell1 = cell0 @ strain
    m = relaxation_measures(pos0, cell0, frac @ cell1, cell1)
    assert m["max_displacement_A"] < 1e-12
    assert m["dV_percent"] == pytest.approx(100 * (np.linalg.det(strain) - 1), rel=1e-12)
    # a rigid translation (across the periodic boundary) is no displacement either
    m = relaxation_measures(pos0, cell0, ((frac + [0.7, 0.0, 0.2]) % 1.0) @ cell0, cell0)
    assert m["max_displacement_A"] < 1e-12 and m["dV_percent"] == 0.0
    # one atom moved by d: after removing the mean translation its displacement is d (1 - 1/N)
    d = np.array([0.3, -0.1, 0.2])
    pos1 = pos0.copy()
    pos1[4] += d
    m = relaxation_measures(pos0, cell0, pos1, cell0)
    assert m["max_displacement_A"] == pytest.approx(np.linalg.norm(d) * (1 - 1 / 20), rel=1e-12)
    assert m["max_displacement_atom"] == 4


def test_model_table_acceptance():
    stab = [{"member": "m0", "structure": "S1", "passed": True, "reason": ""},
            {"member": "m0", "structure": "S2", "passed": True, "reason": ""},
            {"member": "m1", "structure": "S1", "passed": False, "reason": "temperature 2000 K > 1800 K"},
            {"member": "m2", "structure": "S1", "passed": True, "reason": ""}]
    mini = [{"member": "m0", "structure": "S1", "passed": True, "dV_percent": -1.5, "max_displacement_A": 0.05,
             "dE_per_atom_eV": -0.002, "reason": None},
            {"member": "m0", "structure": "S2", "passed": True, "dV_percent": 2.5, "max_displacement_A": 0.02,
             "dE_per_atom_eV": -0.004, "reason": None},
            {"member": "m2", "structure": "S1", "passed": False, "dV_percent": 9.0, "max_displacement_A": 0.1,
             "dE_per_atom_eV": -0.02, "reason": "|dV| 9 % > 5 %"}]
    rows = {r["member"]: r for r in model_table(stab, mini, {"m0": {"F_MAE_eV_per_A": 0.1}}, False)}
    assert rows["m0"]["accepted"] and rows["m0"]["max_abs_dV_percent"] == 2.5
    assert rows["m0"]["min_dE_per_atom_eV"] == -0.004 and rows["m0"]["F_MAE_eV_per_A"] == 0.1
    assert not rows["m1"]["accepted"] and "S1: stability temperature" in rows["m1"]["reasons"]
    assert rows["m2"]["accepted"]  # stability only by default
    rows = {r["member"]: r for r in model_table(stab, mini, {}, True)}
    assert not rows["m2"]["accepted"] and "minimize |dV| 9 %" in rows["m2"]["reasons"]


# ----------------------------------------------------------------------------------- with the ensemble


def _read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_stability_minimize_and_tables_for_two_members(ensemble_json, s1, tmp_path):
    vdir = tmp_path / "validation"
    for m in ("m0", "m1"):
        assert main(["validate", "stability", "--ensemble", str(ensemble_json), "--member", m, "--structure-file",
                     str(s1), "--structure", "S1", "--out", str(vdir / "stability" / "S1" / m), "--steps", "200",
                     "--timestep-fs", "2", "--dump-every", "50", "--thermo-every", "50",
                     "--restart-every", "200"]) == 0
        assert main(["validate", "minimize", "--ensemble", str(ensemble_json), "--member", m, "--structure-file",
                     str(s1), "--structure", "S1", "--out", str(vdir / "minimize" / "S1" / f"{m}.json")]) == 0
    # a member that fails: the same MD with an absurd timestep (20 fs) blows up
    assert main(["validate", "stability", "--ensemble", str(ensemble_json), "--member", "m1", "--structure-file",
                 str(s1), "--structure", "S2", "--out", str(vdir / "stability" / "S2" / "m1"), "--steps", "200",
                 "--timestep-fs", "20", "--dump-every", "50", "--thermo-every", "50", "--restart-every", "200"]) == 0
    stab = sorted(vdir.glob("stability/*/*/status.json"))
    mini = sorted(vdir.glob("minimize/*/*.json"))
    assert main(["validate", "table", "--stability", *map(str, stab), "--minimize", *map(str, mini),
                 "--ensemble", str(ensemble_json), "--out-dir", str(vdir), "--plot", str(vdir / "v.png")]) == 0

    st = {(r["member"], r["structure"]): r for r in _read_csv(vdir / "stability.csv")}
    assert st[("m0", "S1")]["passed"] == "True" and st[("m1", "S1")]["passed"] == "True"
    assert st[("m1", "S2")]["passed"] == "False" and st[("m1", "S2")]["reason"]
    assert st[("m0", "S1")]["temperature_K"] == "900" and st[("m0", "S1")]["ensemble"] == "nvt"
    mn = {r["member"]: r for r in _read_csv(vdir / "minimize.csv")}
    assert set(mn) == {"m0", "m1"}
    for r in mn.values():
        assert r["status"] == "ok" and float(r["dE_per_atom_eV"]) < 0  # the minimizer lowers the energy
        # the model's forces vanish at its minimum (float32 models stop on the line search)
        assert float(r["fmax_eV_A"]) < 0.1 and abs(float(r["pressure_bar"])) < abs(float(r["pressure0_bar"]))
        # the start carries the test frame's labels (SevenNet-0): the model's error there is recorded
        assert r["E0_minus_ref_per_atom_eV"] != ""
    models = {r["member"]: r for r in _read_csv(vdir / "models.csv")}
    assert models["m0"]["accepted"] == "True" and models["m1"]["accepted"] == "False"
    assert "S2: stability" in models["m1"]["reasons"] and models["m0"]["F_MAE_eV_per_A"] != ""
    verdict = json.loads((vdir / "models.json").read_text())
    assert verdict["accepted"] == ["m0"] and "m1" in verdict["rejected"] and "provenance" in verdict
    assert (vdir / "models.md").exists() and (vdir / "v.png").stat().st_size > 0


def test_minimize_known_answers(ensemble_json, s1, tmp_path):
    """A model that knows the ground state barely moves: its own relaxed structure stays put, and the
    same structure expanded uniformly by 2 % in volume comes back to the same volume with no atom
    displacement (fractional coordinates). Volume tolerance: residual stress over the bulk modulus
    (estimated from the expanded start) plus the float32 energy-noise floor of the line search,
    dV/V = sqrt(2 dE / (B V)) with dE = eps |E|; displacement tolerance from the residual forces."""
    from ase.io import read, write

    from ionflow.md.models import load_ensemble

    def minimize(path, out):
        assert main(["validate", "minimize", "--ensemble", str(ensemble_json), "--member", "m0",
                     "--structure-file", str(path), "--structure", "S1", "--out", str(out)]) == 0
        return json.loads(out.read_text())

    first = minimize(s1, tmp_path / "first.json")
    assert first["box"] == "tri"
    relaxed = read(tmp_path / "first.extxyz")
    again = minimize(tmp_path / "first.extxyz", tmp_path / "again.json")
    expanded = relaxed.copy()
    expanded.set_cell(relaxed.cell * 1.02 ** (1 / 3), scale_atoms=True)
    write(tmp_path / "expanded.extxyz", expanded)
    back = minimize(tmp_path / "expanded.extxyz", tmp_path / "back.json")

    bulk_bar = -back["pressure0_bar"] / math.log(1.02)   # B = -dP / dlnV (secant: an underestimate)
    assert bulk_bar > 0
    ev_per_A3 = 1.602176634e6                            # bar per eV/A^3
    manifest = json.loads(load_ensemble(ensemble_json)[0].manifest.read_text())
    eps = np.finfo(manifest.get("model_dtype", "float32")).eps
    noise = math.sqrt(2 * eps * abs(first["E_eV"]) / (bulk_bar / ev_per_A3 * first["volume_A3"]))
    residual = sum(abs(x) for r in (first, again, back) for x in r["stress_bar"][:3]) / bulk_bar
    tol_v = 100 * (residual + noise)                     # percent
    k_min = 1.0                                          # eV/A^2: softer than any bond in an oxide
    tol_x = max(first["fmax_eV_A"], again["fmax_eV_A"], back["fmax_eV_A"]) / k_min

    assert tol_v < 0.1                                   # the test can tell 2 % from 0
    assert abs(again["dV_percent"]) < tol_v
    assert again["max_displacement_A"] < tol_x
    assert abs(again["dE_per_atom_eV"]) < 1e-4
    assert back["dV_percent"] == pytest.approx(100 * (1 / 1.02 - 1), abs=tol_v)
    assert back["max_displacement_A"] < tol_x
    assert back["volume_A3"] == pytest.approx(first["volume_A3"], rel=tol_v / 100)
    assert max(abs(x) for x in first["stress_bar"]) < 100  # box/relax tri relaxes shear stress too
    assert first["max_displacement_A"] > 10 * tol_x      # a thermal frame is far from the minimum
