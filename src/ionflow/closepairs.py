"""Close-pair frames: short mobile-ion contacts that first-principles MD never visits.

Allegro models trained on FPMD frames alone can blow up in long MD because FPMD never samples
short ion–X contacts. This stage takes dataset frames (low-temperature ones by default), picks a
mobile ion i and its nearest partner j of species X, and moves i along the i→j line so that
d(i, j) takes values on a grid between a *floor* and *dmax*, the smallest i–X distance the
dataset has seen. Defaults come from the dataset's own per-frame minimum-distance distribution:

    floor = clip(d_min − k·σ_min, lo·d_min, hi·d_min)

with d_min the smallest distance of the pair over the dataset, σ_min the standard deviation of
the per-frame minimum distance (how far thermal motion reaches), k = ``--floor-sigmas``,
(lo, hi) = ``--floor-clip``. Floors are computed for every species pair, and a constructed frame
is rejected (and redrawn) if any pair other than the constructed one is closer than its floor.
Everything is deterministic from ``--seed``. Frames come out unlabeled, tagged
``config_type=close_pair``, ``pair``, ``target_distance``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import InputError
from .io.frames import read_frames, write_frames
from .io.atomic import save_figure, write_json

#: info keys of the dataset contract carried over from the base frame
CARRIED_KEYS = ("structure", "temperature", "source", "step")


# --------------------------------------------------------------------------- pairs


def pair_name(a: str, b: str) -> str:
    """Canonical (alphabetical) species-pair name, e.g. ``Li-O``."""
    return "-".join(sorted((a, b)))


def parse_pair_values(items: Iterable[str], option: str) -> dict[str, float]:
    """``["Li-O=1.4", "Li-Li=1.8"]`` → ``{"Li-O": 1.4, "Li-Li": 1.8}`` (canonical names)."""
    out: dict[str, float] = {}
    for item in items or ():
        try:
            key, val = item.split("=")
            a, b = key.strip().split("-")
            out[pair_name(a.strip(), b.strip())] = float(val)
        except ValueError:
            raise InputError("command line", f"'{item}' is not of the form A-B=VALUE (e.g. Li-O=1.4)",
                             field=option) from None
    return out


# --------------------------------------------------------------------------- statistics


def min_distance_matrix(frames: Sequence, species: Sequence[str], cutoff: float) -> np.ndarray:
    """Per-frame minimum distance of every species pair: array (n_frames, n_species, n_species).

    ``inf`` where no such pair is within ``cutoff`` Å. Periodic images are included (ASE
    neighbour list), so small cells are handled exactly.
    """
    from ase.neighborlist import neighbor_list

    ns = len(species)
    code = {s: k for k, s in enumerate(species)}
    out = np.full((len(frames), ns, ns), np.inf)
    for f, atoms in enumerate(frames):
        z = np.array([code[s] for s in atoms.get_chemical_symbols()])
        i, j, d = neighbor_list("ijd", atoms, cutoff)
        flat = np.full(ns * ns, np.inf)
        np.minimum.at(flat, z[i] * ns + z[j], d)
        out[f] = flat.reshape(ns, ns)
    return out


def derive_limits(
    dmin_frames: np.ndarray,
    species: Sequence[str],
    *,
    floor_sigmas: float = 3.0,
    floor_clip: tuple[float, float] = (0.7, 0.9),
    floor_overrides: dict[str, float] | None = None,
    dmax_overrides: dict[str, float] | None = None,
) -> dict[str, dict]:
    """Floor and dmax (Å) of every species pair from per-frame minimum distances.

    Returns ``{pair: {d_min, sigma_min, floor, dmax, floor_from, dmax_from}}``; pairs never seen
    within the cutoff get ``floor = None`` unless overridden.
    """
    lo, hi = floor_clip
    floor_overrides = {pair_name(*k.split("-")): v for k, v in (floor_overrides or {}).items()}
    dmax_overrides = {pair_name(*k.split("-")): v for k, v in (dmax_overrides or {}).items()}
    limits: dict[str, dict] = {}
    for a in range(len(species)):
        for b in range(a, len(species)):
            name = pair_name(species[a], species[b])
            col = dmin_frames[:, a, b]
            col = col[np.isfinite(col)]
            rec: dict = {"d_min": None, "sigma_min": None, "floor": None, "dmax": None,
                         "floor_from": "not seen", "dmax_from": "not seen"}
            if col.size:
                d_min = float(col.min())
                sigma = float(col.std())
                rec.update(d_min=d_min, sigma_min=sigma, dmax=d_min, dmax_from="dataset d_min",
                           floor=float(np.clip(d_min - floor_sigmas * sigma, lo * d_min, hi * d_min)),
                           floor_from=f"clip(d_min - {floor_sigmas:g} sigma, {lo:g} d_min, {hi:g} d_min)")
            if name in floor_overrides:
                rec.update(floor=floor_overrides.pop(name), floor_from="override")
            if name in dmax_overrides:
                rec.update(dmax=dmax_overrides.pop(name), dmax_from="override")
            limits[name] = rec
    for name in list(floor_overrides) + list(dmax_overrides):
        raise InputError("command line", f"pair {name} does not occur in the dataset "
                                         f"(species: {', '.join(species)})", field="--floor/--dmax")
    return limits


# --------------------------------------------------------------------------- construction


def _select_bases(frames: Sequence, temperatures: Sequence[float] | None, from_split: str) -> dict[str, list[int]]:
    """Indices of base frames per structure: the given temperatures, else each structure's lowest."""
    by_struct: dict[str, list[int]] = defaultdict(list)
    for k, a in enumerate(frames):
        if a.info.get("config_type", "fpmd") == "close_pair":
            continue
        if from_split != "any" and a.info.get("split", from_split) != from_split:
            continue
        by_struct[str(a.info.get("structure", "structure"))].append(k)
    out: dict[str, list[int]] = {}
    for s, idx in sorted(by_struct.items()):
        temps = np.array([float(frames[k].info.get("temperature", np.nan)) for k in idx])
        if temperatures:
            keep = np.zeros(len(idx), bool)
            for t in temperatures:
                keep |= np.isclose(temps, float(t))
        else:
            keep = temps == np.nanmin(temps) if np.isfinite(temps).any() else np.ones(len(idx), bool)
        if keep.any():
            out[s] = [k for k, m in zip(idx, keep) if m]
    return out


def _violations(atoms, floor_table: np.ndarray, code: dict[str, int], skip: tuple[int, int, float]) -> int:
    """Number of pairs closer than their floor, not counting the constructed contact ``skip``."""
    from ase.neighborlist import neighbor_list

    cutoff = float(np.nanmax(floor_table))
    z = np.array([code[s] for s in atoms.get_chemical_symbols()])
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    bad = d < floor_table[z[i], z[j]] - 1e-9
    ci, cj, dt = skip
    constructed = (((i == ci) & (j == cj)) | ((i == cj) & (j == ci))) & (np.abs(d - dt) < 1e-6)
    return int(np.count_nonzero(bad & ~constructed))


def construct(
    dataset: Sequence,
    *,
    species: Sequence[str],
    partners: Sequence[str] | None = None,
    n_per_pair: int = 8,
    seed: int = 0,
    temperatures: Sequence[float] | None = None,
    from_split: str = "train",
    floor_sigmas: float = 3.0,
    floor_clip: tuple[float, float] = (0.7, 0.9),
    floors: dict[str, float] | None = None,
    dmax: dict[str, float] | None = None,
    rattle: float = 0.0,
    max_attempts: int = 200,
    stats_cutoff: float = 5.0,
    source: str = "dataset",
) -> tuple[list, dict]:
    """Build close-pair frames from ``dataset`` (list of ase.Atoms). Returns (frames, summary).

    For each structure and each target pair (ion, X) — X in ``partners`` (default: every species,
    the ion's own included) — ``n_per_pair`` frames whose ion–X distance is
    ``floor + (k + 1/2)(dmax − floor)/n``, k = 0..n−1.
    """
    if n_per_pair < 1:
        raise InputError("command line", "must be >= 1", field="--n")
    base_pool = [a for a in dataset if a.info.get("config_type", "fpmd") != "close_pair"]
    if not base_pool:
        raise InputError(source, "no FPMD frames (every frame is config_type=close_pair)", field="config_type")
    all_species = sorted({s for a in base_pool for s in a.get_chemical_symbols()})
    for s in species:
        if s not in all_species:
            raise InputError(source, f"mobile species {s} does not occur in the dataset "
                                     f"(species: {', '.join(all_species)})", field="--species")
    partners = list(partners) if partners else list(all_species)
    for x in partners:
        if x not in all_species:
            raise InputError(source, f"partner species {x} does not occur in the dataset "
                                     f"(species: {', '.join(all_species)})", field="--partners")
    code = {s: k for k, s in enumerate(all_species)}

    dmin_frames = min_distance_matrix(base_pool, all_species, stats_cutoff)
    limits = derive_limits(dmin_frames, all_species, floor_sigmas=floor_sigmas, floor_clip=floor_clip,
                           floor_overrides=floors, dmax_overrides=dmax)
    floor_table = np.full((len(all_species),) * 2, np.nan)
    for a, sa in enumerate(all_species):
        for b, sb in enumerate(all_species):
            f = limits[pair_name(sa, sb)]["floor"]
            floor_table[a, b] = 0.0 if f is None else f

    targets = [(ion, x) for ion in species for x in partners]
    for ion, x in targets:
        lim = limits[pair_name(ion, x)]
        if lim["floor"] is None or lim["dmax"] is None:
            raise InputError(source, f"pair {ion}-{x} is never within {stats_cutoff} Å in the dataset; "
                                     f"give --floor {ion}-{x}=... and --dmax {ion}-{x}=...", field="--partners")
        if not 0 < lim["floor"] < lim["dmax"]:
            raise InputError("command line", f"pair {ion}-{x}: need 0 < floor ({lim['floor']:.3f} Å) < dmax "
                                             f"({lim['dmax']:.3f} Å)", field="--floor/--dmax")

    bases = _select_bases(dataset, temperatures, from_split)
    if not bases:
        what = f"temperatures {list(temperatures)}" if temperatures else "the lowest temperature"
        raise InputError(source, f"no base frames at {what} in split '{from_split}'", field="--temperatures")

    rng = np.random.default_rng(seed)
    out: list = []
    skipped: list[dict] = []
    counts: dict[str, int] = defaultdict(int)
    for struct, idx in bases.items():
        syms0 = np.array(dataset[idx[0]].get_chemical_symbols())
        for ion, x in targets:
            name = f"{ion}-{x}"
            if ion not in syms0 or x not in syms0 or (ion == x and np.count_nonzero(syms0 == ion) < 2):
                skipped.append({"structure": struct, "pair": name, "reason": "species not in structure"})
                continue
            lim = limits[pair_name(ion, x)]
            floor, top = lim["floor"], lim["dmax"]
            grid = floor + (np.arange(n_per_pair) + 0.5) * (top - floor) / n_per_pair
            for d_t in grid:
                for _attempt in range(max_attempts):
                    frame = _try_one(dataset, idx, ion, x, float(d_t), rng, rattle, floor_table, code)
                    if frame is not None:
                        break
                else:
                    # geometrically unreachable: e.g. Li cannot approach P closer than its O tetrahedron
                    # allows without an Li-O contact below the Li-O floor. Recorded, never forced.
                    skipped.append({"structure": struct, "pair": name, "target_distance": float(d_t),
                                    "reason": f"no placement without another pair below its floor in "
                                              f"{max_attempts} attempts"})
                    continue
                atoms, base, i, j, moved = frame
                info = {k: dataset[base].info[k] for k in CARRIED_KEYS if k in dataset[base].info}
                info.update(config_type="close_pair", pair=name, target_distance=float(d_t),
                            floor=float(floor), pair_i=int(i), pair_j=int(j), displacement=float(moved),
                            base_index=int(base), closepair_id=len(out))
                atoms.info = info
                out.append(atoms)
                counts[name] += 1

    summary = {
        "n_frames": len(out),
        "species": list(species),
        "partners": partners,
        "n_per_pair": n_per_pair,
        "frames_per_pair": dict(counts),
        "base_frames": {s: len(v) for s, v in bases.items()},
        "base_temperatures": {s: sorted({float(dataset[k].info.get("temperature", np.nan)) for k in v})
                              for s, v in bases.items()},
        "limits": limits,
        "targets": {f"{i}-{x}": limits[pair_name(i, x)] for i, x in targets},
        "skipped": skipped,
        "rattle_A": rattle,
        "stats_cutoff_A": stats_cutoff,
    }
    return out, summary


def _try_one(dataset, idx, ion, x, d_t, rng, rattle, floor_table, code):
    """One random draw: base frame, ion i, its nearest X partner j; move i to distance d_t of j."""
    from ase import Atoms

    base = idx[int(rng.integers(len(idx)))]
    src = dataset[base]
    atoms = Atoms(numbers=src.numbers, positions=src.positions, cell=src.cell, pbc=src.pbc)
    sym = np.array(atoms.get_chemical_symbols())
    ions = np.flatnonzero(sym == ion)
    i = int(ions[rng.integers(len(ions))])
    cand = np.flatnonzero(sym == x)
    cand = cand[cand != i]
    vec = atoms.get_distances(i, cand, mic=True, vector=True)
    dist = np.linalg.norm(vec, axis=1)
    k = int(np.argmin(dist))
    j, v, d0 = int(cand[k]), vec[k], float(dist[k])
    if rattle > 0:  # draw before any rejection so the random stream does not depend on the outcome
        noise = rng.normal(0.0, rattle, size=(len(atoms), 3))
    if d0 <= d_t:
        return None
    pos = atoms.get_positions()
    pos[i] = pos[i] + v * (1.0 - d_t / d0)
    if rattle > 0:
        noise[[i, j]] = 0.0
        pos = pos + noise
    atoms.set_positions(pos)
    atoms.wrap()
    if _violations(atoms, floor_table, code, (i, j, d_t)):
        return None
    return atoms, base, i, j, d0 - d_t


# --------------------------------------------------------------------------- figure


def plot_min_distances(before: Sequence, after: Sequence, pairs: Sequence[str], limits: dict, path,
                       cutoff: float = 5.0, title: str = "", note: str | None = None) -> None:
    """Histogram of the per-frame minimum ion–X distance, without and with close-pair frames.

    One panel per pair (names ``ion-X``); dashed lines mark the floor and the dataset's d_min.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    species = sorted({s for a in list(before) + list(after) for s in a.get_chemical_symbols()})
    code = {s: k for k, s in enumerate(species)}
    mb = min_distance_matrix(before, species, cutoff)
    ma = min_distance_matrix(after, species, cutoff)
    n = len(pairs)
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow), squeeze=False)
    for ax, name in zip(axes.ravel(), pairs):
        a, b = name.split("-")
        xb = mb[:, code[a], code[b]]
        xa = ma[:, code[a], code[b]]
        xb, xa = xb[np.isfinite(xb)], xa[np.isfinite(xa)]
        lo = min(xb.min() if xb.size else np.inf, xa.min() if xa.size else np.inf)
        hi = max(xb.max() if xb.size else -np.inf, xa.max() if xa.size else -np.inf)
        if np.isfinite(lo):
            bins = np.linspace(lo - 0.05, hi + 0.05, 40)
            ax.hist(xa, bins=bins, histtype="stepfilled", alpha=0.4, color="C1",
                    label=f"with close frames ({xa.size})")
            ax.hist(xb, bins=bins, histtype="step", lw=1.5, color="C0", label=f"without ({xb.size})")
        lim = limits.get(pair_name(a, b), {})
        if lim.get("floor"):
            ax.axvline(lim["floor"], color="k", ls="--", lw=0.8, label="floor")
        if lim.get("d_min"):
            ax.axvline(lim["d_min"], color="0.5", ls=":", lw=0.8, label="dataset d_min")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("per-frame min distance (Å)")
        ax.set_ylabel("frames")
        ax.legend(fontsize=6)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- IO


# --------------------------------------------------------------------------- CLI


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", type=Path, help="dataset extxyz (output of 'ionflow ingest')")
    p.add_argument("-o", "--output", type=Path, required=True, help="close-pair frames extxyz (unlabeled)")
    p.add_argument("--species", type=_csv, default=["Li"], help="mobile ion species (comma list)")
    p.add_argument("--partners", type=_csv, default=None,
                   help="partner species X (comma list); default: every species in the dataset, the ion's own "
                        "included (Li-Li)")
    p.add_argument("--n", type=int, default=8, help="frames per structure and pair (grid points)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--temperatures", type=lambda s: [float(t) for t in _csv(s)], default=None,
                   help="base-frame temperatures (K, comma list); default: each structure's lowest")
    p.add_argument("--from-split", default="train", choices=["train", "val", "test", "any"],
                   help="take base frames from this split only (train keeps val/test independent)")
    p.add_argument("--floor-sigmas", type=float, default=3.0,
                   help="default floor = d_min - k*sigma of the per-frame minimum distance (this is k)")
    p.add_argument("--floor-clip", type=lambda s: tuple(float(t) for t in _csv(s)), default=(0.7, 0.9),
                   help="clip the default floor to [lo*d_min, hi*d_min]: 'lo,hi'")
    p.add_argument("--floor", action="append", default=[], metavar="A-B=ANGSTROM",
                   help="override the floor of a pair (repeatable)")
    p.add_argument("--dmax", action="append", default=[], metavar="A-B=ANGSTROM",
                   help="override the upper end of a pair's grid (default: dataset d_min; repeatable)")
    p.add_argument("--rattle-A", type=float, default=0.0,
                   help="Gaussian rattle (Å) of all atoms except the constructed pair")
    p.add_argument("--max-attempts", type=int, default=200, help="random draws per frame before giving up")
    p.add_argument("--stats-cutoff-A", type=float, default=5.0, help="neighbour cutoff for distance statistics")
    p.add_argument("--summary", type=Path, help="summary JSON (default: OUTPUT with .json)")
    p.add_argument("--plot", type=Path, help="per-frame minimum-distance figure, without/with the new frames")


def run(args: argparse.Namespace) -> int:
    from .provenance import provenance

    if len(args.floor_clip) != 2 or not 0 < args.floor_clip[0] <= args.floor_clip[1] < 1:
        raise InputError("command line", "need 0 < lo <= hi < 1", field="--floor-clip")
    if args.rattle_A < 0:
        raise InputError("command line", "must be >= 0", field="--rattle-A")
    dataset = read_frames(args.dataset, "frames")
    frames, summary = construct(
        dataset, species=args.species, partners=args.partners, n_per_pair=args.n, seed=args.seed,
        temperatures=args.temperatures, from_split=args.from_split, floor_sigmas=args.floor_sigmas,
        floor_clip=args.floor_clip, floors=parse_pair_values(args.floor, "--floor"),
        dmax=parse_pair_values(args.dmax, "--dmax"), rattle=args.rattle_A, max_attempts=args.max_attempts,
        stats_cutoff=args.stats_cutoff_A, source=str(args.dataset))
    if not frames:
        raise InputError(args.dataset, "no close-pair frames could be built (no structure has the species pairs)",
                         field="--partners")
    options = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("dataset", "output")}
    summary["provenance"] = provenance(stage="closepairs", inputs=[args.dataset], options=options,
                                       seeds={"closepairs": args.seed})
    summary_path = args.summary or args.output.with_suffix(".json")
    if args.plot:
        plot_min_distances(dataset, list(dataset) + frames, list(summary["targets"]), summary["limits"],
                           args.plot, cutoff=args.stats_cutoff_A,
                           title=f"{len(frames)} close-pair frames (unlabeled)")
    write_json(summary_path, summary)
    write_frames(args.output, frames)
    print(f"closepairs: {len(frames)} frames -> {args.output}")
    unreachable = [k for k in summary["skipped"] if "target_distance" in k]
    if unreachable:
        print(f"closepairs: warning: {len(unreachable)} target distance(s) unreachable without breaking another "
              f"floor (listed under 'skipped' in {summary_path}): "
              + ", ".join(f"{k['structure']} {k['pair']} {k['target_distance']:.2f} Å" for k in unreachable))
    for name, lim in summary["targets"].items():
        print(f"  {name}: floor {lim['floor']:.3f} Å ({lim['floor_from']}), dmax {lim['dmax']:.3f} Å, "
              f"{summary['frames_per_pair'].get(name, 0)} frames")
    return 0
