"""Synthetic trajectories with known transport coefficients (tests, benchmarks, demos).

Mobile ions are Gaussian random walkers with a known D (per dimension variance 2 D dt per frame);
``group_size`` g > 1 moves g walkers with identical steps, so the charge diffusivity is g D and the
Haven ratio is exactly 1/g. Framework atoms vibrate (white noise of ``vib_A``) around fixed sites;
a uniform drift may be added to every atom (the framework reference must remove it).
"""

from __future__ import annotations

import numpy as np


def walkers(n_frames: int, *, n_mobile: int = 16, n_framework: int = 8, D_A2_fs: float = 1e-3,
            dt_fs: float = 10.0, cell=(12.0, 12.0, 12.0), group_size: int = 1, drift_A_fs=(0.0, 0.0, 0.0),
            vib_A: float = 0.05, seed: int = 0, mobile: str = "Li", framework: str = "O"):
    """Return (symbols, unwrapped positions (T, N, 3) Å, cell (3, 3) Å). Mobile atoms come first."""
    rng = np.random.default_rng(seed)
    cell = np.diag(cell) if np.ndim(cell) == 1 else np.asarray(cell, float)
    if n_mobile % group_size:
        raise ValueError("n_mobile must be a multiple of group_size")
    n_groups = n_mobile // group_size
    steps = rng.normal(0.0, np.sqrt(2.0 * D_A2_fs * dt_fs), size=(n_frames, n_groups, 3))
    steps[0] = 0.0
    traj_g = np.cumsum(steps, axis=0)
    mob = np.repeat(traj_g, group_size, axis=1) + rng.uniform(0, 1, (n_mobile, 3)) @ cell
    sites = rng.uniform(0, 1, (n_framework, 3)) @ cell
    fw = sites + rng.normal(0.0, vib_A, size=(n_frames, n_framework, 3))
    pos = np.concatenate([mob, fw], axis=1)
    pos += np.arange(n_frames)[:, None, None] * dt_fs * np.asarray(drift_A_fs, float)
    symbols = np.array([mobile] * n_mobile + [framework] * n_framework)
    return symbols, pos, cell


def write_lammps_dump(path, symbols, positions, cell, *, mode: str = "unwrapped", stride: int = 10,
                      element: bool = True, precision: int = 8) -> None:
    """Write a LAMMPS text dump. mode: 'unwrapped' (xu yu zu), 'images' (x y z ix iy iz),
    'wrapped' (x y z only). Cell rows a, b, c must be a LAMMPS-style lower-triangular cell."""
    cell = np.asarray(cell, float)
    T, N, _ = positions.shape
    inv = np.linalg.inv(cell)
    frac = positions @ inv
    img = np.floor(frac)
    wrapped = (frac - img) @ cell
    ids = np.arange(1, N + 1)
    types = {s: i + 1 for i, s in enumerate(dict.fromkeys(symbols))}
    tcol = [s if element else str(types[s]) for s in symbols]
    f = f"%.{precision}g"
    if mode == "unwrapped":
        cols, fmt = "xu yu zu", f"{f} {f} {f}"
    elif mode == "images":
        cols, fmt = "x y z ix iy iz", f"{f} {f} {f} %d %d %d"
    elif mode == "wrapped":
        cols, fmt = "x y z", f"{f} {f} {f}"
    else:
        raise ValueError(mode)
    line = "%d %s " + fmt
    frame_fmt = "\n".join([line] * N) + "\n"
    a, b, c = cell
    xy, xz, yz = b[0], c[0], c[1]
    tric = any(abs(v) > 0 for v in (xy, xz, yz)) or abs(a[1]) + abs(a[2]) + abs(b[2]) > 0
    if abs(a[1]) + abs(a[2]) + abs(b[2]) > 0:
        raise ValueError("cell must be lower triangular (LAMMPS convention)")
    lx, ly, lz = a[0], b[1], c[2]
    if tric:
        xlo_b = min(0.0, xy, xz, xy + xz)
        xhi_b = lx + max(0.0, xy, xz, xy + xz)
        box = (f"ITEM: BOX BOUNDS xy xz yz pp pp pp\n{xlo_b:.10g} {xhi_b:.10g} {xy:.10g}\n"
               f"{min(0.0, yz):.10g} {ly + max(0.0, yz):.10g} {xz:.10g}\n0 {lz:.10g} {yz:.10g}\n")
    else:
        box = f"ITEM: BOX BOUNDS pp pp pp\n0 {lx:.10g}\n0 {ly:.10g}\n0 {lz:.10g}\n"
    kind = "element" if element else "type"
    with open(path, "w") as fh:
        for t in range(T):
            fh.write(f"ITEM: TIMESTEP\n{t * stride}\nITEM: NUMBER OF ATOMS\n{N}\n{box}"
                     f"ITEM: ATOMS id {kind} {cols}\n")
            if mode == "unwrapped":
                data = np.column_stack([positions[t]])
            elif mode == "images":
                data = np.column_stack([wrapped[t], img[t]])
            else:
                data = wrapped[t]
            vals = []
            for i, row in enumerate(data.tolist()):
                vals += [ids[i], tcol[i], *row]
            fh.write(frame_fmt % tuple(vals))
