"""Time ionflow's conductivity analysis against a bare numpy FFT and the peer tools on one trajectory.

    .venv/bin/python benchmarks/analysis_vs_peers.py [--frames 10000] [--mobile 52] [--framework 80]
                                                      [--repeat 3] [--setup-peers] [--no-peers]

The trajectory is synthetic (random-walk Li with a known D among vibrating framework atoms, 10 fs
between frames), written as a LAMMPS text dump under benchmarks/out/ and held in memory for the
analysis timings. Measured:
- reading the dump (MB/s) and read + framework reference (``load_run``);
- ``ionflow.analysis.conductivity.analyse`` (blocks, tracer + full, fits, nested errors, curves);
- a bare numpy FFT of MSD + MSCD over all time origins (mobile ions, whole run): the floor;
- pymatgen-analysis-diffusion ``DiffusionAnalyzer`` and kinisi ``DiffusionAnalyzer`` /
  ``ConductivityAnalyzer``, run by the peers' own venv ``benchmarks/.venv-peers`` (never the
  project venv). ``--setup-peers`` creates it (``python -m venv`` + ``pip install
  pymatgen-analysis-diffusion kinisi``); without it the peers are skipped with a note.
Writes benchmarks/out/analysis_vs_peers.json and prints a table: times, ratios, D and sigma with
their error bars and whether they agree with the known D.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".venv-peers"
OUT = HERE / "out"
PEER_PACKAGES = ["pymatgen-analysis-diffusion", "kinisi"]


# ---------------------------------------------------------------------------------------------
# peer runners: executed by the peers' venv python (no ionflow import there)

def _peer_pymatgen(npz, T, dt_fs):
    import numpy as np
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    d = np.load(npz)
    pos, cell, sym = d["positions"], d["cell"], [str(s) for s in d["symbols"]]
    t0 = time.perf_counter()
    st = Structure(Lattice(cell), sym, pos[0], coords_are_cartesian=True)
    disp = np.ascontiguousarray((pos - pos[0]).transpose(1, 0, 2))
    da = DiffusionAnalyzer(st, disp, "Li", T, time_step=dt_fs, step_skip=1, smoothed="max")
    elapsed = time.perf_counter() - t0
    return {"time_s": elapsed, "D_cm2_s": da.diffusivity, "D_sem": da.diffusivity_std_dev,
            "sigma_tracer_S_cm": da.conductivity / 1000.0, "sigma_tracer_sem": da.conductivity_std_dev / 1000.0,
            "D_sigma_cm2_s": da.chg_diffusivity, "D_sigma_sem": da.chg_diffusivity_std_dev,
            "sigma_full_S_cm": da.chg_conductivity / 1000.0, "sigma_full_sem": da.chg_conductivity_std_dev / 1000.0,
            "haven_ratio": da.haven_ratio}


def _peer_kinisi(npz, T, dt_fs, start_ps):
    import numpy as np
    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import ConductivityAnalyzer, DiffusionAnalyzer

    d = np.load(npz)
    pos, cell, sym = d["positions"], d["cell"], [str(s) for s in d["symbols"]]
    out = {}
    t0 = time.perf_counter()
    frames = [Atoms(symbols=sym, positions=p, cell=cell, pbc=True) for p in pos]
    for a in frames:
        a.wrap()
    out["atoms_build_s"] = time.perf_counter() - t0
    # 100 time intervals up to the full run (kinisi's default, every lag, makes its GLS/MCMC fits
    # O(T^2) in memory and minutes long; pymatgen uses ~200 lags)
    n = pos.shape[0]
    step = max(1, (n - 1) // 100)
    dt = sc.array(dims=["time interval"], values=np.arange(1, n, step) * dt_fs, unit="fs")
    kw = dict(specie="Li", time_step=sc.scalar(dt_fs, unit="fs"), step_skip=sc.scalar(1), dt=dt, progress=False)
    t1 = time.perf_counter()
    da = DiffusionAnalyzer.from_ase(frames, **kw)
    t2 = time.perf_counter()
    da.diffusion(sc.scalar(start_ps * 1000.0, unit="fs"), progress=False, random_state=np.random.RandomState(1))
    t3 = time.perf_counter()
    ca = ConductivityAnalyzer.from_ase(frames, ionic_charge=sc.scalar(1, unit="e"), **kw)
    t4 = time.perf_counter()
    ca.conductivity(sc.scalar(start_ps * 1000.0, unit="fs"), sc.scalar(T, unit="K"), progress=False,
                    random_state=np.random.RandomState(1))
    t5 = time.perf_counter()
    D = sc.to_unit(da.D, "cm^2/s").values
    S = sc.to_unit(ca.sigma, "S/cm").values
    out.update({"time_s": t5 - t1, "msd_s": t2 - t1, "diffusion_fit_s": t3 - t2, "mscd_s": t4 - t3,
                "conductivity_fit_s": t5 - t4, "D_cm2_s": float(np.mean(D)), "D_sem": float(np.std(D)),
                "sigma_full_S_cm": float(np.mean(S)), "sigma_full_sem": float(np.std(S))})
    return out


# ---------------------------------------------------------------------------------------------
# ionflow side

def bare_fft(mobile):
    """MSD + MSCD over all origins, whole run, plain numpy (the floor any FFT method has)."""
    import numpy as np

    def msd(x):  # x (T, n, 3) -> mean over particles
        T = x.shape[0]
        n = 2 * T
        f = np.fft.rfft(x, n=n, axis=0)
        s2 = np.fft.irfft((f * f.conj()).real, n=n, axis=0)[:T].sum(axis=(1, 2))
        dsq = (x * x).sum(axis=(1, 2))
        cs = np.concatenate([[0.0], np.cumsum(dsq)])
        m = np.arange(T)
        s1 = cs[T - m] + cs[T] - cs[m]
        return (s1 - 2 * s2) / (T - m) / x.shape[1]

    return msd(mobile), msd(mobile.sum(axis=1)[:, None, :])


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def setup_peers():
    if not (PEERS_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([str(PEERS_VENV / "bin" / "pip"), "install", "-q", *PEER_PACKAGES], check=True)


def run_peer(name, npz, T, dt_fs, start_ps):
    py = PEERS_VENV / "bin" / "python"
    if not py.exists():
        return {"skipped": f"{PEERS_VENV} missing (run with --setup-peers)"}
    cmd = [str(py), __file__, "--peer", name, "--npz", str(npz), "--temperature", str(T), "--dt-fs", str(dt_fs),
           "--start-ps", str(start_ps)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        return {"skipped": f"{name} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--mobile", type=int, default=52)
    ap.add_argument("--framework", type=int, default=80)
    ap.add_argument("--D-A2-fs", type=float, default=1e-4, help="true tracer D of the walkers (Å^2/fs)")
    ap.add_argument("--temperature", type=float, default=600.0)
    ap.add_argument("--dt-fs", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--setup-peers", action="store_true", help="create benchmarks/.venv-peers with the peers")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peer", choices=("pymatgen", "kinisi"), help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    ap.add_argument("--start-ps", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.peer:  # inside the peers' venv
        fn = {"pymatgen": lambda: _peer_pymatgen(args.npz, args.temperature, args.dt_fs),
              "kinisi": lambda: _peer_kinisi(args.npz, args.temperature, args.dt_fs, args.start_ps)}[args.peer]
        print(json.dumps(fn()))
        return 0

    import numpy as np

    from ionflow.analysis import A2_PER_FS_TO_CM2_PER_S, sigma_prefactor, synthetic
    from ionflow.analysis.conductivity import Run, analyse, load_run
    from ionflow.io.trajectory import TrajectoryReader

    if args.setup_peers:
        setup_peers()
    OUT.mkdir(exist_ok=True)
    n_mob, n_fw = args.mobile, args.framework
    cell = (14.0, 14.0, 14.0)
    sym, pos, cellm = synthetic.walkers(args.frames, n_mobile=n_mob, n_framework=n_fw, D_A2_fs=args.D_A2_fs,
                                        dt_fs=args.dt_fs, cell=cell, seed=1)
    dump = OUT / f"bench_{args.frames}x{n_mob + n_fw}.lammpstrj"
    if not dump.exists():
        synthetic.write_lammps_dump(dump, sym, pos, cellm, precision=7)
    size_mb = dump.stat().st_size / 1e6

    def read_only():
        return sum(c.positions.shape[0] for c in TrajectoryReader(dump))

    read_only()  # warm-up: imports (pandas), page cache
    t_read, _ = best_of(read_only, args.repeat)
    t_load, run = best_of(lambda: load_run(dump, ["Li"], {"Li": 1.0}), args.repeat)

    mob = sym == "Li"
    r_f = pos[:, ~mob].mean(axis=1)
    rel = pos[:, mob] - r_f[:, None]
    mem_run = Run(path="memory", mobile=rel, mobile_species=np.zeros(n_mob, int), collective=rel.sum(axis=1),
                  volume_A3=float(np.prod(cell)), volume_rel_std=0.0, n_frames_read=args.frames, n_dropped=0,
                  framework_coarse=run.framework_coarse)
    kw = dict(species=["Li"], charges={"Li": 1.0}, temperature_K=args.temperature, dt_fs=args.dt_fs, blocks=5)
    analyse([mem_run], **kw)  # warm-up (imports, FFT plans)
    t_ion, res = best_of(lambda: analyse([mem_run], **kw), args.repeat)
    bare_fft(rel[:100])
    t_bare, _ = best_of(lambda: bare_fft(rel), args.repeat)

    D_true = args.D_A2_fs * A2_PER_FS_TO_CM2_PER_S
    sig_true = sigma_prefactor(float(np.prod(cell)), args.temperature) * n_mob * args.D_A2_fs
    report = {
        "trajectory": {"frames": args.frames, "atoms": n_mob + n_fw, "mobile": n_mob, "dump_MB": size_mb,
                       "dt_fs": args.dt_fs, "D_true_cm2_s": D_true, "sigma_NE_true_S_cm": sig_true},
        "read_dump_s": t_read, "read_MB_per_s": size_mb / t_read, "read_and_reference_s": t_load,
        "ionflow_analyse_s": t_ion, "bare_fft_s": t_bare, "ionflow_over_bare": t_ion / t_bare,
        "ionflow": {k: res[k] for k in ("D_tracer_cm2_s", "D_sigma_cm2_s", "sigma_tracer_S_cm", "sigma_full_S_cm",
                                        "haven_ratio")},
        "fit_window_ps": [res["fit_start_ps"], res["fit_end_ps"]],
        "peers": {},
    }
    if not args.no_peers:
        npz = OUT / "bench_positions.npz"
        np.savez(npz, positions=pos, cell=cellm, symbols=sym)
        for name in ("pymatgen", "kinisi"):
            report["peers"][name] = run_peer(name, npz, args.temperature, args.dt_fs, res["fit_start_ps"])

    # agreement with the known D (within 3 of each tool's own error bar)
    def agree(m, s, truth):
        return None if s is None or not s > 0 else bool(abs(m - truth) <= 3 * s)

    ion = report["ionflow"]
    lines = [f"trajectory: {args.frames} frames x {n_mob + n_fw} atoms ({n_mob} Li), dump {size_mb:.1f} MB",
             f"read LAMMPS dump: {t_read:.3f} s = {size_mb / t_read:.0f} MB/s; read + framework reference {t_load:.3f} s",
             f"ionflow analyse (5 blocks, tracer+full, fits, errors, curves): {t_ion:.3f} s",
             f"bare numpy FFT MSD+MSCD (whole run): {t_bare:.3f} s   -> ionflow / bare = {t_ion / t_bare:.2f}",
             f"true D = {D_true:.4g} cm2/s, sigma_NE = {sig_true:.4g} S/cm",
             f"ionflow  D = {ion['D_tracer_cm2_s']['mean']:.4g} +- {ion['D_tracer_cm2_s']['sem']:.2g} "
             f"(agrees: {agree(ion['D_tracer_cm2_s']['mean'], ion['D_tracer_cm2_s']['sem'], D_true)}), "
             f"sigma_full = {ion['sigma_full_S_cm']['mean']:.4g} +- {ion['sigma_full_S_cm']['sem']:.2g} "
             f"(agrees: {agree(ion['sigma_full_S_cm']['mean'], ion['sigma_full_S_cm']['sem'], sig_true)})"]
    for name, p in report["peers"].items():
        if "skipped" in p:
            lines.append(f"{name}: skipped ({p['skipped']})")
            continue
        p["ionflow_speedup"] = p["time_s"] / t_ion
        p["D_agrees_with_truth"] = agree(p["D_cm2_s"], p.get("D_sem"), D_true)
        p["sigma_full_agrees_with_truth"] = agree(p["sigma_full_S_cm"], p.get("sigma_full_sem"), sig_true)
        lines.append(f"{name}: {p['time_s']:.3f} s (ionflow {p['ionflow_speedup']:.1f}x faster); "
                     f"D = {p['D_cm2_s']:.4g} +- {p.get('D_sem', float('nan')):.2g} (agrees: {p['D_agrees_with_truth']}), "
                     f"sigma_full = {p['sigma_full_S_cm']:.4g} +- {p.get('sigma_full_sem', float('nan')):.2g} "
                     f"(agrees: {p['sigma_full_agrees_with_truth']})")
    report["summary"] = lines
    (OUT / "analysis_vs_peers.json").write_text(json.dumps(report, indent=2, default=float))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
