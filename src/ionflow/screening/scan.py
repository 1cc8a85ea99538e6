"""``ionflow pes-scan``: frozen-framework energy scan of one mobile ion on a regular grid.

For each scanned mobile ion, the ion is placed on every point (i/nx, j/ny, k/nz) of a regular
fractional grid of the scanned cell while all other atoms stay frozen; points closer than the
exclusion radius to another atom are not evaluated (NaN). Unlike the published method
(Maevskiy et al. 2025), which scans the raw cell so that the ion drags its own periodic images
along, the cell is repeated until every perpendicular cell width is >= ``--min-length``
(``--min-length 0`` reproduces the raw-cell scan; ``cell_kind`` records which was used).

The structure's own grid has n_k = ceil(|a_k| / step) points, rounded up to a multiple of the
denominators of the space-group translations so that symmetry maps grid points onto grid points;
the supercell grid is that grid repeated, so regions fold back into the structure cell exactly.

Output contract (scan.npz): ``energy`` (nx,ny,nz) eV, or (n_ions,nx,ny,nz) for several ions,
NaN = excluded; ``cell`` (3,3) A, rows = lattice vectors of the scanned cell; ``start_index``
(3,) or (n_ions,3) = grid index of the start (default: argmin); ``species``/``positions`` of the
frozen atoms ((N-1,) / (N-1,3), with a leading n_ions axis for several ions); plus metadata
(see :func:`scan_structure`). Ensembles add ``energy_std`` (spread of each member's energy
relative to its own value at the start point), ``unreliable`` (energy_std > threshold) and
``energy_members``.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError, IonflowError

# --------------------------------------------------------------------------- structure


def read_structure(spec: str):
    """Atoms from a file (CIF/POSCAR/extxyz/...; last frame) or ``builtin:NAME``."""
    if spec.startswith("builtin:"):
        from .. import structures

        name = spec.split(":", 1)[1]
        if name not in structures.BUILDERS:
            raise InputError(spec, f"unknown builtin structure; known: {sorted(structures.BUILDERS)}")
        return structures.BUILDERS[name]()
    path = Path(spec)
    if not path.is_file():
        raise InputError(path, "structure file not found")
    from ase.io import read

    try:
        atoms = read(str(path), index=-1)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a user error
        raise InputError(path, f"not a readable structure ({exc.__class__.__name__}: {exc})") from None
    if not atoms.pbc.all() or atoms.cell.rank != 3:
        raise InputError(path, "needs a periodic 3-D cell", field="cell")
    return atoms


def symmetry(atoms, symprec: float = 1e-3) -> dict:
    """spglib symmetry of the structure cell: operations, equivalent atoms, space group."""
    import spglib

    cell = (np.array(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if ds is None:
        n = len(atoms)
        return {"rotations": np.eye(3, dtype=int)[None], "translations": np.zeros((1, 3)),
                "equivalent": np.arange(n), "spacegroup": "P1 (1)"}
    return {"rotations": np.array(ds.rotations), "translations": np.array(ds.translations),
            "equivalent": np.array(ds.equivalent_atoms),
            "spacegroup": f"{ds.international} ({ds.number})"}


def translation_denominators(translations: np.ndarray, max_den: int = 12) -> np.ndarray:
    """Per axis, the lcm of the denominators of the symmetry translations (1 if irrational)."""
    dens = np.ones(3, dtype=int)
    for t in np.asarray(translations, float):
        for k in range(3):
            f = Fraction(float(t[k]) % 1.0).limit_denominator(max_den)
            if abs(float(f) - (t[k] % 1.0)) < 1e-4:
                dens[k] = math.lcm(int(dens[k]), f.denominator)
    return dens


def cell_heights(cell: np.ndarray) -> np.ndarray:
    cell = np.asarray(cell, float)
    return abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def choose_grid(atoms, step: float, dens: np.ndarray, min_length: float):
    """(structure-cell grid (3,), supercell repeats (3,))."""
    lengths = np.linalg.norm(np.array(atoms.cell), axis=1)
    n = np.maximum(np.ceil(lengths / step - 1e-9).astype(int), 1)
    n = (np.ceil(n / dens).astype(int) * dens).astype(int)
    reps = np.maximum(np.ceil(min_length / cell_heights(atoms.cell) - 1e-9).astype(int), 1)
    return n, reps


def exclusion_mask(cell, frac_points, frame_pos, radius: float) -> np.ndarray:
    """True where a grid point is closer than ``radius`` to any frame atom (periodic)."""
    from scipy.spatial import cKDTree

    from .calculators import lattice_images

    cell = np.asarray(cell, float)
    if radius <= 0 or len(frame_pos) == 0:
        return np.zeros(len(frac_points), dtype=bool)
    fr = np.asarray(frame_pos) @ np.linalg.inv(cell)
    fr -= np.floor(fr)
    sh = lattice_images(cell, radius)
    img = ((fr[None] + sh[:, None, :]).reshape(-1, 3)) @ cell
    d, _ = cKDTree(img).query(np.asarray(frac_points) @ cell, k=1, distance_upper_bound=radius)
    return d < radius


# --------------------------------------------------------------------------- evaluation (optionally in workers)

_WORKER: dict = {}


def _worker_init(spec: str, device: str, batch_size, locality: str) -> None:
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    from .calculators import make_evaluator

    _WORKER["ev"] = make_evaluator(spec, device=device, batch_size=batch_size, locality=locality)
    _WORKER["key"] = None


def _worker_eval(key, atoms, m, check_points, points):
    ev = _WORKER["ev"]
    if _WORKER["key"] != key:
        _prepare(ev, atoms, m, check_points)
        _WORKER["key"] = key
    out = ev.energies(points)
    out["info"] = ev.info
    return out


def _prepare(ev, atoms, m, check_points):
    if hasattr(ev, "members"):
        ev.prepare(atoms, m, check_points=check_points)
    else:
        ev.prepare(atoms, m)


def _chunks(n: int, size: int):
    return [(s, min(s + size, n)) for s in range(0, n, size)]


class Checkpoint:
    """Finished chunks of an interrupted scan, reused by a rerun with identical inputs.

    Stored next to the output as ``.NAME.partial.npz`` (atomic writes, at most every ``every_s``
    seconds and after each ion) and removed when the scan completes; a file written for other
    inputs (different key) is ignored and replaced.
    """

    def __init__(self, path, key: str, every_s: float = 120.0):
        self.path, self.key, self.every = Path(path), key, every_s
        self.chunks: dict[tuple[int, int], dict] = {}
        self.last = time.monotonic()
        self.restored = 0
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    if str(z["key"]) == key:
                        for name in z.files:
                            if name.endswith("_energy"):
                                ion, c = (int(x[1:]) for x in name.split("_")[:2])
                                d = {"energy": z[name], "info": json.loads(str(z[f"i{ion}_c{c}_info"]))}
                                if f"i{ion}_c{c}_members" in z.files:
                                    d["members"] = z[f"i{ion}_c{c}_members"]
                                self.chunks[(ion, c)] = d
                self.restored = len(self.chunks)
            except Exception:  # noqa: BLE001 - a damaged partial file is just not reused
                self.chunks = {}

    def get(self, ion: int, c: int):
        return self.chunks.get((ion, c))

    def put(self, ion: int, c: int, res: dict, force: bool = False) -> None:
        self.chunks[(ion, c)] = res
        if force or time.monotonic() - self.last > self.every:
            self.save()

    def save(self) -> None:
        from ..io.atomic import atomic_path

        arrays = {"key": np.array(self.key)}
        for (ion, c), d in self.chunks.items():
            arrays[f"i{ion}_c{c}_energy"] = d["energy"]
            arrays[f"i{ion}_c{c}_info"] = np.array(json.dumps(d.get("info") or {}, default=str))
            if "members" in d:
                arrays[f"i{ion}_c{c}_members"] = d["members"]
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        self.last = time.monotonic()

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()


def evaluate_points(ev, pool, key, atoms, m, check_points, points, label: str, chunk: int,
                    ckpt: Checkpoint | None = None, ion: int = 0) -> dict:
    """Energies at ``points``; in the pool's workers if given; finished chunks are checkpointed."""
    t0 = time.perf_counter()
    parts = _chunks(len(points), chunk)
    results = [ckpt.get(ion, c) if ckpt else None for c in range(len(parts))]
    todo = [c for c, r in enumerate(results) if r is None]
    done = sum(parts[c][1] - parts[c][0] for c in range(len(parts)) if results[c] is not None)
    if done:
        print(f"pes-scan: {label}: {done} points restored from {ckpt.path}", flush=True)
    if pool is None:
        if todo:
            _prepare(ev, atoms, m, check_points)
        for c in todo:
            a, b = parts[c]
            results[c] = ev.energies(points[a:b])
            results[c]["info"] = ev.info
            done += b - a
            if ckpt:
                ckpt.put(ion, c, results[c])
            _progress(label, done, len(points), t0)
    else:
        futs = {c: pool.submit(_worker_eval, key, atoms, m, check_points, points[parts[c][0]:parts[c][1]])
                for c in todo}
        for c, f in futs.items():
            results[c] = f.result()
            done += parts[c][1] - parts[c][0]
            if ckpt:
                ckpt.put(ion, c, results[c])
            _progress(label, done, len(points), t0)
    if ckpt:
        ckpt.save()
    out = {"energy": np.concatenate([r["energy"] for r in results]) if results else np.empty(0),
           "info": results[0].get("info") if results else {}}
    if results and "members" in results[0]:
        out["members"] = np.concatenate([r["members"] for r in results], axis=1)
    return out


def _progress(label, done, total, t0):
    dt = time.perf_counter() - t0
    rate = done / dt if dt > 0 else float("nan")
    eta = (total - done) / rate if rate > 0 else float("nan")
    print(f"pes-scan: {label}: {done}/{total} points, {rate:.2f} points/s, ETA {eta:.0f} s",
          flush=True)


# --------------------------------------------------------------------------- the scan


def select_ions(atoms, species: str, sym: dict, all_ions: bool, ions: list[int] | None,
                max_ions: int | None, seed: int):
    """Input-structure indices to scan and the size of each one's symmetry orbit."""
    sym_arr = np.array(atoms.get_chemical_symbols())
    mobile = np.flatnonzero(sym_arr == species)
    if mobile.size == 0:
        raise InputError("--mobile", f"no {species!r} atoms in the structure "
                         f"(species: {sorted(set(sym_arr))})")
    eq = sym["equivalent"]
    if ions:
        bad = [i for i in ions if i < 0 or i >= len(atoms) or sym_arr[i] != species]
        if bad:
            raise InputError("--ions", f"indices {bad} are not {species} atoms of the structure")
        chosen = np.array(sorted(set(ions)))
        complete = False
    elif all_ions:
        chosen = mobile
        complete = True
    else:
        chosen = np.array(sorted({int(eq[i]) for i in mobile}))
        chosen = np.array([int(mobile[eq[mobile] == eq[c]].min()) for c in chosen])
        complete = True
    if max_ions is not None and len(chosen) > max_ions:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(chosen, size=max_ions, replace=False))
        complete = False
    orbit = np.array([int((eq[mobile] == eq[c]).sum()) for c in chosen])
    return chosen.astype(int), orbit, complete


def scan_structure(atoms, evaluator, *, mobile: str = "Li", grid_step: float = 0.25,
                   min_length: float = 8.0, exclusion_radius: float = 1.2, all_ions: bool = False,
                   ions: list[int] | None = None, max_ions: int | None = None, seed: int = 0,
                   start: str = "argmin", spread_threshold: float = 0.1, workers: int = 1,
                   worker_spec: tuple | None = None, chunk: int = 256, name: str | None = None,
                   symprec: float = 1e-3, checkpoint: str | Path | None = None,
                   calculator_key: str = "") -> dict:
    """Run the scan; returns the arrays of scan.npz (see module doc).

    ``evaluator`` may be None when ``workers`` > 1: each worker builds its own from ``worker_spec``
    = (calculator, device, batch_size, locality). With ``checkpoint`` (a file path), finished chunks
    are saved there and reused by a rerun whose inputs (structure, grid, ions, exclusion radius,
    ``calculator_key``) are identical; the file is removed when the scan completes.
    """
    sym = symmetry(atoms, symprec)
    chosen, orbit, complete = select_ions(atoms, mobile, sym, all_ions, ions, max_ions, seed)
    dens = translation_denominators(sym["translations"])
    n_cell, reps = choose_grid(atoms, grid_step, dens, min_length)
    sc = atoms.repeat(tuple(int(r) for r in reps))
    cell = np.array(sc.cell)
    shape = tuple(int(x) for x in n_cell * reps)
    grid = np.stack(np.meshgrid(*(np.arange(k) / k for k in shape), indexing="ij"), -1).reshape(-1, 3)
    cart = grid @ cell
    n_ions = len(chosen)
    warnings: list[str] = []
    ckpt = None
    if checkpoint is not None:
        import hashlib

        h = hashlib.sha256()
        for arr in (sc.positions, cell, sc.numbers, chosen, np.array(shape)):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps([calculator_key, exclusion_radius, chunk, seed]).encode())
        ckpt = Checkpoint(checkpoint, h.hexdigest())

    energy = np.full((n_ions,) + shape, np.nan)
    members = None
    start_idx = np.zeros((n_ions, 3), dtype=np.int64)
    site_idx = np.zeros((n_ions, 3), dtype=np.int64)
    base = np.zeros(n_ions)
    n_eval = np.zeros(n_ions, dtype=np.int64)
    seconds = np.zeros(n_ions)
    checks: list[dict] = []
    info: dict = {}
    pool = None
    if workers > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                      initializer=_worker_init, initargs=worker_spec)
    try:
        for k, m in enumerate(chosen):
            t0 = time.perf_counter()
            frame = np.flatnonzero(np.arange(len(sc)) != m)
            excl = exclusion_mask(cell, grid, sc.positions[frame], exclusion_radius)
            todo = np.flatnonzero(~excl)
            if todo.size == 0:
                raise IonflowError(f"ion {m}: every grid point lies within {exclusion_radius} A of "
                                   f"another atom; lower --exclusion-radius")
            site = sc.positions[m].copy()
            sf = site @ np.linalg.inv(cell)
            site_idx[k] = np.mod(np.rint((sf - np.floor(sf)) * shape).astype(int), shape)
            rng = np.random.default_rng(seed + k)
            check = np.vstack([site[None], cart[rng.choice(todo, size=min(2, todo.size), replace=False)]])
            pts = np.vstack([site[None], cart[todo]])  # the site itself gives the base energy
            res = evaluate_points(evaluator, pool, (k, int(m)), sc, int(m), check, pts,
                                  f"ion {k + 1}/{n_ions} (atom {m})", chunk, ckpt=ckpt, ion=k)
            base[k] = res["energy"][0]
            flat = energy[k].reshape(-1)
            flat[todo] = res["energy"][1:]
            if "members" in res:
                if members is None:
                    members = np.full((res["members"].shape[0], n_ions) + shape, np.nan)
                mf = members[:, k].reshape(res["members"].shape[0], -1)
                mf[:, todo] = res["members"][:, 1:]
            info = dict(res["info"])
            if "locality_check" in info:
                checks.append({"atom": int(m), **info.pop("locality_check")})
                info["locality_checks"] = list(checks)
            n_eval[k] = pts.shape[0]
            seconds[k] = time.perf_counter() - t0
            amin = np.unravel_index(int(np.nanargmin(energy[k])), shape)
            start_idx[k] = site_idx[k] if start == "site" else amin
            if start == "site" and not np.isfinite(energy[k][tuple(site_idx[k])]):
                start_idx[k] = amin
                warnings.append(f"ion {m}: grid point nearest to the site is excluded; start = argmin")
            emin = float(np.nanmin(energy[k]))
            if emin < base[k] - 0.2:
                warnings.append(f"ion {m}: PES minimum {base[k] - emin:.3f} eV below the energy at "
                                f"the ion's own site (structure not relaxed?)")
            d = (np.array(amin) / shape - sf)
            d -= np.rint(d)
            dist = float(np.linalg.norm(d @ cell))
            if dist > 0.5:
                warnings.append(f"ion {m}: PES minimum {dist:.2f} A from the ion's own site")
    except BaseException:
        if ckpt is not None and ckpt.chunks:
            ckpt.save()  # keep what is done (also on SIGTERM, see run())
            print(f"pes-scan: interrupted; {len(ckpt.chunks)} finished chunks kept in {ckpt.path}",
                  file=sys.stderr)
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if ckpt is not None:
        ckpt.remove()
    for w in warnings:
        print(f"pes-scan: warning: {w}", file=sys.stderr)

    sc_species = np.array(sc.get_chemical_symbols())
    frozen_species = np.stack([np.delete(sc_species, m) for m in chosen])
    frozen_pos = np.stack([np.delete(sc.positions, m, axis=0) for m in chosen])
    out = {
        "energy": energy,
        "cell": cell,
        "start_index": start_idx,
        "species": frozen_species,
        "positions": frozen_pos,
        "structure_species": sc_species,
        "structure_positions": sc.positions.copy(),
        "mobile_index": chosen.astype(np.int64),
        "input_index": chosen.astype(np.int64),
        "mobile_species": np.array(mobile),
        "site_index": site_idx,
        "base_energy": base,
        "orbit_size": orbit,
        "ions_complete": np.array(complete),
        "raw_cell": np.array(atoms.cell),
        "supercell": reps.astype(np.int64),
        "cell_kind": np.array("raw" if tuple(reps) == (1, 1, 1) else "supercell"),
        "grid_shape": np.array(shape),
        "grid_step": np.array(grid_step),
        "min_length": np.array(min_length),
        "exclusion_radius": np.array(exclusion_radius),
        "calculator": np.array(str(info.get("calculator", "unknown"))),
        "calculator_info": np.array(json.dumps(info, default=str)),
        "spacegroup": np.array(sym["spacegroup"]),
        "sym_rotations": sym["rotations"].astype(np.int64),
        "sym_translations": sym["translations"],
        "symmetry_expand": np.array(not all_ions and not ions),
        "n_evaluated": n_eval,
        "seconds": seconds,
        "warnings": np.array(json.dumps(warnings)),
        "name": np.array(name or ""),
    }
    if members is not None:
        ref = members.reshape(members.shape[0], n_ions, -1)[
            :, np.arange(n_ions), np.ravel_multi_index(start_idx.T, shape)]
        rel = members - ref[:, :, None, None, None]
        std = rel.std(axis=0)
        out["energy_std"] = std
        with np.errstate(invalid="ignore"):
            out["unreliable"] = std > spread_threshold
        out["energy_members"] = members
        out["member_names"] = np.array([mb["name"] for mb in info.get("members", [])])
        out["spread_threshold"] = np.array(spread_threshold)
    if n_ions == 1:  # contract: no leading ion axis for one ion
        for key in ("energy", "start_index", "species", "positions", "energy_std", "unreliable"):
            if key in out:
                out[key] = out[key][0]
        if "energy_members" in out:
            out["energy_members"] = out["energy_members"][:, 0]
    return out


# --------------------------------------------------------------------------- CLI


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("structure", help="structure file (CIF, POSCAR, extxyz, ...; last frame) or builtin:NAME")
    p.add_argument("-o", "--output", required=True, help="scan.npz")
    p.add_argument("--calculator", default="sevennet",
                   help="sevennet[:MODEL[:MODAL]] (energy-only SevenNet, default 7net-0) or "
                        "ensemble:MANIFEST (NequIP/Allegro ensemble manifest, cut-out evaluation)")
    p.add_argument("--grid-step", type=float, default=0.25, help="maximum grid spacing along each cell vector (A)")
    p.add_argument("--min-length", type=float, default=8.0,
                   help="repeat the cell until every perpendicular width is >= this (A); 0 = raw cell")
    p.add_argument("--exclusion-radius", type=float, default=1.2,
                   help="A; grid points closer than this to another atom are not evaluated (NaN)")
    p.add_argument("--mobile", default="Li", help="mobile species")
    p.add_argument("--all-ions", action="store_true",
                   help="scan every mobile ion, not one per symmetry orbit (spglib)")
    p.add_argument("--ions", type=_ints, help="comma-separated indices (0-based, input structure) to scan")
    p.add_argument("--max-ions", type=int, help="scan at most this many ions (random, --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for --max-ions and the locality-check points")
    p.add_argument("--start", choices=["argmin", "site"], default="argmin",
                   help="start point of the level map: PES minimum or grid point nearest the ion's site")
    p.add_argument("--spread-threshold", type=float, default=0.1,
                   help="eV; ensemble points with a larger member spread are flagged unreliable")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--batch-size", type=int,
                   help="grid points per model call (default: GPU 64; CPU 8 for ensembles, 1 for SevenNet)")
    p.add_argument("--locality", choices=["auto", "on", "off"], default="auto",
                   help="ensemble: cut-out evaluation (verified at run time; auto falls back to full cells)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (one torch thread each)")
    p.add_argument("--symprec", type=float, default=1e-3, help="spglib symmetry tolerance (A)")
    p.add_argument("--name", help="structure name recorded in the output (default: file stem)")
    p.add_argument("--no-checkpoint", action="store_true",
                   help="do not keep finished chunks in .OUTPUT.partial.npz for a rerun after an interruption")


def run(args: argparse.Namespace) -> int:
    from ..io.atomic import atomic_path
    from ..provenance import provenance
    from .calculators import _device, make_evaluator

    for opt in ("grid_step",):
        if not getattr(args, opt) > 0:
            raise InputError(f"--{opt.replace('_', '-')}", "must be > 0")
    if args.min_length < 0 or args.exclusion_radius < 0:
        raise InputError("--min-length/--exclusion-radius", "must be >= 0")
    if args.workers < 1:
        raise InputError("--workers", "must be >= 1")
    atoms = read_structure(args.structure)
    name = args.name or (args.structure.split(":", 1)[1] if args.structure.startswith("builtin:")
                         else Path(args.structure).stem)
    # CPU: SevenNet one by one (batching costs), Allegro cut-outs in small batches (best measured)
    batch = args.batch_size or (64 if _device(args.device).type == "cuda"
                                else 8 if args.calculator.startswith("ensemble:") else 1)
    # with worker processes every worker loads the models itself; the parent does not need them
    ev = None if args.workers > 1 else make_evaluator(args.calculator, device=args.device,
                                                       batch_size=batch, locality=args.locality)
    if ev is None and not args.calculator.startswith(("sevennet", "ensemble:")):
        make_evaluator(args.calculator)  # the one-line error for a bad --calculator
    if ev is None and args.calculator.startswith("ensemble:"):
        from .calculators import read_manifest

        read_manifest(args.calculator.split(":", 1)[1])  # fail here, not in a worker
    t0 = time.perf_counter()
    # SLURM/Snakemake stop jobs with SIGTERM: turn it into SystemExit so finished chunks are saved
    prev_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = scan_structure(
        atoms, ev, mobile=args.mobile, grid_step=args.grid_step, min_length=args.min_length,
        exclusion_radius=args.exclusion_radius, all_ions=args.all_ions, ions=args.ions,
        max_ions=args.max_ions, seed=args.seed, start=args.start,
        spread_threshold=args.spread_threshold, workers=args.workers,
        worker_spec=(args.calculator, args.device, batch, args.locality), name=name,
        symprec=args.symprec, calculator_key=f"{args.calculator} {args.locality}",
        checkpoint=None if args.no_checkpoint else
        Path(args.output).parent / f".{Path(args.output).name}.partial.npz")
    wall = time.perf_counter() - t0
    signal.signal(signal.SIGTERM, prev_term)
    inputs = [args.structure] if Path(args.structure).is_file() else []
    man = args.calculator.split(":", 1)[1] if args.calculator.startswith("ensemble:") else None
    if man:
        inputs.append(man)
    prov = provenance(stage="pes-scan", inputs=inputs, seeds={"seed": args.seed},
                      options={k: v for k, v in vars(args).items() if not k.startswith("_")},
                      engine=json.loads(str(out["calculator_info"])), wall_s=wall)
    out["provenance_json"] = np.array(json.dumps(prov, default=str))
    with atomic_path(args.output) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **out)
    e = out["energy"]
    print(f"pes-scan: {name}: {out['cell_kind']} {out['supercell'].tolist()} of the cell, grid "
          f"{out['grid_shape'].tolist()}, {int(out['n_evaluated'].sum())} energies for "
          f"{len(out['mobile_index'])} ion(s) in {wall:.1f} s "
          f"({np.isnan(e).mean():.0%} excluded) -> {args.output}")
    return 0
