"""`ionflow summary`: the end-of-run table from result files alone, and the time per stage from the
benchmark files (wall span = last end - first start, with end = file mtime, start = end - s)."""

from __future__ import annotations

import os

from ionflow.cli import main

SIGMA = ("structure,model,temperature_K,sigma_tracer_S_cm,sigma_tracer_sem_S_cm,sigma_full_S_cm,"
         "sigma_full_sem_S_cm,haven_ratio,haven_ratio_sem,converged\n"
         "S1,ensemble,700.0,0.0123,0.001,0.0246,0.002,0.5,0.05,True\n"
         "S1,m0,700.0,9,9,9,9,9,9,True\n")
ARR = ("structure,model,T_min_K,T_max_K,Ea_tracer_eV,Ea_tracer_sem_eV,Ea_full_eV,Ea_full_sem_eV,"
       "sigma_tracer_300K_S_cm,sigma_tracer_300K_ci95_lo,sigma_tracer_300K_ci95_hi,sigma_full_300K_S_cm,"
       "sigma_full_300K_ci95_lo,sigma_full_300K_ci95_hi,non_arrhenius\n"
       "S1,ensemble,700,1000,0.312,0.021,0.401,0.033,1e-4,5e-5,2e-4,2e-5,1e-5,4e-5,False\n")


def _bench(root, rule, name, seconds, end):
    path = root / rule / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t1\n")
    os.utime(path, (end, end))


def test_summary_prints_results_and_stage_spans(tmp_path, capsys):
    paper = tmp_path / "results/figures/paper"
    paper.mkdir(parents=True)
    (paper / "results_sigma.csv").write_text(SIGMA)
    (paper / "results_arrhenius.csv").write_text(ARR)
    bench = tmp_path / "bench"
    t0 = 1_700_000_000
    _bench(bench, "md_run", "a", 100.0, t0 + 100)       # 0 .. 100
    _bench(bench, "md_run", "b", 50.0, t0 + 130)        # 80 .. 130
    _bench(bench, "md_disagreement", "a", 10.0, t0 + 140)   # 130 .. 140: same stage
    _bench(bench, "figures", "figures", 5.0, t0 + 200)
    _bench(bench, "train_member", "m0", 500.0, t0 - 1000)   # an earlier run's job: left out with --since
    assert main(["summary", "--results", str(tmp_path / "results"), "--benchmarks", str(bench),
                 "--wall-s", "600", "--since", str(t0)]) == 0
    out = capsys.readouterr().out
    assert "0.0123 ± 0.001" in out and "0.50 ± 0.05" in out and "9 ± 9" not in out   # ensemble rows only
    assert "0.31 ± 0.02" in out and "0.40 ± 0.03" in out and "0.0001 [5e-05, 0.0002]" in out
    md = next(ln for ln in out.splitlines() if ln.startswith("md "))
    assert md.split() == ["md", "3", "140", "160"]
    fig = next(ln for ln in out.splitlines() if ln.startswith("figures "))
    assert fig.split() == ["figures", "1", "5", "5"]
    assert "10.0 min" in out and "train" not in out


def test_summary_without_results_says_what_is_missing(tmp_path, capsys):
    assert main(["summary", "--results", str(tmp_path)]) == 0
    assert "run the figures target" in capsys.readouterr().out
