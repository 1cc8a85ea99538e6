"""Quantum ESPRESSO pw.x single points: input, launch, parsing, convergence, restart-safe work dirs.

Each frame runs in its own directory (``pw.in``, ``pw.out``, ``pw.err``, ``result.json``). A frame
whose ``result.json`` was made from an identical ``pw.in`` is not recomputed. Outcomes:

* ``ok`` — SCF converged; energy (eV, the "!" total energy, i.e. the free energy F = E − TS that
  the forces derive from), forces (eV/Å), stress (eV/Å³, ASE sign: compressed cell → negative).
* ``unconverged`` — "convergence NOT achieved": the frame is excluded and listed with the reason.
* ``qe_error`` — pw.x stopped with "Error in routine ..." for this geometry (e.g. S matrix not
  positive definite at very short contacts): excluded and listed.
* ``timeout`` — the run exceeded ``timeout_s``: excluded and listed.

Errors that are the configuration's fault (unreadable pseudopotential, inconsistent functionals,
bad namelist) or a launch failure (MPI, killed job) raise instead, so the job fails loudly.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import InputError, IonflowError, MissingToolError
from .settings import DEBIAN_PSEUDO_DIR, QESettings

#: pw.x routines whose errors mean "fix the configuration", not "this geometry failed"
_CONFIG_ROUTINES = {"readpp", "iosys", "cell_base_init", "import_upf", "matches", "upflib", "input"}
_CONFIG_PREFIXES = ("read_", "card_", "set_dft", "upf")

FAILED_STATUSES = ("unconverged", "qe_error", "timeout")


@dataclass
class FrameResult:
    status: str                      # ok | unconverged | qe_error | timeout
    reason: str = ""
    energy: float | None = None      # eV
    forces: np.ndarray | None = None  # eV/Å
    stress: np.ndarray | None = None  # eV/Å³, Voigt xx yy zz yz xz xy, ASE sign
    meta: dict[str, Any] = field(default_factory=dict)
    reused: bool = False


# --------------------------------------------------------------------------- setup checks


def resolve_command(command: str) -> list[str]:
    """argv of the launch command (``pw.x``, ``mpirun -np 4 pw.x``, ``srun pw.x``); MissingToolError
    if the launcher or pw.x is not installed."""
    argv = shlex.split(command)
    if not argv:
        raise InputError("config", "empty launch command", field="label.qe.command")
    pw = next((a for a in argv if Path(a).name.startswith("pw.x") or Path(a).name == "pw"), argv[-1])
    for exe in dict.fromkeys([argv[0], pw]):
        if shutil.which(exe) is None:
            hint = ("install Quantum ESPRESSO (Debian/Ubuntu: apt-get install quantum-espresso "
                    "quantum-espresso-data) or load its module"
                    if exe == pw else f"install it or change label.qe.command ('{command}')")
            raise MissingToolError(f"'{exe}' not found on PATH (label.qe.command = '{command}'): {hint}")
    return argv


def pseudo_dir(settings: QESettings) -> Path:
    return Path(settings.pseudo_dir or os.environ.get("ESPRESSO_PSEUDO") or DEBIAN_PSEUDO_DIR).expanduser()


def resolve_pseudopotentials(settings: QESettings, species: Iterable[str], source: str | Path) -> dict[str, str]:
    """``{element: file}`` for every element; InputError naming the element if one is missing."""
    pdir = pseudo_dir(settings)
    out = {}
    for el in sorted(set(species)):
        name = settings.pseudopotentials.get(el)
        if not name:
            cands = sorted({p.name for pat in (f"{el}.*", f"{el}_*", f"{el.lower()}_*", f"{el.lower()}.*")
                            for p in pdir.glob(pat)}) if pdir.is_dir() else []
            seen = (f"files for {el} in {pdir}: {', '.join(cands)}" if cands else
                    f"{pdir} has none for {el}, so provide one (e.g. from SSSP or pslibrary) consistent with "
                    f"the functional of the others")
            raise InputError(source, f"no pseudopotential for element {el}: the config must name a pseudopotential "
                                     f"file for it (label.qe.pseudopotentials: {{{el}: FILE.UPF}} in "
                                     f"label.qe.pseudo_dir); {seen}", field=f"label.qe.pseudopotentials.{el}")
        path = pdir / name
        if not path.is_file():
            raise InputError(path, f"pseudopotential file for {el} not found (label.qe.pseudo_dir = {pdir})",
                             field=f"label.qe.pseudopotentials.{el}")
        out[el] = name
    return out


def kpoint_grid(atoms, kspacing: float | None) -> tuple[int, int, int] | None:
    """Monkhorst-Pack grid n_i = max(1, ceil(2π|b_i| / kspacing)) (kspacing in 1/Å, VASP-like);
    None = Γ point only (pw.x's Γ tricks)."""
    if kspacing is None:
        return None
    if kspacing <= 0:
        raise InputError("config", "must be > 0 (or null for the Γ point)", field="label.qe.kspacing")
    b = np.linalg.norm(np.asarray(atoms.cell.reciprocal()), axis=1) * 2 * math.pi
    return tuple(int(max(1, math.ceil(x / kspacing - 1e-9))) for x in b)


def input_text(atoms, settings: QESettings, pseudos: dict[str, str]) -> str:
    """The pw.x input of one SCF with forces and stress."""
    from ase.io import write

    system: dict[str, Any] = {"ecutwfc": float(settings.ecutwfc)}
    if settings.ecutrho is not None:
        system["ecutrho"] = float(settings.ecutrho)
    if settings.smearing and settings.smearing != "none":
        system.update(occupations="smearing", smearing=settings.smearing, degauss=float(settings.degauss))
    else:
        system["occupations"] = "fixed"
    data = {
        "control": {"calculation": "scf", "tprnfor": True, "tstress": True, "prefix": "pwscf",
                    "outdir": "./tmp", "disk_io": "none", "pseudo_dir": str(pseudo_dir(settings).resolve())},
        "system": system,
        "electrons": {"conv_thr": float(settings.conv_thr), "mixing_beta": float(settings.mixing_beta),
                      "electron_maxstep": int(settings.electron_maxstep)},
    }
    from ase import Atoms

    clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    buf = io.StringIO()
    write(buf, clean, format="espresso-in", input_data=data, pseudopotentials=pseudos,
          kpts=kpoint_grid(atoms, settings.kspacing))
    return buf.getvalue()


# --------------------------------------------------------------------------- parsing

_ERR = re.compile(r"Error in routine\s+(\S+)\s*\(\s*-?\d+\s*\):\s*\n\s*(.*)")
_ACC = re.compile(r"estimated scf accuracy\s+<\s+([0-9.Ee+-]+)\s+Ry")
_NOT = re.compile(r"convergence NOT achieved after\s+(\d+)\s+iterations")
_YES = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
_VER = re.compile(r"Program PWSCF (v\.\S+)")
_XC = re.compile(r"Exchange-correlation\s*=\s*(.+)")
_P = re.compile(r"total\s+stress\s+\(Ry/bohr\*\*3\)\s+\(kbar\)\s+P=\s*([-0-9.Ee+]+)")


def _is_config_routine(routine: str) -> bool:
    r = routine.lower()
    return r in _CONFIG_ROUTINES or r.startswith(_CONFIG_PREFIXES)


def classify(text: str, returncode: int | None, where: Path, conv_thr: float) -> tuple[str, str, dict]:
    """(status, reason, meta) of a finished pw.x run; raises for configuration/launch failures."""
    meta: dict[str, Any] = {}
    if m := _VER.search(text):
        meta["qe_version"] = m.group(1)
    if m := _XC.search(text):
        meta["qe_xc"] = m.group(1).split("(")[0].strip()
    acc = _ACC.findall(text)
    if m := _NOT.search(text):
        last = f"{float(acc[-1]):.2e}" if acc else "?"
        return "unconverged", (f"SCF not converged after {m.group(1)} iterations (estimated scf accuracy "
                               f"{last} Ry > conv_thr {conv_thr:.1e} Ry)"), meta
    if m := _ERR.search(text):
        routine, msg = m.group(1), m.group(2).strip()
        if _is_config_routine(routine):
            raise IonflowError(f"{where}: pw.x rejected the setup (routine {routine}: {msg}); "
                               f"fix the label.qe settings")
        return "qe_error", f"pw.x error in routine {routine}: {msg}", meta
    if (m := _YES.search(text)) and "Forces acting on atoms" in text and _P.search(text):
        meta["scf_iterations"] = int(m.group(1))
        meta["qe_pressure_kbar"] = float(_P.search(text).group(1))
        return "ok", "", meta
    raise IonflowError(f"{where}: pw.x stopped without a result (exit status {returncode}); "
                       f"see pw.out/pw.err there")


def parse_results(path: Path, natoms: int, positions: np.ndarray | None = None):
    """(energy eV, forces eV/Å, stress eV/Å³ ASE sign) of a finished pw.x output (ASE's reader)."""
    from ase.io import read

    out = read(path, format="espresso-out", index=-1)
    if len(out) != natoms:
        raise IonflowError(f"{path}: has {len(out)} atoms, the frame has {natoms}")
    if positions is not None and np.max(np.abs(out.positions - positions)) > 1e-4:
        raise IonflowError(f"{path}: positions differ from the frame's (stale output?)")
    energy = float(out.get_potential_energy())
    forces = np.asarray(out.get_forces(), dtype=float)
    stress = np.asarray(out.get_stress(voigt=True), dtype=float)
    return energy, forces, stress


# --------------------------------------------------------------------------- running


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _run(argv: list[str], workdir: Path, timeout: float | None) -> tuple[int | None, bool]:
    """Run ``argv -in pw.in`` in ``workdir``; (returncode, timed_out). Kills the whole process group
    (MPI ranks included) on timeout."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(workdir / "pw.out", "w") as out, open(workdir / "pw.err", "w") as err:
        proc = subprocess.Popen([*argv, "-in", "pw.in"], cwd=workdir, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            return proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return None, True
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise


def run_frame(atoms, settings: QESettings, pseudos: dict[str, str], workdir: Path,
              argv: list[str], provenance_block: dict | None = None) -> FrameResult:
    """One SCF in ``workdir``; reuses a previous result made from the identical input."""
    from ..io.atomic import write_json, write_text

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    text = input_text(atoms, settings, pseudos)
    key = _sha(text)
    res_path = workdir / "result.json"
    if res_path.is_file() and (workdir / "pw.out").is_file():
        try:
            prev = json.loads(res_path.read_text())
        except json.JSONDecodeError:
            prev = {}
        same = prev.get("input_sha256") == key
        if same and prev.get("status") == "timeout" and prev.get("timeout_s") != settings.timeout_s:
            same = False  # a new time limit deserves a new try
        if same and prev.get("status") in ("ok", *FAILED_STATUSES):
            res = _result_from(prev, workdir, atoms)
            res.reused = True
            return res
    res_path.unlink(missing_ok=True)
    write_text(workdir / "pw.in", text)
    t0 = time.perf_counter()
    rc, timed_out = _run(argv, workdir, settings.timeout_s)
    wall = time.perf_counter() - t0
    shutil.rmtree(workdir / "tmp", ignore_errors=True)
    if timed_out:
        status, reason, meta = "timeout", f"pw.x exceeded timeout_s = {settings.timeout_s} s", {}
    else:
        status, reason, meta = classify((workdir / "pw.out").read_text(errors="replace"), rc,
                                        workdir / "pw.out", settings.conv_thr)
    meta["wall_s"] = round(wall, 3)
    record = {"status": status, "reason": reason, "input_sha256": key, "timeout_s": settings.timeout_s,
              "command": " ".join(argv), "meta": meta}
    res = _result_from(record, workdir, atoms)
    if provenance_block is not None:
        record["provenance"] = provenance_block
    write_json(res_path, record)
    return res


def _result_from(record: dict, workdir: Path, atoms) -> FrameResult:
    res = FrameResult(status=record["status"], reason=record.get("reason", ""), meta=dict(record.get("meta", {})))
    if res.status == "ok":
        res.energy, res.forces, res.stress = parse_results(workdir / "pw.out", len(atoms), atoms.positions)
    return res
