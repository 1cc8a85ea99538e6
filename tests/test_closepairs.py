"""closepairs: determinism, the floor guarantee, the distance grid, data-derived limits, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ionflow.cli import main
from ionflow.closepairs import construct, derive_limits, min_distance_matrix, pair_name, read_frames


def li2o_cell(a: float = 4.61):
    """Antifluorite Li2O, conventional cubic cell (4 O + 8 Li)."""
    from ase.spacegroup import crystal

    return crystal(["O", "Li"], basis=[(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225,
                   cellpar=[a, a, a, 90, 90, 90])


def li2o_frames(temperatures=(100, 300, 600), per_t: int = 4, repeat=(2, 1, 1), seed: int = 0,
                calc=None, labels: str = "dft"):
    """Thermally rattled Li2O frames tagged like the dataset contract (σ ∝ √T, 0.03 Å at 100 K).

    Labels come from ``calc`` (e.g. SevenNet) when given, else zeros (closepairs needs none).
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    base = li2o_cell().repeat(repeat)
    frames = []
    for t in temperatures:
        for k in range(per_t):
            a = base.copy()
            a.positions += rng.normal(0, 0.03 * np.sqrt(t / 100), a.positions.shape)
            if calc is not None:
                a.calc = calc
                e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
            else:
                e, f, s = 0.0, np.zeros((len(a), 3)), np.zeros(6)
            a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
            a.info.update(structure="Li2O", temperature=float(t), source=f"md_{t}K.out", step=k,
                          split="train" if k < per_t - 1 else "val", config_type="fpmd", labels=labels)
            frames.append(a)
    return frames


@pytest.fixture(scope="module")
def dataset():
    return li2o_frames()


@pytest.fixture(scope="module")
def built(dataset):
    return construct(dataset, species=["Li"], n_per_pair=4, seed=7, rattle=0.02)


def test_deterministic_from_seed(dataset, built):
    frames, summary = built
    again, summary2 = construct(dataset, species=["Li"], n_per_pair=4, seed=7, rattle=0.02)
    assert len(frames) == len(again) == summary["n_frames"] == 8  # Li-Li and Li-O, 4 each
    for a, b in zip(frames, again):
        assert np.array_equal(a.positions, b.positions)
        assert a.info == b.info
    other, _ = construct(dataset, species=["Li"], n_per_pair=4, seed=8, rattle=0.02)
    assert not all(np.array_equal(a.positions, b.positions) for a, b in zip(frames, other))


def test_floor_never_violated_and_target_exact(built):
    from ase.neighborlist import neighbor_list

    frames, summary = built
    limits = summary["limits"]
    floor_max = max(v["floor"] for v in limits.values() if v["floor"])
    for a in frames:
        i, j, d_t = a.info["pair_i"], a.info["pair_j"], a.info["target_distance"]
        assert a.get_distance(i, j, mic=True) == pytest.approx(d_t, abs=1e-9)
        sym = np.array(a.get_chemical_symbols())
        assert f"{sym[i]}-{sym[j]}" == a.info["pair"]
        ii, jj, dd = neighbor_list("ijd", a, floor_max + 0.01)
        floors = np.array([limits[pair_name(sym[p], sym[q])]["floor"] for p, q in zip(ii, jj)])
        constructed = ((ii == i) & (jj == j) | (ii == j) & (jj == i)) & (np.abs(dd - d_t) < 1e-6)
        assert np.all(dd[~constructed] >= floors[~constructed] - 1e-9)
        assert d_t >= a.info["floor"]


def test_targets_on_grid_between_floor_and_dataset_minimum(dataset, built):
    frames, summary = built
    species = ["Li", "O"]
    dmin = min_distance_matrix(dataset, species, 5.0)
    for name in ("Li-Li", "Li-O"):
        lim = summary["targets"][name]
        a, b = (species.index(s) for s in name.split("-"))
        assert lim["dmax"] == pytest.approx(dmin[:, a, b].min())  # smallest distance seen in the dataset
        got = sorted(f.info["target_distance"] for f in frames if f.info["pair"] == name)
        want = lim["floor"] + (np.arange(4) + 0.5) * (lim["dmax"] - lim["floor"]) / 4
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        assert all(t < lim["d_min"] for t in got)  # every target is shorter than anything in the data


def test_tags_and_base_frames(dataset, built):
    frames, summary = built
    for a in frames:
        assert a.info["config_type"] == "close_pair"
        assert a.calc is None and "labels" not in a.info and "split" not in a.info
        base = dataset[a.info["base_index"]]
        assert base.info["temperature"] == 100.0 and base.info["split"] == "train"  # lowest T, train only
        for key in ("structure", "temperature", "source", "step"):
            assert a.info[key] == base.info[key]
    assert summary["base_temperatures"] == {"Li2O": [100.0]}
    # rattle moved the other atoms, never the constructed pair
    a = frames[0]
    base = dataset[a.info["base_index"]]
    moved = np.linalg.norm(a.positions - base.positions, axis=1)
    assert moved[a.info["pair_j"]] == pytest.approx(0.0, abs=1e-9)
    assert moved[a.info["pair_i"]] == pytest.approx(a.info["displacement"], abs=1e-9)


def test_default_floor_formula_known_answer():
    # per-frame minima of one pair (A-B): d_min = 1.8, σ = std -> floor = clip(d_min - 3σ, .7 d_min, .9 d_min)
    col = np.array([1.8, 1.9, 2.0, 2.1])
    m = np.full((4, 2, 2), np.inf)
    m[:, 0, 1] = m[:, 1, 0] = col
    lim = derive_limits(m, ["A", "B"], floor_sigmas=3.0, floor_clip=(0.7, 0.9))["A-B"]
    sigma = col.std()
    assert lim["floor"] == pytest.approx(np.clip(1.8 - 3 * sigma, 0.7 * 1.8, 0.9 * 1.8))
    assert lim["dmax"] == 1.8
    # wide distribution: the lower clip applies; narrow: the upper one
    lim = derive_limits(m, ["A", "B"], floor_sigmas=30)["A-B"]
    assert lim["floor"] == pytest.approx(0.7 * 1.8)
    lim = derive_limits(m, ["A", "B"], floor_sigmas=0.1)["A-B"]
    assert lim["floor"] == pytest.approx(0.9 * 1.8)
    # overrides win; pairs never seen stay None
    lim = derive_limits(m, ["A", "B"], floor_overrides={"B-A": 1.5}, dmax_overrides={"A-B": 1.7})
    assert lim["A-B"]["floor"] == 1.5 and lim["A-B"]["dmax"] == 1.7 and lim["A-A"]["floor"] is None


def test_cli_writes_frames_summary_plot(tmp_path, dataset):
    from ase.io import write

    write(tmp_path / "ds.extxyz", dataset)
    out = tmp_path / "cp" / "frames.extxyz"
    rc = main(["closepairs", str(tmp_path / "ds.extxyz"), "-o", str(out), "--partners", "O", "--n", "3",
               "--seed", "3", "--floor", "Li-O=1.5", "--plot", str(tmp_path / "cp" / "d.png")])
    assert rc == 0
    frames = read_frames(out)
    assert [f.info["pair"] for f in frames] == ["Li-O"] * 3
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["targets"]["Li-O"]["floor"] == 1.5 and summary["targets"]["Li-O"]["floor_from"] == "override"
    assert summary["provenance"]["seeds"] == {"closepairs": 3}
    assert (tmp_path / "cp" / "d.png").stat().st_size > 1000


@pytest.mark.parametrize("extra, needle", [
    (["--partners", "S"], "partner species S does not occur"),
    (["--floor", "Li-O:1.5"], "not of the form A-B=VALUE"),
    (["--floor", "Li-O=3.0"], "need 0 < floor"),
    (["--temperatures", "900"], "no base frames at temperatures [900.0]"),
])
def test_cli_errors_are_one_line(tmp_path, dataset, capsys, extra, needle):
    from ase.io import write

    write(tmp_path / "ds.extxyz", dataset)
    out = tmp_path / "frames.extxyz"
    rc = main(["closepairs", str(tmp_path / "ds.extxyz"), "-o", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_unreachable_targets_are_skipped_and_listed_not_forced():
    """Li cannot get close to P without an Li-O contact below the Li-O floor: such targets are skipped."""
    from ase import Atoms

    from ionflow.closepairs import construct

    # P at the centre of an O tetrahedron (P-O 1.55 Å), Li 3 Å away
    o = 1.55 / np.sqrt(3) * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    pos = np.vstack([[5, 5, 5], 5 + o, [8.0, 5.0, 5.0]])
    base = Atoms("PO4Li", positions=pos, cell=[10, 10, 10], pbc=True)
    base.info.update(structure="t", temperature=100.0, split="train", config_type="fpmd")
    frames, summary = construct([base], species=["Li"], partners=["P"], n_per_pair=4, seed=0,
                                floors={"Li-P": 1.0, "Li-O": 1.6, "O-P": 1.2, "O-O": 2.0},
                                dmax={"Li-P": 2.9}, max_attempts=5)
    reached = [f.info["target_distance"] for f in frames]
    unreachable = [k["target_distance"] for k in summary["skipped"] if "target_distance" in k]
    assert unreachable and sorted(reached + unreachable) == pytest.approx(1.0 + (np.arange(4) + 0.5) * 1.9 / 4)
    for f in frames:  # every built frame respects every floor
        d = f.get_all_distances(mic=True)
        li, others = 5, [1, 2, 3, 4]
        assert d[li, others].min() >= 1.6 - 1e-9
