"""ingest: real pw.x MD output, normalization, split, summary, and one clear error per bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from qe_util import pw_input, pw_md, run_pw  # noqa: F401  (pw_md is a fixture)
from ionflow.cli import main as cli
from ionflow.errors import InputError
from ionflow.ingest import ingest, read_source, split_frames

def test_reads_every_ionic_step_of_real_pwx_md(pw_md):
    frames, notes = read_source(pw_md)
    assert len(frames) == 6 and notes == []
    text = pw_md.read_text()
    # energies: the '!' lines in Ry -> eV
    ry = [float(line.split("=")[1].split()[0]) for line in text.splitlines() if line.startswith("!")]
    e = [f.get_potential_energy() for f in frames]
    # rtol 1e-6: ASE's Ry constant (CODATA 2014) differs from CODATA 2018 by 9e-8
    np.testing.assert_allclose(e, np.array(ry) * 13.605693122994, rtol=1e-6)
    # stress in ASE convention: pw.x prints P (kbar); ASE pressure = -trace(stress)/3
    p_kbar = [float(line.split("P=")[1]) for line in text.splitlines() if "P=" in line]
    p_ase = [-np.trace(f.get_stress(voigt=False)) / 3 / 1e-1 * 160.21766208 for f in frames]  # eV/Å3 -> kbar
    np.testing.assert_allclose(p_ase[: len(p_kbar)], p_kbar, atol=0.05)


def test_cli_ingest_writes_tagged_split_dataset_and_summary(pw_md, tmp_path):
    out = tmp_path / "ds.extxyz"
    rc = cli(["ingest", str(pw_md), "-o", str(out), "--structure", "Li2O", "--temperature", "600",
              "--summary-dir", str(tmp_path / "summary"), "--split-json", str(tmp_path / "split.json"),
              "--split-seed", "3"])
    assert rc == 0
    from ase.io import read

    frames = read(out, ":")
    assert len(frames) == 6
    for i, a in enumerate(frames):
        assert a.info["structure"] == "Li2O" and a.info["temperature"] == 600.0
        assert a.info["split"] in ("train", "val", "test") and a.info["labels"] == "dft"
        assert a.info["step"] == i and a.info["config_type"] == "fpmd"
        assert a.get_forces().shape == (12, 3) and a.get_stress().shape == (6,)
    summary = json.loads((tmp_path / "summary" / "summary.json").read_text())
    assert summary["n_frames"] == 6 and summary["groups"][0]["frames"] == 6
    assert set(summary["partners"]) == {"O", "Li"}
    assert summary["provenance"]["seeds"]["split"] == 3
    for fig in summary["figures"]:
        assert (tmp_path / "summary" / fig).stat().st_size > 1000
    split = json.loads((tmp_path / "split.json").read_text())
    assert sorted(sum(split["indices"].values(), [])) == list(range(6))
    # min Li-O distance: the one displaced Li sits 1.86-1.95 Å from O; check against brute force
    a = frames[0]
    li = [i for i, s in enumerate(a.get_chemical_symbols()) if s == "Li"]
    o = [i for i, s in enumerate(a.get_chemical_symbols()) if s == "O"]
    d = min(a.get_distance(i, j, mic=True) for i in li for j in o)
    assert summary["min_distance_per_frame_A"]["O"][0] == pytest.approx(d, abs=1e-9)


def test_truncated_final_step_dropped_with_warning(pw_md, tmp_path, capsys):
    text = pw_md.read_text()
    cut = text.rfind("Forces acting on atoms")  # the last step loses its forces
    trunc = tmp_path / "trunc.out"
    trunc.write_text(text[: cut + 60])
    frames, notes = read_source(trunc)
    assert len(frames) == 5
    assert any("incomplete final" in n for n in notes) and any("JOB DONE" in n for n in notes)
    rc = cli(["ingest", str(trunc), "-o", str(tmp_path / "d.extxyz"), "--structure", "x", "--temperature", "1"])
    assert rc == 0
    assert "warning" in capsys.readouterr().err


def test_gzipped_source_and_duplicates(pw_md, tmp_path):
    gz = tmp_path / "md.out.gz"
    gz.write_bytes(gzip.compress(pw_md.read_bytes()))
    res = ingest([pw_md, gz], tmp_path / "d.extxyz", structure="s", temperature=600, log=lambda m: None)
    assert res["n_frames"] == 6  # the gz copy is the same run: all duplicates


def _cli_error(args, capsys):
    rc = cli(args)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def test_run_without_forces_is_one_clear_error(tmp_path, capsys):
    out = run_pw(tmp_path, pw_input("scf", forces=False), "scf")
    rc, err = _cli_error(["ingest", str(out), "-o", str(tmp_path / "d.extxyz"), "--structure", "s",
                          "--temperature", "0"], capsys)
    assert rc == 2 and err[-1].startswith("ionflow ingest: error: ")
    assert str(out) in err[-1] and "[forces]" in err[-1] and "tprnfor" in err[-1]
    assert not (tmp_path / "d.extxyz").exists()


def _write_xyz(path: Path, frames):
    from ase.io import write

    write(path, frames, format="extxyz")


def _frame(symbols="Li2O", nan=False):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    a = Atoms(symbols, positions=[[0, 0, 0], [1.5, 1.5, 0], [0, 1.5, 1.5]][: len(Atoms(symbols))],
              cell=[4, 4, 4], pbc=True)
    f = np.zeros((len(a), 3))
    if nan:
        f[0, 0] = np.nan
    a.calc = SinglePointCalculator(a, energy=-1.0, forces=f)
    a.info.update(structure="s", temperature=300.0)
    return a


@pytest.mark.parametrize(
    "case, field",
    [("nan", "forces"), ("species", "species"), ("unknown", "format"), ("empty", None), ("missing", None),
     ("notemp", "temperature"), ("garbage_pw", None)],
)
def test_bad_inputs_give_one_clear_line_and_no_output(case, field, tmp_path, capsys):
    src = tmp_path / "bad.extxyz"
    extra = []
    if case == "nan":
        _write_xyz(src, [_frame(nan=True)])
    elif case == "species":
        _write_xyz(src, [_frame("Li2O")])
        other = tmp_path / "other.extxyz"
        _write_xyz(other, [_frame("LiO2")])
        extra = [str(other)]
    elif case == "unknown":
        src = tmp_path / "mystery.dat"
        src.write_text("hello world\n1 2 3\n")
    elif case == "empty":
        src.write_text("")
    elif case == "missing":
        src = tmp_path / "nope.out"
    elif case == "notemp":
        a = _frame()
        del a.info["temperature"]
        _write_xyz(src, [a])
    elif case == "garbage_pw":
        src = tmp_path / "pw.out"
        src.write_text("     Program PWSCF v.7.1 starts on\n garbage\n")
    out = tmp_path / "d.extxyz"
    rc, err = _cli_error(["ingest", str(src), *extra, "-o", str(out)], capsys)
    assert rc == 2, err
    # progress lines may precede it; exactly one error line, last, no traceback
    assert [line for line in err if "error" in line.lower()] == [err[-1]]
    assert err[-1].startswith("ionflow ingest: error: ") and "Traceback" not in "\n".join(err)
    assert (str(src) in err[-1]) or (extra and extra[0] in err[-1])
    if field:
        assert f"[{field}]" in err[-1]
    assert not out.exists()
    assert not list(tmp_path.glob(".d.extxyz.*"))  # no temp file left behind


def test_split_is_reproducible_stratified_and_holds_out_temperatures():
    frames = [_frame() for _ in range(40)]
    for i, a in enumerate(frames):
        a.info["temperature"] = [300.0, 600.0][i % 2]
    s1 = split_frames(frames, (0.8, 0.1, 0.1), seed=5)
    s2 = split_frames(frames, (0.8, 0.1, 0.1), seed=5)
    s3 = split_frames(frames, (0.8, 0.1, 0.1), seed=6)
    assert s1 == s2 and s1 != s3
    assert sorted(sum(s1.values(), [])) == list(range(40))
    assert [len(s1[k]) for k in ("train", "val", "test")] == [32, 4, 4]
    for k in ("val", "test"):  # each temperature present in each split
        assert {frames[i].info["temperature"] for i in s1[k]} == {300.0, 600.0}
    h = split_frames(frames, (0.8, 0.1, 0.1), seed=5, holdout_temperatures=[600.0])
    held = {i for i, a in enumerate(frames) if a.info["temperature"] == 600.0}
    assert held <= set(h["test"]) and not held & set(h["train"] + h["val"])
    assert len(h["test"]) == 20 + 2  # all 20 held-out frames + the 300 K group's own test share


def test_input_error_names_file_and_field():
    with pytest.raises(InputError, match=r"^x\.out \[energy\]: boom$"):
        raise InputError("x.out", "boom", field="energy")


def _vasprun_xml(steps, symbols, cell) -> str:
    """A minimal vasprun.xml in VASP's layout (VASP cannot run here): energies eV, forces eV/Å,
    stress in kB with VASP's sign (positive = compressive, like pressure)."""
    def varray(name, rows):
        return f'<varray name="{name}">' + "".join(
            "<v>" + " ".join(f"{x:.10f}" for x in r) + "</v>" for r in rows) + "</varray>"

    def structure(scaled, name=None):
        attr = f' name="{name}"' if name else ""
        return (f"<structure{attr}><crystal>{varray('basis', cell)}</crystal>"
                f"{varray('positions', scaled)}</structure>")

    atoms = "".join(f"<rc><c>{s}</c><c>1</c></rc>" for s in symbols)
    calcs = "".join(
        f"<calculation>{structure(sp)}{varray('forces', f)}{varray('stress', s)}"
        f"<scstep><energy><i name=\"e_fr_energy\">{e:.8f}</i><i name=\"e_0_energy\">{e:.8f}</i></energy></scstep>"
        f"<energy><i name=\"e_fr_energy\">{e:.8f}</i></energy></calculation>"
        for sp, f, s, e in steps)
    return (f'<?xml version="1.0" encoding="ISO-8859-1"?><modeling>'
            f'<kpoints>{varray("kpointlist", [[0, 0, 0]])}{varray("weights", [[1.0]])}</kpoints>'
            f'<parameters></parameters>'
            f'<atominfo><atoms>{len(symbols)}</atoms><array name="atoms"><set>{atoms}</set></array></atominfo>'
            f"{structure(steps[0][0], 'initialpos')}{calcs}</modeling>")


def test_vasprun_xml_units_and_stress_sign(tmp_path):
    cell = np.diag([4.0, 4.0, 4.0])
    scaled = np.array([[0, 0, 0], [0.5, 0.5, 0.5]])
    forces = np.array([[0.1, 0, 0], [-0.1, 0, 0]])
    stress_kb = np.diag([10.0, 10.0, 10.0])  # VASP: +10 kB = compressed cell, pressure 1 GPa
    steps = [(scaled, forces, stress_kb, -10.0), (scaled + 0.01, forces * 2, stress_kb, -9.5)]
    path = tmp_path / "vasprun.xml"
    path.write_text(_vasprun_xml(steps, ["Li", "O"], cell))
    out = tmp_path / "d.extxyz"
    assert cli(["ingest", str(path), "-o", str(out), "--structure", "v", "--temperature", "300"]) == 0
    from ase.io import read

    frames = read(out, ":")
    assert [a.get_potential_energy() for a in frames] == pytest.approx([-10.0, -9.5])
    np.testing.assert_allclose(frames[1].get_forces(), forces * 2)
    # ASE convention: compressed cell -> negative stress; 10 kB = 1 GPa = 0.0062415 eV/Å3
    np.testing.assert_allclose(frames[0].get_stress()[:3], -10 * 0.1 / 160.21766208, rtol=1e-6)


def test_truncated_vasprun_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "vasprun.xml"
    path.write_text('<?xml version="1.0"?><modeling><atominfo>')
    rc, err = _cli_error(["ingest", str(path), "-o", str(tmp_path / "d.extxyz"), "--structure", "v",
                          "--temperature", "1"], capsys)
    assert rc == 2 and str(path) in err[-1] and "vasp-xml" in err[-1]
