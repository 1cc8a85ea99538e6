"""Ensemble disagreement along an MD trajectory (query-by-committee, as DP-GEN's model deviation).

Every K production steps every ensemble member evaluates the frame. The per-atom force deviation is
sigma_i = sqrt(<|F_i^m - <F_i>|^2>_m) over the M members (driver included); its maximum over atoms is
logged. Frames whose maximum exceeds the trust threshold are saved as candidates for DFT labelling
(extxyz, no labels, config_type = md_candidate).

Two ways to get it, same files:
- post hoc, ``ionflow md-disagreement RUN_DIR --manifests ...`` on the finished dump (the workflow:
  an MD run then depends on its own member only, so retraining one member reruns only its MD, and
  the disagreement of every run is recomputed cheaply; works for both MD engines);
- in the run, ``ionflow md --ensemble E --member M`` with the python engine (:class:`DisagreementMonitor`
  in the force callback, for interactive use).

    ionflow md-disagreement results/md/S1/m0/700K/seed1 --manifests results/models/*/manifest.json \
        --every 100 --threshold-eV-A 0.3
"""

from __future__ import annotations

import argparse
import os
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


def read_table(table: Path) -> np.ndarray:
    """Rows (step, max dev, mean dev, energy std) of a disagreement.dat; (0, 4) when it is missing
    or has the header only (a run that blew up before production)."""
    if table.exists() and any(ln.strip() and not ln.startswith("#") for ln in table.read_text().splitlines()):
        return np.loadtxt(table, comments="#", ndmin=2)
    return np.empty((0, 4))


def table_summary(rows: np.ndarray) -> dict:
    """Frames evaluated and the maximum / mean of the per-frame maximum force deviation."""
    return {
        "frames_evaluated": int(rows.shape[0]),
        "max_force_dev_eV_A": float(rows[:, 1].max()) if rows.size else None,
        "mean_max_force_dev_eV_A": float(rows[:, 1].mean()) if rows.size else None,
        "mean_energy_std_eV_per_atom": float(rows[:, 3].mean()) if rows.size else None,
    }


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
        new = not self.table.exists() or self.table.stat().st_size == 0
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


# ------------------------------------------------------------------------------------ post hoc
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="an MD run directory (dump.lammpstrj + status.json)")
    parser.add_argument("--manifests", type=Path, nargs="+", required=True,
                        help="manifest.json of every ensemble member (the run's driver included)")
    parser.add_argument("--driver", help="member that drove the run (default: status.json 'member')")
    parser.add_argument("--every", type=int, default=100,
                        help="evaluate dumped frames whose step is a multiple of this (production steps)")
    parser.add_argument("--threshold-eV-A", type=float, default=0.3,
                        help="trust threshold on the maximum per-atom force deviation")


def run(args: argparse.Namespace) -> int:
    summary = evaluate_run(args.run_dir, args.manifests, every=args.every,
                           threshold_eV_A=args.threshold_eV_A, driver=args.driver)
    print(f"ionflow md-disagreement: {args.run_dir}: {summary['frames_evaluated']} frames x "
          f"{len(summary['members'])} members, max force deviation {summary['max_force_dev_eV_A']} eV/A, "
          f"{summary['candidates']} candidate frames")
    return 0


def evaluate_run(run_dir: Path, manifests: list[Path], *, every: int, threshold_eV_A: float,
                 driver: str | None = None) -> dict:
    """Evaluate every member on the run's dumped frames at multiples of ``every`` steps; write
    disagreement.dat, candidates.extxyz (only if any) and disagreement.json atomically."""
    from ase import Atoms

    from ..errors import InputError, IonflowError
    from ..io.atomic import atomic_path, write_json
    from ..io.jsonio import read_json
    from ..io.trajectory import TrajectoryReader
    from ..provenance import provenance
    from . import rundir
    from .models import load_calculator, load_member

    run_dir = Path(run_dir)
    status_path = run_dir / rundir.STATUS
    status = read_json(status_path)
    for key in ("structure", "member", "temperature_K", "seed"):
        if key not in status:
            raise InputError(status_path, "missing", key)
    if every < 1:
        raise IonflowError(f"--every must be >= 1 (got {every})")
    if status.get("timestep_fs") and status.get("dt_fs_between_frames"):
        dump_every = round(status["dt_fs_between_frames"] / status["timestep_fs"])
        if every % dump_every:
            raise IonflowError(f"--every {every} is not a multiple of the run's dump interval "
                               f"({dump_every} steps, {status_path})")
    members = [load_member(m) for m in manifests]
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise IonflowError(f"--manifests: member names repeat: {names}")
    if len(members) < 2:
        raise IonflowError("--manifests: the disagreement needs at least 2 members")
    driver = driver or status["member"]
    if driver not in names:
        raise IonflowError(f"driver '{driver}' ({status_path} member) is not among --manifests {names}")

    dump = run_dir / rundir.DUMP
    # a run that blew up before production has an empty dump: nothing to evaluate
    reader = TrajectoryReader(dump) if rundir.dump_frame_count(dump) > 0 else None
    symbols = [str(x) for x in reader.symbols] if reader is not None else []
    for m in members:
        missing = sorted(set(symbols) - set(m.type_names))
        if missing:
            raise InputError(m.manifest, f"species {missing} of {dump} are not in the model", "type_names")

    by_name = {m.name: m for m in members}
    calcs = {m.name: load_calculator(m) for m in members} if reader is not None else {}
    info = {"structure": status["structure"], "member": driver, "temperature": float(status["temperature_K"]),
            "seed": int(status["seed"]),
            "source": f"md:{status['structure']}/{driver}/{float(status['temperature_K']):g}K/seed{status['seed']}"}

    table, cand = run_dir / rundir.DISAGREEMENT, run_dir / rundir.CANDIDATES
    with atomic_path(table) as tmp_table, atomic_path(cand) as tmp_cand:
        monitor = DisagreementMonitor({n: c for n, c in calcs.items() if n != driver}, every, threshold_eV_A,
                                      tmp_table, tmp_cand, info)
        for chunk in reader if reader is not None else ():
            if chunk.timesteps is None:
                raise InputError(dump, "no TIMESTEP values", "ITEM: TIMESTEP")
            for k in np.flatnonzero(chunk.timesteps % every == 0):
                atoms = Atoms(symbols=symbols, positions=chunk.positions[k], cell=chunk.cells[k], pbc=True)
                atoms.wrap()
                atoms.calc = calcs[driver]
                energy, forces = atoms.get_potential_energy(), atoms.get_forces()
                atoms.calc = None
                monitor(int(chunk.timesteps[k]), atoms, forces, energy)
        if tmp_table.stat().st_size == 0:   # no frame at a multiple of `every`: header only
            tmp_table.write_text(HEADER)
    has_candidates = monitor.n_candidates > 0
    if not has_candidates:
        os.unlink(cand)   # no stale candidates of an earlier evaluation

    summary = {
        "structure": status["structure"], "temperature_K": float(status["temperature_K"]),
        "seed": int(status["seed"]), "driver": driver, "members": names,
        "run_status": status.get("status"),
        "every": int(every), "threshold_eV_A": float(threshold_eV_A),
        **table_summary(read_table(table)),
        "candidates": monitor.n_candidates,
        "candidates_file": rundir.CANDIDATES if has_candidates else None,
        "table": rundir.DISAGREEMENT,
    }
    inputs = [dump, status_path] + [p for m in members for p in (m.manifest, m.ase_model) if p]
    summary["provenance"] = provenance(
        stage="md-disagreement", inputs=inputs,
        options={"every": int(every), "threshold_eV_A": float(threshold_eV_A), "driver": driver},
        engine="ASE-compiled Allegro models (every member re-evaluates the dumped frames)",
        model={n: str(by_name[n].manifest) for n in names})
    write_json(run_dir / rundir.DISAGREEMENT_SUMMARY, summary)
    return summary
