"""Exact minimax ("bottleneck") level map and percolation energies on a periodic 3-D grid.

The grid graph has the 6 face neighbours of every point, with periodic wrap-around; excluded
points (NaN energy) are not nodes. For a start point s:

* ``level(x)`` = min over paths from s to x (on the torus, i.e. to any periodic image of x) of the
  highest energy on the path. Computed EXACTLY from a minimum spanning tree (Kruskal order of the
  edge weight max(E_u, E_v)): the minimax path between two nodes is their path in any MST, so
  level(x) is the maximum energy on the tree path s -> x. No flooding steps (the published code
  raises its water level in 0.1 eV steps).
* Percolation needs the periodic images: each tree node gets a winding ``pot`` (in which cell its
  lifted copy, connected to s in cell 0, lies); a non-tree edge u->v with cell shift t closes a
  cycle of winding ``w = pot[u] + t - pot[v]``, present in the region below energy E once
  E >= tau = max(level[u], level[v]). The set of windings reached below E generates the subgroup
  of Z^3 of lattice translations L such that s connects to s + L.

  - ``mpe_axis[a]``: lowest E at which s connects to its own image translated by lattice vector a
    (e_a in the winding lattice), minus E(s). Infinite if never.
  - ``percolation_axis[a]``: lowest E at which the region around s becomes unbounded along a
    (some winding with a non-zero a component), minus E(s). Equals ``mpe_axis`` for channels
    along the axes; smaller for e.g. a channel along a + b only, where s never reaches s + a
    but diffuses along a. (The published code's "reach a face of a (2N+1)^3 box" is close to
    this second definition.)

Everything is vectorised: scipy's Kruskal MST and BFS, then pointer jumping (log2(depth) numpy
passes) for the tree-path maxima and windings; only the handful of distinct winding vectors is
looped over in Python. A 64^3 grid takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MinimaxResult", "minimax_landscape", "grid_edges"]


@dataclass
class MinimaxResult:
    """Result of :func:`minimax_landscape`; energies relative to E(start) in eV.

    level: grid-shaped; NaN at excluded points, +inf at points not connected to the start.
    mpe_axis, percolation_axis: (3,) floats, +inf where the ion never percolates.
    e_start: absolute energy of the start point.
    windings: (k, 3) distinct cycle windings of the start's region, with ``winding_energy`` (k,)
      the relative energy at which each first appears (diagnostics).
    """

    level: np.ndarray
    mpe_axis: np.ndarray
    percolation_axis: np.ndarray
    e_start: float
    start: tuple
    windings: np.ndarray
    winding_energy: np.ndarray

    @property
    def mpe(self) -> float:
        return float(np.min(self.mpe_axis))


def grid_edges(shape: tuple[int, int, int]):
    """All face-neighbour edges of a periodic grid: (u, v, axis, wrap) with v = u + e_axis (mod n).

    ``wrap`` is 1 where the step crosses the cell boundary (v's lifted copy lies one cell further
    along ``axis``). Self-loops (n_axis == 1) and doubled pairs (n_axis == 2) are kept: they are
    genuine periodic edges and matter for windings.
    """
    shape = tuple(int(n) for n in shape)
    idx = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    us, vs, axes, wraps = [], [], [], []
    for a in range(3):
        v = np.roll(idx, -1, axis=a)
        coord = np.arange(shape[a]).reshape([-1 if k == a else 1 for k in range(3)])
        wrap = np.broadcast_to(coord == shape[a] - 1, shape)
        us.append(idx.ravel())
        vs.append(v.ravel())
        axes.append(np.full(idx.size, a, dtype=np.int8))
        wraps.append(wrap.ravel().astype(np.int8))
    return np.concatenate(us), np.concatenate(vs), np.concatenate(axes), np.concatenate(wraps)


_B = 1 << 20  # packing base for integer 3-vectors (components |x| < 2^19)


def _pack(w: np.ndarray) -> np.ndarray:
    """Pack integer 3-vectors into one int64 (linear: pack(a) + pack(b) == pack(a + b))."""
    return (w[..., 0] * _B + w[..., 1]) * _B + w[..., 2]


def _unpack(p: np.ndarray) -> np.ndarray:
    half = _B // 2
    z = (p + half) % _B - half
    r = (p - z) // _B
    y = (r + half) % _B - half
    x = (r - y) // _B
    return np.stack([x, y, z], axis=-1)


def _pointer_jump(parent: np.ndarray, lev: np.ndarray, pot: np.ndarray):
    """Accumulate max(level) and sum(packed winding) along parent chains (parent[root] = root)."""
    # invariant: lev/pot of n aggregate the chain from n up to, excluding, parent[n]; the root
    # is its own parent with pot 0, so combining with it again is harmless (max, + 0)
    for _ in range(80):
        np.maximum(lev, lev[parent], out=lev)
        pot += pot[parent]
        pp = parent[parent]
        if np.array_equal(pp, parent):
            break
        parent = pp
    return lev, pot


def _step_shift(ci: np.ndarray, cj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Cell shift of the face step from coordinate ci to neighbour cj along an axis of length n.

    For n <= 2 the step is taken as the direct one (no wrap): the tree only uses such edges.
    """
    d = cj - ci
    return np.where((np.abs(d) <= 1) | (n <= 2), 0, -np.sign(d))


def _hnf(rows: list[list[int]]) -> list[list[int]]:
    """Row-style Hermite normal form (echelon basis) of an integer lattice in Z^3."""
    m = [list(r) for r in rows if any(r)]
    basis: list[list[int]] = []
    for col in range(3):
        # gcd-reduce column ``col`` among the remaining rows
        while True:
            nz = [r for r in m if r[col] != 0]
            if len(nz) <= 1:
                break
            nz.sort(key=lambda r: abs(r[col]))
            piv = nz[0]
            for r in nz[1:]:
                q = r[col] // piv[col]
                for k in range(3):
                    r[k] -= q * piv[k]
            m = [r for r in m if any(r)]
        nz = [r for r in m if r[col] != 0]
        if nz:
            piv = nz[0]
            if piv[col] < 0:
                piv[:] = [-x for x in piv]
            basis.append(piv)
            m = [r for r in m if r is not piv]
    return basis


def _in_lattice(basis: list[list[int]], target: list[int]) -> bool:
    t = list(target)
    for row in basis:
        col = next(k for k in range(3) if row[k] != 0)
        if t[col] % row[col]:
            return False
        q = t[col] // row[col]
        t = [t[k] - q * row[k] for k in range(3)]
    return not any(t)


def minimax_landscape(energy: np.ndarray, start: tuple[int, int, int] | None = None) -> MinimaxResult:
    """Exact level map, MPE per axis and percolation energy per axis of one grid PES.

    energy: (nx, ny, nz) eV, NaN = excluded. start: grid index of the ion's site (default:
    argmin of the finite energies). Returns energies relative to E(start).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

    energy = np.asarray(energy, dtype=float)
    if energy.ndim != 3:
        raise ValueError(f"energy must be 3-D (nx, ny, nz), got shape {energy.shape}")
    shape = energy.shape
    flat = energy.ravel()
    valid = np.isfinite(flat)
    if not valid.any():
        raise ValueError("every grid point is excluded (no finite energy)")
    if start is None:
        s = int(np.nanargmin(flat))
    else:
        start = tuple(int(k) for k in start)
        if len(start) != 3 or any(not 0 <= k < n for k, n in zip(start, shape)):
            raise ValueError(f"start index {start} outside grid {shape}")
        s = int(np.ravel_multi_index(start, shape))
        if not valid[s]:
            raise ValueError(f"start index {start} is an excluded point (energy NaN)")
    e_start = float(flat[s])
    n = flat.size

    # weights max(E_u, E_v) shifted to >= 1 (scipy reads 0 as "no edge"); ties are harmless:
    # every minimum spanning tree gives the same minimax values.
    es = np.where(valid, flat - np.nanmin(flat) + 1.0, np.nan)
    u, v, ax, wrap = grid_edges(shape)
    keep = valid[u] & valid[v]
    u, v, ax, wrap = u[keep], v[keep], ax[keep], wrap[keep]
    nax = np.asarray(shape)[ax]
    # tree candidates: one edge per neighbour pair. For n_axis == 1 (self-loops) and n_axis == 2
    # (two edges per pair) only the non-wrapping edge; the others only close cycles.
    cand = (wrap == 0) | (nax >= 3)
    g = coo_matrix((np.maximum(es[u[cand]], es[v[cand]]), (u[cand], v[cand])), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(g, overwrite=True)

    # BFS over the tree from the start: parents, then pointer jumping for maxima and windings
    reached, pred = breadth_first_order(tree, s, directed=False, return_predecessors=True)
    local = np.full(n, -1, dtype=np.int64)
    local[reached] = np.arange(reached.size)
    pred_r = pred[reached]
    pred_r[0] = s  # reached[0] is the start (scipy marks it -9999)
    parent = local[pred_r]
    coords = np.stack(np.unravel_index(reached, shape), axis=1)  # (m, 3)
    pcoords = coords[parent]
    inc = _step_shift(pcoords, coords, np.asarray(shape)[None, :])  # parent -> child, (m, 3)
    lev_loc, pot = _pointer_jump(parent, flat[reached].copy(), _pack(inc.astype(np.int64)))

    level = np.full(n, np.inf)
    level[~valid] = np.nan
    level[reached] = lev_loc - e_start

    # every edge inside the start's region: winding (0 for tree edges) and closing energy
    inreg = (local[u] >= 0) & (local[v] >= 0)
    cu, cv = local[u[inreg]], local[v[inreg]]
    wp = pot[cu] - pot[cv] + np.array([_B * _B, _B, 1], dtype=np.int64)[ax[inreg]] * wrap[inreg]
    nz = wp != 0
    wp, cu, cv = wp[nz], cu[nz], cv[nz]
    tau = np.maximum(lev_loc[cu], lev_loc[cv]) - e_start
    wind = _unpack(wp)
    # canonical sign (w ~ -w), then the lowest closing energy of each distinct winding
    first_nz = np.argmax(wind != 0, axis=1)
    wind = wind * np.sign(wind[np.arange(wind.shape[0]), first_nz])[:, None]
    if wind.shape[0]:
        keys, inv = np.unique(_pack(wind), return_inverse=True)
        tmin = np.full(keys.size, np.inf)
        np.minimum.at(tmin, inv, tau)
        o = np.argsort(tmin, kind="stable")
        wind, tau = _unpack(keys[o]), tmin[o]

    perc = np.full(3, np.inf)
    for a in range(3):
        hit = np.flatnonzero(wind[:, a] != 0)
        if hit.size:
            perc[a] = tau[hit[0]]
    mpe = np.full(3, np.inf)
    gens: list[list[int]] = []
    for wv, t in zip(wind.tolist(), tau.tolist()):
        gens.append(wv)
        basis = _hnf(gens)
        gens = [list(r) for r in basis]
        for a in range(3):
            if not np.isfinite(mpe[a]) and _in_lattice(basis, [int(k == a) for k in range(3)]):
                mpe[a] = t
        if np.isfinite(mpe).all():
            break
    start_idx = tuple(int(k) for k in np.unravel_index(s, shape))
    return MinimaxResult(level=level.reshape(shape), mpe_axis=mpe, percolation_axis=perc,
                         e_start=e_start, start=start_idx, windings=wind, winding_energy=tau)
