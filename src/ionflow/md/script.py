"""The LAMMPS command sequence of one MD run, shared by both engines.

The python engine executes these commands through the LAMMPS Python module (forces from a
`fix external` callback); the cluster engine writes the same commands to `in.lammps` with
`pair_style allegro` instead. Same dumps, thermo files and restart files either way.

Determinism across kill-and-resume: the run is cut into segments of `restart_every` steps and EVERY
segment starts from a restart file (`clear` + `read_restart`), in a fresh process as in a resumed
one: read_restart is not bit-exact for triclinic boxes (fractional round trip), so an uninterrupted
run that carried its state over in memory would differ from a resumed one in the last bits and
diverge chaotically later. A Langevin thermostat is re-seeded from (seed, phase, segment start).
After each segment a restart file is written and atomically renamed to restart.<phase>.<step>.lmp.
A resumed run therefore repeats exactly the operations of an uninterrupted one. Outputs at a segment
start (step S) were already written by the segment before: the dump skips S (`delay`), duplicate
thermo rows are dropped when the tables are normalized, the disagreement monitor skips S.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .blowup import halt_commands
from .settings import MDSettings, Thermostat

PHASES = ("equilibration", "production")
DUMP = "dump.lammpstrj"
#: what LAMMPS writes while running; renamed to DUMP when the run ends (ok or failed), so a workflow
#: manager that deletes declared outputs before rerunning a killed job never deletes the partial dump
DUMP_PARTIAL = "dump.partial.lammpstrj"
THERMO = {"production": "thermo.dat", "equilibration": "thermo_equilibration.dat"}
DATA = "start.data"
#: thermo columns written by fix ave/time (after the step column)
THERMO_COLUMNS = ("step", "temp_K", "pe_eV", "ke_eV", "etotal_eV", "press_bar", "vol_A3")


def restart_name(phase: str, step: int) -> str:
    return f"restart.{phase}.{step}.lmp"


def derived_seed(seed: int, *keys: int) -> int:
    """A LAMMPS seed (1 .. 9e8, the Marsaglia RNG limit) derived from the run seed and keys (phase, step)."""
    return int(np.random.default_rng([int(seed), *map(int, keys)]).integers(1, 900_000_000))


@dataclass
class Segment:
    """Steps [start, end) of one phase, run by a fresh LAMMPS state read from a restart file."""

    phase: str
    start: int
    end: int
    setup: list[str] = field(default_factory=list)   # from `clear` to just before `run`
    after: list[str] = field(default_factory=list)   # restart written after the run

    @property
    def run(self) -> str:
        return f"run {self.end - self.start} pre yes post no"

    @property
    def restart(self) -> str:
        return restart_name(self.phase, self.end)


@dataclass
class Script:
    """`init` (fresh start only: structure, velocities, first restart file), then the segments."""

    init: list[str]
    segments: list[Segment]
    log_line: str | None = None

    def lines(self) -> list[str]:
        out = ["# ionflow md: LAMMPS input (python engine and cluster engine share these commands)"]
        if self.log_line:
            out.append(self.log_line)
        out.extend(self.init)
        for seg in self.segments:
            out.append(f"# ---- {seg.phase} steps {seg.start}-{seg.end} ----")
            out.extend(seg.setup)
            out.append(seg.run)
            out.extend(seg.after)
        return out

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def _thermostat_lines(prefix: str, th: Thermostat, T: float, seed: int) -> list[str]:
    if th.kind == "nvt":
        return [f"fix {prefix}_integrate all nvt temp {T:g} {T:g} {th.damping_fs / 1000.0:.10g}"]
    out = [f"fix {prefix}_integrate all nve"]
    if th.kind == "langevin":
        out.append(f"fix {prefix}_langevin all langevin {T:g} {T:g} {th.damping_fs / 1000.0:.10g} {seed} "
                   "zero yes")
    return out


def _phase_prefix(phase: str) -> str:
    return {"equilibration": "eq", "production": "md"}[phase]


def first_phase(settings: MDSettings) -> str:
    return "equilibration" if settings.equilibration_steps > 0 else "production"


def build_script(
    *,
    settings: MDSettings,
    temperature_K: float,
    seed: int,
    species: list[str],
    pair_lines: list[str],
    resume: tuple[str, int] | None = None,
    where: str = "",
    log: bool = False,
) -> Script:
    """Commands for a fresh run (resume=None) or a run resumed from restart.<phase>.<step>.lmp.

    `where` prefixes every file name (the python engine passes the absolute run directory; the
    cluster input runs inside the run directory); `log` adds `log log.lammps append`.
    """

    def f(name: str) -> str:
        return where + name

    s, T = settings, float(temperature_K)
    phase_steps = {"equilibration": s.equilibration_steps, "production": s.steps}
    base = ["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0", "boundary p p p"]
    init = []
    if resume is None:
        resume = (first_phase(s), 0)
        tmp = f(restart_name(*resume) + ".tmp")
        init = [*base, f"read_data {f(DATA)}", *pair_lines,
                f"velocity all create {T:g} {derived_seed(seed, 0)} mom yes rot no dist gaussian loop geom",
                f"write_restart {tmp}", f"shell mv {tmp} {f(restart_name(*resume))}"]
    start_phase, start_step = resume

    segments = []
    previous = restart_name(*resume)
    for pi, phase in enumerate(PHASES):
        n = phase_steps[phase]
        if PHASES.index(start_phase) > pi or n == 0:
            continue
        th = s.equilibration if phase == "equilibration" else s.production
        p = _phase_prefix(phase)
        first = start_step if phase == start_phase else 0
        for a in range(first, n, s.restart_every):
            b = min(a + s.restart_every, n)
            seg = Segment(phase, a, b)
            seg.setup = ["clear", *base, f"read_restart {f(previous)}"]
            if phase == "production" and a == 0 and previous.startswith("restart.equilibration"):
                seg.setup.append("reset_timestep 0")  # production time starts at 0
            seg.setup += [
                *pair_lines,
                "neighbor 1.0 bin",
                f"timestep {s.timestep_fs / 1000.0:.10g}",
                "thermo_style custom step temp pe ke etotal press vol",
                f"thermo {s.thermo_every}",
                "thermo_modify lost error flush yes",
                *halt_commands(s.blowup, T),
                "variable ifl_ke equal ke",
                "variable ifl_etotal equal etotal",
                "variable ifl_vol equal vol",
                *_thermostat_lines(p, th, T, derived_seed(seed, pi + 1, a)),
                f"fix thermo_{phase} all ave/time {s.thermo_every} 1 {s.thermo_every} c_thermo_temp c_thermo_pe "
                f"v_ifl_ke v_ifl_etotal c_thermo_press v_ifl_vol append {f(THERMO[phase])} format \" %.12g\"",
            ]
            if phase == "production":
                seg.setup += [
                    f"dump traj all custom {s.dump_every} {f(DUMP_PARTIAL)} id element xu yu zu",
                    f"dump_modify traj sort id element {' '.join(species)} format float %.{s.dump_precision}g "
                    "append yes flush yes" + (f" delay {a + 1}" if a > 0 else ""),
                ]
            tmp = f(seg.restart + ".tmp")
            seg.after = [f"write_restart {tmp}", f"shell mv {tmp} {f(seg.restart)}",
                         f"shell rm -f {f(previous)}"]
            previous = seg.restart
            segments.append(seg)
    return Script(init, segments, f"log {f('log.lammps')} append" if log else None)
