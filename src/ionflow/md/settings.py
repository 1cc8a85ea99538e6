"""Settings of one MD run (defaults = the `md` section defaults of the config schema).

Plain dataclasses so the CLI, the validation checks and the tests build runs the same way.
Units are in the names: femtoseconds (`_fs`), kelvin (`_K`), angstrom (`_A`), eV/angstrom (`_eV_A`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

THERMOSTATS = ("nvt", "langevin", "nve")
ENGINES = ("python", "lammps-command")


@dataclass(frozen=True)
class Thermostat:
    """`nvt` (Nose-Hoover chain), `langevin` (+ NVE integration) or `nve`; damping in fs."""

    kind: str = "nvt"
    damping_fs: float = 100.0

    def describe(self) -> str:
        if self.kind == "nve":
            return "NVE"
        name = {"nvt": "NVT Nose-Hoover", "langevin": "NVT Langevin"}[self.kind]
        return f"{name} (damping {self.damping_fs:g} fs)"


@dataclass(frozen=True)
class BlowupCriteria:
    """When a run counts as blown up (checked every `check_every` steps; forces every step)."""

    max_temperature_factor: float = 2.0   # stop if T > factor * target temperature
    min_distance_A: float = 1.0           # stop if any interatomic distance drops below this
    max_force_eV_A: float = 20.0          # stop if any force component exceeds this (or is NaN/inf)
    check_every: int = 10


@dataclass(frozen=True)
class DisagreementSettings:
    """Ensemble disagreement monitor: every `every` production steps evaluate the other members."""

    enabled: bool = True
    every: int = 100
    threshold_eV_A: float = 0.3           # max per-atom force deviation above which a frame is a candidate


@dataclass(frozen=True)
class MDSettings:
    timestep_fs: float = 2.0
    steps: int = 10000                    # production steps
    equilibration_steps: int = 1000
    dump_every: int = 50
    thermo_every: int = 50
    restart_every: int = 1000
    production: Thermostat = field(default_factory=Thermostat)
    equilibration: Thermostat = field(default_factory=Thermostat)
    blowup: BlowupCriteria = field(default_factory=BlowupCriteria)
    disagreement: DisagreementSettings = field(default_factory=DisagreementSettings)
    supercell: tuple[int, int, int] = (1, 1, 1)
    dump_precision: int = 10              # significant digits of the dumped coordinates

    def to_dict(self) -> dict:
        return asdict(self)

    def problems(self) -> list[tuple[str, str]]:
        """(field, problem) pairs; empty when the settings are consistent."""
        out = []
        if not self.timestep_fs > 0:
            out.append(("timestep_fs", "must be > 0"))
        for name in ("steps", "dump_every", "thermo_every", "restart_every"):
            if getattr(self, name) < 1:
                out.append((name, "must be >= 1"))
        if self.equilibration_steps < 0:
            out.append(("equilibration_steps", "must be >= 0"))
        for name in ("dump_every", "thermo_every"):
            every = getattr(self, name)
            if every >= 1 and self.restart_every % every:
                out.append(("restart_every", f"must be a multiple of {name} ({every}) so a resumed run "
                                             "writes exactly the frames of an uninterrupted one"))
        for phase in ("production", "equilibration"):
            th = getattr(self, phase)
            if th.kind not in THERMOSTATS:
                out.append((f"thermostat.{phase}.type", f"must be one of {', '.join(THERMOSTATS)}"))
            if th.kind != "nve" and not th.damping_fs > 0:
                out.append((f"thermostat.{phase}.damping_fs", "must be > 0"))
        if self.blowup.check_every < 1:
            out.append(("blowup.check_every", "must be >= 1"))
        if self.disagreement.every < 1:
            out.append(("disagreement.every", "must be >= 1"))
        if len(self.supercell) != 3 or min(self.supercell) < 1:
            out.append(("supercell", "must be three integers >= 1"))
        return out
