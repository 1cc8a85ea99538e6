"""Blow-up detection: stop a run that is no longer physical and say why and when.

Two layers, shared by both engines:
- LAMMPS `fix halt ... error hard` on temperature, minimum interatomic distance and maximum force
  (checked every `check_every` steps inside LAMMPS, so the cluster engine has them too);
- LAMMPS' own errors for lost atoms / non-numeric coordinates, classified from the message;
- in the python engine, every force evaluation is also checked for NaN/inf and huge forces.
A blow-up never raises to the user: the run is recorded as failed with step and reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .settings import BlowupCriteria


class BlowUp(Exception):
    """A run became unphysical at `step` for `reason` (raised inside the force callback)."""

    def __init__(self, step: int, reason: str):
        super().__init__(f"step {step}: {reason}")
        self.step = int(step)
        self.reason = reason


@dataclass(frozen=True)
class Failure:
    step: int | None
    reason: str


#: fix halt IDs -> what they check (used to word the failure reason)
HALT_FIXES = {
    "halt_temperature": ("temperature", "K", ">"),
    "halt_distance": ("minimum interatomic distance", "A", "<"),
    "halt_force": ("maximum force component", "eV/A", ">"),
}


def halt_commands(criteria: BlowupCriteria, target_temperature_K: float) -> list[str]:
    """LAMMPS commands that stop the run (error) when a criterion is violated.

    Needs a pair style whose neighbour cutoff is >= `min_distance_A` (for compute pair/local).
    """
    n = criteria.check_every
    tmax = criteria.max_temperature_factor * target_temperature_K
    return [
        "compute ifl_pairdist all pair/local dist",
        "compute ifl_dmin all reduce min c_ifl_pairdist inputs local",
        "variable ifl_dmin equal c_ifl_dmin",
        "variable ifl_temp equal temp",
        "variable ifl_fmax equal fmax",
        f"fix halt_temperature all halt {n} v_ifl_temp > {tmax:.6g} error hard message yes",
        f"fix halt_distance all halt {n} v_ifl_dmin < {criteria.min_distance_A:.6g} error hard message yes",
        f"fix halt_force all halt {n} v_ifl_fmax > {criteria.max_force_eV_A:.6g} error hard message yes",
    ]


_HALT_RE = re.compile(r"Fix halt condition for fix-id (\S+) met on step (\d+) with value (\S+)")
_LOST_RE = re.compile(r"Lost atoms: original (\d+) current (\d+)")
_NONNUMERIC = ("Non-numeric atom coords", "Out of range atoms", "Non-numeric pressure",
               "Non-numeric box dimensions", "Too many neighbor bins", "Neighbor list overflow")


def classify_lammps_error(message: str, criteria: BlowupCriteria, target_temperature_K: float,
                          last_step: int | None = None) -> Failure | None:
    """A Failure when a LAMMPS error message means the run blew up, else None (a real error)."""
    m = _HALT_RE.search(message)
    if m:
        fix_id, step, value = m.group(1), int(m.group(2)), float(m.group(3))
        what, unit, op = HALT_FIXES.get(fix_id, (fix_id, "", "beyond"))
        limit = {
            "halt_temperature": criteria.max_temperature_factor * target_temperature_K,
            "halt_distance": criteria.min_distance_A,
            "halt_force": criteria.max_force_eV_A,
        }.get(fix_id)
        extra = (f" (limit {criteria.max_temperature_factor:g} x {target_temperature_K:g} K)"
                 if fix_id == "halt_temperature" else "")
        lim = f" {op} {limit:.6g} {unit}{extra}" if limit is not None else ""
        return Failure(step, f"{what} {value:.6g} {unit}{lim}".strip())
    m = _LOST_RE.search(message)
    if m:
        return Failure(last_step, f"lost atoms ({m.group(1)} -> {m.group(2)})")
    for key in _NONNUMERIC:
        if key in message:
            return Failure(last_step, key.lower())
    return None


def find_failure_in_log(log_text: str, criteria: BlowupCriteria, target_temperature_K: float,
                        last_step: int | None = None) -> Failure | None:
    """Scan a LAMMPS log (cluster engine) for the first ERROR line and classify it."""
    for line in log_text.splitlines():
        if "ERROR" in line:
            return classify_lammps_error(line, criteria, target_temperature_K, last_step)
    return None


def check_forces(step: int, energy: float, forces: np.ndarray, criteria: BlowupCriteria) -> None:
    """Raise BlowUp for a non-finite energy, NaN/inf forces or a force component above the limit."""
    if not np.isfinite(energy):
        raise BlowUp(step, f"non-finite potential energy ({energy})")
    fmax = np.abs(forces).max(initial=0.0)
    if not np.isfinite(fmax):
        bad = int(np.count_nonzero(~np.isfinite(forces).all(axis=1)))
        raise BlowUp(step, f"non-finite forces on {bad} atoms")
    if fmax > criteria.max_force_eV_A:
        raise BlowUp(step, f"maximum force component {fmax:.6g} eV/A > {criteria.max_force_eV_A:.6g} eV/A")


def check_positions(step: int, positions: np.ndarray) -> None:
    if not np.isfinite(positions).all():
        raise BlowUp(step, "non-finite atom coordinates")
