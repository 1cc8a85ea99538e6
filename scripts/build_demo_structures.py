#!/usr/bin/env python
"""Build the demo's two 132-atom Li3.25Si0.25P0.75O4 model structures S1 and S2 (SevenNet-0 relaxed).

Recipe (the seed study's model electrolyte (Li4SiO4)0.25(Li3PO4)0.75, scaled to one supercell):

1. gamma-Li3PO4 (Pnma, 32 atoms, published Wyckoff positions, ``ionflow.structures``),
   repeated 1x2x2 -> Li48 P16 O64 (128 atoms).
2. Replace 4 of the 16 P by Si (all C(16,4) = 1820 choices are enumerated, minimum-image
   distances):
   * S1 "dispersed": the choice that maximises the shortest Si-Si distance (ties: largest
     sum of the six Si-Si distances), i.e. the SiO4 units as far apart as possible;
   * S2 "clustered": the choice with the smallest sum of the six Si-Si distances, i.e. the
     four SiO4 units as one compact cluster of neighbouring tetrahedra.
   Remaining exact ties are broken by a seeded random draw (``--seed``).
3. Add 4 interstitial Li (charge balance, one per Si): candidate voids are grid points
   farthest from every atom (clearance >= ``--min-clearance`` A, de-duplicated within
   ``--dedup`` A); SevenNet-0 evaluates, energy only, the host plus ONE Li at each candidate
   (a restricted PES scan); the 4 lowest-energy candidates that are mutually
   >= ``--min-li-sep`` A apart are taken (greedy).
4. Relax positions and cell with SevenNet-0 (BFGS on a FrechetCellFilter, ``--fmax``
   eV/A, at most ``--max-steps`` steps), then label the result with SevenNet-0 energy,
   forces and stress.

Outputs (shipped in the repo): ``data/demo/{S1,S2}_ground_state.extxyz`` (info: structure,
labels="sevennet-0", source, si_arrangement, ...; SinglePointCalculator with energy, forces,
stress) and ``data/demo/{S1,S2}_build.json`` (candidate sites and their energies, chosen
sites, relaxation summary, provenance). All labels are SevenNet-0 surrogates, NOT DFT.

Documented command (about 10 min per structure on one contended CPU core; run the two
structures as two processes)::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/build_demo_structures.py --structures S1 &
    OMP_NUM_THREADS=1 .venv/bin/python scripts/build_demo_structures.py --structures S2 &
    wait
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ARRANGEMENTS = {"S1": "dispersed", "S2": "clustered"}
REPS = (1, 2, 2)
N_SI = 4


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def choose_si_sites(host, arrangement: str, rng: np.random.Generator, n_si: int = N_SI) -> list[int]:
    """Indices (into ``host``) of the P atoms to turn into Si, for 'dispersed' or 'clustered'."""
    from ionflow.structures import mic_distance_matrix

    p_idx = np.flatnonzero(host.numbers == 15)
    frac = host.get_scaled_positions()[p_idx]
    dmat = mic_distance_matrix(np.asarray(host.cell), frac, frac)
    combos = np.array(list(itertools.combinations(range(len(p_idx)), n_si)))
    pairs = np.array(list(itertools.combinations(range(n_si), 2)))
    d = dmat[combos[:, pairs[:, 0]], combos[:, pairs[:, 1]]]  # (ncombo, 6)
    dmin, dsum = d.min(1).round(6), d.sum(1).round(6)
    if arrangement == "dispersed":
        best = np.flatnonzero(dmin == dmin.max())
        best = best[dsum[best] == dsum[best].max()]
    elif arrangement == "clustered":
        best = np.flatnonzero(dsum == dsum.min())
    else:
        raise ValueError(f"unknown Si arrangement {arrangement!r}")
    pick = combos[best[rng.integers(len(best))]]
    return sorted(int(p_idx[k]) for k in pick)


def energy_only(calc):
    """SevenNet energy-only evaluator (no force/stress head; ~0.6 s CPU per 130 atoms)."""
    import torch
    import sevenn._keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph

    emodel = copy.deepcopy(calc.model)
    emodel.delete_module_by_key("force_output")
    emodel.set_is_batch_data(False)
    emodel.eval()

    def energy(atoms) -> float:
        g = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, calc.cutoff, with_shift=False))
        with torch.inference_mode():
            return float(emodel(g)[KEY.PRED_TOTAL_ENERGY])

    return energy


def relax(atoms, calc, fmax: float, max_steps: int):
    """Variable-cell BFGS relaxation; returns (relaxed copy, steps, final fmax incl. cell dofs)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    at = atoms.copy()
    at.calc = calc
    filt = FrechetCellFilter(at)
    opt = BFGS(filt, logfile=None, maxstep=0.1)
    t0 = time.time()
    for _ in opt.irun(fmax=fmax, steps=max_steps):
        if opt.nsteps % 10 == 0:
            f = np.sqrt((filt.get_forces() ** 2).sum(1)).max()
            log(f"  relax step {opt.nsteps}: E={at.get_potential_energy():.4f} eV fmax={f:.3f} "
                f"V={at.get_volume():.1f} A3 ({(time.time() - t0) / max(opt.nsteps, 1):.1f} s/step)")
    fmax_final = float(np.sqrt((filt.get_forces() ** 2).sum(1)).max())
    return at, int(opt.nsteps), fmax_final


def build(name: str, args, calc, energy) -> None:
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from ionflow.io.atomic import atomic_path, write_json
    from ionflow.provenance import provenance
    from ionflow.structures import (check, density_g_cm3, gamma_li3po4, greedy_separated,
                                    min_distances, min_pair_distance, spacegroup, void_sites)

    seed = args.seed + {"S1": 1, "S2": 2}.get(name, 0)
    rng = np.random.default_rng(seed)
    arrangement = ARRANGEMENTS[name]
    unit = gamma_li3po4()
    check("gamma-Li3PO4", unit)
    host = unit.repeat(REPS)
    host.info.clear()  # drop ase.spacegroup bookkeeping (no longer true after substitution)
    for key in [k for k in host.arrays if k not in ("numbers", "positions")]:
        del host.arrays[key]
    si = choose_si_sites(host, arrangement, rng)
    host.numbers[si] = 14
    log(f"{name}: {arrangement} Si on P sites {si}; Si-Si distances "
        f"{sorted(np.round(host.get_all_distances(mic=True)[np.ix_(si, si)][np.triu_indices(4, 1)], 2).tolist())}")

    frac, clearance = void_sites(host, spacing=args.grid, min_clearance=args.min_clearance,
                                 dedup=args.dedup)
    log(f"{name}: {len(frac)} candidate void sites (clearance {clearance.min():.2f}-{clearance.max():.2f} A)")
    e_host = energy(host)
    t0 = time.time()
    e_ins = np.empty(len(frac))
    for k, f in enumerate(frac):
        trial = host.copy()
        trial.append("Li")
        trial.positions[-1] = f @ np.asarray(host.cell)
        e_ins[k] = energy(trial) - e_host
        if (k + 1) % 20 == 0:
            log(f"  scan {k + 1}/{len(frac)} ({(time.time() - t0) / (k + 1):.2f} s/point)")
    order = np.lexsort((rng.random(len(frac)), np.round(e_ins, 6)))
    chosen = greedy_separated(order, np.asarray(host.cell), frac, N_SI, args.min_li_sep)
    log(f"{name}: chosen interstitials {chosen}, insertion energies {np.round(e_ins[chosen], 3)} eV "
        f"(scan min {e_ins.min():.3f}, max {e_ins.max():.3f})")

    start = host.copy()
    for k in chosen:
        start.append("Li")
        start.positions[-1] = frac[k] @ np.asarray(host.cell)
    li_int = list(range(len(host), len(start)))
    # one Li per Si, so the formula is Li52 Si4 P12 O64 = 16 x Li3.25 Si0.25 P0.75 O4
    log(f"{name}: relaxing {start.get_chemical_formula()} (fmax {args.fmax}, <= {args.max_steps} steps)")
    t0 = time.time()
    relaxed, nsteps, fmax_final = relax(start, calc, args.fmax, args.max_steps)
    t_relax = time.time() - t0
    e, f, s = relaxed.get_potential_energy(), relaxed.get_forces(), relaxed.get_stress()
    dmin = min_pair_distance(relaxed)
    if not (np.isfinite(e) and np.isfinite(f).all() and dmin > 1.2):
        raise RuntimeError(f"{name}: relaxation gave a bad structure (E={e}, min distance {dmin:.2f} A)")

    out = relaxed.copy()
    out.calc = SinglePointCalculator(out, energy=e, forces=f, stress=s)
    out.info.update(
        structure=name, labels="sevennet-0", source="SevenNet-0 relaxation (scripts/build_demo_structures.py)",
        temperature=0.0, step=0, config_type="ground_state", si_arrangement=arrangement,
        si_indices=np.array(si), li_interstitial_indices=np.array(li_int),
        relax_steps=nsteps, relax_fmax=round(fmax_final, 4), seed=seed,
    )
    data = Path(args.out_dir)
    path = data / f"{name}_ground_state.extxyz"
    with atomic_path(path) as tmp:
        write(tmp, out, format="extxyz")
    cp = out.cell.cellpar()
    summary = dict(
        structure=name, formula=out.get_chemical_formula(), natoms=len(out), si_arrangement=arrangement,
        si_indices=si, li_interstitial_indices=li_int,
        supercell_of="gamma-Li3PO4 (Wang et al. 1995, AMCSD 0013843)", repeats=list(REPS),
        scan=dict(n_candidates=len(frac), grid_spacing=args.grid, min_clearance=args.min_clearance,
                  dedup=args.dedup, host_energy_eV=e_host, candidates_frac=frac.round(5),
                  clearance_A=clearance.round(3), insertion_energy_eV=e_ins.round(5),
                  chosen=chosen, min_li_separation_A=args.min_li_sep),
        relax=dict(optimizer="BFGS + FrechetCellFilter", fmax=args.fmax, steps=nsteps,
                   converged=fmax_final <= args.fmax, final_fmax=fmax_final, wall_s=round(t_relax, 1)),
        result=dict(energy_eV=e, energy_per_atom_eV=e / len(out), max_force_eV_A=float(np.abs(f).max()),
                    stress_GPa=(np.asarray(s) * 160.21766).round(3), cellpar=np.round(cp, 4),
                    volume_A3=out.get_volume(), density_g_cm3=density_g_cm3(out),
                    min_distances_A=min_distances(out), spacegroup=spacegroup(out, symprec=0.1)),
        labels="sevennet-0 (surrogate, NOT DFT)",
        provenance=provenance(stage="build_demo_structures", options=vars(args), seeds={"seed": seed},
                              labeler="sevennet-0", engine="sevenn"),
    )
    write_json(data / f"{name}_build.json", summary)
    log(f"{name}: wrote {path}: {out.get_chemical_formula()} E={e:.4f} eV, {nsteps} relax steps "
        f"({t_relax:.0f} s), final fmax {fmax_final:.3f}, a,b,c={np.round(cp[:3], 3)}, "
        f"min distance {dmin:.2f} A")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", nargs="+", default=["S1", "S2"], choices=sorted(ARRANGEMENTS))
    ap.add_argument("--out-dir", default="data/demo")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--grid", type=float, default=0.25, help="void-search grid spacing (A)")
    ap.add_argument("--min-clearance", type=float, default=1.7,
                    help="smallest distance from a candidate void to any atom (A)")
    ap.add_argument("--dedup", type=float, default=1.0, help="candidates closer than this are merged (A)")
    ap.add_argument("--min-li-sep", type=float, default=2.5, help="min distance between inserted Li (A)")
    ap.add_argument("--fmax", type=float, default=0.05, help="relaxation force threshold (eV/A)")
    ap.add_argument("--max-steps", type=int, default=300, help="relaxation step cap")
    args = ap.parse_args(argv)

    import torch
    from sevenn.calculator import SevenNetCalculator

    torch.set_num_threads(1)
    calc = SevenNetCalculator("7net-0", device="cpu")
    energy = energy_only(calc)
    for name in args.structures:
        build(name, args, calc, energy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
