"""Generate the small committed test dataset ``tests/data/li3po4_tiny.extxyz``.

What: 48 frames of two 32-atom Li-P-O cells, labeled with SevenNet-0 (energy, forces, stress):

* ``S1`` = gamma-Li3PO4, Pnma conventional cell (Wang et al. 1995, AMCSD 0013843), 32 atoms;
* ``S2`` = beta-Li3PO4, Pmn2_1 (Keffer et al. 1967, AMCSD 0012673) doubled along c, 32 atoms.

For each structure and each temperature (300, 600, 900 K) a short SevenNet-0 Langevin MD
(1 fs steps, friction 0.02 /fs) is started from the crystal; after 20 steps of equilibration, 8
snapshots are taken every 6 steps. Each snapshot then gets a random symmetric strain
(|e_ij| <= 1.5 %, atoms move with the cell) so that the stress labels vary, and is relabeled
with a SevenNet-0 single point. The MD is only a way to sample plausible thermal displacements;
these are SURROGATE labels (``labels = "sevennet-0"``), not DFT.

Why: tests of train/md/analysis need a real, physically sensible Li-P-O dataset that follows the
dataset contract (CONTRIBUTING.md) and is small (< 1 MB, 48 x 32 atoms), with two structures so
that ensemble members can be trained on structure subsets.

Frame ``info``: structure, temperature (K), source (this script), step (MD step), split
(train/val/test, stratified per structure and temperature: 6/1/1 of each group of 8, seeded),
config_type ``fpmd`` (thermal MD snapshots), labels ``sevennet-0``. Energy/forces/stress are stored
as an ASE SinglePointCalculator (stress in eV/A^3, ASE sign convention).

Run (about 1-2 min on one CPU core; deterministic for a given seed on one machine):

    OMP_NUM_THREADS=1 .venv/bin/python scripts/make_test_dataset.py [--out tests/data/li3po4_tiny.extxyz] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

TEMPERATURES_K = (300.0, 600.0, 900.0)
N_EQUIL = 20
N_SNAP = 8
EVERY = 6
MAX_STRAIN = 0.015
SPLIT_PER_GROUP = {"train": 6, "val": 1, "test": 1}  # of each group of N_SNAP frames


def gamma_li3po4():
    """gamma-Li3PO4, Pnma (No. 62), 32 atoms (copy of shared notes structures.py, Pnma setting)."""
    from ase.spacegroup import crystal

    return crystal(
        symbols=["Li", "Li", "P", "O", "O", "O"],
        basis=[(0.1627, 0.5016, -0.3008), (0.4246, 0.75, -0.2045), (0.4115, 0.25, -0.3079),
               (0.3418, 0.0441, -0.2054), (0.0503, 0.25, -0.2928), (0.0896, 0.75, -0.1223)],
        spacegroup=62, cellpar=[10.4612, 6.1113, 4.9208, 90, 90, 90], primitive_cell=False,
    )


def beta_li3po4_x2():
    """beta-Li3PO4, Pmn2_1 (No. 31), 16 atoms, doubled along c -> 32 atoms."""
    from ase.spacegroup import crystal

    atoms = crystal(
        symbols=["Li", "Li", "P", "O", "O", "O"],
        basis=[(0.2481, 0.3277, 0.9860), (0.5, 0.8428, 0.9893), (0.0, 0.8243, 0.0),
               (0.20777, 0.68676, 0.89610), (0.0, 0.1052, 0.9004), (0.5, 0.1814, 0.8172)],
        spacegroup=31, cellpar=[6.115, 5.2394, 4.8554, 90, 90, 90],
    )
    return atoms.repeat((1, 1, 2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests/data/li3po4_tiny.extxyz"))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    import torch
    from ase import Atoms, units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from sevenn.calculator import SevenNetCalculator

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    calc = SevenNetCalculator("7net-0", device="cpu")
    frames = []
    for sname, build in (("S1", gamma_li3po4), ("S2", beta_li3po4_x2)):
        for temp in TEMPERATURES_K:
            atoms = build()
            atoms.calc = calc
            MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
            dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=temp, friction=0.02 / units.fs,
                           rng=rng, fixcm=False)
            dyn.run(N_EQUIL)
            labels = np.array([s for s, n in SPLIT_PER_GROUP.items() for _ in range(n)])
            labels = labels[rng.permutation(N_SNAP)]
            for k in range(N_SNAP):
                dyn.run(EVERY)
                # a clean copy: no momenta / spacegroup keys from the builder
                snap = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions,
                             cell=atoms.cell.array, pbc=True)
                eps = rng.uniform(-MAX_STRAIN, MAX_STRAIN, (3, 3))
                eps = 0.5 * (eps + eps.T)
                snap.set_cell(snap.cell.array @ (np.eye(3) + eps), scale_atoms=True)
                snap.calc = calc
                e = snap.get_potential_energy()
                f = snap.get_forces()
                s = snap.get_stress(voigt=False)
                snap.calc = SinglePointCalculator(snap, energy=e, forces=f, stress=s)
                snap.info.update(structure=sname, temperature=float(temp),
                                 source="scripts/make_test_dataset.py", step=int(dyn.nsteps),
                                 split=str(labels[k]), config_type="fpmd", labels="sevennet-0")
                frames.append(snap)
            print(f"{sname} {temp:.0f} K: {N_SNAP} frames", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.extxyz")
    write(tmp, frames, format="extxyz")
    os.replace(tmp, out)
    print(f"wrote {out} ({len(frames)} frames, {out.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
