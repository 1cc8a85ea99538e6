"""Offline crystal-structure builders and geometry helpers (ASE only, no network).

Used by the demo (``scripts/build_demo_structures.py``) and by tests that need a real,
small crystal. The gamma-Li3PO4 builder uses published Wyckoff positions, so nothing has
to be downloaded:

* gamma-Li3PO4 (Pnma, Z=4, 32 atoms) -- Wang, Chakoumakos, Sales, Kwak, Bates,
  J. Solid State Chem. 115, 313-323 (1995), neutron powder data, AMCSD 0013843 (published
  in the setting Pmnb, a=6.1113, b=10.4612, c=4.9208 A), converted to standard Pnma by
  (x, y, z)_Pnma = (y, x, -z)_Pmnb, a<->b (checked atom by atom against the CIF's own
  symmetry operators).
* beta-Li3PO4 (Pmn2_1, Z=2, 16 atoms; the low-temperature polymorph) -- Keffer, Mighell,
  Mauer, Swanson, Block, Inorg. Chem. 6, 119-125 (1967), AMCSD 0012673.

:func:`check` verifies composition, density and nearest-neighbour windows (and the space
group when spglib is installed) so a typo in a coordinate cannot go unnoticed.

Top-level imports are stdlib + numpy only; ASE/scipy/spglib are imported where used.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms

# --------------------------------------------------------------------------- builders


def gamma_li3po4() -> "Atoms":
    """gamma-Li3PO4, Pnma (No. 62), 32 atoms, Wang et al. 1995 (AMCSD 0013843)."""
    from ase.spacegroup import crystal

    return crystal(
        symbols=["Li", "Li", "P", "O", "O", "O"],
        basis=[
            (0.1627, 0.5016, -0.3008),  # Li1 8d
            (0.4246, 0.75, -0.2045),    # Li2 4c
            (0.4115, 0.25, -0.3079),    # P   4c
            (0.3418, 0.0441, -0.2054),  # O1  8d
            (0.0503, 0.25, -0.2928),    # O2  4c
            (0.0896, 0.75, -0.1223),    # O3  4c
        ],
        spacegroup=62,
        cellpar=[10.4612, 6.1113, 4.9208, 90, 90, 90],
        primitive_cell=False,
    )


def beta_li3po4() -> "Atoms":
    """beta-Li3PO4, Pmn2_1 (No. 31), 16 atoms, Keffer et al. 1967 (AMCSD 0012673)."""
    from ase.spacegroup import crystal

    return crystal(
        symbols=["Li", "Li", "P", "O", "O", "O"],
        basis=[
            (0.2481, 0.3277, 0.9860),     # Li1 4b
            (0.5, 0.8428, 0.9893),        # Li2 2a
            (0.0, 0.8243, 0.0),           # P   2a
            (0.20777, 0.68676, 0.89610),  # O1  4b
            (0.0, 0.1052, 0.9004),        # O2  2a
            (0.5, 0.1814, 0.8172),        # O3  2a
        ],
        spacegroup=31,
        cellpar=[6.115, 5.2394, 4.8554, 90, 90, 90],
    )


_BETA_LPS_CELL = [12.8190, 8.2195, 6.1236, 90, 90, 90]  # Homma et al. 2011, 637 K (ICSD 180319)
_BETA_LPS_COORDS = {
    # site: (approximate literature values, 7net-0 fixed-cell relaxed in the experimental cell)
    "P  4c": ((0.0877, 0.25, 0.1686), (0.0892, 0.25, 0.1549)),
    "S1 8d": ((0.1620, 0.0459, 0.2925), (0.1548, 0.0393, 0.2738)),
    "S2 4c": ((0.9309, 0.25, 0.2617), (0.9381, 0.25, 0.2817)),
    "S3 4c": ((0.0920, 0.25, 0.8308), (0.0970, 0.25, 0.8229)),
    "Li1 8d": ((0.3356, 0.0289, 0.3445), (0.3357, 0.0331, 0.3886)),
    "Li2 4b": ((0.0, 0.0, 0.5), (0.0, 0.0, 0.5)),
}


def beta_li3ps4(coords: str = "relaxed") -> "Atoms":
    """Ordered beta-Li3PS4 model, Pnma, 32 atoms (Li on 8d + 4b; the experimental phase is
    Li-disordered over 8d/4b/4c), cell of Homma et al., Solid State Ionics 182, 53 (2011).

    CAUTION (see /work/shared/notes/structures): the P/S/Li coordinates could not be checked
    against the paper/ICSD offline. coords="relaxed" (default) are those after a
    symmetry-constrained fixed-cell SevenNet-0 relaxation in the experimental cell (P-S
    2.04-2.07 A, Li-S >= 2.42 A); coords="initial" are approximate literature values with one
    short Li-S contact (2.25 A). Replace with a CIF (ase.io.read) when one is available.
    """
    from ase.spacegroup import crystal

    idx = {"initial": 0, "relaxed": 1}[coords]
    symbols = [k.split()[0].rstrip("0123456789") for k in _BETA_LPS_COORDS]
    basis = [v[idx] for v in _BETA_LPS_COORDS.values()]
    return crystal(symbols=symbols, basis=basis, spacegroup=62, cellpar=_BETA_LPS_CELL)


BUILDERS = {
    "gamma-Li3PO4": gamma_li3po4,
    "beta-Li3PO4": beta_li3po4,
    "beta-Li3PS4": beta_li3ps4,
}

# expected values used by check(): formula, density window (g/cm3), bond windows (A)
EXPECTED = {
    "gamma-Li3PO4": dict(formula="Li12O16P4", density=(2.40, 2.48),
                         bonds={"O-P": (1.50, 1.58), "Li-O": (1.85, 2.2)}),
    "beta-Li3PO4": dict(formula="Li6O8P2", density=(2.42, 2.52),
                        bonds={"O-P": (1.50, 1.58), "Li-O": (1.85, 2.2)}),
    "beta-Li3PS4": dict(formula="Li12P4S16", density=(1.80, 1.90),
                        bonds={"P-S": (1.98, 2.12), "Li-S": (2.30, 2.6)}),
}
EXPECTED_SPACEGROUP = {"gamma-Li3PO4": "Pnma (62)", "beta-Li3PO4": "Pmn2_1 (31)",
                       "beta-Li3PS4": "Pnma (62)"}

# --------------------------------------------------------------------------- geometry utilities


def density_g_cm3(atoms: "Atoms") -> float:
    """Mass density in g/cm^3 (amu/A^3 * 1.66054)."""
    return float(atoms.get_masses().sum() / atoms.get_volume() * 1.66053907)


def min_distances(atoms: "Atoms", rmax: float = 4.0) -> dict[str, float]:
    """Minimum periodic interatomic distance per element pair (A), pairs closer than rmax."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, rmax)
    sym = np.array(atoms.get_chemical_symbols())
    out: dict[str, float] = {}
    for a, b in itertools.combinations_with_replacement(sorted(set(sym)), 2):
        m = ((sym[i] == a) & (sym[j] == b)) | ((sym[i] == b) & (sym[j] == a))
        if m.any():
            out[f"{a}-{b}"] = round(float(d[m].min()), 3)
    return out


def min_pair_distance(atoms: "Atoms", rmax: float = 4.0) -> float:
    """Shortest periodic distance between any two atoms (A); rmax if none is closer."""
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, rmax)
    return float(d.min()) if d.size else float(rmax)


def spacegroup(atoms: "Atoms", symprec: float = 1e-3) -> str | None:
    """spglib international symbol, e.g. 'Pnma (62)'; None if spglib is missing."""
    import warnings

    try:
        import spglib
    except ImportError:
        return None
    with warnings.catch_warnings():  # spglib 2.x: "Set OLD_ERROR_HANDLING to false ..."
        warnings.simplefilter("ignore", DeprecationWarning)
        return spglib.get_spacegroup((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers),
                                     symprec=symprec)


def mic_distance_matrix(cell: np.ndarray, frac_a: np.ndarray, frac_b: np.ndarray) -> np.ndarray:
    """Minimum-image distances (A) between fractional coordinates ``frac_a`` (n,3) and ``frac_b`` (m,3).

    Exact for any cell whose minimum image lies within the 27 neighbouring images (true for
    the near-orthogonal cells used here).
    """
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    df = frac_a[:, None, :] - frac_b[None, :, :]
    df -= np.round(df)
    cart = (df[:, :, None, :] + shifts[None, None, :, :]) @ np.asarray(cell)
    return np.sqrt((cart**2).sum(-1)).min(-1)


def check(name: str, atoms: "Atoms") -> dict:
    """Composition / density / nearest-neighbour / space-group sanity check of a builder's output.

    Returns a report dict; raises ValueError naming the failed quantity.
    """
    exp = EXPECTED[name]
    rep = dict(formula=atoms.get_chemical_formula(), natoms=len(atoms),
               density=round(density_g_cm3(atoms), 3), min_dist=min_distances(atoms),
               spacegroup=spacegroup(atoms))
    if rep["formula"] != exp["formula"]:
        raise ValueError(f"{name}: formula {rep['formula']} != {exp['formula']}")
    lo, hi = exp["density"]
    if not lo <= rep["density"] <= hi:
        raise ValueError(f"{name}: density {rep['density']} g/cm3 outside [{lo}, {hi}]")
    for pair, (lo, hi) in exp["bonds"].items():
        if not lo <= rep["min_dist"][pair] <= hi:
            raise ValueError(f"{name}: shortest {pair} {rep['min_dist'][pair]} A outside [{lo}, {hi}]")
    if min(rep["min_dist"].values()) <= 1.4:
        raise ValueError(f"{name}: atoms closer than 1.4 A: {rep['min_dist']}")
    if rep["spacegroup"] is not None and rep["spacegroup"] != EXPECTED_SPACEGROUP[name]:
        raise ValueError(f"{name}: space group {rep['spacegroup']} != {EXPECTED_SPACEGROUP[name]}")
    return rep


# --------------------------------------------------------------------------- interstitial voids


def void_sites(atoms: "Atoms", spacing: float = 0.25, min_clearance: float = 1.5,
               dedup: float = 1.0, max_sites: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate interstitial sites: grid points farthest from every atom, de-duplicated.

    A regular grid (about ``spacing`` A) is laid over the cell; each point's clearance is its
    distance to the nearest atom (periodic, via a k-d tree over the 27 neighbouring images).
    Points with clearance >= ``min_clearance`` are taken greedily in order of decreasing
    clearance, dropping any point within ``dedup`` A (minimum image) of one already taken, so
    each void yields one site at its most open point (symmetry-equivalent voids stay
    separate: after substitution they are no longer equivalent).

    Returns (fractional coordinates (n, 3), clearances (n,)), largest clearance first.
    """
    from scipy.spatial import cKDTree

    cell = np.asarray(atoms.cell)
    lengths = np.linalg.norm(cell, axis=1)
    n = np.maximum(np.ceil(lengths / spacing).astype(int), 1)
    grid = np.stack(np.meshgrid(*(np.arange(k) / k for k in n), indexing="ij"), -1).reshape(-1, 3)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    frac = atoms.get_scaled_positions(wrap=True)
    images = (frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ cell
    clearance, _ = cKDTree(images).query(grid @ cell)
    keep = clearance >= min_clearance
    grid, clearance = grid[keep], clearance[keep]
    order = np.argsort(-clearance, kind="stable")
    taken: list[int] = []
    for k in order:
        if taken:
            d = mic_distance_matrix(cell, grid[k][None], grid[taken])[0]
            if d.min() < dedup:
                continue
        taken.append(int(k))
        if max_sites is not None and len(taken) >= max_sites:
            break
    return grid[taken], clearance[taken]


def greedy_separated(order: np.ndarray, cell: np.ndarray, frac: np.ndarray, count: int,
                     min_sep: float) -> list[int]:
    """First ``count`` indices from ``order`` whose sites are mutually >= ``min_sep`` A apart."""
    chosen: list[int] = []
    for k in order:
        if chosen and mic_distance_matrix(cell, frac[k][None], frac[chosen])[0].min() < min_sep:
            continue
        chosen.append(int(k))
        if len(chosen) == count:
            return chosen
    raise ValueError(f"only {len(chosen)} of {count} sites can be placed {min_sep} A apart")
