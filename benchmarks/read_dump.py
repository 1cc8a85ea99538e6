"""Throughput of the LAMMPS text-dump reader (target >= 50 MB/s).

    .venv/bin/python benchmarks/read_dump.py [DUMP] [--frames 10000] [--atoms 132] [--repeat 3]

Without DUMP a synthetic dump (``xu yu zu``, 7 significant digits, like LAMMPS' default %g plus one)
is written to benchmarks/out/. Reports MB/s for unwrapped coordinates and, on the same path, for
wrapped ``x y z`` + image flags and wrapped-only (minimum-image unwrapping).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
OUT = Path(__file__).resolve().parent / "out"


def throughput(path, repeat):
    from ionflow.io.trajectory import TrajectoryReader

    sum(c.positions.shape[0] for c in TrajectoryReader(path))  # warm-up (imports, page cache)
    best = float("inf")
    n = 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = sum(c.positions.shape[0] for c in TrajectoryReader(path))
        best = min(best, time.perf_counter() - t)
    mb = Path(path).stat().st_size / 1e6
    return n, mb, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", nargs="?")
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--atoms", type=int, default=132)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.dump:
        paths = {"given": Path(args.dump)}
    else:
        from ionflow.analysis import synthetic

        OUT.mkdir(exist_ok=True)
        n_mob = round(args.atoms * 0.4)
        sym, pos, cell = synthetic.walkers(args.frames, n_mobile=n_mob, n_framework=args.atoms - n_mob,
                                           D_A2_fs=1e-4, dt_fs=10.0, cell=(14.0, 14.0, 14.0), seed=1)
        paths = {}
        for mode in ("unwrapped", "images", "wrapped"):
            p = OUT / f"read_{mode}_{args.frames}x{args.atoms}.lammpstrj"
            if not p.exists():
                synthetic.write_lammps_dump(p, sym, pos, cell, mode=mode, precision=7)
            paths[mode] = p
    for name, p in paths.items():
        n, mb, t = throughput(p, args.repeat)
        print(f"{name:10s} {n} frames, {mb:.1f} MB in {t:.3f} s = {mb / t:.0f} MB/s  ({p})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
