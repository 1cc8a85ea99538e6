"""Known-answer tests of ``ionflow pes-descriptors``: FV counts, Xi, several ions, folding,
symmetry union, JSON nulls for non-percolating axes, CUBE/PNG output, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ionflow.cli import main
from ionflow.screening import descriptors as D

CELL = np.diag([6.0, 5.0, 4.0])


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def _run(tmp_path, scan, *extra):
    out = tmp_path / "d.json"
    rc = main(["pes-descriptors", str(scan), "-o", str(out), *extra])
    assert rc == 0
    return json.loads(out.read_text())


def test_xi_formula_known_values():
    # FV_conn = 1e-2 and FV_disc = 10^-1.15 put both logistic arguments at 0: Xi = 1/4
    assert D.xi_value(1e-2, 10 ** -1.15) == pytest.approx(0.25, abs=1e-12)
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert D.xi_value(0.05, 0.2) == pytest.approx(
        s(10 * (math.log10(0.05) + 2)) * s(10 * (math.log10(0.2) + 1.15)), rel=1e-12)
    assert D.xi_value(0.0, 0.5) == 0.0
    assert D.xi_value(1.0, 1.0) == pytest.approx(s(20) * s(11.5), rel=1e-12)


def test_fv_exact_counts_with_excluded_points_and_channel_nulls(tmp_path):
    """A 10x4x4 grid: a channel along a at (j,k) = (1,1) with energies 0, 0.1, ..., a pocket
    below 0.5 eV that is NOT connected, and NaN everywhere else (in the denominator)."""
    E = np.full((10, 4, 4), np.nan)
    E[:, 1, 1] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.4, 0.3, 0.2, 0.1]
    E[:, 3, 3] = 0.25  # disconnected pocket (a second channel, separated by NaN)
    E[0, 3, 3] = 2.0
    scan = _save(tmp_path / "s.npz", energy=E, cell=CELL)
    d = _run(tmp_path, scan)
    n = E.size
    assert d["mpe_axis_eV"][0] == pytest.approx(0.45, abs=1e-12)
    assert d["mpe_axis_eV"][1] is None and d["mpe_axis_eV"][2] is None  # JSON null = inf
    assert d["mpe_eV"] == pytest.approx(0.45, abs=1e-12)
    assert d["percolates"] is True
    # connected: the channel points with level <= thr; the level of each channel point is the
    # max along the shorter way round from x = 0
    assert d["fv_connected"]["0.1"] == pytest.approx(3 / n)  # x = 0, 1, 9
    assert d["fv_connected"]["0.25"] == pytest.approx(5 / n)  # + x = 2, 8
    assert d["fv_connected"]["0.5"] == pytest.approx(10 / n)
    assert d["fv_disconnected"]["0.25"] == pytest.approx((5 + 9) / n)
    assert d["fv_disconnected"]["0.5"] == pytest.approx((10 + 9) / n)
    assert d["fv_disconnected"]["1.0"] == pytest.approx(19 / n)
    assert d["xi"] == pytest.approx(D.xi_value(10 / n, 19 / n), rel=1e-12)
    assert d["thresholds_eV"] == [0.1, 0.25, 0.5, 1.0]
    assert "provenance" in d and d["provenance"]["stage"] == "pes-descriptors"
    assert d["n_ions"] == 1 and len(d["ions"]) == 1


def test_non_percolating_structure_reports_nulls(tmp_path):
    E = np.full((6, 6, 6), np.nan)
    E[1:3, 1:3, 1:3] = 0.0  # an isolated cage
    d = _run(tmp_path, _save(tmp_path / "s.npz", energy=E, cell=CELL))
    assert d["mpe_eV"] is None and d["mpe_axis_eV"] == [None, None, None]
    assert d["percolates"] is False
    assert d["fv_connected"]["0.1"] == pytest.approx(8 / 216)


def test_start_index_given_and_threshold_ties(tmp_path):
    """Start not at the minimum: levels and E - E(start) are relative to the start; values equal
    to a threshold up to round-off count as below it."""
    E = np.array([0.3, 0.1, 0.2, 0.3 + 0.5, 0.7]).reshape(5, 1, 1) * np.ones((5, 2, 1))
    scan = _save(tmp_path / "s.npz", energy=E, cell=CELL, start_index=np.array([0, 0, 0]))
    d = _run(tmp_path, scan, "--thresholds", "0.5")
    assert d["ions"][0]["start_index"] == [0, 0, 0]
    assert d["ions"][0]["e_start_eV"] == pytest.approx(0.3)
    # E - E(start) = 0, -0.2, -0.1, 0.5 (+round-off), 0.4: all <= 0.5
    assert d["fv_disconnected"]["0.5"] == pytest.approx(1.0)
    assert d["mpe_axis_eV"][0] == pytest.approx(0.5)
    assert d["mpe_axis_eV"][1] == 0.0  # n_b = 2: every point touches its own b-image


def test_several_ions_union_and_min(tmp_path):
    shape = (8, 4, 4)
    x = np.arange(8) / 8
    E1 = np.full(shape, np.nan)
    E1[:, 0, 0] = 0.3 * (1 - np.cos(2 * np.pi * x))  # channel along a, barrier 0.6
    E2 = np.full(shape, np.nan)
    E2[2, :, 2] = 0.2 * (1 - np.cos(2 * np.pi * np.arange(4) / 4))  # along b, barrier 0.4
    E2[5, 2, 2] = 0.1  # isolated pocket of ion 2
    scan = _save(tmp_path / "s.npz", energy=np.stack([E1, E2]), cell=CELL,
                 start_index=np.array([[0, 0, 0], [2, 0, 2]]))
    d = _run(tmp_path, scan)
    i1, i2 = d["ions"]
    assert i1["mpe_axis_eV"] == [pytest.approx(0.6), None, None]
    assert i2["mpe_axis_eV"] == [None, pytest.approx(0.4), None]
    assert d["mpe_axis_eV"] == [pytest.approx(0.6), pytest.approx(0.4), None]
    assert d["mpe_eV"] == pytest.approx(0.4)
    n = np.prod(shape)
    # union at 0.25 eV: ion 1 has x = 0,1,7 (0, 0.088, 0.088) and x=2 (0.3) excluded -> 3;
    # ion 2 has y = 0, 1, 3 (0, 0.2, 0.2) -> 3; disconnected adds ion 2's pocket
    assert i1["fv_connected"]["0.25"] == pytest.approx(3 / n)
    assert i2["fv_connected"]["0.25"] == pytest.approx(3 / n)
    assert d["fv_connected"]["0.25"] == pytest.approx(6 / n)
    assert d["fv_disconnected"]["0.25"] == pytest.approx(7 / n)
    assert d["xi"] == pytest.approx(D.xi_value(d["fv_connected"]["0.5"], d["fv_disconnected"]["0.5"]))


def test_supercell_folding_and_symmetry_union():
    """A 2x1x1 supercell scan folds back into the structure cell; with the translation
    (1/2, 0, 0) as a symmetry, the union also holds the image region."""
    E = np.full((8, 2, 2), np.nan)
    E[0, 0, 0] = 0.0
    E[1, 0, 0] = 0.2
    E[4, 0, 0] = 0.3  # the same cell position as x = 0 in the second sub-cell
    scan = {"energy": E[None], "cell": np.diag([8.0, 2.0, 2.0]), "start_index": np.array([[0, 0, 0]]),
            "supercell": np.array([2, 1, 1]), "single": True}
    d, _ = D.compute(scan, [0.5])
    ion = d["ions"][0]
    # scan grid: 3 of 32 points below 0.5 (disconnected); folded: x = 0, 1 of the 4x2x2 cell grid
    assert ion["fv_disconnected_scan_grid"]["0.5"] == pytest.approx(3 / 32)
    assert ion["fv_disconnected"]["0.5"] == pytest.approx(2 / 16)
    assert d["fv_reference"].startswith("structure cell")
    scan.update(sym_rotations=np.array([np.eye(3, dtype=int)] * 2),
                sym_translations=np.array([[0, 0, 0], [0.5, 0, 0]]), symmetry_expand=np.array(True))
    d2, _ = D.compute(scan, [0.5])
    assert d2["symmetry_mapping_exact"] is True
    # cell grid x = 0,1 plus their images x = 2,3 under the half translation: 4 of 16
    assert d2["fv_disconnected"]["0.5"] == pytest.approx(4 / 16)
    assert d2["ions"][0]["fv_disconnected"]["0.5"] == pytest.approx(2 / 16)  # per ion: no images


def test_cube_and_figure(tmp_path):
    from ase.io.cube import read_cube_data

    shape = (6, 5, 4)
    g = np.meshgrid(*(np.arange(n) / n for n in shape), indexing="ij")
    E = -sum(a * np.cos(2 * np.pi * x) for a, x in zip((0.2, 0.5, 1.0), g))
    E[3, 2, 2] = np.nan
    scan = _save(tmp_path / "s.npz", energy=E, cell=CELL,
                 structure_species=np.array(["Li", "O"]),
                 structure_positions=np.array([[0.0, 0.0, 0.0], [3.0, 2.5, 2.0]]), name=np.array("toy"))
    cube, png = tmp_path / "level.cube", tmp_path / "level.png"
    d = _run(tmp_path, scan, "--cube", str(cube), "--figure", str(png), "--cube-cap", "5")
    assert d["structure"] == "toy"
    data, atoms = read_cube_data(str(cube))
    assert data.shape == shape
    assert data[3, 2, 2] == pytest.approx(5.0)  # excluded -> cap (the PES spans 3.4 eV)
    np.testing.assert_allclose(np.delete(data.ravel(), np.ravel_multi_index((3, 2, 2), shape)),
                               np.delete((E - np.nanmin(E)).ravel(), np.ravel_multi_index((3, 2, 2), shape)),
                               atol=1e-5)
    np.testing.assert_allclose(atoms.cell[:], CELL, atol=1e-5)
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("arrays, field", [
    ({"cell": CELL}, "energy"),
    ({"energy": np.zeros((2, 2, 2))}, "cell"),
    ({"energy": np.zeros((2, 2)), "cell": CELL}, "energy"),
    ({"energy": np.zeros((2, 2, 2)), "cell": CELL, "start_index": np.array([0, 0, 5])}, "start_index"),
    ({"energy": np.array([np.nan, 0]).reshape(2, 1, 1), "cell": CELL,
      "start_index": np.array([0, 0, 0])}, "start_index"),
    ({"energy": np.full((2, 2, 2), np.nan), "cell": CELL}, "energy"),
    ({"energy": np.zeros((3, 2, 2)), "cell": CELL, "supercell": np.array([2, 1, 1])}, "supercell"),
])
def test_bad_scan_files_one_line_error(tmp_path, capsys, arrays, field):
    scan = _save(tmp_path / "bad.npz", **arrays)
    out = tmp_path / "d.json"
    rc = main(["pes-descriptors", str(scan), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "bad.npz" in err[0] and f"[{field}]" in err[0]
    assert not out.exists()


def test_unreadable_file(tmp_path, capsys):
    p = tmp_path / "x.npz"
    p.write_text("not a zip")
    assert main(["pes-descriptors", str(p), "-o", str(tmp_path / "d.json")]) == 2
    assert "x.npz" in capsys.readouterr().err
