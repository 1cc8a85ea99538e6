"""PES-scan throughput (grid points/s): cut-out batched vs one-by-one vs full cell; SevenNet; vs MD.

    .venv/bin/python benchmarks/pes_scan_throughput.py [--manifest results/models/ensemble.json]
        [--points 256] [--sevennet-points 8] [--no-sevennet] [--md-steps 400000]

Cell: gamma-Li3PO4 1x2x2 (128 atoms), one Li moved over random valid grid points. Evaluators:
- Allegro members (from --manifest; default: two randomly initialised float32 Allegro models with the
  demo 'tiny' preset shape, r_max 5 A - timing does not depend on the weights):
  cut-out (locality) graphs with batch sizes 1, 8, 32, 128, and full-cell graphs (batch 1, 32);
  energy only (no autograd);
- SevenNet-0 energy-only, one by one and batched (4), and the standard calculator (E+F+S);
- MD reference: one E+F call of the same Allegro member through nequip's ASE calculator = one MD
  step. "Screening vs MD" = (scan time of --grid-points points x members) / (--md-steps steps), the
  number of MD steps of the study to a converged sigma (default 4 temperatures x 2 seeds x 50 ps at
  1 fs = 400 000 steps; pass your own).
CPU seconds (time.process_time, one thread) are reported: robust on a shared machine.
Writes benchmarks/out/pes_scan_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def build_allegro(seed, types, derivatives=False):
    """The demo 'tiny' Allegro shape (r_max 5 A, 1 layer), random weights, float32."""
    from allegro.model import AllegroModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    return AllegroModel(
        seed=seed, model_dtype="float32", type_names=types, r_max=5.0,
        radial_chemical_embed={"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 8,
                               "bessel_trainable": False, "polynomial_cutoff_p": 6},
        radial_chemical_embed_dim=16, scalar_embed_mlp_hidden_layers_depth=1,
        scalar_embed_mlp_hidden_layers_width=32, l_max=1, parity=False, num_layers=1,
        num_scalar_features=16, num_tensor_features=8, allegro_mlp_hidden_layers_depth=1,
        allegro_mlp_hidden_layers_width=32, readout_mlp_hidden_layers_depth=1,
        readout_mlp_hidden_layers_width=16, avg_num_neighbors=30.0,
        per_type_energy_shifts={t: -3.0 for t in types}, per_type_energy_scales=1.0,
        do_derivatives=derivatives).eval()


def random_members(types, n=2):
    import torch

    from ionflow.screening.calculators import _Member

    return [_Member(f"random{seed}", build_allegro(seed, types), types, 5.0, "random init",
                    torch.get_default_dtype(), torch.device("cpu")) for seed in range(1, n + 1)]


def cpu_per_point(fn, pts, repeat=2):
    fn(pts[:2])  # warm-up
    best = np.inf
    for _ in range(repeat):
        t = time.process_time()
        fn(pts)
        best = min(best, time.process_time() - t)
    return best / len(pts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest")
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--sevennet-points", type=int, default=8)
    ap.add_argument("--no-sevennet", action="store_true")
    ap.add_argument("--grid-points", type=int, default=20000, help="valid points of a typical scan")
    ap.add_argument("--md-steps", type=int, default=400_000, help="MD steps to a converged sigma")
    args = ap.parse_args()

    import torch

    from ionflow import structures
    from ionflow.screening.calculators import EnsembleEvaluator, _Member, read_manifest
    from ionflow.screening.scan import exclusion_mask

    torch.set_num_threads(1)
    at = structures.gamma_li3po4().repeat((1, 2, 2))
    rng = np.random.default_rng(0)
    frac = rng.random((20 * args.points, 3))
    ok = ~exclusion_mask(np.array(at.cell), frac, at.positions[1:], 1.2)
    pts = (frac[ok] @ np.array(at.cell))[: args.points]
    res = {"cell": "gamma-Li3PO4 1x2x2", "atoms": len(at), "points": len(pts), "rows": []}

    if args.manifest:
        members = [_Member.load(s, torch.device("cpu")) for s in read_manifest(args.manifest)]
    else:
        members = random_members(["Li", "P", "O"])
    mb = members[0]
    for local, bss in ((True, (1, 8, 32, 128)), (False, (1, 32))):
        for bs in bss:
            ev = EnsembleEvaluator(members=[mb], batch_size=bs, locality="on" if local else "off")
            ev.prepare(at, 0, check_points=pts[:1])
            t = cpu_per_point(lambda p: ev.engines[0].energies(p, local=local), pts)
            row = {"evaluator": f"allegro {'cut-out' if local else 'full cell'}", "batch": bs,
                   "cpu_ms_per_point_per_member": 1e3 * t, "points_per_s": 1.0 / t}
            res["rows"].append(row)
            print(f"{row['evaluator']:>22s} batch {bs:4d}: {1e3 * t:7.2f} ms/point/member "
                  f"({1 / t:7.1f} points/s)")
    # MD step = one E+F call through nequip's ASE calculator (forces need autograd)
    from nequip.integrations.ase import NequIPCalculator
    from nequip.integrations.utils import basic_transforms

    if args.manifest:
        src = read_manifest(args.manifest)[0]
        calc = (NequIPCalculator.from_compiled_model(src["compiled_ase"], chemical_species_to_atom_type_map=True)
                if src.get("compiled_ase") else
                NequIPCalculator._from_saved_model(src["package"], chemical_species_to_atom_type_map=True))
    else:
        types = ["Li", "P", "O"]
        calc = NequIPCalculator(build_allegro(1, types, derivatives=True), device="cpu",
                                transforms=basic_transforms({}, 5.0, types, {t: t for t in types}))
    a = at.copy()
    a.calc = calc
    a.get_forces()
    t = time.process_time()
    for _ in range(10):
        a.positions[0] += 0.001
        a.get_forces()
    step = (time.process_time() - t) / 10
    best_local = min(r["cpu_ms_per_point_per_member"] for r in res["rows"] if "cut-out" in r["evaluator"]) / 1e3
    n_mem = len(members)
    scan_s = args.grid_points * best_local * n_mem
    md_s = args.md_steps * step
    res["md"] = {"cpu_s_per_md_step": step, "md_steps": args.md_steps, "md_cpu_s": md_s,
                 "scan_grid_points": args.grid_points, "members": n_mem, "scan_cpu_s_per_ion": scan_s,
                 "speedup_md_over_scan": md_s / scan_s}
    print(f"MD step (E+F, ASE) {1e3 * step:.1f} ms; scan of {args.grid_points} points x {n_mem} members "
          f"{scan_s:.0f} s per ion vs MD {md_s:.0f} s for {args.md_steps} steps: {md_s / scan_s:.0f}x")

    if not args.no_sevennet:
        from ionflow.screening.calculators import SevenNetEvaluator, _float32_default

        sp = pts[: args.sevennet_points]
        for bs in (1, 4):
            ev = SevenNetEvaluator(batch_size=bs)
            ev.prepare(at, 0)
            t = cpu_per_point(lambda p: ev.energies(p), sp, repeat=1)
            res["rows"].append({"evaluator": "sevennet-0 energy-only", "batch": bs,
                                "cpu_ms_per_point_per_member": 1e3 * t, "points_per_s": 1 / t})
            print(f"{'sevennet-0 energy-only':>22s} batch {bs:4d}: {1e3 * t:7.1f} ms/point ({1 / t:.2f} points/s)")
        from sevenn.calculator import SevenNetCalculator

        with _float32_default():
            a = at.copy()
            a.calc = SevenNetCalculator("7net-0", device="cpu")
            a.get_potential_energy()
            t = time.process_time()
            for p in sp[:4]:
                a.positions[0] = p
                a.get_potential_energy()
            t = (time.process_time() - t) / 4
        res["rows"].append({"evaluator": "sevennet-0 standard calculator (E+F+S)", "batch": 1,
                            "cpu_ms_per_point_per_member": 1e3 * t, "points_per_s": 1 / t})
        print(f"{'sevennet-0 E+F+S':>22s} batch    1: {1e3 * t:7.1f} ms/point ({1 / t:.2f} points/s)")
    OUT.mkdir(exist_ok=True)
    (OUT / "pes_scan_throughput.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
