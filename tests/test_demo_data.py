"""Demo structures and the bundled surrogate FPMD data (scripts/build_demo_structures.py,
scripts/make_demo_fpmd.py, ionflow.structures).

* the gamma-/beta-Li3PO4 builders reproduce the published structures (composition, density,
  bond lengths, space group);
* make_demo_fpmd's core function runs real SevenNet-0 MD for a few steps on the 32-atom
  gamma-Li3PO4 cell, resumes an interrupted run, and writes frames in the dataset contract;
* the shipped files (data/demo/) follow the contract and are physically sane.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, require_module
from ionflow import structures as st

DEMO = REPO / "data" / "demo"
STRUCTS = ("S1", "S2")
TEMPS = (100, 400, 600, 900)
CONTRACT_INFO = {"structure": str, "temperature": (float, np.floating), "step": (int, np.integer),
                 "labels": str, "source": str}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_contract(frames, structure: str, temperature: float) -> None:
    for at in frames:
        for key, typ in CONTRACT_INFO.items():
            assert isinstance(at.info.get(key), typ), (key, at.info.get(key))
        assert at.info["structure"] == structure
        assert at.info["temperature"] == pytest.approx(temperature)
        assert at.info["labels"] == "sevennet-0"
        assert at.info["config_type"] == "fpmd"
        assert np.isfinite(at.get_potential_energy())
        f = at.get_forces()
        assert f.shape == (len(at), 3) and np.isfinite(f).all()
        assert np.isfinite(at.get_stress()).all() and at.get_stress().shape == (6,)
    steps = [at.info["step"] for at in frames]
    assert steps == sorted(set(steps)), steps


@pytest.mark.parametrize("name", sorted(st.BUILDERS))
def test_builders_match_published_structures(name):
    rep = st.check(name, st.BUILDERS[name]())
    if "O-P" in rep["min_dist"]:  # the Li3PO4 polymorphs: published P-O 1.534 / 1.540 A
        assert rep["min_dist"]["O-P"] == pytest.approx(1.54, abs=0.01)


def test_void_sites_are_open_and_separated():
    atoms = st.gamma_li3po4()
    frac, clear = st.void_sites(atoms, spacing=0.25, min_clearance=1.8, dedup=1.0)
    assert len(frac) > 0 and np.all(np.diff(clear) <= 1e-12)
    # the clearance returned is the true distance to the nearest atom
    d = st.mic_distance_matrix(np.asarray(atoms.cell), frac, atoms.get_scaled_positions())
    np.testing.assert_allclose(d.min(1), clear, atol=1e-9)
    dd = st.mic_distance_matrix(np.asarray(atoms.cell), frac, frac) + np.eye(len(frac)) * 99
    assert dd.min() >= 1.0


def test_si_arrangements_dispersed_vs_clustered():
    bds = _load_script("build_demo_structures")
    host = st.gamma_li3po4().repeat((1, 2, 2))
    cell = np.asarray(host.cell)
    out = {}
    for arr in ("dispersed", "clustered"):
        si = bds.choose_si_sites(host, arr, np.random.default_rng(0))
        assert len(si) == 4 and set(host.numbers[si]) == {15}
        f = host.get_scaled_positions()[si]
        out[arr] = st.mic_distance_matrix(cell, f, f)[np.triu_indices(4, 1)]
    assert out["dispersed"].min() > out["clustered"].min()
    assert out["dispersed"].sum() > out["clustered"].sum()


@pytest.fixture(scope="module")
def sevennet():
    require_module("sevenn")
    import torch
    from sevenn.calculator import SevenNetCalculator

    torch.set_num_threads(1)
    return SevenNetCalculator("7net-0", device="cpu")


@pytest.mark.slow  # ~25-30 s on a loaded 2-core machine (model load + 4 MD steps)
def test_md_core_writes_contract_frames_and_resumes(tmp_path, sevennet):
    """3 + 1 real SevenNet-0 MD steps on gamma-Li3PO4 (32 atoms): interrupt, resume, finalize."""
    from ase.io import read

    mdf = _load_script("make_demo_fpmd")
    gs = st.gamma_li3po4()
    out = tmp_path / "G_600K.extxyz.gz"
    kw = dict(stride=1, equil_steps=2, dt_fs=2.0, seed=7)
    assert mdf.run_combo(gs, sevennet, "G", 600.0, out, frames=1, finalize=False, **kw) == "partial"
    part = tmp_path / "G_600K.extxyz.part"
    assert part.exists() and not out.exists()
    with open(part, "a") as fh:  # simulate a run killed in the middle of writing a frame
        fh.write("32\nLattice=\"10 0 0 0 6 0 0 0 5\" Properties=species:S:1:pos:R:3\nLi 0.0 0.")
    assert mdf.run_combo(gs, sevennet, "G", 600.0, out, frames=2, **kw) == "done"
    assert out.exists() and not part.exists()
    frames = read(out, index=":")
    assert len(frames) == 2
    assert [f.info["step"] for f in frames] == [3, 4]
    _check_contract(frames, "G", 600.0)
    assert frames[0].has("momenta")
    # saved forces are the model's raw forces (the FixCom constraint must not project them)
    ref = frames[-1].copy()
    ref.calc = sevennet
    np.testing.assert_allclose(frames[-1].get_forces(), ref.get_forces(), atol=1e-4)
    assert st.min_pair_distance(frames[-1]) > 1.2
    # deterministic gzip (mtime 0) and a rerun skips the finished combination
    assert gzip.open(out).read(2) and out.read_bytes()[4:8] == b"\0\0\0\0"
    assert mdf.run_combo(gs, sevennet, "G", 600.0, out, frames=2, **kw) == "skipped"


@pytest.mark.parametrize("name", STRUCTS)
def test_shipped_ground_states(name):
    from ase.io import read

    path = DEMO / f"{name}_ground_state.extxyz"
    assert path.is_file(), f"{path} missing: run scripts/build_demo_structures.py"
    at = read(path)
    # Li3.25 Si0.25 P0.75 O4 x 16 = Li52 Si4 P12 O64
    assert at.get_chemical_formula() == "Li52O64P12Si4"
    assert at.info["labels"] == "sevennet-0" and at.info["structure"] == name
    assert np.abs(at.get_forces()).max() < 0.5  # relaxed (fmax 0.05 target, capped steps)
    assert st.min_pair_distance(at) > 1.4
    assert 2.2 < st.density_g_cm3(at) < 2.6


@pytest.mark.parametrize("name", STRUCTS)
@pytest.mark.parametrize("temp", TEMPS)
def test_shipped_fpmd_frames(name, temp):
    from ase.io import read

    path = DEMO / "fpmd" / f"{name}_{temp}K.extxyz.gz"
    assert path.is_file(), f"{path} missing: run scripts/make_demo_fpmd.py (it resumes)"
    frames = read(path, index=":")
    assert len(frames) >= 12
    _check_contract(frames, name, float(temp))
    assert all(f.get_chemical_formula() == "Li52O64P12Si4" for f in frames)
    assert min(st.min_pair_distance(f) for f in frames) > 1.2
    # kinetic temperature of 132 atoms fluctuates by ~ T*sqrt(2/(3N)) = 7 %; the mean over the
    # frames must be within 5 standard errors (frames 20 fs apart are correlated: n_eff = n/4)
    tk = np.array([f.info["md_temperature_K"] for f in frames])
    sem = temp * np.sqrt(2 / (3 * len(frames[0]))) / np.sqrt(len(tk) / 4)
    assert abs(tk.mean() - temp) < 5 * sem, (tk.mean(), temp)
