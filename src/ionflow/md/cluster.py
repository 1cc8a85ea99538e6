"""Cluster engine: write in.lammps with `pair_style allegro` and run a user-given LAMMPS command.

For GPU clusters whose LAMMPS is built with pair_nequip_allegro (LAMMPS >= 10 Sep 2025 + KOKKOS),
e.g. lammps_command: "srun lmp -k on g 1 -sf kk -pk kokkos newton on neigh full". The input is the
same command sequence as the python engine (ionflow.md.script) with the model as a pair style, so
dumps, thermo files, restart files and status.json are identical in layout, and a killed job
resumes the same way. The command runs inside the run directory with `-in in.lammps` appended.

Blow-ups are caught by the script's `fix halt` lines and by LAMMPS' own errors (lost atoms,
non-numeric coordinates); they are read back from log.lammps.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

from ..errors import InputError, IonflowError, MissingToolError
from ..io.atomic import write_text
from . import rundir
from .blowup import find_failure_in_log
from .script import THERMO, build_script, restart_name


def allegro_pair_lines(model: Path, species: list[str], run_dir: Path) -> list[str]:
    """`pair_style allegro` with the pair_allegro-compiled model (path relative to the run dir)."""
    rel = os.path.relpath(Path(model).resolve(), Path(run_dir).resolve())
    return ["pair_style allegro", f"pair_coeff * * {rel} {' '.join(species)}"]


def write_input(spec, resume) -> Path:
    """Write <run_dir>/in.lammps for a fresh or resumed run; returns its path."""
    run_dir = Path(spec.run_dir)
    species = list(spec.member.type_names)
    pair_lines = spec.pair_lines
    if pair_lines is None:
        model = spec.member.require_pair_allegro()
        if not Path(model).is_file():
            raise InputError(spec.member.manifest, f"compiled model {model} does not exist "
                                                   "(add pair_allegro to train.compile_targets)",
                             "compiled.pair_allegro")
        pair_lines = allegro_pair_lines(model, species, run_dir)
    script = build_script(settings=spec.settings, temperature_K=spec.temperature_K, seed=spec.seed,
                          species=species, pair_lines=pair_lines, resume=resume, log=True)
    path = run_dir / rundir.INPUT
    write_text(path, script.text())
    return path


def run_cluster(spec, resume):
    """Run the input with spec.lammps_command; classify the outcome from the exit status and log."""
    from .runner import Outcome

    s = spec.settings
    run_dir = Path(spec.run_dir)
    write_input(spec, resume)
    cmd = shlex.split(spec.lammps_command) + ["-nocite", "-log", "none", "-in", rundir.INPUT]
    log_path = run_dir / rundir.LOG
    log_offset = log_path.stat().st_size if log_path.exists() else 0
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=run_dir)
    except FileNotFoundError:
        raise MissingToolError(f"LAMMPS command not found: {cmd[0]!r} (md.lammps_command)") from None
    wall = time.perf_counter() - t0

    log_text = ""
    if log_path.exists():
        with open(log_path) as fh:
            fh.seek(log_offset)
            log_text = fh.read()
    phase, step = _progress(run_dir, s)
    start_prod = resume[1] if resume and resume[0] == "production" else 0
    prod_run = max(0, step - start_prod) if phase == "production" else 0
    if proc.returncode != 0:
        failure = find_failure_in_log(log_text, s.blowup, spec.temperature_K, last_step=step)
        if failure is None:
            errors = [ln.strip() for ln in log_text.splitlines() if "ERROR" in ln]
            detail = errors[0] if errors else f"see {log_path}"
            raise IonflowError(f"LAMMPS command '{spec.lammps_command}' failed (exit {proc.returncode}): "
                               f"{detail}")
        return Outcome(failure, phase, step, wall, prod_run)
    final = run_dir / restart_name("production", s.steps)
    if not final.exists():
        raise IonflowError(f"LAMMPS command '{spec.lammps_command}' exited without finishing the run "
                           f"(no {final.name}; see {log_path})")
    return Outcome(None, "production", s.steps, wall, prod_run)


def _progress(run_dir: Path, s) -> tuple[str, int]:
    """(phase, last step) from the thermo files LAMMPS wrote."""
    prod = rundir.last_table_step(run_dir / THERMO["production"])
    if prod is not None:
        return "production", prod
    eq = rundir.last_table_step(run_dir / THERMO["equilibration"])
    return ("equilibration", eq) if eq is not None else ("equilibration", 0)
