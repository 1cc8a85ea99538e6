"""One MD run: inputs checked, fresh start or resume, engine, status.json.

`run_md(spec)` is what `ionflow md` and `ionflow validate stability` call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_path, write_json
from ..provenance import file_sha256, provenance
from . import rundir
from .blowup import Failure
from .disagreement import read_table, table_summary
from .models import CalculatorModel, Member
from .script import DATA, DUMP, THERMO
from .settings import ENGINES, MDSettings


@dataclass
class RunSpec:
    run_dir: Path
    structure_file: Path
    structure: str
    member: Member | CalculatorModel   # an ensemble member, or a universal potential (teacher)
    temperature_K: float
    seed: int
    settings: MDSettings = field(default_factory=MDSettings)
    others: list[Member] = field(default_factory=list)   # other ensemble members (disagreement)
    engine: str = "python"
    lammps_command: str = "lmp"
    pair_lines: list[str] | None = None                   # cluster engine: override pair_style allegro
    stage: str = "md"


@dataclass
class Outcome:
    failure: Failure | None
    phase: str
    step: int                       # last step reached in `phase`
    wall_s: float
    production_steps_run: int       # production steps integrated in this session
    callback_s: float | None = None     # python engine: time in the force callback
    model_calls: int | None = None
    calculator_s: float | None = None   # python engine: time in the model evaluation itself


def read_structure(path: Path, supercell=(1, 1, 1)):
    """The starting structure (any ASE-readable file; the last frame), replicated."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "structure file not found")
    try:
        atoms = read(path, index=-1)
    except Exception as exc:
        raise InputError(path, f"cannot read structure ({type(exc).__name__}: {exc})") from None
    if len(atoms) == 0:
        raise InputError(path, "structure has no atoms")
    if not atoms.pbc.all() or atoms.cell.rank != 3:
        raise InputError(path, "structure must be periodic in 3 dimensions with a full cell")
    if tuple(supercell) != (1, 1, 1):
        atoms = atoms * tuple(int(n) for n in supercell)
    return atoms


def check_species(atoms, member: Member, path: Path) -> None:
    missing = sorted(set(atoms.get_chemical_symbols()) - set(member.type_names))
    if missing:
        raise InputError(path, f"species {', '.join(missing)} not in model {member.name} "
                               f"(type_names {list(member.type_names)} in {member.manifest})")


def write_data_file(atoms, path: Path, species: list[str]) -> None:
    """LAMMPS data file with atom types in model type order and masses."""
    from ase.io import write

    with atomic_path(path, suffix="") as tmp:
        write(tmp, atoms, format="lammps-data", specorder=list(species), masses=True, atom_style="atomic",
              units="metal")


def is_universal(spec: RunSpec) -> bool:
    """True when a universal potential (``--calculator``), not an ensemble member, drives the run."""
    return isinstance(spec.member, CalculatorModel)


def _fingerprint(spec: RunSpec, structure_hash: str) -> dict:
    s = spec.settings.to_dict()
    s.pop("steps")  # a longer run may extend a finished one
    model = spec.member.ase_model if spec.engine == "python" else spec.member.pair_allegro_model
    if is_universal(spec):
        model = json.dumps(spec.member.identity(), sort_keys=True)
    return {
        "settings": s,
        "temperature_K": float(spec.temperature_K),
        "seed": int(spec.seed),
        "member": spec.member.name,
        "model_sha256": file_sha256(model) if model and Path(model).is_file() else str(model),
        "structure_sha256": structure_hash,
        "engine": spec.engine,
        "species": list(spec.member.type_names),
        "pair_lines": spec.pair_lines,
    }


def _resume_point(spec: RunSpec, fingerprint: dict) -> tuple[str, int] | None:
    run_json = spec.run_dir / rundir.RUN_JSON
    if not run_json.exists():
        return None
    try:
        previous = json.loads(run_json.read_text()).get("fingerprint")
    except (json.JSONDecodeError, OSError):
        return None
    if previous != json.loads(json.dumps(fingerprint)):
        return None
    point = rundir.latest_restart(spec.run_dir)
    if point is None:
        return None
    phase, step = point
    if phase == "production" and step > spec.settings.steps:
        return None
    return point


def run_md(spec: RunSpec) -> dict:
    """Run (or resume) one MD run; returns the status written to status.json."""
    s = spec.settings
    for fld, problem in s.problems():
        raise InputError("md settings", problem, fld)
    if spec.engine not in ENGINES:
        raise InputError("md settings", f"must be one of {', '.join(ENGINES)}", "engine")
    if not spec.temperature_K > 0:
        raise InputError("md settings", "must be > 0", "temperature")
    atoms = read_structure(spec.structure_file, s.supercell)
    if is_universal(spec):
        if spec.engine != "python":
            raise InputError("command line", "a universal potential (--calculator) runs with the python engine "
                                             "only (the lammps-command engine needs a pair_allegro model)",
                             "--engine")
        if spec.others:
            raise InputError("command line", "no ensemble disagreement with --calculator (give no other "
                                             "members)", "--ensemble")
        spec = replace(spec, member=spec.member.for_structure(atoms))
        from .models import load_calculator

        load_calculator(spec.member)   # a bad model name or device fails before the run directory is touched
    else:
        check_species(atoms, spec.member, spec.structure_file)
        if spec.engine == "python":
            spec.member.require_ase()
            for other in spec.others:
                other.require_ase()
                check_species(atoms, other, spec.structure_file)
        else:
            spec.member.require_pair_allegro()

    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    structure_hash = file_sha256(spec.structure_file)
    fingerprint = _fingerprint(spec, structure_hash)
    resume = _resume_point(spec, fingerprint)
    if resume is None:
        rundir.clean(run_dir)
        write_data_file(atoms, run_dir / DATA, list(spec.member.type_names))
        write_json(run_dir / rundir.RUN_JSON, {"fingerprint": fingerprint, "natoms": len(atoms),
                                               "structure": spec.structure,
                                               "structure_file": str(spec.structure_file)})
    else:
        kept = rundir.prepare_resume(run_dir, *resume)
        phase, step = resume
        expected = (step // s.dump_every + 1 if step > 0 else 0) if phase == "production" else 0
        if kept != expected:
            # the dump lost frames (e.g. deleted as a declared output): the run cannot be continued
            resume = None
            rundir.clean(run_dir)
            write_data_file(atoms, run_dir / DATA, list(spec.member.type_names))

    if spec.engine == "python":
        from .engine import run_python

        outcome = run_python(spec, resume)
    else:
        from .cluster import run_cluster

        outcome = run_cluster(spec, resume)
    rundir.finalize_tables(run_dir)
    rundir.publish_dump(run_dir)
    status = _status(spec, outcome, resume, len(atoms))
    write_json(run_dir / rundir.STATUS, status)
    return status


def _status(spec: RunSpec, out: Outcome, resume, natoms: int) -> dict:
    s = spec.settings
    run_dir = Path(spec.run_dir)
    failed = out.failure is not None
    frames = rundir.dump_frame_count(run_dir / DUMP)
    dis = _disagreement_summary(run_dir, s)
    ns_per_day = None
    if out.production_steps_run > 0 and out.wall_s > 0:
        ns_per_day = out.production_steps_run * s.timestep_fs * 1e-6 / (out.wall_s / 86400.0)
    status = {
        "status": "failed" if failed else "ok",
        "reason": out.failure.reason if failed else None,
        "phase": out.phase,
        "step": out.failure.step if failed and out.failure.step is not None else out.step,
        "production_steps": s.steps,
        "production_steps_completed": out.step if out.phase == "production" else 0,
        "equilibration_steps": s.equilibration_steps,
        "timestep_fs": s.timestep_fs,
        "dt_fs_between_frames": s.timestep_fs * s.dump_every,
        "frames": frames,
        "natoms": natoms,
        "temperature_K": float(spec.temperature_K),
        "ensemble": s.production.kind,
        "ensemble_description": s.production.describe(),
        "equilibration_ensemble": s.equilibration.describe(),
        "seed": int(spec.seed),
        "structure": spec.structure,
        "member": None if is_universal(spec) else spec.member.name,
        "model": spec.member.name,      # the member, or the universal potential, e.g. sevennet:7net-0
        "calculator": ({**spec.member.identity(), "device": spec.member.device} if is_universal(spec) else None),
        "species": list(spec.member.type_names),
        "engine": spec.engine,
        "resumed_from": {"phase": resume[0], "step": resume[1]} if resume else None,
        "wall_s": round(out.wall_s, 3),
        "ns_per_day": ns_per_day,
        "model_calls": out.model_calls,
        "callback_s": round(out.callback_s, 3) if out.callback_s is not None else None,
        "calculator_s": round(out.calculator_s, 3) if out.calculator_s is not None else None,
        "disagreement": dis,
        "files": {"dump": DUMP, "thermo": THERMO["production"], "log": rundir.LOG},
    }
    model = spec.member.ase_model if spec.engine == "python" else spec.member.pair_allegro_model
    inputs = [p for p in (spec.structure_file, spec.member.manifest, model) if p is not None and Path(p).is_file()]
    if is_universal(spec):
        engine = f"LAMMPS Python module + fix external ({spec.member.name} ASE calculator, universal potential)"
        model_block = {**spec.member.identity(), "device": spec.member.device, "role": "teacher"}
    else:
        engine = ("LAMMPS Python module + fix external (ASE-compiled Allegro model)" if spec.engine == "python"
                  else f"LAMMPS pair_style allegro via '{spec.lammps_command}'")
        model_block = {"member": spec.member.name, "manifest": str(spec.member.manifest)}
    status["provenance"] = provenance(
        stage=spec.stage,
        inputs=inputs,
        options=s.to_dict() | {"engine": spec.engine,
                               "lammps_command": spec.lammps_command if spec.engine != "python" else None},
        seeds={"seed": int(spec.seed), "velocity": "derived_seed(seed, 0)",
               "langevin": "derived_seed(seed, phase, segment start)"},
        engine=engine,
        ensemble={"production": s.production.describe(), "equilibration": s.equilibration.describe()},
        model=model_block,
        disagreement_members=[m.name for m in spec.others] if spec.engine == "python" else [],
    )
    return status


def _disagreement_summary(run_dir: Path, s: MDSettings) -> dict | None:
    table = run_dir / rundir.DISAGREEMENT
    if not table.exists():
        return None
    rows = read_table(table)
    cand = run_dir / rundir.CANDIDATES
    ncand = 0
    if cand.exists():
        ncand = int(np.count_nonzero((rows[:, 1] > s.disagreement.threshold_eV_A))) if rows.size else 0
    summary = table_summary(rows)
    summary.pop("mean_energy_std_eV_per_atom")   # not part of the in-run summary in status.json
    return {
        "every": s.disagreement.every,
        "threshold_eV_A": s.disagreement.threshold_eV_A,
        **summary,
        "candidates": ncand,
        "candidates_file": rundir.CANDIDATES if ncand else None,
    }
