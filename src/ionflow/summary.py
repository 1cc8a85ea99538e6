"""The end-of-run summary: results table (σ, H_R, Ea, σ(300 K)), excluded models, screening ranking,
and the time per pipeline stage, printed from result files alone (what `make demo` prints).

    ionflow summary --results results --benchmarks benchmarks/snakemake [--wall-s 1130]

Reads results/figures/paper/results_sigma.csv and results_arrhenius.csv (written by `ionflow
figures`), results/conductivity/*/ensemble/*K.json (excluded models), results/screening/ranking.csv
and the Snakemake benchmark files (one TSV per job; its modification time is the job's end, its `s`
column the job's wall time, so a stage's wall span is max(end) - min(end - s)).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

#: rule -> pipeline stage (rules not listed are reported under their own name)
RULE_STAGE = {
    "ingest_source": "ingest", "dataset": "ingest",
    "closepairs": "closepairs", "label_sevennet": "closepairs", "label_frame": "closepairs",
    "merge_labels": "closepairs", "merge_closepairs": "closepairs",
    "train_member": "train", "metrics_table": "train", "learning_curve_member": "train",
    "learning_curve": "train",
    "validate_stability": "validate", "validate_minimize": "validate", "validation_table": "validate",
    "md_run": "md", "md_disagreement": "md", "md_all": "md",
    "conductivity": "analyze", "combine_models": "analyze", "arrhenius": "analyze",
    "pes_scan": "screen", "pes_descriptors": "screen", "rank": "screen", "rank_vs_md": "screen",
    "figures": "figures",
    "teacher_md": "teacher-student", "teacher_conductivity": "teacher-student",
    "teacher_student_compare": "teacher-student",
}
STAGE_ORDER = ["ingest", "closepairs", "train", "validate", "md", "analyze", "screen", "figures",
               "teacher-student"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    parser.add_argument("--benchmarks", type=Path, default=None,
                        help="Snakemake benchmark directory (benchmarks/snakemake): time per stage")
    parser.add_argument("--since", type=float, default=None,
                        help="only jobs that ended after this Unix time (the start of this run)")
    parser.add_argument("--wall-s", type=float, default=None, help="wall time of the whole run (s)")


def run(args: argparse.Namespace) -> int:
    print(render(args.results, args.benchmarks, args.wall_s, args.since))
    return 0


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _pm(value: str, err: str, fmt: str) -> str:
    try:
        return f"{float(value):{fmt}} ± {float(err):{fmt}}"
    except (TypeError, ValueError):
        return "n/a"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _not_converged(results: Path, rows: list[dict]) -> list[str]:
    """The first not-converged reason of each ensemble result in ``rows`` (from its JSON)."""
    reasons = []
    for r in rows:
        if r.get("converged") in ("True", "true", "1"):
            continue
        path = Path(r["result"]) if r.get("result") else None
        if path is not None and not path.is_absolute() and not path.is_file():
            path = results.parent / path
        try:
            reason = json.loads(path.read_text()).get("not_converged_reason") or "see the result JSON"
        except (OSError, AttributeError, json.JSONDecodeError):
            reason = "see the result JSON"
        reasons.append(f"{r['structure']} {float(r['temperature_K']):g} K: {reason.split('; ')[0]}")
    return reasons


def results_section(results: Path) -> list[str]:
    out = []
    paper = results / "figures" / "paper"
    sigma, arr = paper / "results_sigma.csv", paper / "results_arrhenius.csv"
    if sigma.is_file():
        rows = [r for r in _read_csv(sigma) if r["model"] == "ensemble"]
        out += ["Conductivity, ensemble average (mean ± standard error over blocks, seeds and models)",
                _table(["structure", "T (K)", "σ_tracer (S/cm)", "σ_full (S/cm)", "Haven ratio", "converged"],
                       [[r["structure"], f"{float(r['temperature_K']):g}",
                         _pm(r["sigma_tracer_S_cm"], r["sigma_tracer_sem_S_cm"], ".3g"),
                         _pm(r["sigma_full_S_cm"], r["sigma_full_sem_S_cm"], ".3g"),
                         _pm(r["haven_ratio"], r["haven_ratio_sem"], ".2f"), r["converged"]] for r in rows])]
        reasons = _not_converged(results, rows)
        if reasons:
            out += [f"Not converged ({len(reasons)} of {len(rows)}): a σ fitted to a sub-diffusive MSD likely "
                    "overestimates it (the local slope still falls with lag); e.g.", f"  {reasons[0]}"]
        out += [""]
    else:
        out += [f"(no {sigma}: run the figures target)", ""]
    if arr.is_file():
        rows = [r for r in _read_csv(arr) if r["model"] == "ensemble"]

        def ci(r, q):
            try:
                return (f"{float(r[f'sigma_{q}_300K_S_cm']):.2g} [{float(r[f'sigma_{q}_300K_ci95_lo']):.2g}, "
                        f"{float(r[f'sigma_{q}_300K_ci95_hi']):.2g}]")
            except (TypeError, ValueError):
                return "n/a"

        out += ["Arrhenius fits, ensemble (Ea ± standard error; σ(300 K) extrapolated, 95 % interval)",
                _table(["structure", "T range (K)", "Ea tracer (eV)", "Ea full (eV)", "σ_tracer(300 K) S/cm",
                        "σ_full(300 K) S/cm", "non-Arrhenius"],
                       [[r["structure"], f"{float(r['T_min_K']):g}-{float(r['T_max_K']):g}",
                         _pm(r["Ea_tracer_eV"], r["Ea_tracer_sem_eV"], ".2f"),
                         _pm(r["Ea_full_eV"], r["Ea_full_sem_eV"], ".2f"), ci(r, "tracer"), ci(r, "full"),
                         r["non_arrhenius"]] for r in rows]), ""]
    excluded = []
    for path in sorted(results.glob("conductivity/*/ensemble/*K.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for ex in data.get("excluded_models") or []:
            excluded.append(f"  {data.get('structure')} {data.get('temperature_K'):g} K, model {ex.get('model')}: "
                            f"{ex.get('reason')}")
    if excluded:
        out += ["Excluded from the ensemble averages (failed runs; see their status.json):", *excluded, ""]
    teacher = sorted(results.glob("teacher_student/*K.json"))
    if teacher:
        from .analysis.teacher_student import summary_line

        lines = []
        for path in teacher:
            try:
                lines.append("  " + summary_line(json.loads(path.read_text())))
            except (OSError, json.JSONDecodeError, KeyError, TypeError):
                lines.append(f"  {path}: unreadable")
        out += ["Teacher-student check (Allegro ensemble vs the universal potential that labeled its data)",
                *lines, ""]
    ranking = results / "screening" / "ranking.csv"
    if ranking.is_file():
        rows = _read_csv(ranking)
        out += ["Screening ranking (frozen-framework PES; Ξ then MPE)",
                _table(["rank", "structure", "Ξ", "MPE (eV)", "calculator"],
                       [[r["rank"], r["structure"], f"{float(r['xi']):.3g}", f"{float(r['mpe_eV']):.2f}",
                         r.get("calculator", "")] for r in rows]), ""]
    return out


def stage_times(benchmarks: Path, since: float | None = None) -> list[str]:
    """Per stage: jobs, wall span and summed job time from the benchmark TSVs (of jobs that ended
    after ``since``: a rerun's benchmark directory still holds the files of jobs it did not rerun)."""
    jobs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for tsv in benchmarks.rglob("*.tsv"):
        rule = tsv.relative_to(benchmarks).parts[0]
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            continue
        seconds = float(rows[-1]["s"])
        end = tsv.stat().st_mtime
        if since is not None and end < since:
            continue
        jobs[RULE_STAGE.get(rule, rule)].append((end - seconds, end))
    if not jobs:
        return [f"(no benchmark files under {benchmarks}{' of this run' if since else ''}: nothing ran)"]
    order = [s for s in STAGE_ORDER if s in jobs] + sorted(set(jobs) - set(STAGE_ORDER))
    rows = []
    for stage in order:
        spans = jobs[stage]
        wall = max(e for _, e in spans) - min(s for s, _ in spans)
        rows.append([stage, str(len(spans)), f"{wall:.0f}", f"{sum(e - s for s, e in spans):.0f}"])
    return ["Time per stage (wall span: first job start to last job end; stages overlap when jobs run in "
            "parallel)", _table(["stage", "jobs", "wall span (s)", "sum of job times (s)"], rows)]


def render(results: Path, benchmarks: Path | None = None, wall_s: float | None = None,
           since: float | None = None) -> str:
    lines = [f"ionflow summary of {results}", ""] + results_section(Path(results))
    if benchmarks is not None:
        lines += stage_times(Path(benchmarks), since)
    if wall_s is not None:
        lines += ["", f"Wall time of the whole run: {wall_s:.0f} s ({wall_s / 60:.1f} min)"]
    return "\n".join(lines).rstrip() + "\n"
