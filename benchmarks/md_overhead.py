"""Overhead of the LAMMPS path (fix external callback) against bare model evaluations.

    OMP_NUM_THREADS=1 python benchmarks/md_overhead.py [--manifest results/models/m0/manifest.json]
        [--structure data/demo/S1_ground_state.extxyz] [--steps 500] [--repeats 2] [--substitute Si=P]

1. LAMMPS path: `ionflow md`'s python engine (NVT, dumps, thermo, blow-up checks) runs --steps
   production steps on a 132-atom cell (the demo S1 ground state); steps/s from LAMMPS' loop time
   of the run (the end-to-end rate with setup and restart writing is reported too).
2. Bare model: the same compiled model through its ASE calculator (energy, forces, stress, as the
   callback asks for) on the frames that run dumped, cycling through them for as many evaluations.
Ratio = LAMMPS steps/s / bare evaluations/s (goal >= 0.95), measured two ways: within the same run
(time inside the model per step / LAMMPS loop time per step: immune to background load, the
reported `ratio`), and from the separate loops (repeats alternate the two; median of the per-pair
ratios; noisy on a shared machine). ns/day at the run's timestep. Results to --out (JSON) and stdout.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


REPO = Path(__file__).resolve().parents[1]


def lammps_run(member, structure: Path, steps: int, dt_fs: float, workdir: Path, tag: str):
    from ionflow.md.runner import RunSpec, run_md
    from ionflow.md.settings import MDSettings

    s = MDSettings(timestep_fs=dt_fs, steps=steps, equilibration_steps=0, dump_every=max(steps // 25, 1),
                   thermo_every=max(steps // 25, 1), restart_every=steps)
    s = MDSettings(**{**s.__dict__, "disagreement": s.disagreement.__class__(enabled=False)})
    st = run_md(RunSpec(run_dir=workdir / tag, structure_file=structure, structure="bench", member=member,
                        temperature_K=600.0, seed=1, settings=s))
    if st["status"] != "ok":
        raise SystemExit(f"benchmark MD failed: {st['reason']}")
    return st, workdir / tag / "dump.lammpstrj"


def bare_model(member, frames, n_evals: int) -> float:
    """Seconds per energy+forces+stress evaluation, cycling through `frames`."""
    from ionflow.md.models import load_calculator

    calc = load_calculator(member)
    atoms = frames[0].copy()
    atoms.calc = calc
    atoms.get_potential_energy()  # warm-up (first call)
    t0 = time.perf_counter()
    for i in range(n_evals):
        atoms.set_positions(frames[(i + 1) % len(frames)].positions)
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
    return (time.perf_counter() - t0) / n_evals


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, default=REPO / "results/models/m0/manifest.json")
    p.add_argument("--structure", type=Path, default=REPO / "data/demo/S1_ground_state.extxyz")
    p.add_argument("--substitute", action="append", default=[], metavar="A=B",
                   help="replace species A by B (a model trained without A; timing only)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--timestep-fs", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/out/md_overhead.json")
    a = p.parse_args(argv)

    import torch
    from ase.io import read, write

    from ionflow.md.models import load_member

    torch.set_num_threads(1)
    member = load_member(a.manifest)
    atoms = read(a.structure)
    for sub in a.substitute:
        old, new = sub.split("=")
        atoms.symbols[atoms.symbols == old] = new
    lam, bare, end_to_end, same_run = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="ionflow-md-bench-") as tmp:
        tmp = Path(tmp)
        structure = tmp / "structure.extxyz"
        write(structure, atoms)
        st = None
        for r in range(a.repeats):
            st, dump = lammps_run(member, structure, a.steps, a.timestep_fs, tmp, f"run{r}")
            # LAMMPS' own loop time of the production run (integration, callbacks, checks, dumps,
            # thermo); the engine's end-to-end wall time also holds setup and restart writing
            loops = re.findall(r"Loop time of (\S+) on \d+ procs for (\d+) steps",
                               (dump.parent / "log.lammps").read_text())
            loop_s, loop_steps = sum(float(t) for t, _ in loops), sum(int(n) for _, n in loops)
            assert loop_steps == a.steps, loops
            lam.append(loop_steps / loop_s)
            end_to_end.append(a.steps / st["wall_s"])
            # same run, same frames, same moment: model time per step over LAMMPS time per step
            same_run.append((st["calculator_s"] / st["model_calls"]) * loop_steps / loop_s)
            frames = read(dump, index=":", format="lammps-dump-text")
            for f in frames:
                f.wrap()
            bare.append(1.0 / bare_model(member, frames, a.steps))
    steps_per_s, evals_per_s = statistics.median(lam), statistics.median(bare)
    ratio = statistics.median(same_run)
    separate = statistics.median(x / y for x, y in zip(lam, bare))
    result = {
        "natoms": len(atoms), "steps": a.steps, "timestep_fs": a.timestep_fs, "repeats": a.repeats,
        "lammps_steps_per_s": steps_per_s, "bare_evals_per_s": evals_per_s,
        "ratio": ratio, "ratio_separate_loops": separate, "goal": 0.95, "meets_goal": ratio >= 0.95,
        "ns_per_day": steps_per_s * a.timestep_fs * 1e-6 * 86400,
        "end_to_end_steps_per_s": statistics.median(end_to_end),
        "all_lammps_steps_per_s": lam, "all_bare_evals_per_s": bare, "all_ratios": same_run,
        "model": str(a.manifest), "structure": str(a.structure), "substitute": a.substitute,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "machine": platform.platform(),
        "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(atoms)} atoms, {a.steps} steps x {a.repeats}: LAMMPS path {steps_per_s:.1f} steps/s "
          f"({1000 / steps_per_s:.2f} ms/step), bare model {evals_per_s:.1f} evals/s "
          f"({1000 / evals_per_s:.2f} ms/eval); ratio (model time / LAMMPS time, same run) {ratio:.3f}, "
          f"separate loops {separate:.3f} (goal >= 0.95); {result['ns_per_day']:.2f} ns/day at "
          f"{a.timestep_fs:g} fs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
