"""Run directory bookkeeping: what a run has written, resuming, trimming outputs to a restart step.

Layout of results/md/{structure}/{member}/{T}K/seed{s}/ (both engines):
  start.data                 LAMMPS data file of the starting structure (types = model type order)
  run.json                   what this run is (settings, inputs, seed): a resume must match it
  in.lammps                  the LAMMPS input (cluster engine; the python engine writes it for the record)
  log.lammps                 LAMMPS log (appended on resume)
  thermo_equilibration.dat   step temp pe ke etotal press vol (equilibration)
  thermo.dat                 same columns, production (step 0 = first dumped frame)
  dump.lammpstrj             production frames, `ITEM: ATOMS id element xu yu zu`, sorted by id
                             (written as dump.partial.lammpstrj while running, renamed at the end)
  restart.<phase>.<step>.lmp latest restart (renamed into place only when complete)
  disagreement.dat           step max_dev mean_dev energy_std_per_atom (in the run: python engine with
                             >1 member; or post hoc: `ionflow md-disagreement`, the workflow's way)
  candidates.extxyz          frames whose ensemble force deviation exceeds the trust threshold
  disagreement.json          summary of the post-hoc evaluation (stale once the run changes: removed)
  status.json                written last: ok | failed (+ reason, step)
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

from .script import DUMP, DUMP_PARTIAL, PHASES, THERMO, THERMO_COLUMNS

STATUS = "status.json"
RUN_JSON = "run.json"
DISAGREEMENT = "disagreement.dat"
DISAGREEMENT_SUMMARY = "disagreement.json"   # written by `ionflow md-disagreement` (post hoc)
CANDIDATES = "candidates.extxyz"
LOG = "log.lammps"
INPUT = "in.lammps"
ERROR_TXT = "callback_error.txt"

_RESTART_RE = re.compile(r"^restart\.(equilibration|production)\.(\d+)\.lmp$")
_FRAME_RE = re.compile(rb"ITEM: TIMESTEP\n(\d+)\n")
_HEADER_RE = re.compile(rb"ITEM: TIMESTEP(?:\n(\d+)\n)?")


def latest_restart(run_dir: Path) -> tuple[str, int] | None:
    """(phase, step) of the most advanced complete restart file, or None."""
    best = None
    for p in run_dir.glob("restart.*.lmp"):
        m = _RESTART_RE.match(p.name)
        if m:
            key = (PHASES.index(m.group(1)), int(m.group(2)))
            if best is None or key > best:
                best = key
    return (PHASES[best[0]], best[1]) if best else None


def output_files(run_dir: Path) -> list[Path]:
    names = [STATUS, DUMP, DUMP_PARTIAL, LOG, INPUT, DISAGREEMENT, CANDIDATES, DISAGREEMENT_SUMMARY, ERROR_TXT,
             *THERMO.values()]
    files = [run_dir / n for n in names]
    files += [p for p in run_dir.glob("restart.*.lmp*")]
    return [p for p in files if p.exists()]


def clean(run_dir: Path) -> None:
    """Remove everything a previous run wrote (a fresh start)."""
    for p in output_files(run_dir):
        p.unlink()


def trim_dump(path: Path, before_step: int) -> int:
    """Cut a text dump at its first frame with timestep >= before_step, or at a frame header cut
    short by a kill. Frames before a restart step are complete (the restart is written after them).
    Returns the number of frames kept."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "r+b") as fh:
        mm = mmap.mmap(fh.fileno(), 0)
        try:
            cut, kept = None, 0
            for m in _HEADER_RE.finditer(mm):
                step = m.group(1)
                if not step or int(step) >= before_step:
                    cut = m.start()
                    break
                kept += 1
        finally:
            mm.close()
        if cut is not None:
            fh.truncate(cut)
    return kept


def trim_table(path: Path, before_step: int) -> None:
    """Keep comment lines and rows whose first column (step) is < before_step."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # partial last line of a killed job
        s = line.strip()
        if not s or s.startswith("#"):
            keep.append(line)
            continue
        try:
            step = int(float(s.split()[0]))
        except ValueError:
            continue
        if step < before_step:
            keep.append(line)
    path.write_text("".join(keep))


def normalize_table(path: Path, header_line: str | None = None) -> None:
    """One header, one row per step (a segment re-writes the row of its start step after reading
    the restart file: the first row, written at the end of the previous segment, is kept);
    `header_line` replaces the header."""
    if not path.exists():
        return
    header, rows, seen = [], [], set()
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if not rows and line not in header:
                header.append(line)
            continue
        step = int(float(s.split()[0]))
        if step in seen:
            continue
        seen.add(step)
        rows.append(line)
    if header_line is not None:
        header = [header_line]
    path.write_text("\n".join(header + rows) + "\n")


def trim_extxyz(path: Path, before_step: int) -> None:
    """Keep the frames of an extxyz file whose `step=` info is < before_step."""
    if not path.exists():
        return
    from ase.io import read, write

    try:
        frames = read(path, index=":", format="extxyz")
    except Exception:  # a killed write leaves a partial frame: keep what parses frame by frame
        frames = _read_complete_extxyz(path)
    kept = [a for a in frames if int(a.info.get("step", -1)) < before_step]
    if kept:
        write(path, kept, format="extxyz")
    else:
        path.unlink()


def _read_complete_extxyz(path: Path):
    from io import StringIO

    from ase.io import read

    lines = path.read_text().splitlines(keepends=True)
    frames, i = [], 0
    while i < len(lines):
        try:
            n = int(lines[i])
        except ValueError:
            break
        block = lines[i:i + n + 2]
        if len(block) < n + 2:
            break
        try:
            frames.append(read(StringIO("".join(block)), format="extxyz"))
        except Exception:
            break
        i += n + 2
    return frames


def prepare_resume(run_dir: Path, phase: str, step: int) -> int:
    """Trim every output to what an uninterrupted run had written when it wrote
    restart.<phase>.<step>.lmp (everything up to and including `step`; nothing of a phase that
    starts there). Returns the number of production frames kept."""
    keep = step + 1 if step > 0 else 0   # rows and frames with step < keep stay
    final, partial = run_dir / DUMP, run_dir / DUMP_PARTIAL
    kept = 0
    if phase == "equilibration":
        trim_table(run_dir / THERMO["equilibration"], keep)
        for p in (final, partial, run_dir / THERMO["production"], run_dir / DISAGREEMENT, run_dir / CANDIDATES):
            if p.exists():
                p.unlink()
    else:
        if final.exists() and not partial.exists():  # extending a finished run
            final.rename(partial)
        elif final.exists():
            final.unlink()
        kept = trim_dump(partial, keep)
        trim_table(run_dir / THERMO["production"], keep)
        trim_table(run_dir / DISAGREEMENT, keep)
        trim_extxyz(run_dir / CANDIDATES, keep)
    if (run_dir / DISAGREEMENT_SUMMARY).exists():
        (run_dir / DISAGREEMENT_SUMMARY).unlink()
    for p in run_dir.glob("restart.*.lmp.tmp"):
        p.unlink()
    for p in run_dir.glob("restart.*.lmp"):
        m = _RESTART_RE.match(p.name)
        if m and (m.group(1), int(m.group(2))) != (phase, step):
            p.unlink()
    status = run_dir / STATUS
    if status.exists():
        status.unlink()
    return kept


def publish_dump(run_dir: Path) -> None:
    """The run has ended: its dump gets its final name. A run that ended before production (blown up
    during equilibration) gets an empty dump (0 frames; status.json says why), so the workflow's
    declared output exists and the analysis excludes the run instead of the workflow stopping."""
    partial, final = run_dir / DUMP_PARTIAL, run_dir / DUMP
    if partial.exists():
        partial.replace(final)
    elif not final.exists():
        final.touch()


def finalize_tables(run_dir: Path) -> None:
    for name in THERMO.values():
        normalize_table(run_dir / name, "# " + " ".join(THERMO_COLUMNS))
    normalize_table(run_dir / DISAGREEMENT)


def dump_frame_count(path: Path) -> int:
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            return sum(1 for _ in _FRAME_RE.finditer(mm))
        finally:
            mm.close()


def last_table_step(path: Path) -> int | None:
    if not path.exists():
        return None
    last = None
    for line in path.read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            try:
                last = int(float(s.split()[0]))
            except ValueError:
                pass
    return last
