"""Ensemble disagreement along an MD trajectory (query-by-committee, as DP-GEN's model deviation).

Every K production steps the other ensemble members evaluate the current frame. The per-atom force
deviation is sigma_i = sqrt(<|F_i^m - <F_i>|^2>_m) over the M members (driver included); its maximum
over atoms is logged. Frames whose maximum exceeds the trust threshold are saved as candidates for
DFT labelling (extxyz, no labels, config_type = md_candidate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def force_deviation(forces: np.ndarray) -> np.ndarray:
    """Per-atom force deviation sigma_i (eV/A) of an (M, N, 3) stack of member forces."""
    forces = np.asarray(forces, dtype=float)
    if forces.ndim != 3 or forces.shape[0] < 2 or forces.shape[2] != 3:
        raise ValueError(f"need (M>=2, N, 3) forces, got shape {forces.shape}")
    dev = forces - forces.mean(axis=0, keepdims=True)
    return np.sqrt((dev ** 2).sum(axis=2).mean(axis=0))


HEADER = "# step max_force_dev_eV_A mean_force_dev_eV_A energy_std_eV_per_atom\n"


class DisagreementMonitor:
    """Called from the force callback with the frame the driving model just evaluated."""

    def __init__(self, others: dict, every: int, threshold_eV_A: float, table: Path, candidates: Path,
                 info: dict):
        self.others = dict(others)          # name -> ASE calculator (not the driving member)
        self.every = int(every)
        self.threshold = float(threshold_eV_A)
        self.table = Path(table)
        self.candidates = Path(candidates)
        self.info = dict(info)
        self.last_step = -1
        self.max_seen = 0.0
        self.n_candidates = 0
        self.n_evaluated = 0

    def __call__(self, step: int, atoms, forces: np.ndarray, energy: float) -> None:
        if step % self.every or step <= self.last_step:
            return
        self.last_step = step
        stack, energies = [forces], [energy]
        for calc in self.others.values():
            a = atoms.copy()
            a.calc = calc
            energies.append(a.get_potential_energy())
            stack.append(a.get_forces())
        sigma = force_deviation(np.stack(stack))
        smax, smean = float(sigma.max()), float(sigma.mean())
        estd = float(np.std(energies) / len(atoms))
        self.n_evaluated += 1
        self.max_seen = max(self.max_seen, smax)
        new = not self.table.exists()
        with open(self.table, "a") as fh:
            if new:
                fh.write(HEADER)
            fh.write(f"{step} {smax:.8g} {smean:.8g} {estd:.8g}\n")
        if smax > self.threshold:
            self._save_candidate(step, atoms, sigma)

    def _save_candidate(self, step: int, atoms, sigma: np.ndarray) -> None:
        from ase import Atoms
        from ase.io import write

        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        frame.info.update(self.info)
        frame.info.update({"step": int(step), "max_force_dev": float(sigma.max()),
                           "config_type": "md_candidate"})
        frame.arrays["force_dev"] = sigma
        write(self.candidates, frame, format="extxyz", append=True)
        self.n_candidates += 1

    def summary(self) -> dict:
        return {"members": 1 + len(self.others), "every": self.every, "threshold_eV_A": self.threshold,
                "evaluated_this_session": self.n_evaluated}
