"""Tests of ``ionflow figures``: a small but valid results tree is built by RUNNING the real stage
code on synthetic inputs (ingest + closepairs + merge on the tiny Li3PO4 dataset; random-walk MD
dumps -> conductivity -> combine -> arrhenius; a synthetic PES scan -> pes-descriptors -> rank).
Only the training outputs are assembled by hand (training is minutes, not seconds), with their
metrics computed by ionflow.train.metrics from synthetic predictions. Then every figure and table
must exist, the tables must carry the JSON values, and missing stages must be skipped cleanly."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from ionflow import figures as F
from ionflow.analysis import K_B_EV, synthetic
from ionflow.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "li3po4_tiny.extxyz"
TEMPS = (500.0, 700.0, 1000.0)
MEMBERS = ("m0", "m1")
SEEDS = (0, 1)
DT = 10.0          # fs between frames
EA = 0.25          # eV, built into D(T)
D0 = 0.4           # Å^2/fs
FAST = ["--dpi", "60"]


def cli(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def ok(argv) -> None:
    """Run a stage that builds the fixture tree (its stderr stays in pytest's captured output)."""
    assert main([str(a) for a in argv]) == 0, argv[0]


def _md_and_analysis(res: Path) -> None:
    """Random-walk dumps (S1 independent ions, S2 pairs moving together: H_R = 1/2) -> the analysis
    stages exactly as the workflow calls them."""
    for si, (s, group) in enumerate((("S1", 1), ("S2", 2))):
        ens = []
        for mi, m in enumerate(MEMBERS):
            for T in TEMPS:
                D = D0 * math.exp(-EA / (K_B_EV * T)) * (1.0 + 0.05 * mi)
                dumps = []
                for seed in SEEDS:
                    run = res / "md" / s / m / f"{T:g}K" / f"seed{seed}"
                    run.mkdir(parents=True)
                    sym, pos, cell = synthetic.walkers(400, n_mobile=8, n_framework=6, D_A2_fs=D, dt_fs=DT,
                                                       cell=(9.0, 8.0, 7.0), group_size=group,
                                                       drift_A_fs=(2e-4, 0, 0),
                                                       seed=1000 * si + 100 * mi + 10 * seed + int(T) // 100)
                    synthetic.write_lammps_dump(run / "dump.lammpstrj", sym, pos, cell, precision=6)
                    (run / "status.json").write_text(json.dumps(
                        {"status": "ok", "reason": None, "dt_fs_between_frames": DT, "temperature_K": T,
                         "ensemble": "nvt", "seed": seed}))
                    dumps.append(run / "dump.lammpstrj")
                out = res / "conductivity" / s / m / f"{T:g}K.json"
                ok(["conductivity", *dumps, "--temperature", T, "--blocks", 4, "--structure", s,
                                  "--model", m, "-o", out])
        for T in TEMPS:
            out = res / "conductivity" / s / "ensemble" / f"{T:g}K.json"
            ok(["combine", *[res / "conductivity" / s / m / f"{T:g}K.json" for m in MEMBERS],
                              "--structure", s, "-o", out])
            ens.append(out)
        members = [res / "conductivity" / s / m / f"{T:g}K.json" for m in MEMBERS for T in TEMPS]
        ok(["arrhenius", *ens, *members, "-o", res / "arrhenius" / f"{s}.json"])


def _dataset(res: Path) -> None:
    """ingest -> closepairs (real construction) -> merge (labels: the base frame's, geometry is what
    the figure uses; SevenNet labeling is tested in test_label)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from ionflow.closepairs import read_frames, write_frames
    from ionflow.merge import merge

    ds = res / "dataset" / "dataset.extxyz"
    ok(["ingest", TINY, "-o", ds, "--summary-dir", res / "dataset" / "summary",
                      "--split-json", res / "dataset" / "split.json", "--partners", "O", "P", "Li"])
    fr = res / "closepairs" / "frames.extxyz"
    ok(["closepairs", ds, "-o", fr, "--n", 2, "--seed", 3, "--partners", "O,Li"])
    dataset, close = read_frames(ds), read_frames(fr)
    by_struct = {a.info["structure"]: a for a in dataset}
    for a in close:
        base = by_struct[a.info["structure"]]
        a.calc = SinglePointCalculator(a, energy=base.get_potential_energy(), forces=np.zeros((len(a), 3)))
        a.info["labels"] = base.info["labels"]
    merged, _ = merge(dataset, close, seed=1)
    write_frames(res / "closepairs" / "merged.extxyz", merged)


def _training(res: Path) -> None:
    """Member directories as ionflow train leaves them: test frames, predictions (reference +
    Gaussian errors), metrics computed by ionflow.train.metrics; a learning curve by train_report."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    from ionflow.train.metrics import error_metrics, read_predictions
    from ionflow.train_report import learning_curve

    frames = [a for a in read(TINY, index=":") if a.info["split"] == "test"] or read(TINY, index=":4")
    weights = {"energy": 1.0, "forces": 1.0, "stress": 1.0}
    entries = []
    for k, m in enumerate((*MEMBERS, "lc-a", "lc-b")):
        d = res / "models" / (m if m.startswith("m") else f"learning_curve/{m}")
        (d / "run").mkdir(parents=True)
        (d / "data").mkdir()
        write(d / "data" / "test.extxyz", frames, format="extxyz")
        rng = np.random.default_rng(k)
        pred = []
        for a in frames:
            b = a.copy()
            b.calc = SinglePointCalculator(
                b, energy=a.get_potential_energy() + rng.normal(0, 0.005 * len(a)),
                forces=a.get_forces() + rng.normal(0, 0.05 * (k + 1), (len(a), 3)),
                stress=a.get_stress() + rng.normal(0, 1e-4, 6))
            pred.append(b)
        write(d / "run" / "test_pred_dataset0.xyz", pred, format="extxyz")
        p = read_predictions(d / "run" / "test_pred_dataset0.xyz", frames)
        test = error_metrics(p, np.arange(len(frames)), weights)
        met = {"member": m, "test": test, "n_params": 1000 + k, "score_weights": weights,
               "frames": {"frames": {"train": 10 * (k + 1)}}, "history": {"epochs_trained": 5}}
        man = {"member": m, "preset": "tiny", "seed": k, "subset": ["S1", "S2"], "metrics": "metrics.json",
               "package": f"{m}.nequip.zip", "compiled": {}, "labels": ["sevennet-0"]}
        (d / "metrics.json").write_text(json.dumps(met))
        (d / "manifest.json").write_text(json.dumps(man))
        entries.append((man, met))
    lc = learning_curve(entries)
    (res / "models" / "learning_curve" / "learning_curve.json").write_text(json.dumps(lc))
    (res / "validation").mkdir(parents=True)
    (res / "validation" / "stability.csv").write_text("member,temperature_K,status\nm0,900,ok\nm1,900,ok\n")


def _screening(res: Path) -> None:
    """A cosine PES with channels along a (S1) and along a and b (S2) -> pes-descriptors -> rank."""
    n = (12, 10, 8)
    g = np.meshgrid(*[np.arange(k) / k for k in n], indexing="ij")
    for s, amp in (("S1", (0.2, 1.5, 1.5)), ("S2", (0.2, 0.3, 1.5)), ("gamma", (2.0, 2.0, 2.0))):
        e = sum(a * (1 - np.cos(2 * np.pi * x)) / 2 for a, x in zip(amp, g))
        d = res / "screening" / s
        d.mkdir(parents=True)
        np.savez(d / "scan.npz", energy=e, cell=np.diag([9.0, 8.0, 7.0]), name=np.array(s))
        ok(["pes-descriptors", d / "scan.npz", "-o", d / "descriptors.json", "--cube",
                          d / "level.cube"])
    ok(["rank", *sorted((res / "screening").glob("*/descriptors.json")), "-o",
                      res / "screening" / "ranking.csv"])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("figs") / "results"
    _dataset(root)
    _training(root)
    _md_and_analysis(root)
    _screening(root)
    return root


EXPECTED_FIGURES = (
    "dataset_min_distances", "training_metrics", "parity", "learning_curve",
    "msd_S1", "msd_S2", "running_S1", "running_S2", "arrhenius_S1", "arrhenius_S2", "arrhenius_all",
    "haven_ratio", "li_density_S1", "li_density_S2", "screening_ranking",
    "level_map_S1", "level_map_S2", "level_map_gamma", "xi_vs_md",
)
EXPECTED_TABLES = ("results_sigma.csv", "results_arrhenius.csv", "results_tables.tex", "results_tables.html",
                   "training_metrics.html", "dataset_summary.html", "validation_stability.html")


@pytest.fixture(scope="module")
def figures_out(results):
    out = results / "figures" / "paper"
    assert main(["figures", str(results), "-o", str(out), *FAST, "--study", "test_study"]) == 0
    return out


def test_every_figure_and_table_is_written(figures_out):
    for name in EXPECTED_FIGURES:
        assert (figures_out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
        assert (figures_out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for name in EXPECTED_TABLES:
        assert (figures_out / name).stat().st_size > 100, name
    man = json.loads((figures_out / F.MANIFEST).read_text())
    written = {f for r in man["outputs"] for f in r["files"]}
    assert written == {f"{n}.{x}" for n in EXPECTED_FIGURES for x in ("pdf", "png")} | set(EXPECTED_TABLES)
    assert man["provenance"]["stage"] == "figures" and man["provenance"]["inputs"]
    assert all(r["inputs"] and r["caption"] for r in man["outputs"])
    assert not list(figures_out.glob(".*tmp*")), "temporary files left behind"


def test_pdf_is_vector_and_reproducible(results, figures_out, tmp_path):
    pdf = (figures_out / "arrhenius_S1.pdf").read_bytes()
    assert b"/CreationDate" not in pdf and b"/FontFile2" in pdf   # no date; TrueType fonts embedded
    part = tmp_path / "results"
    shutil.copytree(results / "arrhenius", part / "arrhenius")
    for k in (1, 2):
        assert main(["figures", str(part), "-o", str(tmp_path / f"o{k}"), *FAST, "--formats", "pdf"]) == 0
    assert (tmp_path / "o1" / "arrhenius_S1.pdf").read_bytes() == (tmp_path / "o2" / "arrhenius_S1.pdf").read_bytes()
    assert not (tmp_path / "o1" / "arrhenius_S1.png").exists()


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sigma_table_equals_conductivity_results(results, figures_out):
    rows = _read_csv(figures_out / "results_sigma.csv")
    assert len(rows) == 2 * (len(MEMBERS) + 1) * len(TEMPS)
    assert [r["model"] for r in rows[:3]] == ["ensemble"] * 3        # ensemble first
    for r in rows:
        res = json.loads((results / "conductivity" / r["structure"] / r["model"]
                          / f"{float(r['temperature_K']):g}K.json").read_text())
        for key, col, sem in (("sigma_tracer_S_cm", "sigma_tracer_S_cm", "sigma_tracer_sem_S_cm"),
                              ("sigma_full_S_cm", "sigma_full_S_cm", "sigma_full_sem_S_cm"),
                              ("haven_ratio", "haven_ratio", "haven_ratio_sem"),
                              ("D_tracer_cm2_s", "D_tracer_cm2_s", "D_tracer_sem_cm2_s")):
            assert float(r[col]) == res[key]["mean"] and float(r[sem]) == res[key]["sem"]
        assert r["converged"] == str(bool(res["converged"]))
    # S2 ions move in pairs: H_R = 1/2 within the error bars (t quantile, few blocks)
    hr = [(float(r["haven_ratio"]), float(r["haven_ratio_sem"])) for r in rows
          if r["structure"] == "S2" and r["model"] == "ensemble"]
    assert all(abs(m - 0.5) < 5 * s for m, s in hr), hr


def test_arrhenius_table_and_latex_equal_the_fits(results, figures_out):
    rows = _read_csv(figures_out / "results_arrhenius.csv")
    tex = (figures_out / "results_tables.tex").read_text()
    assert {(r["structure"], r["model"]) for r in rows} == {(s, m) for s in ("S1", "S2")
                                                            for m in ("ensemble", *MEMBERS)}
    for r in rows:
        g = next(g for g in json.loads((results / "arrhenius" / f"{r['structure']}.json").read_text())["groups"]
                 if g["model"] == r["model"])
        for kind in ("tracer", "full"):
            assert float(r[f"Ea_{kind}_eV"]) == g[kind]["Ea_eV"]["mean"]
            assert float(r[f"Ea_{kind}_sem_eV"]) == g[kind]["Ea_eV"]["sem"]
            at = g[kind]["sigma_300K_S_cm"]
            assert float(r[f"sigma_{kind}_300K_S_cm"]) == at["mean"]
            assert [float(r[f"sigma_{kind}_300K_ci95_lo"]), float(r[f"sigma_{kind}_300K_ci95_hi"])] == at["ci95"]
            assert F.format_pm(g[kind]["Ea_eV"]["mean"], g[kind]["Ea_eV"]["sem"]) in tex
        if r["model"] == "ensemble":   # the built-in Ea is recovered (walkers: t quantile of few points)
            assert abs(float(r["Ea_tracer_eV"]) - EA) < 6 * float(r["Ea_tracer_sem_eV"])
    ens = next(r for r in _read_csv(figures_out / "results_sigma.csv") if r["model"] == "ensemble")
    assert F.format_pm(float(ens["sigma_full_S_cm"]), float(ens["sigma_full_sem_S_cm"])) in tex
    assert r"\begin{tabular}" in tex and tex.count(r"\end{table}") == 2 and "test\\_study" in tex


def test_missing_optional_stages_are_skipped(results, tmp_path, capsys):
    part = tmp_path / "results"
    for sub in ("conductivity", "arrhenius"):
        shutil.copytree(results / sub, part / sub)
    out = tmp_path / "figs"
    rc, stdout, err = cli(["figures", part, "-o", out, *FAST, "--formats", "png"], capsys)
    assert rc == 0, err
    names = {p.name for p in out.iterdir()}
    assert "arrhenius_S1.png" in names and "haven_ratio.png" in names and "results_sigma.csv" in names
    assert not any(n.startswith(("li_density", "parity", "screening", "level_map", "dataset", "training"))
                   for n in names)
    skipped = {s["part"] for s in json.loads((out / F.MANIFEST).read_text())["skipped"]}
    for part_name in ("dataset", "training", "learning curve", "Li density", "screening", "validation tables"):
        assert part_name in skipped
    assert "skipped screening" in stdout
    # nothing at all: still a manifest, exit 0
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(["figures", empty, "-o", tmp_path / "none"])
    assert json.loads((tmp_path / "none" / F.MANIFEST).read_text())["outputs"] == []


def test_bad_input_one_line_and_nothing_written(results, tmp_path, capsys):
    part = tmp_path / "results"
    shutil.copytree(results / "arrhenius", part / "arrhenius")
    shutil.copytree(results / "screening", part / "screening")
    (part / "arrhenius" / "S1.json").write_text('{"groups": [{"structure": "S1"}]}')
    out = tmp_path / "figs"
    rc, _, err = cli(["figures", part, "-o", out], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "S1.json" in err and "groups" in err
    assert not out.exists()
    rc, _, err = cli(["figures", tmp_path / "nowhere", "-o", out], capsys)
    assert rc == 2 and "not found" in err and not out.exists()


@pytest.mark.slow
def test_training_figures_from_a_real_nequip_run(tiny_ensemble, tmp_path, capsys):
    """Parity and metrics figures from what ionflow train really leaves (nequip-train's test
    predictions), not from the hand-assembled member directories above."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "models").symlink_to(tiny_ensemble.parent, target_is_directory=True)
    out = tmp_path / "figs"
    rc, _, err = cli(["figures", results, "-o", out, *FAST, "--formats", "png"], capsys)
    assert rc == 0, err
    man = json.loads((out / F.MANIFEST).read_text())
    assert {"parity.png", "training_metrics.png", "training_metrics.html"} <= {f for r in man["outputs"]
                                                                                for f in r["files"]}
    assert not [s for s in man["skipped"] if s["part"].startswith("parity")]
    parity = next(r for r in man["outputs"] if r["name"] == "parity")
    assert any(p.endswith("test_pred_dataset0.xyz") for p in parity["inputs"])


# ---------------------------------------------------------------------------------------------
# known answers of the helpers

def test_format_pm_rounds_to_the_error():
    assert F.format_pm(1.2345e-3, 5.1e-5) == r"$(1.234 \pm 0.051)\times 10^{-3}$"
    assert F.format_pm(0.2512, 0.0123) == r"$0.251 \pm 0.012$"
    assert F.format_pm(0.2512, 0.35) == r"$0.25 \pm 0.35$"
    assert F.format_pm(0.25, None) == r"$0.25$"
    assert F.format_pm(None, 0.1) == "--"
    assert F.format_pm(2.5e-7, 1.5e-6, latex=False) == "(2 ± 15)×10^-7"


def test_arrhenius_band_reproduces_stored_300K_interval():
    """The band rebuilt from the stored fit equals the fit's own 95 % CI at 300 K, and is narrowest
    near the data."""
    from ionflow.analysis.arrhenius import arrhenius_fit

    T = np.array([500.0, 600.0, 800.0, 1000.0])
    sig = 3.0 * np.exp(-0.3 / (K_B_EV * T)) / T * np.array([1.05, 0.97, 1.02, 0.99])
    fit = arrhenius_fit(T, sig, 0.05 * sig)
    fit["sigma_300K_S_cm"] = fit.pop("at_300K")
    y, lo, hi = F.arrhenius_curve(fit, [300.0, 700.0])
    at = fit["sigma_300K_S_cm"]
    assert y[0] / 300.0 == pytest.approx(at["mean"], rel=1e-10)
    assert lo[0] / 300.0 == pytest.approx(at["ci95"][0], rel=1e-10)
    assert hi[0] / 300.0 == pytest.approx(at["ci95"][1], rel=1e-10)
    assert hi[1] / lo[1] < hi[0] / lo[0]


def test_density_removes_framework_drift(tmp_path):
    """Ions fixed relative to a framework that drifts by a whole cell: every ion stays in one
    bin of each projection (without the framework reference it would smear over a row)."""
    n_frames, cell = 50, np.diag([8.0, 8.0, 8.0])
    sites = np.array([[1.1, 2.3, 3.7], [5.3, 6.1, 0.9], [4.1, 1.7, 6.3]])
    fw = np.array([[0.5, 0.5, 0.5], [4.5, 4.5, 4.5]])
    drift = np.linspace(0, 8.0, n_frames)[:, None, None] * np.array([1.0, 0.5, 0.0])
    pos = np.concatenate([np.broadcast_to(sites, (n_frames, 3, 3)), np.broadcast_to(fw, (n_frames, 2, 3))],
                         axis=1) + drift
    sym = np.array(["Li"] * 3 + ["O"] * 2)
    synthetic.write_lammps_dump(tmp_path / "d.lammpstrj", sym, pos, cell, mode="wrapped")
    h = F.density_histograms([tmp_path / "d.lammpstrj"], "Li", bins=16)
    assert h["frames"] == n_frames and h["n_mobile"] == 3
    for k in range(3):
        assert np.count_nonzero(h["hist"][k]) == 3 and h["hist"][k].sum() == 3 * n_frames
    assert np.allclose(h["framework_frac"] % 1.0, (fw / 8.0) % 1.0, atol=1e-6)


def test_member_whose_runs_all_failed_is_listed_not_drawn(results, tmp_path, capsys):
    """A member that blew up at every temperature has an Arrhenius group without points: the figures
    still come out (no crash on max([]) of the empty point list)."""
    part = tmp_path / "results"
    shutil.copytree(results / "conductivity", part / "conductivity")
    failed = []
    for T in TEMPS:
        run = tmp_path / "md" / f"{T:g}K"
        run.mkdir(parents=True)
        (run / "dump.lammpstrj").write_text("")
        (run / "status.json").write_text(json.dumps(
            {"status": "failed", "reason": "minimum interatomic distance 0.5 A < 1 A", "step": 10,
             "dt_fs_between_frames": DT, "temperature_K": T, "seed": 0}))
        out = part / "conductivity" / "S1" / "m9" / f"{T:g}K.json"
        ok(["conductivity", run / "dump.lammpstrj", "--temperature", T, "--structure", "S1", "--model", "m9",
            "-o", out])
        assert json.loads(out.read_text())["status"] == "failed"
        failed.append(out)
    ens = [part / "conductivity" / "S1" / "ensemble" / f"{T:g}K.json" for T in TEMPS]
    members = [part / "conductivity" / "S1" / m / f"{T:g}K.json" for m in MEMBERS for T in TEMPS]
    ok(["arrhenius", *ens, *members, *failed, "-o", part / "arrhenius" / "S1.json"])
    rc, _, err = cli(["figures", part, "-o", tmp_path / "figs", *FAST, "--formats", "png"], capsys)
    assert rc == 0, err
    assert (tmp_path / "figs" / "arrhenius_S1.png").exists()
