"""``ionflow pes-descriptors``: level map, MPE, free volumes and Xi from a frozen-framework scan.

Definitions (grid graph with the 6 face neighbours, periodic; energies relative to E(start)):

* level map: exact minimax path energy from the start (see :mod:`.levelmap`).
* ``mpe_axis_eV[a]``: minimax energy from the start to its own image translated by lattice
  vector a of the scanned cell; ``mpe_eV`` = min over a. A direction in which the ion never
  percolates on the scanned grid has MPE +inf, written as ``null`` in JSON (``mpe_eV`` is null
  only when no axis percolates). ``percolation_axis_eV[a]`` (extra) is the energy at which the
  region around the start becomes unbounded along a (equal to the MPE for channels along the
  axes; finite also for e.g. a channel along a + b only).
* ``fv_connected[thr]``: fraction of ALL grid points (excluded points count in the denominator)
  with level <= thr; ``fv_disconnected[thr]``: fraction with E - E(start) <= thr. Keys are
  ``str(float(thr))`` ("0.1", "0.25", "0.5", "1.0"). Comparisons carry a 1e-9 eV tolerance
  so that values equal to a threshold up to round-off count as below it.
* ``xi`` = s(10 (log10 FV_conn(0.5) + 2)) * s(10 (log10 FV_disc(0.5) + 1.15)), s = logistic
  function, log10(0) = -inf so an empty region gives Xi = 0.

Several mobile ions (energy of shape (n_ions, nx, ny, nz)): every value per ion under ``ions``;
the top-level values are structure-level: MPE = min over ions, FV over the union of the ions'
regions. When the scan used a supercell of the structure (``supercell`` in scan.npz), FVs are
fractions of the structure's own cell: regions are folded back into it (a point of the cell
counts if any of its supercell images does), which keeps the Xi thresholds of the published
raw-cell method meaningful; when only symmetry-inequivalent ions were scanned the union also
includes their symmetry images (``sym_rotations``/``sym_translations`` in scan.npz). Without
those keys (e.g. a hand-made scan.npz) FVs are plain fractions of the scanned grid.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputError

DEFAULT_THRESHOLDS = (0.1, 0.25, 0.5, 1.0)
XI_THRESHOLD = 0.5
TOL = 1e-9  # eV


def threshold_key(thr: float) -> str:
    """JSON key of a threshold: str(float), e.g. '0.5', '1.0'."""
    return str(float(thr))


def sigmoid(x: float) -> float:
    if x == -math.inf:
        return 0.0
    if x == math.inf:
        return 1.0
    return 0.5 * (1.0 + math.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), no overflow


def xi_value(fv_connected_05: float, fv_disconnected_05: float) -> float:
    """Xi from the free volumes at 0.5 eV (Maevskiy et al.)."""
    def log10(x):
        return math.log10(x) if x > 0 else -math.inf
    return (sigmoid(10.0 * (log10(fv_connected_05) + 2.0))
            * sigmoid(10.0 * (log10(fv_disconnected_05) + 1.15)))


# --------------------------------------------------------------------------- scan file


def load_scan(path: str | Path) -> dict:
    """Read and validate a scan.npz; energies become (n_ions, nx, ny, nz)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            scan = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable npz is a user error
        raise InputError(path, f"not a readable .npz file ({exc.__class__.__name__}: {exc})") from None
    for key in ("energy", "cell"):
        if key not in scan:
            raise InputError(path, "missing array", field=key)
    e = np.asarray(scan["energy"], dtype=float)
    if e.ndim == 3:
        e = e[None]
        single = True
    elif e.ndim == 4:
        single = False
    else:
        raise InputError(path, f"must have shape (nx,ny,nz) or (n_ions,nx,ny,nz), got {e.shape}",
                         field="energy")
    if min(e.shape[1:]) < 1 or e.shape[0] < 1:
        raise InputError(path, f"empty grid {e.shape}", field="energy")
    if np.isinf(e).any():
        raise InputError(path, "contains +-inf (use NaN for excluded points)", field="energy")
    cell = np.asarray(scan["cell"], dtype=float)
    if cell.shape != (3, 3) or not np.isfinite(cell).all() or abs(np.linalg.det(cell)) < 1e-9:
        raise InputError(path, f"must be a non-singular (3,3) matrix, got shape {cell.shape}", field="cell")
    n_ions = e.shape[0]
    if "start_index" in scan:
        st = np.asarray(scan["start_index"])
        if st.shape == (3,) and single:
            st = st[None]
        if st.shape != (n_ions, 3) or not np.issubdtype(st.dtype, np.number):
            raise InputError(path, f"must have shape (3,) or (n_ions, 3) matching energy, got {st.shape}",
                             field="start_index")
        st = st.astype(np.int64)
        if (st < 0).any() or (st >= np.array(e.shape[1:])).any():
            raise InputError(path, f"grid index outside the grid {e.shape[1:]}", field="start_index")
        for i, s in enumerate(st):
            if not np.isfinite(e[i][tuple(s)]):
                raise InputError(path, f"ion {i}: start point {tuple(int(k) for k in s)} is excluded (NaN)",
                                 field="start_index")
    else:
        st = None
    for i in range(n_ions):
        if not np.isfinite(e[i]).any():
            raise InputError(path, f"ion {i}: every grid point is excluded (NaN)", field="energy")
    scan["energy"] = e
    scan["start_index"] = st
    scan["single"] = single
    scan["cell"] = cell
    if "supercell" in scan:
        reps = np.asarray(scan["supercell"]).astype(int).reshape(-1)
        if reps.shape != (3,) or (reps < 1).any() or any(n % r for n, r in zip(e.shape[1:], reps)):
            raise InputError(path, f"{reps} must be 3 positive repeats dividing the grid {e.shape[1:]}",
                             field="supercell")
        scan["supercell"] = reps
    return scan


def _int_at(scan: dict, key: str, i: int):
    v = np.asarray(scan.get(key, [])).reshape(-1)
    return int(v[i]) if i < v.size else None


def _str(scan: dict, key: str, default=None):
    if key not in scan:
        return default
    v = np.asarray(scan[key])
    return str(v.item()) if v.ndim == 0 else default


# --------------------------------------------------------------------------- folding / symmetry


def fold(mask: np.ndarray, reps) -> np.ndarray:
    """Fold a supercell-grid mask into the structure cell's grid (OR over the images)."""
    if reps is None or tuple(reps) == (1, 1, 1):
        return mask
    r1, r2, r3 = (int(r) for r in reps)
    nx, ny, nz = mask.shape
    m = mask.reshape(r1, nx // r1, r2, ny // r2, r3, nz // r3)
    return m.any(axis=(0, 2, 4))


def symmetry_index_maps(shape, rotations, translations):
    """Grid-index images of every grid point under each (R, t) (fractional, x' = R x + t).

    Returns (maps (n_ops, n_points) int, exact: bool); exact is False when some image falls off
    the grid by more than 1e-6 of a grid step (then the nearest grid point is used).
    """
    n = np.asarray(shape, dtype=float)
    idx = np.stack(np.meshgrid(*(np.arange(k) for k in shape), indexing="ij"), -1).reshape(-1, 3)
    frac = idx / n
    maps, exact = [], True
    for rot, tr in zip(np.asarray(rotations, float), np.asarray(translations, float)):
        g = (frac @ rot.T + tr) * n
        gr = np.rint(g)
        if np.abs(g - gr).max() > 1e-6:
            exact = False
        gi = np.mod(gr.astype(np.int64), np.asarray(shape))
        maps.append(np.ravel_multi_index(gi.T, shape))
    return np.array(maps), exact


def expand(mask: np.ndarray, maps) -> np.ndarray:
    """Union of the images of ``mask`` under the symmetry index maps."""
    if maps is None:
        return mask
    flat = mask.ravel()
    out = np.zeros_like(flat)
    sel = np.flatnonzero(flat)
    for m in maps:
        out[m[sel]] = True
    return out.reshape(mask.shape)


# --------------------------------------------------------------------------- descriptors


def compute(scan: dict, thresholds=DEFAULT_THRESHOLDS) -> tuple[dict, list]:
    """All descriptors of a loaded scan. Returns (result dict, per-ion MinimaxResult list)."""
    from .levelmap import minimax_landscape

    thresholds = sorted({float(t) for t in thresholds} | {XI_THRESHOLD})
    e = scan["energy"]
    n_ions = e.shape[0]
    reps = scan.get("supercell")
    maps, sym_exact = None, None
    use_sym = bool(np.asarray(scan.get("symmetry_expand", False)).item()) and "sym_rotations" in scan
    if use_sym:
        cell_shape = tuple(np.array(e.shape[1:]) // (reps if reps is not None else 1))
        maps, sym_exact = symmetry_index_maps(cell_shape, scan["sym_rotations"], scan["sym_translations"])

    spread = scan.get("energy_std")
    unreliable = scan.get("unreliable")
    if spread is not None and np.ndim(spread) == 3:
        spread = spread[None]
    if unreliable is not None and np.ndim(unreliable) == 3:
        unreliable = unreliable[None]

    ions, results = [], []
    union_c = {t: None for t in thresholds}
    union_d = {t: None for t in thresholds}
    for i in range(n_ions):
        start = None if scan["start_index"] is None else tuple(scan["start_index"][i])
        r = minimax_landscape(e[i], start)
        results.append(r)
        de = e[i] - r.e_start
        ion = {
            "ion": i,
            "atom": _int_at(scan, "mobile_index", i),
            "orbit_size": _int_at(scan, "orbit_size", i),
            "start_index": list(r.start),
            "e_start_eV": r.e_start,
            "mpe_eV": float(np.min(r.mpe_axis)),
            "mpe_axis_eV": r.mpe_axis.tolist(),
            "percolation_axis_eV": r.percolation_axis.tolist(),
            "fv_connected": {}, "fv_disconnected": {},
            "fv_connected_scan_grid": {}, "fv_disconnected_scan_grid": {},
        }
        with np.errstate(invalid="ignore"):
            for t in thresholds:
                mc = r.level <= t + TOL  # NaN/inf -> False
                md = de <= t + TOL
                k = threshold_key(t)
                ion["fv_connected_scan_grid"][k] = float(mc.mean())
                ion["fv_disconnected_scan_grid"][k] = float(md.mean())
                fc, fd = fold(mc, reps), fold(md, reps)
                ion["fv_connected"][k] = float(fc.mean())
                ion["fv_disconnected"][k] = float(fd.mean())
                union_c[t] = fc if union_c[t] is None else union_c[t] | fc
                union_d[t] = fd if union_d[t] is None else union_d[t] | fd
            if unreliable is not None:
                ion["unreliable_fraction_connected"] = {
                    threshold_key(t): float(unreliable[i][r.level <= t + TOL].mean())
                    if (r.level <= t + TOL).any() else 0.0 for t in thresholds}
            if spread is not None:
                region = r.level <= XI_THRESHOLD + TOL
                ion["max_spread_connected_0.5_eV"] = float(np.nanmax(spread[i][region]))
        ion["xi"] = xi_value(ion["fv_connected"][threshold_key(XI_THRESHOLD)],
                             ion["fv_disconnected"][threshold_key(XI_THRESHOLD)])
        ions.append(ion)

    fvc = {threshold_key(t): float(expand(union_c[t], maps).mean()) for t in thresholds}
    fvd = {threshold_key(t): float(expand(union_d[t], maps).mean()) for t in thresholds}
    mpe_axis = np.min([r.mpe_axis for r in results], axis=0)
    perc_axis = np.min([r.percolation_axis for r in results], axis=0)
    cell = scan["cell"]
    out = {
        "structure": _str(scan, "name"),
        "n_ions": n_ions,
        "grid_shape": list(e.shape[1:]),
        "scan_cell_lengths_A": np.linalg.norm(cell, axis=1).tolist(),
        "scan_cell_kind": _str(scan, "cell_kind", "unknown"),
        "supercell": None if reps is None else [int(x) for x in reps],
        "calculator": _str(scan, "calculator"),
        "mpe_eV": float(np.min(mpe_axis)),
        "mpe_axis_eV": mpe_axis.tolist(),
        "percolation_axis_eV": perc_axis.tolist(),
        "percolates": bool(np.isfinite(mpe_axis).any()),
        "thresholds_eV": thresholds,
        "fv_connected": fvc,
        "fv_disconnected": fvd,
        "xi": xi_value(fvc[threshold_key(XI_THRESHOLD)], fvd[threshold_key(XI_THRESHOLD)]),
        "fv_reference": ("structure cell (supercell regions folded back)" if reps is not None
                         and tuple(reps) != (1, 1, 1) else "scanned grid"),
        "symmetry_expanded": use_sym,
        "ions_complete": (bool(np.asarray(scan["ions_complete"]).item()) if "ions_complete" in scan
                          else None),
        "scan_warnings": json.loads(_str(scan, "warnings", "[]") or "[]"),
        "symmetry_mapping_exact": sym_exact,
        "ions": ions,
        "conventions": {
            "energies": "eV relative to E(start) of each ion",
            "null": "+inf: no percolating path along that axis on the scanned grid",
            "level_map": "exact minimax (MST), 6 face neighbours, periodic",
            "fv_denominator": "all grid points, excluded (NaN) points included",
            "threshold_tolerance_eV": TOL,
        },
    }
    if unreliable is not None:
        out["unreliable_fraction_scan"] = float(np.mean(unreliable[np.isfinite(e)]))
    return out, results


# --------------------------------------------------------------------------- CUBE / figure


def structure_level_map(results: list) -> np.ndarray:
    """Min over ions of the per-ion level maps (each relative to its own start)."""
    lv = np.stack([r.level for r in results])
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(lv), np.inf, lv).min(axis=0)
    out[np.isnan(lv).all(axis=0)] = np.nan
    return out


def write_cube(path, level: np.ndarray, scan: dict, cap: float) -> None:
    """Level map (eV above the start) as a Gaussian CUBE file; excluded/unreachable -> cap."""
    from ase import Atoms
    from ase.io.cube import write_cube as _wc

    from ..io.atomic import atomic_path

    data = np.where(np.isfinite(level), np.minimum(level, cap), cap)
    if "structure_species" in scan and "structure_positions" in scan:
        atoms = Atoms(symbols=[str(s) for s in scan["structure_species"]],
                      positions=scan["structure_positions"], cell=scan["cell"], pbc=True)
    else:
        atoms = Atoms(cell=scan["cell"], pbc=True)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        _wc(fh, atoms, data, comment=f"ionflow level map (eV above start, capped at {cap} eV)")


def plot_level(path, level: np.ndarray, start, desc: dict, cap: float = 1.5) -> None:
    """Three slices of the level map through the start point (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    names = ("a", "b", "c")
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.6", over="white")
    im = None
    for k, (ax, (p, q)) in enumerate(zip(axes, ((1, 2), (0, 2), (0, 1)))):
        sl = [slice(None)] * 3
        sl[k] = start[k]
        img = np.array(level[tuple(sl)], dtype=float)
        img = np.where(np.isinf(img), cap * 10, img)
        hp, hq = 0.5 / level.shape[p], 0.5 / level.shape[q]  # pixel centres on the grid points
        im = ax.imshow(np.ma.masked_invalid(img).T, origin="lower", cmap=cmap, vmin=0, vmax=cap,
                       extent=(-hp, 1 - hp, -hq, 1 - hq), aspect="auto", interpolation="nearest")
        ax.plot(start[p] / level.shape[p], start[q] / level.shape[q], "r+", ms=10)
        ax.set_xlabel(f"{names[p]} (fractional)")
        ax.set_ylabel(f"{names[q]} (fractional)")
        ax.set_title(f"{names[k]} = {start[k] / level.shape[k]:.2f}")
    fig.colorbar(im, ax=axes, label="level (eV above site); grey excluded, white > cap", extend="max")

    def fmt(x):
        return "none" if x is None or not np.isfinite(x) else f"{x:.2f} eV"
    fig.suptitle(f"{desc.get('structure') or ''}  MPE {fmt(desc['mpe_eV'])} "
                 f"(a {fmt(desc['mpe_axis_eV'][0])}, b {fmt(desc['mpe_axis_eV'][1])}, "
                 f"c {fmt(desc['mpe_axis_eV'][2])})   Xi = {desc['xi']:.3f}")
    save_figure(fig, path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI


def _thresholds(text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not vals or any(not math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"need finite thresholds: {text!r}")
    return vals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scan", help="scan.npz written by 'ionflow pes-scan' (or any file with the same contract)")
    p.add_argument("-o", "--output", required=True, help="descriptors.json")
    p.add_argument("--thresholds", type=_thresholds, default=list(DEFAULT_THRESHOLDS),
                   help="FV energy thresholds in eV (0.5 is always added: Xi needs it)")
    p.add_argument("--cube", help="write the (structure-level) level map as a Gaussian CUBE file")
    p.add_argument("--cube-cap", type=float, default=5.0,
                   help="eV; CUBE value of excluded/unreachable points and upper clip")
    p.add_argument("--figure", help="PNG with level-map slices through the start point")
    p.add_argument("--name", help="structure name to record (default: from scan.npz)")


def run(args: argparse.Namespace) -> int:
    from ..io.atomic import write_json
    from ..provenance import provenance

    scan = load_scan(args.scan)
    if args.name:
        scan["name"] = np.array(args.name)
    desc, results = compute(scan, args.thresholds)
    scan_prov = None
    if "provenance_json" in scan:
        try:
            scan_prov = json.loads(str(np.asarray(scan["provenance_json"]).item()))
        except (ValueError, TypeError):
            scan_prov = None
    desc["provenance"] = provenance(
        stage="pes-descriptors", inputs=[args.scan],
        options={"thresholds": desc["thresholds_eV"], "cube_cap": args.cube_cap},
        scan=scan_prov)
    level = structure_level_map(results)
    if args.cube:
        write_cube(args.cube, level, scan, args.cube_cap)
    if args.figure:
        plot_level(args.figure, level, results[0].start, desc)
    write_json(args.output, desc)
    print(f"pes-descriptors: {desc['structure'] or args.scan}: MPE {desc['mpe_eV']:.3f} eV, "
          f"Xi {desc['xi']:.3f}, FV_conn(0.5) {desc['fv_connected']['0.5']:.4f}, "
          f"FV_disc(0.5) {desc['fv_disconnected']['0.5']:.4f} -> {args.output}")
    return 0
