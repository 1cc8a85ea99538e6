"""Conductivity analysis: known answers on synthetic trajectories with a framework.

Tolerances come from the statistics: an estimate must lie within the 99.9 % Student-t interval of
its own reported SEM (degrees of freedom from the nested design), and the SEM itself must be
small enough for the test to discriminate (e.g. H_R = 0.5 vs 1).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from ionflow.analysis import A2_PER_FS_TO_CM2_PER_S, sigma_prefactor, synthetic
from ionflow.analysis.conductivity import Run, analyse, load_run
from ionflow.analysis.correlation import linear_fit, msd_direct, msd_sum_blocks
from ionflow.analysis.uncertainty import nested_mean, ratio_nested
from ionflow.cli import main

D = 1e-3          # Å^2/fs = 1e-4 cm^2/s
DT = 10.0         # fs between frames
T_K = 600.0
CELL = (12.0, 12.0, 12.0)


def t999(dof):
    return stats.t.ppf(0.9995, max(dof, 1))


def within(stat: dict, comps: dict, truth: float, max_rel_sem: float):
    m, s = stat["mean"], stat["sem"]
    assert s > 0 and s / abs(truth) < max_rel_sem, f"sem {s} too large for a test of {truth}"
    z = abs(m - truth) / s
    assert z < t999(comps["dof"]), f"{m} vs {truth}: {z:.1f} sem (dof {comps['dof']})"


def make_run(seed, *, n_frames=3000, n_mobile=24, group_size=1, drift=(0, 0, 0), n_fw=8, vib=0.05):
    sym, pos, cell = synthetic.walkers(n_frames, n_mobile=n_mobile, n_framework=n_fw, D_A2_fs=D, dt_fs=DT,
                                       cell=CELL, group_size=group_size, drift_A_fs=drift, seed=seed,
                                       vib_A=vib)
    mob = sym == "Li"
    r_f = pos[:, ~mob].mean(axis=1)
    rel = pos[:, mob] - r_f[:, None]
    return Run(path=f"mem{seed}", mobile=rel, mobile_species=np.zeros(mob.sum(), int), collective=rel.sum(axis=1),
               volume_A3=float(np.prod(CELL)), volume_rel_std=0.0, n_frames_read=n_frames, n_dropped=0,
               framework_coarse=None)


def run_analysis(runs, **kw):
    kw.setdefault("blocks", 10)
    return analyse(runs, species=["Li"], charges={"Li": 1.0}, temperature_K=T_K, dt_fs=DT, **kw)


# ---------------------------------------------------------------------------------------------
# correlation core

def test_fft_msd_equals_direct_all_origins():
    x = np.random.default_rng(0).normal(size=(401, 5, 3)).cumsum(axis=0) + 50.0
    S = msd_sum_blocks(x, n_blocks=3)
    L = 401 // 3
    for b in range(3):
        ref = msd_direct(x[b * L:(b + 1) * L], np.arange(L))
        np.testing.assert_allclose(S[b], ref, rtol=1e-9, atol=1e-9)


def test_fft_msd_memory_budget_groups_atoms():
    x = np.random.default_rng(1).normal(size=(300, 7, 3)).cumsum(axis=0)
    np.testing.assert_allclose(msd_sum_blocks(x, 2, budget_bytes=1), msd_sum_blocks(x, 2), rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# known answers

@pytest.fixture(scope="module")
def independent():
    return run_analysis([make_run(s) for s in (1, 2, 3)])


def test_independent_walkers_nernst_einstein(independent):
    res = independent
    comps = res["variance_components"]
    V = float(np.prod(CELL))
    sigma_ne = sigma_prefactor(V, T_K) * 24 * D
    within(res["D_tracer_cm2_s"], comps["D_tracer_cm2_s"], D * A2_PER_FS_TO_CM2_PER_S, 0.05)
    within(res["sigma_tracer_S_cm"], comps["sigma_tracer_S_cm"], sigma_ne, 0.05)
    within(res["sigma_full_S_cm"], comps["sigma_full_S_cm"], sigma_ne, 0.25)
    within(res["haven_ratio"], comps["haven_ratio"], 1.0, 0.25)
    # sigma_tr is Nernst-Einstein of D_tr exactly (same blocks)
    assert res["sigma_tracer_S_cm"]["mean"] == pytest.approx(
        sigma_prefactor(V, T_K) * 24 * res["D_tracer_cm2_s"]["mean"] / A2_PER_FS_TO_CM2_PER_S, rel=1e-12)
    assert res["n_mobile"] == 24 and res["volume_A3"] == pytest.approx(V)
    assert len(res["trajectories"]) == 3
    assert all(len(t["blocks"]["sigma_full_S_cm"]) == 10 for t in res["trajectories"])
    d = res["diagnostics"]
    assert abs(d["beta_tracer"] - 1) < 0.1 and res["converged"], res["not_converged_reason"]


def test_correlated_pairs_haven_one_half():
    res = run_analysis([make_run(s, n_mobile=32, group_size=2) for s in (11, 12, 13)])
    comps = res["variance_components"]
    within(res["haven_ratio"], comps["haven_ratio"], 0.5, 0.3)
    assert res["haven_ratio"]["mean"] + 4 * res["haven_ratio"]["sem"] < 1.0  # distinguishable from 1
    within(res["D_sigma_cm2_s"], comps["D_sigma_cm2_s"], 2 * D * A2_PER_FS_TO_CM2_PER_S, 0.3)
    within(res["D_tracer_cm2_s"], comps["D_tracer_cm2_s"], D * A2_PER_FS_TO_CM2_PER_S, 0.1)


def test_uniform_drift_does_not_change_D():
    base = run_analysis([make_run(5)])
    drift = run_analysis([make_run(5, drift=(3e-3, -2e-3, 1e-3))])  # 9 Å over the run
    for key in ("D_tracer_cm2_s", "sigma_full_S_cm", "haven_ratio"):
        assert drift[key]["mean"] == pytest.approx(base[key]["mean"], rel=1e-7)
    # without the framework reference the drift shows up (the test is sensitive)
    sym, pos, cell = synthetic.walkers(3000, n_mobile=24, n_framework=8, D_A2_fs=D, dt_fs=DT, cell=CELL,
                                       drift_A_fs=(3e-3, -2e-3, 1e-3), seed=5)
    raw = pos[:, sym == "Li"]
    r = Run(path="raw", mobile=raw, mobile_species=np.zeros(24, int), collective=raw.sum(axis=1),
            volume_A3=1728.0, volume_rel_std=0.0, n_frames_read=3000, n_dropped=0, framework_coarse=None)
    assert run_analysis([r])["D_tracer_cm2_s"]["mean"] > 1.5 * base["D_tracer_cm2_s"]["mean"]


def test_uncertainty_is_calibrated_over_replicas():
    """The reported SEM must match the scatter of independent replicas (F-test, 99.9 %)."""
    est, sem2 = [], []
    for s in range(40):
        res = run_analysis([make_run(1000 + s, n_frames=1500, n_mobile=8)], blocks=8)
        est.append(res["sigma_full_S_cm"]["mean"])
        sem2.append(res["sigma_full_S_cm"]["sem"] ** 2)
    ratio = np.var(est, ddof=1) / np.mean(sem2)
    lo, hi = stats.f.ppf([0.0005, 0.9995], 39, 40 * 7)
    assert lo < ratio < hi, ratio


def test_fit_window_default_recorded_and_user_window():
    res = run_analysis([make_run(3)], blocks=5)
    fw = res["fit_window"]
    assert fw["default"] and "block length" in fw["rule"]
    assert fw["start_ps"] == pytest.approx(0.1 * 600 * DT / 1000) and fw["end_ps"] == pytest.approx(3.0)
    res2 = run_analysis([make_run(3)], blocks=5, fit_start_ps=1.0, fit_end_ps=2.0)
    assert not res2["fit_window"]["default"] and res2["fit_end_ps"] == 2.0
    from ionflow.errors import IonflowError

    with pytest.raises(IonflowError, match="exceeds the block length"):
        run_analysis([make_run(3)], blocks=5, fit_end_ps=7.0)


def test_not_converged_is_flagged():
    # 50 frames of slow walkers: MSD far below a hop length
    res = run_analysis([make_run(4, n_frames=400)], blocks=2, thresholds={"min_hops": 1e9})
    assert res["converged"] is False
    assert "hops" in res["not_converged_reason"]


# ---------------------------------------------------------------------------------------------
# nested uncertainty

def test_nested_components_recover_known_variances():
    rng = np.random.default_rng(3)
    sw, ss, sm = 1.0, 0.5, 2.0
    K, R, M = 4, 3, 6
    comps, cover = [], 0
    n = 400
    for _ in range(n):
        vals = []
        for _k in range(K):
            mk = rng.normal(0, sm)
            vals.append([mk + rng.normal(0, ss) + rng.normal(0, sw, M) for _r in range(R)])
        res = nested_mean(vals)
        comps.append([res["components"]["within_blocks"] ** 2, res["components"]["between_seeds"] ** 2,
                      res["components"]["between_models"] ** 2])
        cover += abs(res["mean"]) < 1.96 * res["sem"]
    c = np.mean(comps, axis=0)
    truth = np.array([sw ** 2 / (M * R * K), ss ** 2 / (R * K), sm ** 2 / K])
    # unbiased up to the max(0, .) truncation; 400 replicas -> a few % statistical error
    np.testing.assert_allclose(c, truth, rtol=0.15)
    # coverage of the 95 % interval with only K-1 = 3 dof of the model level is about t_3 -> ~80 %
    assert 0.7 < cover / n < 0.99


def test_ratio_uses_correlation():
    rng = np.random.default_rng(0)
    den = [[rng.normal(10, 1, 20)]]
    num = [[0.5 * den[0][0]]]  # perfectly correlated: ratio exactly 0.5, no error
    r = ratio_nested(num, den)
    assert r["mean"] == pytest.approx(0.5) and r["sem"] < 1e-12


# ---------------------------------------------------------------------------------------------
# CLI end to end on LAMMPS dumps

@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("md")
    out = {}
    for s in (1, 2, 3):
        sym, pos, cell = synthetic.walkers(2500, n_mobile=24, n_framework=8, D_A2_fs=D, dt_fs=DT, cell=CELL,
                                           drift_A_fs=(1e-3, 0, 0), seed=40 + s)
        d = root / f"seed{s}"
        d.mkdir()
        synthetic.write_lammps_dump(d / "dump.lammpstrj", sym, pos, cell, mode="unwrapped")
        synthetic.write_lammps_dump(d / "wrapped.lammpstrj", sym, pos, cell, mode="wrapped")
        (d / "status.json").write_text(json.dumps({"status": "ok", "reason": None, "dt_fs_between_frames": DT,
                                                   "temperature_K": T_K, "ensemble": "nvt", "seed": s}))
        out[s] = d
    return root, out


def cli(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_end_to_end_seeds_and_plots(dumps, tmp_path, capsys):
    root, d = dumps
    o = tmp_path / "res" / "600K.json"
    rc, out, err = cli(["conductivity", *[str(d[s] / "dump.lammpstrj") for s in (1, 2, 3)], "--species", "Li",
                        "--temperature", "600", "--dt-fs", "10", "--blocks", "5", "-o", str(o),
                        "--plot-msd", str(tmp_path / "msd.png"), "--plot-running", str(tmp_path / "run.png"),
                        "--structure", "S1", "--model", "m0"], capsys)
    assert rc == 0, err
    res = json.loads(o.read_text())
    for key in ("D_tracer_cm2_s", "D_sigma_cm2_s", "sigma_tracer_S_cm", "sigma_full_S_cm", "haven_ratio"):
        assert set(res[key]) == {"mean", "sem"} and res[key]["sem"] > 0
    assert res["temperature_K"] == 600 and res["n_mobile"] == 24 and res["volume_A3"] == pytest.approx(1728)
    assert res["fit_window"]["default"] and res["fit_start_ps"] < res["fit_end_ps"]
    assert res["provenance"]["inputs"] and res["provenance"]["seeds"]
    assert len(res["trajectories"]) == 3 and res["excluded"] == []
    vc = res["variance_components"]["sigma_full_S_cm"]
    assert vc["within_blocks"] is not None and vc["between_seeds"] is not None and vc["between_models"] is None
    dof = res["variance_components"]["D_tracer_cm2_s"]["dof"]
    z = abs(res["D_tracer_cm2_s"]["mean"] - 1e-4) / res["D_tracer_cm2_s"]["sem"]
    assert z < t999(dof)
    for png in ("msd.png", "run.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sigma_full" in out


def test_cli_wrapped_equals_unwrapped(dumps, tmp_path, capsys):
    root, d = dumps
    res = {}
    for name in ("dump", "wrapped"):
        o = tmp_path / f"{name}.json"
        rc, _, err = cli(["conductivity", str(d[1] / f"{name}.lammpstrj"), "--temperature", "600",
                          "--blocks", "4", "-o", str(o)], capsys)  # dt from status.json
        assert rc == 0, err
        res[name] = json.loads(o.read_text())
    for key in ("D_tracer_cm2_s", "sigma_full_S_cm"):
        assert res["wrapped"][key]["mean"] == pytest.approx(res["dump"][key]["mean"], rel=1e-6)
    assert res["dump"]["dt_fs"] == DT


def test_cli_failed_run_is_excluded_and_listed(dumps, tmp_path, capsys):
    root, d = dumps
    bad = tmp_path / "seed9"
    bad.mkdir()
    (bad / "status.json").write_text(json.dumps({"status": "failed", "reason": "lost atoms at step 4000",
                                                 "dt_fs_between_frames": DT}))
    o = tmp_path / "r.json"
    rc, _, err = cli(["conductivity", str(d[1] / "dump.lammpstrj"), str(bad / "dump.lammpstrj"),
                      "--temperature", "600", "--dt-fs", "10", "--blocks", "4", "-o", str(o)], capsys)
    assert rc == 0, err
    res = json.loads(o.read_text())
    assert len(res["trajectories"]) == 1
    assert res["excluded"] == [{"path": str(bad / "dump.lammpstrj"), "status": "failed",
                                "reason": "lost atoms at step 4000"}]
    # every run failed: a result with status failed (nulls, reason, excluded runs), never numbers
    o2 = tmp_path / "none.json"
    rc, _, err = cli(["conductivity", str(bad / "dump.lammpstrj"), "--temperature", "600", "--dt-fs", "10",
                      "--model", "m9", "-o", str(o2), "--plot-msd", str(tmp_path / "f.png")], capsys)
    assert rc == 0 and "all trajectories excluded" in err
    failed = json.loads(o2.read_text())
    assert failed["status"] == "failed" and "lost atoms at step 4000" in failed["reason"]
    assert failed["sigma_full_S_cm"] == {"mean": None, "sem": None} and failed["trajectories"] == []
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_failed_model_results_are_excluded_by_combine_and_arrhenius(dumps, tmp_path, capsys):
    """A model whose runs all blew up is listed, never averaged: combine uses the others; if none is
    left the ensemble result is failed, and arrhenius leaves that temperature out and lists it."""
    root, d = dumps
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "status.json").write_text(json.dumps({"status": "failed", "reason": "min distance 0.6 A"}))
    res = {}
    for T in (600, 700, 800):
        base = tmp_path / "conductivity" / "S1"
        for model, trajs in (("m0", [str(d[1] / "dump.lammpstrj"), str(d[2] / "dump.lammpstrj")]),
                             ("m1", [str(bad / "dump.lammpstrj")])):
            if T == 800 and model == "m0":
                trajs = [str(bad / "dump.lammpstrj")]
            o = base / model / f"{T}K.json"
            rc, _, err = cli(["conductivity", *trajs, "--temperature", str(T), "--dt-fs", "10", "--blocks", "4",
                              "--structure", "S1", "--model", model, "-o", str(o)], capsys)
            assert rc == 0, err
        e = base / "ensemble" / f"{T}K.json"
        rc, _, err = cli(["combine", str(base / "m0" / f"{T}K.json"), str(base / "m1" / f"{T}K.json"),
                          "-o", str(e), "--model", "ensemble"], capsys)
        assert rc == 0, err
        res[T] = json.loads(e.read_text())
    m0_600 = json.loads((tmp_path / "conductivity/S1/m0/600K.json").read_text())
    assert res[600]["sigma_full_S_cm"]["mean"] == pytest.approx(m0_600["sigma_full_S_cm"]["mean"])
    assert [x["model"] for x in res[600]["excluded_models"]] == ["m1"]
    assert res[800]["status"] == "failed" and res[800]["sigma_full_S_cm"]["mean"] is None
    out = tmp_path / "arr.json"
    rc, _, err = cli(["arrhenius", *[str(tmp_path / f"conductivity/S1/ensemble/{T}K.json") for T in (600, 700, 800)],
                      "-o", str(out)], capsys)
    assert rc == 0, err
    group = json.loads(out.read_text())["groups"][0]
    assert group["temperatures_K"] == [600, 700]
    assert [f["temperature_K"] for f in group["failed_points"]] == [800]


def _malformed_cases(tmp_path, d):
    good = d[1] / "dump.lammpstrj"
    text = good.read_text()
    cases = {}
    lines = text.splitlines(keepends=True)
    nan = list(lines)
    nan[9 + 3] = "4 Li nan 1.0 1.0\n"
    cases["nan"] = ("".join(nan), "NaN")
    cases["truncated"] = (text[:-10], "truncated")
    cnt = list(lines)
    cnt[3 * 41 + 3] = "31\n"
    del cnt[3 * 41 + 9]
    cases["count"] = ("".join(cnt), "atom count changes")
    return cases


@pytest.mark.parametrize("case", ["nan", "truncated", "count", "species", "cell", "dt_conflict", "polarization"])
def test_cli_malformed_input_one_line_no_output(dumps, tmp_path, capsys, case):
    root, d = dumps
    good = d[1] / "dump.lammpstrj"
    args = ["--temperature", "600", "--dt-fs", "10", "--blocks", "4"]
    expect = None
    if case in ("nan", "truncated", "count"):
        text, expect = _malformed_cases(tmp_path, d)[case]
        p = tmp_path / f"{case}.lammpstrj"
        p.write_text(text)
        traj = [str(p)]
    elif case == "species":
        traj, expect = [str(good)], "species 'Na' not present"
        args += ["--species", "Na"]
    elif case == "cell":
        p = tmp_path / "nocell.xyz"
        p.write_text("2\nProperties=species:S:1:pos:R:3\nLi 0 0 0\nO 1 1 1\n" * 20)
        traj, expect = [str(p)], "missing cell"
    elif case == "dt_conflict":
        traj, expect = [str(good)], "disagrees with --dt-fs"
        args[3] = "20"
    else:
        traj, expect = [str(good)], "needs a charge for every species"
        args += ["--polarization", "all"]
    o = tmp_path / "out" / "r.json"
    rc, out, err = cli(["conductivity", *traj, *args, "-o", str(o)], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("ionflow conductivity: error:") and expect in err, err
    assert not o.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_all_ion_polarization_and_mass_reference(dumps, tmp_path, capsys):
    root, d = dumps
    files = [str(d[s] / "dump.lammpstrj") for s in (1, 2)]
    res = {}
    for name, extra in (("mobile", []), ("all", ["--polarization", "all", "--charge", "Li=1", "--charge", "O=-3"]),
                        ("mass", ["--reference", "mass"])):
        o = tmp_path / f"{name}.json"
        rc, _, err = cli(["conductivity", *files, "--temperature", "600", "--blocks", "5", "-o", str(o), *extra],
                         capsys)
        assert rc == 0, err
        res[name] = json.loads(o.read_text())
    # 24 Li (+1) and 8 vibrating O (-3): neutral; framework atoms do not diffuse, so sigma_full agrees
    m, a = res["mobile"]["sigma_full_S_cm"], res["all"]["sigma_full_S_cm"]
    assert abs(m["mean"] - a["mean"]) < 0.05 * m["mean"]
    assert res["all"]["polarization"] == "all"
    assert res["mass"]["framework_reference"] == "mass"
    assert res["mass"]["D_tracer_cm2_s"]["mean"] == pytest.approx(res["mobile"]["D_tracer_cm2_s"]["mean"], rel=1e-3)


def test_restart_duplicate_frames_are_dropped(dumps, tmp_path):
    root, d = dumps
    lines = (d[1] / "dump.lammpstrj").read_text().splitlines(keepends=True)
    per = 9 + 32
    # a restart from frame 100 that re-writes frames 100..119
    text = "".join(lines[:120 * per] + lines[100 * per:])
    p = tmp_path / "restart.lammpstrj"
    p.write_text(text)
    r = load_run(p, ["Li"], {"Li": 1.0})
    ref = load_run(d[1] / "dump.lammpstrj", ["Li"], {"Li": 1.0})
    assert r.n_dropped == 20 and r.n_frames == ref.n_frames
    np.testing.assert_allclose(r.mobile, ref.mobile)
    # a gap in TIMESTEP is an error
    q = tmp_path / "gap.lammpstrj"
    q.write_text("".join(lines[:50 * per] + lines[60 * per:]))
    from ionflow.errors import InputError

    with pytest.raises(InputError, match="not equally spaced"):
        load_run(q, ["Li"], {"Li": 1.0})


# ---------------------------------------------------------------------------------------------
# combine and Arrhenius

def test_combine_models_keeps_variance_components(dumps, tmp_path, capsys):
    root, d = dumps
    outs = []
    for m, s in (("m0", 1), ("m1", 2), ("m2", 3)):
        o = tmp_path / "S1" / m / "600K.json"
        rc, _, err = cli(["conductivity", str(d[s] / "dump.lammpstrj"), "--temperature", "600", "--blocks", "5",
                          "--structure", "S1", "--model", m, "-o", str(o)], capsys)
        assert rc == 0, err
        outs.append(o)
    e = tmp_path / "S1" / "ensemble" / "600K.json"
    rc, out, err = cli(["combine", *map(str, outs), "-o", str(e), "--plot-running", str(tmp_path / "e.png")], capsys)
    assert rc == 0, err
    ens = json.loads(e.read_text())
    members = [json.loads(o.read_text()) for o in outs]
    assert ens["model"] == "ensemble" and ens["structure"] == "S1" and len(ens["models"]) == 3
    assert ens["sigma_full_S_cm"]["mean"] == pytest.approx(np.mean([m["sigma_full_S_cm"]["mean"] for m in members]))
    vc = ens["variance_components"]["sigma_full_S_cm"]
    assert vc["n_models"] == 3 and vc["between_models"] is not None and vc["between_seeds"] is None
    assert ens["provenance"]["stage"] == "combine"
    # different temperatures cannot be combined
    other = tmp_path / "S1" / "m3" / "700K.json"
    rc, _, _ = cli(["conductivity", str(d[1] / "dump.lammpstrj"), "--temperature", "700", "--blocks", "5",
                    "-o", str(other)], capsys)
    rc, _, err = cli(["combine", str(outs[0]), str(other), "-o", str(tmp_path / "bad.json")], capsys)
    assert rc == 2 and "temperatures differ" in err and not (tmp_path / "bad.json").exists()


def _fake_result(T, sigma, rel_sem, structure="S", model="m"):
    pt = lambda v: {"mean": v, "sem": rel_sem * v}  # noqa: E731
    D = sigma * T * 1e-6
    return {"schema": "ionflow.conductivity/1", "structure": structure, "model": model, "temperature_K": T,
            "trajectories": [], "converged": True, "sigma_tracer_S_cm": pt(sigma), "sigma_full_S_cm": pt(1.5 * sigma),
            "D_tracer_cm2_s": pt(D), "D_sigma_cm2_s": pt(D), "haven_ratio": {"mean": 0.67, "sem": 0.05}}


def test_arrhenius_recovers_known_Ea(tmp_path, capsys):
    from ionflow.analysis import K_B_EV

    Ea, A = 0.25, 5e3
    rng = np.random.default_rng(7)
    rel = 0.05
    paths = []
    for T in (400.0, 500.0, 600.0, 800.0, 1000.0):
        sig = A / T * math.exp(-Ea / (K_B_EV * T)) * math.exp(rng.normal(0, rel))
        p = tmp_path / f"{T:g}K.json"
        p.write_text(json.dumps(_fake_result(T, sig, rel)))
        paths.append(str(p))
    o = tmp_path / "arr.json"
    rc, out, err = cli(["arrhenius", *paths, "-o", str(o), "--plot", str(tmp_path / "arr.png")], capsys)
    assert rc == 0, err
    g = json.loads(o.read_text())["groups"][0]
    tr = g["tracer"]
    assert abs(tr["Ea_eV"]["mean"] - Ea) < stats.norm.ppf(0.9995) * tr["Ea_eV"]["sem"]
    assert 0.002 < tr["Ea_eV"]["sem"] < 0.02
    truth300 = A / 300 * math.exp(-Ea / (K_B_EV * 300))
    lo, hi = tr["sigma_300K_S_cm"]["ci95"]
    assert lo < truth300 < hi
    assert g["full"]["Ea_eV"]["mean"] == pytest.approx(tr["Ea_eV"]["mean"], abs=1e-9)  # full = 1.5 x tracer
    assert g["diffusion"]["Ea_eV"]["mean"] == pytest.approx(tr["Ea_eV"]["mean"], abs=1e-9)  # D ~ sigma T
    assert not g["non_arrhenius"] and len(g["haven_ratio"]) == 5
    assert (tmp_path / "arr.png").read_bytes()[:4] == b"\x89PNG"


def test_arrhenius_flags_curvature(tmp_path, capsys):
    from ionflow.analysis import K_B_EV

    paths = []
    for T in (400.0, 500.0, 600.0, 700.0, 800.0, 1000.0):
        Ea = 0.5 if T < 650 else 0.2   # a transition: two slopes
        sig = 1e4 / T * math.exp(-Ea / (K_B_EV * T)) * (math.exp(-0.3 / (K_B_EV * 650)) if T < 650 else 1)
        p = tmp_path / f"{T:g}K.json"
        p.write_text(json.dumps(_fake_result(T, sig, 0.03)))
        paths.append(str(p))
    o = tmp_path / "arr.json"
    rc, _, err = cli(["arrhenius", *paths, "-o", str(o)], capsys)
    assert rc == 0, err
    g = json.loads(o.read_text())["groups"][0]
    assert g["non_arrhenius"] and g["tracer"]["curvature"]["flag"]


def test_cli_pipeline_arrhenius_from_walkers(tmp_path, capsys):
    """conductivity at three T -> arrhenius recovers the Ea built into D(T)."""
    from ionflow.analysis import K_B_EV

    Ea, D0 = 0.2, 0.5  # Å^2/fs
    res = []
    for T in (500.0, 700.0, 1000.0):
        DT_ = D0 * math.exp(-Ea / (K_B_EV * T))
        files = []
        for s in (1, 2):
            sym, pos, cell = synthetic.walkers(1500, n_mobile=16, n_framework=6, D_A2_fs=DT_, dt_fs=DT, cell=CELL,
                                               seed=int(T) + s)
            p = tmp_path / f"{T:g}_{s}.lammpstrj"
            synthetic.write_lammps_dump(p, sym, pos, cell)
            files.append(str(p))
        o = tmp_path / "S" / "m" / f"{T:g}K.json"
        rc, _, err = cli(["conductivity", *files, "--temperature", str(T), "--dt-fs", "10", "--blocks", "6",
                          "-o", str(o)], capsys)
        assert rc == 0, err
        res.append(str(o))
    o = tmp_path / "arr.json"
    rc, _, err = cli(["arrhenius", *res, "-o", str(o)], capsys)
    assert rc == 0, err
    g = json.loads(o.read_text())["groups"][0]
    assert (g["structure"], g["model"]) == ("S", "m")   # from the results/.../{structure}/{model}/{T}K.json path
    for kind in ("tracer", "diffusion"):
        f = g[kind]
        assert abs(f["Ea_eV"]["mean"] - Ea) < stats.norm.ppf(0.9995) * f["Ea_eV"]["sem"], f["Ea_eV"]
    assert g["diffusion"]["D0_cm2_s"]["mean"] > 0


def test_two_mobile_species_tracer_sums_charges(tmp_path, capsys):
    """Li (+1) and Na (+2) walkers with the same D: sigma_tr = pref * D * (N_Li + 4 N_Na)."""
    sym, pos, cell = synthetic.walkers(2500, n_mobile=24, n_framework=8, D_A2_fs=D, dt_fs=DT, cell=CELL, seed=77)
    sym = sym.copy()
    sym[:8] = "Na"
    p = tmp_path / "mix.lammpstrj"
    synthetic.write_lammps_dump(p, sym, pos, cell)
    o = tmp_path / "mix.json"
    rc, _, err = cli(["conductivity", str(p), "--species", "Li,Na", "--charge", "Na=2", "--temperature", "600",
                      "--dt-fs", "10", "--blocks", "10", "-o", str(o)], capsys)
    assert rc == 0, err
    res = json.loads(o.read_text())
    assert res["n_mobile"] == 24 and res["species"] == ["Li", "Na"] and res["charges"]["Na"] == 2.0
    assert set(res["D_tracer_by_species_cm2_s"]) == {"Li", "Na"}
    expect = sigma_prefactor(float(np.prod(CELL)), T_K) * D * (16 + 4 * 8)
    within(res["sigma_tracer_S_cm"], res["variance_components"]["sigma_tracer_S_cm"], expect, 0.1)
