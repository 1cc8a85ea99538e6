#!/usr/bin/env python
"""Generate the demo's surrogate "FPMD" data: SevenNet-0 NVT MD of S1 and S2 at 100-900 K.

For each (structure, temperature) this runs Langevin NVT MD (ASE, ``--dt-fs`` time step,
friction ``--friction-per-fs``) from the SevenNet-0 ground state
``data/demo/{S}_ground_state.extxyz``: Maxwell-Boltzmann velocities at 2T (equipartition:
half of the kinetic energy flows into the potential energy of a structure starting at its
minimum), ``--equil-steps`` steps of equilibration, then ``--frames`` frames, one every
``--stride`` steps, each with the SevenNet-0 energy, forces and stress of that configuration
(SevenNet computes the stress from the same backward pass as the forces, so it costs nothing
extra). Output: ``data/demo/fpmd/{S}_{T}K.extxyz.gz`` in the ionflow dataset contract (info:
structure, temperature, step, time_fs, labels="sevennet-0", source="SevenNet-0 MD (surrogate
FPMD)", config_type="fpmd", md_temperature_K; arrays: forces, momenta). These are SURROGATE
labels, NOT DFT.

Robustness: frames are appended to ``{S}_{T}K.extxyz.part`` (flush + fsync per frame) and a
status line per frame goes to stdout; the .gz is written atomically (deterministic gzip) only
when a combination is complete, and the .part is then removed. A rerun skips complete
combinations and resumes an interrupted one from its last complete frame (positions and
momenta are in the file; the thermostat's random stream is re-seeded from (seed, structure,
T, frames done), so a resumed run is reproducible).

Documented command (what made the shipped data; one process per structure, on a shared
2-core machine: ~2 s CPU, 5.7 s wall per MD step per process when contended, i.e. ~21 min
per (structure, T) and ~85 min for everything)::

    mkdir -p data/demo/fpmd
    for S in S1 S2; do
      OMP_NUM_THREADS=1 setsid nohup nice -n 19 .venv/bin/python scripts/make_demo_fpmd.py \\
          --structures $S > data/demo/fpmd/$S.log 2>&1 < /dev/null &
    done

The same command resumes after an interruption.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

SOURCE = "SevenNet-0 MD (surrogate FPMD)"
LABELS = "sevennet-0"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _read_complete_frames(path: Path) -> list:
    """Frames of an extxyz file, ignoring a truncated last frame (an interrupted append)."""
    from ase.io import iread

    frames = []
    if not path.exists():
        return frames
    try:
        for at in iread(str(path), index=":", format="extxyz"):
            frames.append(at)
    except Exception:  # a partial last frame: keep what was complete
        pass
    return frames


def _append_frame(path: Path, atoms) -> None:
    from ase.io import write

    with open(path, "a") as fh:
        write(fh, atoms, format="extxyz")
        fh.flush()
        os.fsync(fh.fileno())


def _write_gz(path: Path, frames) -> None:
    """Atomic, byte-reproducible (mtime=0) gzip of an extxyz trajectory."""
    import io

    from ase.io import write

    from ionflow.io.atomic import atomic_path

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(buf.getvalue().encode())


def _labelled_frame(atoms, structure: str, temperature: float, step: int, dt_fs: float):
    """Copy of the current MD state with SevenNet-0 E/F/S as a SinglePointCalculator."""
    from ase.calculators.singlepoint import SinglePointCalculator

    e = float(atoms.get_potential_energy())
    f = atoms.get_forces(apply_constraint=False)  # the model's forces, not FixCom-projected
    s = atoms.get_stress()
    frame = atoms.copy()
    frame.set_constraint()
    frame.calc = SinglePointCalculator(frame, energy=e, forces=f, stress=s)
    frame.info.clear()
    frame.info.update(structure=structure, temperature=float(temperature), step=int(step),
                      time_fs=round(step * dt_fs, 6), labels=LABELS, source=SOURCE,
                      config_type="fpmd", md_temperature_K=round(float(atoms.get_temperature()), 2))
    return frame


def combo_seed(seed: int, structure: str, temperature: float, done: int) -> list[int]:
    """Seed sequence entropy for one (structure, T) after ``done`` saved frames (stable across runs)."""
    return [int(seed), zlib.crc32(structure.encode()), int(round(temperature * 1000)), int(done)]


def run_combo(ground_state, calc, structure: str, temperature: float, out_path, *, frames: int,
              stride: int, equil_steps: int, dt_fs: float = 2.0, friction_per_fs: float = 0.01,
              seed: int = 0, finalize: bool = True) -> str:
    """Run (or resume) one (structure, T) MD and write its frames; returns 'skipped'|'done'|'partial'.

    ``ground_state``: ASE Atoms to start from (its calculator is ignored); ``calc``: the
    SevenNet-0 ASE calculator. Frames go to ``out_path`` (.extxyz.gz) via a .part file.
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    out_path = Path(out_path)
    part = out_path.with_name(out_path.name.removesuffix(".gz") + ".part")
    if out_path.exists():
        n = len(_read_complete_frames(out_path))
        log(f"{structure} {temperature:g} K: {out_path} exists ({n} frames), skipped")
        return "skipped"
    out_path.parent.mkdir(parents=True, exist_ok=True)

    done_frames = _read_complete_frames(part)[:frames]
    if part.exists():  # rewrite without a truncated tail before appending again
        from ase.io import write

        from ionflow.io.atomic import atomic_path

        with atomic_path(part) as tmp:
            if done_frames:
                write(tmp, done_frames, format="extxyz")
    done = len(done_frames)
    rng = np.random.default_rng(combo_seed(seed, structure, temperature, done))
    if done:
        atoms = done_frames[-1].copy()
        atoms.info.clear()
        step = int(done_frames[-1].info["step"])
        log(f"{structure} {temperature:g} K: resuming from {part} ({done} frames, step {step})")
    else:
        atoms = ground_state.copy()
        atoms.info.clear()
        thermalize_momenta(atoms, 2.0 * temperature, rng=rng)
        Stationary(atoms)
        step = 0
    atoms.calc = calc
    atoms.set_constraint(FixCom())  # no centre-of-mass drift (ASE's recommended form)
    dyn = Langevin(atoms, timestep=dt_fs * units.fs, temperature_K=temperature,
                   friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    t0 = time.time()
    nsteps = 0
    if done == 0 and equil_steps > 0:
        dyn.run(equil_steps)
        step += equil_steps
        nsteps += equil_steps
        log(f"{structure} {temperature:g} K: equilibrated {equil_steps} steps, "
            f"T={atoms.get_temperature():.0f} K ({(time.time() - t0) / equil_steps:.2f} s/step)")
    for i in range(done, frames):
        dyn.run(stride)
        step += stride
        nsteps += stride
        frame = _labelled_frame(atoms, structure, temperature, step, dt_fs)
        if not (np.isfinite(frame.get_potential_energy()) and np.isfinite(frame.get_forces()).all()):
            raise RuntimeError(f"{structure} {temperature:g} K step {step}: non-finite SevenNet-0 output")
        _append_frame(part, frame)
        log(f"{structure} {temperature:g} K: frame {i + 1}/{frames} step {step} "
            f"T={frame.info['md_temperature_K']:.0f} K E={frame.get_potential_energy():.3f} eV "
            f"max|F|={np.abs(frame.get_forces()).max():.2f} eV/A "
            f"({(time.time() - t0) / max(nsteps, 1):.2f} s/step)")
    if not finalize:
        return "partial"
    all_frames = _read_complete_frames(part)
    if len(all_frames) != frames:
        raise RuntimeError(f"{part}: expected {frames} frames, found {len(all_frames)}")
    _write_gz(out_path, all_frames)
    part.unlink()
    log(f"{structure} {temperature:g} K: wrote {out_path} ({frames} frames, {time.time() - t0:.0f} s)")
    return "done"


def load_ground_state(path: Path):
    from ase.io import read

    from ionflow.errors import InputError

    if not path.is_file():
        raise InputError(path, "ground-state structure not found (run scripts/build_demo_structures.py)")
    atoms = read(path, format="extxyz")
    atoms.calc = None
    return atoms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", nargs="+", default=["S1", "S2"])
    ap.add_argument("--temperatures", nargs="+", type=float, default=[100.0, 400.0, 600.0, 900.0])
    ap.add_argument("--frames", type=int, default=16, help="frames saved per (structure, T)")
    ap.add_argument("--stride", "--steps-per-frame", dest="stride", type=int, default=10,
                    help="MD steps between saved frames")
    ap.add_argument("--equil-steps", type=int, default=60, help="MD steps before the first frame")
    ap.add_argument("--dt-fs", type=float, default=2.0)
    ap.add_argument("--friction-per-fs", type=float, default=0.01, help="Langevin friction (1/fs)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--data-dir", default="data/demo", help="where {S}_ground_state.extxyz are")
    ap.add_argument("--out-dir", default="data/demo/fpmd")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.stride < 1 or args.equil_steps < 0:
        ap.error("--frames and --stride must be >= 1, --equil-steps >= 0")

    import torch
    from sevenn.calculator import SevenNetCalculator

    from ionflow.errors import IonflowError

    torch.set_num_threads(1)
    try:
        starts = {s: load_ground_state(Path(args.data_dir) / f"{s}_ground_state.extxyz")
                  for s in args.structures}
    except IonflowError as exc:
        print(f"make_demo_fpmd: error: {exc}", file=sys.stderr)
        return 2
    calc = SevenNetCalculator("7net-0", device="cpu")
    log(f"settings: {vars(args)}")
    for s in args.structures:
        for t in args.temperatures:
            out = Path(args.out_dir) / f"{s}_{t:g}K.extxyz.gz"
            run_combo(starts[s], calc, s, t, out, frames=args.frames, stride=args.stride,
                      equil_steps=args.equil_steps, dt_fs=args.dt_fs,
                      friction_per_fs=args.friction_per_fs, seed=args.seed)
    log("all requested combinations complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
