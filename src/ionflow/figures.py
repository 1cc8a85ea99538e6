"""``ionflow figures``: every paper figure and the results tables, from result files only.

    ionflow figures results -o results/figures/paper

Reads whatever the other stages left in RESULTS_DIR (never runs MD or training) and writes, in a
publication style (:mod:`ionflow.figstyle`; PDF + PNG by default), for each part that exists:

============================  ====================================================================
``dataset_min_distances``     per-frame minimum mobile-ion–X distance, FPMD frames vs training set
                              with the close-pair frames (dataset/summary/summary.json,
                              closepairs/merged.extxyz)
``training_metrics``          test MAE/RMSE of E, F, S and WS per ensemble member (models/*/metrics.json)
``parity``                    test-split parity per member (models/*/run/test_pred_dataset0.xyz)
``learning_curve``            test MAE vs training frames (models/learning_curve/learning_curve.json)
``msd_{S}``                   tracer MSD and charge MSD per ion vs lag, fit window (conductivity/S/ensemble)
``running_{S}``               running sigma*T(tau), tracer and full, with the fitted values
``arrhenius_{S}``             sigma*T vs 1000/T, tracer and full, ensemble + members, fits, 95 % band
                              extended to 300 K (arrhenius/S.json)
``arrhenius_all``             the ensembles of all structures in one figure
``haven_ratio``               H_R = sigma_tracer / sigma_full vs T with errors
``li_density_{S}``            mobile-ion density (superposition of all frames of all seeds and
                              models): framework-referenced, wrapped positions projected on the
                              cell planes (md/S/*/*K/seed*/dump.lammpstrj)
``screening_ranking``         Xi and MPE of the screened structures (screening/ranking.csv)
``level_map_{S}``             level map (minimax energy above the site), minimum over each axis
                              (screening/S/level.cube)
``xi_vs_md``                  Xi and MPE against the MD sigma(300 K) and Ea (both branches present)
============================  ====================================================================

Tables: ``results_sigma.csv`` (sigma_tracer, sigma_full, H_R, D per structure x model x T),
``results_arrhenius.csv`` (Ea, sigma(300 K) with 95 % CI per structure x model), both as LaTeX in
``results_tables.tex`` and HTML in ``results_tables.html``; HTML versions of the dataset summary, the
training metrics and the validation tables for the Snakemake report. CSV numbers are the values of
the result JSON files, unrounded. ``figures.json`` lists every file written, its inputs and what was
skipped and why (with a provenance block). Every input is read and checked before anything is
written; every file is written atomically.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InputError, IonflowError
from .io.jsonio import read_json
from .figstyle import DOUBLE_COLUMN_IN, SINGLE_COLUMN_IN, Style, color

SCHEMA = "ionflow.figures/1"
MANIFEST = "figures.json"
RASTER = ("png", "jpg", "jpeg", "tif", "tiff")
K_B_EV = 8.617333262e-5
T_REF = 300.0
PLANES = ((0, 1), (0, 2), (1, 2))   # (a, b), (a, c), (b, c): projections along c, b, a
AXES = "abc"


# ----------------------------------------------------------------------------------------------
# bookkeeping

@dataclass
class Job:
    """One output to draw once every input has been read: a figure (draw -> matplotlib Figure)
    or a text table (draw -> str)."""
    name: str
    draw: Callable
    inputs: list
    caption: str
    kind: str = "figure"          # figure | table
    suffix: str = ""              # tables: the file suffix (.csv, .tex, .html)


@dataclass
class Context:
    results: Path
    out: Path
    style: Style
    mobile: str | None = None
    density_bins: int = 80
    density_stride: int = 1
    density_temperatures: tuple = ()
    level_cap_eV: float = 1.5
    jobs: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    inputs: set = field(default_factory=set)

    def path(self, rel: str) -> Path:
        return self.results / rel

    def skip(self, part: str, why: str) -> None:
        self.skipped.append({"part": part, "reason": why})

    def add(self, job: Job) -> None:
        self.inputs.update(str(p) for p in job.inputs)
        self.jobs.append(job)


def _num(v) -> float:
    """JSON number or null -> float (NaN for null)."""
    return float("nan") if v is None else float(v)


def _arr(v) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in (v or [])], float)


def _temperature_of(name: str) -> float | None:
    m = re.fullmatch(r"([0-9.]+)K(?:\.json)?", name)
    return float(m.group(1)) if m else None


def _model_order(models) -> list[str]:
    """'ensemble' first, then the members in name order."""
    return sorted(models, key=lambda m: (m != "ensemble", m))


def _mean_sem(d) -> tuple[float, float]:
    d = d or {}
    return _num(d.get("mean")), _num(d.get("sem"))


# ----------------------------------------------------------------------------------------------
# number formatting (tables)

def _exponent(m: float) -> int:
    a = abs(m)
    if a == 0 or 1e-2 <= a < 1e3:
        return 0
    return int(math.floor(math.log10(a)))


def format_pm(mean, sem, *, latex: bool = True) -> str:
    """'(1.23 ± 0.05)×10^-3' with the error rounded to 2 significant digits, the value to match."""
    m, s = _num(mean), _num(sem)
    if not math.isfinite(m):
        return "--" if latex else "–"
    e = _exponent(m)
    scale = 10.0 ** e
    if math.isfinite(s) and s > 0:
        ss = s / scale
        d = max(0, 1 - int(math.floor(math.log10(ss))))
        body = (f"{m / scale:.{d}f} \\pm {ss:.{d}f}" if latex else f"{m / scale:.{d}f} ± {ss:.{d}f}")
        if e:
            body = f"({body})"
    else:
        body = f"{m / scale:.3g}"
    if e:
        body += f"\\times 10^{{{e}}}" if latex else f"×10^{e}"
    return f"${body}$" if latex else body


def format_ci(mean, lo, hi, *, latex: bool = True) -> str:
    """'1.2×10^-5 [0.8, 1.9]' (interval in the same power of ten)."""
    m = _num(mean)
    if not math.isfinite(m):
        return "--" if latex else "–"
    e = _exponent(m)
    sc = 10.0 ** e
    lo_, hi_ = _num(lo) / sc, _num(hi) / sc
    pw = (f"\\times 10^{{{e}}}" if latex else f"×10^{e}") if e else ""
    ci = f" [{lo_:.2g}, {hi_:.2g}]" if math.isfinite(lo_) and math.isfinite(hi_) else ""
    txt = f"{m / sc:.2g}{pw}{ci}"
    return f"${txt}$" if latex else txt


def _tex_escape(s) -> str:
    s = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b)
    return s


def _csv_text(header: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if r.get(k) is None else (repr(float(r[k])) if isinstance(r[k], float) else r[k])
                    for k in header])
    return buf.getvalue()


def _html_table(header: list[str], rows: list[list], title: str = "", note: str = "") -> str:
    import html

    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc('' if c is None else str(c))}</td>" for c in r) + "</tr>\n"
                   for r in rows)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + esc(title) + "</title><style>"
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>\n"
        + (f"<h3>{esc(title)}</h3>\n" if title else "")
        + f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"
        + (f"<p>{esc(note)}</p>\n" if note else "") + "</body></html>\n")


def _csv_to_html(path: Path, title: str, note: str = "") -> str:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise InputError(path, f"unreadable ({exc})") from None
    if not rows:
        raise InputError(path, "empty table")
    return _html_table(rows[0], rows[1:], title, note)


# ----------------------------------------------------------------------------------------------
# drawing helpers

def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", wrap=True, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def _T_axis_top(ax) -> None:
    """Secondary x axis in K on an axis of 1000/T, with round temperatures as ticks."""
    def f(x):
        with np.errstate(divide="ignore"):
            return 1000.0 / np.asarray(x, float)
    lo, hi = sorted(ax.get_xlim())
    cand = np.array([200, 250, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 3000], float)
    inside = cand[(1000.0 / cand >= lo) & (1000.0 / cand <= hi)]
    keep = []
    for t in inside[::-1]:                      # left to right on the axis; >= 7 % of the width apart
        if not keep or (1000.0 / t - 1000.0 / keep[-1]) >= 0.07 * (hi - lo):
            keep.append(t)
    ax.tick_params(top=False)
    sec = ax.secondary_xaxis("top", functions=(f, f))
    sec.set_xticks(keep, [f"{t:g}" for t in keep])
    sec.minorticks_off()
    sec.set_xlabel("T (K)")


def arrhenius_curve(fit: dict, T, times_T: bool = True):
    """(y, lo, hi) of the fitted sigma*T (or sigma if not times_T) at temperatures T, with the 95 %
    band rebuilt from the stored fit: the intercept-slope covariance follows from the variance of
    ln y at 300 K, the quantile from the stored 95 % interval. None if the fit failed."""
    if "Ea_eV" not in fit or "ln_prefactor" not in fit:
        return None
    T = np.asarray(T, float)
    x = 1.0 / T
    a, sa = _mean_sem(fit["ln_prefactor"])
    Ea, sEa = _mean_sem(fit["Ea_eV"])
    b, sb = -Ea / K_B_EV, sEa / K_B_EV
    y = a + b * x
    at = fit.get("sigma_300K_S_cm") or fit.get("D_300K_cm2_s") or {}
    se300 = _num(at.get("sem_ln"))
    lo = hi = None
    ci = at.get("ci95")
    if math.isfinite(se300) and se300 > 0 and ci and ci[1] and math.isfinite(sa) and math.isfinite(sb):
        xr = 1.0 / T_REF
        c01 = (se300 ** 2 - sa ** 2 - xr ** 2 * sb ** 2) / (2.0 * xr)
        div = T_REF if times_T else 1.0
        q = (math.log(ci[1] * div) - (a + b * xr)) / se300
        se = np.sqrt(np.maximum(sa ** 2 + 2 * x * c01 + x ** 2 * sb ** 2, 0.0))
        lo, hi = np.exp(y - q * se), np.exp(y + q * se)
    return np.exp(y), lo, hi


def _plane_vectors(cell: np.ndarray, p: int, q: int):
    """2D images of lattice vectors p and q in their plane: p along x, q at its true angle."""
    A, B = cell[p], cell[q]
    la, lb = np.linalg.norm(A), np.linalg.norm(B)
    cg = float(np.dot(A, B) / (la * lb))
    return np.array([la, 0.0]), lb * np.array([cg, math.sqrt(max(1.0 - cg * cg, 0.0))])


def _draw_plane(ax, img: np.ndarray, cell: np.ndarray, p: int, q: int, *, centred: bool = False, **kw):
    """Draw a periodic map over the cell face spanned by lattice vectors p and q.

    ``img[i, j]`` covers fractional [i/n, (i+1)/n) x [j/m, (j+1)/m) (histograms), or with ``centred``
    is the value AT (i/n, j/m) (grid data): its pixel is centred there, wrapped periodically and
    clipped to the cell."""
    from matplotlib.patches import Polygon

    a2, b2 = _plane_vectors(cell, p, q)
    n, m = img.shape
    if centred:
        img = np.pad(img, ((0, 1), (0, 1)), mode="wrap")
        u, v = (np.arange(n + 2) - 0.5) / n, (np.arange(m + 2) - 0.5) / m
    else:
        u, v = np.arange(n + 1) / n, np.arange(m + 1) / m
    U, V = np.meshgrid(u, v, indexing="ij")
    X, Y = U * a2[0] + V * b2[0], U * a2[1] + V * b2[1]
    mesh = ax.pcolormesh(X, Y, img, shading="flat", rasterized=True, **kw)
    corners = np.array([[0.0, 0.0], a2, a2 + b2, b2])
    outline = Polygon(corners, closed=True, fill=False, edgecolor="0.2", lw=0.5)
    ax.add_patch(outline)
    mesh.set_clip_path(outline)
    ax.set_xlim(min(0.0, b2[0]) - 0.02 * a2[0], max(a2[0], a2[0] + b2[0]) + 0.02 * a2[0])
    ax.set_ylim(-0.02 * b2[1], 1.02 * b2[1])
    ax.set_aspect("equal")
    ax.set_xlabel(f"along {AXES[p]} (Å)")
    ortho = abs(b2[0]) < 1e-3 * np.linalg.norm(b2)
    ax.set_ylabel(f"along {AXES[q]} (Å)" if ortho else f"⊥ {AXES[p]} in the {AXES[p]}{AXES[q]} plane (Å)")
    return mesh, a2, b2


def _overlay_atoms(ax, frac: np.ndarray, symbols, p: int, q: int, a2, b2, skip=()) -> None:
    """Projected atom positions (fractional, wrapped) of the framework cations as small markers:
    every species except the most numerous one (the anions, which would hide the density)."""
    symbols = np.asarray(symbols)
    kinds, counts = np.unique(symbols, return_counts=True)
    keep = [k for k in kinds if k not in skip]
    if len(keep) > 1:
        most = kinds[np.argmax(counts)]
        keep = [k for k in keep if k != most]
    markers = "^sDvo"
    for i, k in enumerate(keep):
        f = frac[symbols == k] % 1.0
        xy = f[:, p, None] * a2 + f[:, q, None] * b2
        ax.scatter(xy[:, 0], xy[:, 1], s=6, marker=markers[i % len(markers)], facecolor="none",
                   edgecolor="white", linewidths=0.5, label=k)


# ----------------------------------------------------------------------------------------------
# 1. dataset

def prepare_dataset(ctx: Context) -> None:
    from .closepairs import min_distance_matrix, read_frames

    sp = ctx.path("dataset/summary/summary.json")
    merged = ctx.path("closepairs/merged.extxyz")
    if not sp.is_file():
        ctx.skip("dataset", f"{sp} not found (ingest not run)")
        return
    summary = read_json(sp, obj=True)
    mobile = summary.get("mobile") or ctx.mobile or "Li"
    partners = list(summary.get("partners") or [])
    per_frame = summary.get("min_distance_per_frame_A") or {}
    if not partners or not per_frame:
        raise InputError(sp, "no per-frame minimum distances", field="min_distance_per_frame_A")
    fpmd = {x: _arr(per_frame.get(x)) for x in partners}
    close = {}
    inputs = [sp]
    if merged.is_file():
        frames = [a for a in read_frames(merged) if a.info.get("config_type") == "close_pair"]
        inputs.append(merged)
        if frames:
            species = sorted({s for a in frames for s in a.get_chemical_symbols()})
            dm = min_distance_matrix(frames, species, 6.0)
            code = {s: k for k, s in enumerate(species)}
            close = {x: dm[:, code[mobile], code[x]] for x in partners if x in code and mobile in code}
    else:
        ctx.skip("dataset: close-pair frames", f"{merged} not found (closepairs not run or disabled)")
    labels = summary.get("labels") or []

    def draw(plt):
        n = len(partners)
        ncol = min(n, 4)
        nrow = math.ceil(n / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(DOUBLE_COLUMN_IN, 1.9 * nrow), squeeze=False,
                                 constrained_layout=True)
        for k, (ax, x) in enumerate(zip(axes.ravel(), partners)):
            a = fpmd[x][np.isfinite(fpmd[x])]
            c = close.get(x, np.array([]))
            c = c[np.isfinite(c)]
            both = np.concatenate([a, c])
            if not both.size:
                _no_data(ax, f"no {mobile}–{x} pair within 6 Å")
                continue
            bins = np.linspace(both.min() - 0.05, both.max() + 0.05, 40)
            ax.hist(both, bins=bins, histtype="stepfilled", color=color(0), alpha=0.45,
                    label=f"with close-pair frames ({both.size})" if c.size else f"all frames ({both.size})")
            ax.hist(a, bins=bins, histtype="step", color="k", lw=1.0, label=f"FPMD frames ({a.size})")
            ax.set_xlabel(f"min. {mobile}–{x} distance (Å)")
            if k % ncol == 0:
                ax.set_ylabel("frames")
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        handles, names = axes[0][0].get_legend_handles_labels()
        note = f"labels: {', '.join(labels)} (surrogate, not DFT)" if any(lab != "dft" for lab in labels) else None
        if handles:
            fig.legend(handles, names, loc="outside upper center", ncols=2, title=note,
                       title_fontsize=ctx.style.font_size - 1)
        return fig

    ctx.add(Job("dataset_min_distances", draw, inputs,
                "Per-frame minimum distance between a mobile ion and each partner species: ingested "
                "FPMD frames (black outline) and the training set with the constructed close-pair frames "
                "(filled)."))

    groups = summary.get("groups") or []
    if groups:
        cols = [c for c in groups[0].keys()]

        def table():
            rows = [[(";".join(v) if isinstance(v, list) else (f"{v:.4g}" if isinstance(v, float) else v))
                     for v in (g.get(c) for c in cols)] for g in groups]
            note = (f"{summary.get('n_frames')} frames; labels: {', '.join(labels)}"
                    + (" (surrogate labels, not DFT)" if summary.get("surrogate_labels") else ""))
            return _html_table(cols, rows, "Dataset summary", note)
        ctx.add(Job("dataset_summary", table, [sp], "Dataset summary table.", kind="table", suffix=".html"))


# ----------------------------------------------------------------------------------------------
# 2. training

def _members(ctx: Context) -> list[tuple[Path, dict, dict]]:
    from .train_report import load_member

    out = []
    for man in sorted(ctx.path("models").glob("*/manifest.json")):
        m, met = load_member(man)
        out.append((man, m, met))
    return out


def prepare_training(ctx: Context) -> None:
    from .train_report import COLUMNS, row

    members = _members(ctx)
    if not members:
        ctx.skip("training", f"no {ctx.path('models')}/*/manifest.json (train not run)")
        return
    rows = [row(m, met) for _, m, met in members]
    table_inputs = [p for man, m, _ in members for p in (man, man.parent / m["metrics"])]
    inputs = list(table_inputs)

    def draw_metrics(plt):
        panels = [("E_MAE_meV", "E_RMSE_meV", "energy (meV/atom)", 1.0),
                  ("F_MAE", "F_RMSE", "force (eV/Å)", 1.0),
                  ("S_MAE", "S_RMSE", "stress (GPa)", 160.21766208),
                  ("WS", None, "weighted score WS", 1.0)]
        fig, axes = plt.subplots(1, 4, figsize=(DOUBLE_COLUMN_IN, 2.0), constrained_layout=True)
        names = [r["member"] for r in rows]
        x = np.arange(len(rows))
        for k, (ax, (mae, rmse, label, f)) in enumerate(zip(axes, panels)):
            v = np.array([_num(r[mae]) for r in rows]) * f
            if not np.isfinite(v).any():
                _no_data(ax, "not computed")
                ax.set_title(label)
                continue
            ax.bar(x, v, color=[color(i) for i in range(len(rows))], width=0.6, label="MAE")
            if rmse:
                ax.plot(x, np.array([_num(r[rmse]) for r in rows]) * f, "k_", ms=10, mew=1.2, label="RMSE")
            if len(rows) > 1:
                ax.axhline(np.nanmean(v), color="k", ls="--", lw=0.7, label="mean MAE")
            ax.set_xticks(x, names, rotation=45 if len(rows) > 4 else 0)
            ax.set_title(label)
            if k == 0:
                ax.set_ylabel("test error")
                fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=3)
        return fig

    ctx.add(Job("training_metrics", draw_metrics, table_inputs,
                "Test-split errors of every ensemble member (bars: MAE, bars' ticks: RMSE, dashed: "
                "ensemble mean MAE) and the weighted score WS."))

    def table():
        header = [c[2] for c in COLUMNS]
        body = [[("" if r[c[0]] is None else (c[3].format(r[c[0]]) if r[c[0]] != "" else ""))
                 for c in COLUMNS] for r in rows]
        labels = sorted({lab for _, m, _ in members for lab in m.get("labels", [])})
        return _html_table(header, body, "Allegro training metrics (test split)",
                           f"Reference labels: {', '.join(labels)}"
                           + ("" if labels == ["dft"] else " (surrogate labels, not DFT)"))
    ctx.add(Job("training_metrics", table, table_inputs, "Training metrics table.", kind="table", suffix=".html"))

    # parity: nequip-train's test predictions (best checkpoint) against the test frames
    from ase.io import read

    from .train.metrics import read_predictions

    preds = []
    for man, m, _ in members:
        d = man.parent
        pf, tf = d / "run" / "test_pred_dataset0.xyz", d / "data" / "test.extxyz"
        if not (pf.is_file() and tf.is_file()):
            preds.append((m["member"], None, f"no test predictions ({pf.name})"))
            ctx.skip(f"parity {m['member']}", f"{pf} or {tf} not found")
            continue
        try:
            ref = read(tf, index=":", format="extxyz")
        except Exception as exc:  # noqa: BLE001 - any parse failure is a user error
            raise InputError(tf, f"cannot read as extxyz: {exc}".splitlines()[0]) from None
        try:
            p = read_predictions(pf, ref)
        except IonflowError as exc:
            raise InputError(pf, str(exc)) from None
        preds.append((m["member"], p, None))
        inputs += [pf, tf]

    def draw_parity(plt):
        from matplotlib.ticker import MaxNLocator

        has_s = any(p is not None and "S_ref" in p for _, p, _ in preds)
        ncol = 3 if has_s else 2
        fig, axes = plt.subplots(len(preds), ncol, figsize=(DOUBLE_COLUMN_IN * ncol / 3, 2.2 * len(preds)),
                                 squeeze=False, constrained_layout=True)
        for r, (name, p, why) in enumerate(preds):
            if p is None:
                for ax in axes[r]:
                    _no_data(ax, f"{name}: {why}")
                continue
            structs = sorted(set(p["structure"].tolist()))
            panels = [("E", "E (eV/atom)", p["E_ref"], p["E_pred"], p["structure"], 1.0),
                      ("F", "F component (eV/Å)", p["F_ref"].ravel(), p["F_pred"].ravel(),
                       np.repeat(p["structure"][p["F_frame"]], 3), 1.0)]
            if "S_ref" in p:
                panels.append(("S", "σ component (GPa)", p["S_ref"].reshape(-1), p["S_pred"].reshape(-1),
                               np.repeat(p["structure"][p["S_frame"]], 9), 160.21766208))
            for ax, (key, label, ref_, pred, st, f) in zip(axes[r], panels):
                ref_, pred = ref_ * f, pred * f
                for i, s in enumerate(structs):
                    sel = st == s
                    ax.scatter(ref_[sel], pred[sel], s=4 if key != "E" else 8, alpha=0.6, color=color(i),
                               lw=0, label=s, rasterized=True)
                lo, hi = float(min(ref_.min(), pred.min())), float(max(ref_.max(), pred.max()))
                pad = 0.05 * (hi - lo or 1.0)
                ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.6)
                ax.set_xlim(lo - pad, hi + pad)
                ax.set_ylim(lo - pad, hi + pad)
                ax.set_aspect("equal")
                ax.xaxis.set_major_locator(MaxNLocator(4))
                ax.yaxis.set_major_locator(MaxNLocator(4))
                ax.set_xlabel(f"reference {label}")
                ax.set_ylabel(f"{name} {label}")
                d = pred - ref_
                unit = label[label.index("(") + 1:-1]
                if key == "E":                      # energy errors are quoted in meV/atom
                    d, unit = 1000.0 * d, "meV/atom"
                ax.text(0.97, 0.03, f"MAE {np.mean(np.abs(d)):.3g} {unit}\nRMSE {np.sqrt(np.mean(d ** 2)):.3g}",
                        transform=ax.transAxes, ha="right", va="bottom", fontsize=ctx.style.font_size - 1)
            for ax in axes[r][len(panels):]:
                ax.axis("off")
            if r == 0:
                axes[0][0].legend(loc="upper left", markerscale=2)
        return fig

    ctx.add(Job("parity", draw_parity, inputs,
                "Parity of each ensemble member (rows) on the held-out test split: energy per atom, "
                "force components and stress components against the reference labels, coloured by "
                "structure; MAE and RMSE over all points shown."))


def prepare_learning_curve(ctx: Context) -> None:
    lp = ctx.path("models/learning_curve/learning_curve.json")
    if not lp.is_file():
        ctx.skip("learning curve", f"{lp} not found (optional target 'learning_curve' not run)")
        return
    lc = read_json(lp, obj=True)
    pts = lc.get("points")
    if not isinstance(pts, list) or len(pts) < 2:
        raise InputError(lp, "needs at least two points", field="points")

    def draw(plt):
        n = np.array([p["n_train"] for p in pts], float)
        panels = [("E_MAE_meV_per_atom", "E MAE (meV/atom)"), ("F_MAE", "F MAE (eV/Å)"), ("S_MAE", "S MAE (eV/Å³)")]
        panels = [pn for pn in panels if any(q.get(pn[0]) is not None for q in pts)]
        fig, axes = plt.subplots(1, len(panels), figsize=(DOUBLE_COLUMN_IN * len(panels) / 3, 2.2),
                                 squeeze=False, constrained_layout=True)
        for ax, (k, label) in zip(axes[0], panels):
            y = _arr([q.get(k) for q in pts])
            ax.loglog(n, y, "o", color="k", mfc="white")
            f = (lc.get("fits") or {}).get(k)
            if f:
                nn = np.geomspace(n.min(), n.max(), 50)
                ax.loglog(nn, np.exp(f["loglog_intercept"]) * nn ** f["loglog_slope"], "--", color=color(0),
                          label=f"slope {f['loglog_slope']:.2f}")
                ax.legend(loc="upper right")
            ax.set_xlabel("training frames")
            ax.set_ylabel(f"test {label}")
        return fig

    ctx.add(Job("learning_curve", draw, [lp],
                "Learning curve: test MAE against the number of training frames (nested subsets, same "
                "preset and seed), with a power-law fit (dashed)."))


def prepare_validation(ctx: Context) -> None:
    found = False
    for name, title in (("stability", "Stability MD of each model"), ("minimize", "LAMMPS minimization of the ground states")):
        p = ctx.path(f"validation/{name}.csv")
        if not p.is_file():
            continue
        found = True
        ctx.add(Job(f"validation_{name}", (lambda p=p, title=title: _csv_to_html(p, title)), [p],
                    f"{title} (table).", kind="table", suffix=".html"))
    if not found:
        ctx.skip("validation tables", f"no {ctx.path('validation')}/stability.csv or minimize.csv (validate not run)")


# ----------------------------------------------------------------------------------------------
# 3. conductivity, Arrhenius, Haven ratio, tables

def load_conductivity(ctx: Context) -> dict:
    """{structure: {model: {T: (path, result)}}} of results/conductivity/S/M/TK.json."""
    from .analysis.combine import load_result

    out: dict = {}
    for p in sorted(ctx.path("conductivity").glob("*/*/*K.json")):
        T = _temperature_of(p.name)
        if T is None:
            continue
        res = load_result(p)
        if str(res.get("status", "ok")).lower() == "failed":  # every run blew up: listed, never plotted
            ctx.skip(f"conductivity {p}", f"failed result: {res.get('reason')}")
            continue
        out.setdefault(p.parent.parent.name, {}).setdefault(p.parent.name, {})[T] = (p, res)
    return out


def load_arrhenius(ctx: Context) -> dict:
    """{structure: (path, {model: group})} of results/arrhenius/S.json."""
    out = {}
    for p in sorted(ctx.path("arrhenius").glob("*.json")):
        doc = read_json(p, obj=True)
        if not isinstance(doc.get("groups"), list):
            raise InputError(p, "not an ionflow arrhenius result", field="groups")
        groups = {}
        for g in doc["groups"]:
            for key in ("structure", "model", "points", "tracer", "full"):
                if key not in g:
                    raise InputError(p, f"a group lacks '{key}'", field="groups")
            groups[g["model"]] = g
        out[p.stem] = (p, groups)
    return out


def _curve_source(models: dict) -> tuple[str, dict]:
    """The ensemble when it has curves, else the first member with curves: {T: result}."""
    for m in _model_order(models):
        if all((res.get("curves") or {}).get("lag_ps") for _, res in models[m].values()):
            return m, {T: res for T, (_, res) in models[m].items()}
    return "", {}


def prepare_transport(ctx: Context, cond: dict) -> None:
    for s, models in sorted(cond.items()):
        src, by_T = _curve_source(models)
        if not by_T:
            ctx.skip(f"MSD/running {s}", "no result with curves")
            continue
        inputs = [p for p, _ in models[src].values()]
        Ts = sorted(by_T)

        def draw_msd(plt, s=s, src=src, by_T=by_T, Ts=Ts):
            fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.6), constrained_layout=True)
            for ax, (key, skey, dkey, title) in zip(axes, (
                    ("msd_A2", "msd_sem_A2", "D_tracer_cm2_s", "tracer MSD"),
                    ("mscd_per_ion_A2", "mscd_per_ion_sem_A2", "D_sigma_cm2_s", r"charge MSD / $\Sigma q^2$"))):
                for i, T in enumerate(Ts):
                    res = by_T[T]
                    c = res["curves"]
                    t, y, e = _arr(c["lag_ps"]), _arr(c[key]), _arr(c.get(skey))
                    ok = (t > 0) & (y > 0)
                    col = color(i)
                    ax.plot(t[ok], y[ok], color=col, lw=0.8, label=f"{T:g} K")
                    if e.size == y.size and np.isfinite(e[ok]).any():
                        ax.fill_between(t[ok], np.maximum(y - e, y * 1e-3)[ok], (y + e)[ok], color=col,
                                        alpha=0.2, lw=0)
                    w0, w1 = res["fit_window"]["start_ps"], res["fit_window"]["end_ps"]
                    D = _num(res[dkey]["mean"])
                    inw = ok & (t >= w0) & (t <= w1)
                    if inw.any() and math.isfinite(D) and D > 0:
                        slope = 6.0 * D * 1e4          # cm^2/s -> Å^2/ps
                        icpt = np.nanmean(y[inw] - slope * t[inw])
                        tt = np.geomspace(w0, w1, 30)
                        ax.plot(tt, icpt + slope * tt, "k--", lw=0.8)
                        ax.plot(t[inw], y[inw], color=col, lw=2.2, alpha=0.6, solid_capstyle="butt")
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("lag τ (ps)")
                ax.set_ylabel(f"{title} (Å$^2$)")
            axes[0].legend(loc="upper left", title=f"{s} ({src})")
            return fig

        ctx.add(Job(f"msd_{s}", draw_msd, inputs,
                    f"{s}: tracer MSD and charge MSD per ion of the mobile ions (framework-referenced; mean "
                    "over time origins, blocks, seeds and models; band: SEM over blocks) at each "
                    "temperature. Thick segment: the fit window; dashed: the fitted slope 6D."))

        def draw_running(plt, s=s, src=src, by_T=by_T, Ts=Ts):
            fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.6), sharey=True, constrained_layout=True)
            for ax, (key, rkey, title) in zip(axes, (("sigmaT_tracer_S_K_cm", "sigma_tracer_S_cm", "tracer"),
                                                    ("sigmaT_full_S_K_cm", "sigma_full_S_cm", "full"))):
                for i, T in enumerate(Ts):
                    res = by_T[T]
                    c = res["curves"]
                    t, y = _arr(c["lag_ps"]), _arr(c[key])
                    ok = (t > 0) & (y > 0)
                    col = color(i)
                    ax.plot(t[ok], y[ok], color=col, lw=0.8, label=f"{T:g} K")
                    m, e = _mean_sem(res[rkey])
                    w0, w1 = res["fit_window"]["start_ps"], res["fit_window"]["end_ps"]
                    if math.isfinite(m) and m > 0:
                        e = e if math.isfinite(e) else 0.0
                        ax.fill_between([w0, w1], [max(m - e, m * 1e-3) * T] * 2, [(m + e) * T] * 2,
                                        color=col, alpha=0.3, lw=0)
                        ax.plot([w0, w1], [m * T] * 2, color="k", lw=0.8, ls="--")
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("lag τ (ps)")
                ax.set_title(f"{title} conductivity")
            axes[0].set_ylabel(r"running $\sigma T$ (S K cm$^{-1}$)")
            axes[0].legend(loc="best", title=f"{s} ({src})")
            return fig

        ctx.add(Job(f"running_{s}", draw_running, inputs,
                    f"{s}: running σT(τ) = e²⟨|ΔX|²⟩(τ)/(6τVk_B), tracer (Nernst–Einstein) and full "
                    "(Einstein–Helfand), at each temperature; band and dashed line over the fit window: the "
                    "fitted σT ± SEM."))


def _errorbar_points(ax, T, m, s, **kw):
    T, m, s = np.asarray(T, float), np.asarray(m, float), np.asarray(s, float)
    ok = np.isfinite(m) & (m > 0)
    y = m * T
    e = np.where(np.isfinite(s), s * T, 0.0)
    lo = np.minimum(e, y * 0.999)        # log axis: never below zero
    ax.errorbar(1000.0 / T[ok], y[ok], yerr=[lo[ok], e[ok]], **kw)


def _draw_fit(ax, fit, Tmax, col, *, band=True, ls="-", lw=1.0, label=None):
    TT = 1000.0 / np.linspace(1000.0 / Tmax, 1000.0 / T_REF, 80)
    cur = arrhenius_curve(fit, TT)
    if cur is None:
        return
    y, lo, hi = cur
    ax.plot(1000.0 / TT, y, color=col, ls=ls, lw=lw, label=label)
    if band and lo is not None:
        ax.fill_between(1000.0 / TT, lo, hi, color=col, alpha=0.15, lw=0)


def _ea_label(fit) -> str:
    m, s = _mean_sem(fit.get("Ea_eV"))
    return f"$E_a$ = {m:.3f} ± {s:.3f} eV" if math.isfinite(m) else "no fit"


def prepare_arrhenius(ctx: Context, arr: dict) -> None:
    for s, (p, groups) in sorted(arr.items()):
        def draw(plt, s=s, groups=groups):
            fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.8), sharey=True, constrained_layout=True)
            for ax, (kind, key, title) in zip(axes, (("tracer", "sigma_tracer_S_cm", "tracer"),
                                                     ("full", "sigma_full_S_cm", "full (Einstein–Helfand)"))):
                members = [m for m in _model_order(groups) if m != "ensemble"]
                for i, m in enumerate(members):
                    g = groups[m]
                    pts = g["points"]
                    T = [q["temperature_K"] for q in pts]
                    _errorbar_points(ax, T, [_num(q[key]["mean"]) for q in pts], [_num(q[key]["sem"]) for q in pts],
                                     fmt="o", ms=3, mfc="none", color=color(i), alpha=0.8, label=m)
                    if T:   # a member whose runs all failed has no points: listed, nothing to draw
                        _draw_fit(ax, g[kind], max(T), color(i), band=False, ls=":", lw=0.7)
                if "ensemble" in groups:
                    g = groups["ensemble"]
                    pts = g["points"]
                    T = [q["temperature_K"] for q in pts]
                    _errorbar_points(ax, T, [_num(q[key]["mean"]) for q in pts], [_num(q[key]["sem"]) for q in pts],
                                     fmt="o", ms=4, color="k", label="ensemble")
                    if T:
                        _draw_fit(ax, g[kind], max(T), "k", label=_ea_label(g[kind]))
                    at = g[kind].get("sigma_300K_S_cm")
                    if at and at.get("ci95"):
                        mm, (lo, hi) = at["mean"] * T_REF, (c * T_REF for c in at["ci95"])
                        ax.errorbar([1000.0 / T_REF], [mm], yerr=[[mm - lo], [hi - mm]], fmt="D", ms=4,
                                    mfc="white", color="k", label="300 K (95 % CI)")
                ax.set_yscale("log")
                ax.set_xlabel("1000/T (K$^{-1}$)")
                ax.set_title(title)
                _T_axis_top(ax)
                ax.legend(loc="lower left")
            axes[0].set_ylabel(r"$\sigma T$ (S K cm$^{-1}$)")
            return fig

        ctx.add(Job(f"arrhenius_{s}", draw, [p],
                    f"{s}: Arrhenius plot of σT, tracer (left) and full (right): ensemble (black, error bars: SEM "
                    "over blocks, seeds and models) with its weighted fit and 95 % confidence band extended "
                    "to 300 K (diamond: extrapolated σ(300 K)·300 K with its 95 % CI); members (colours, dotted "
                    "fits)."))

    if not arr:
        return

    def draw_all(plt):
        fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.8), sharey=True, constrained_layout=True)
        for ax, (kind, key, title) in zip(axes, (("tracer", "sigma_tracer_S_cm", "tracer"),
                                                 ("full", "sigma_full_S_cm", "full (Einstein–Helfand)"))):
            for i, (s, (_, groups)) in enumerate(sorted(arr.items())):
                g = groups.get("ensemble") or groups[_model_order(groups)[0]]
                pts = g["points"]
                T = [q["temperature_K"] for q in pts]
                _errorbar_points(ax, T, [_num(q[key]["mean"]) for q in pts], [_num(q[key]["sem"]) for q in pts],
                                 fmt="os^Dv"[i % 5], ms=4, color=color(i), label=f"{s}: {_ea_label(g[kind])}")
                if T:
                    _draw_fit(ax, g[kind], max(T), color(i))
            ax.set_yscale("log")
            ax.set_xlabel("1000/T (K$^{-1}$)")
            ax.set_title(title)
            _T_axis_top(ax)
            ax.legend(loc="lower left")
        axes[0].set_ylabel(r"$\sigma T$ (S K cm$^{-1}$)")
        return fig

    ctx.add(Job("arrhenius_all", draw_all, [p for p, _ in arr.values()],
                "Arrhenius plots of all structures (ensemble results): σT with SEM error bars, weighted fits "
                "and 95 % confidence bands extended to 300 K; tracer (left) and full (right)."))


def prepare_haven(ctx: Context, cond: dict) -> None:
    if not cond:
        return
    inputs = [p for models in cond.values() for by_T in models.values() for p, _ in by_T.values()]

    def draw(plt):
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, 2.5), constrained_layout=True)
        for i, (s, models) in enumerate(sorted(cond.items())):
            col = color(i)
            for j, m in enumerate(_model_order(models)):
                by_T = models[m]
                T = np.array(sorted(by_T))
                h = [_mean_sem(by_T[t][1]["haven_ratio"]) for t in T]
                y = np.array([a for a, _ in h])
                e = np.array([b if math.isfinite(b) else 0.0 for _, b in h])
                ens = m == "ensemble" or len(models) == 1
                dx = 0.0 if ens else (j - len(models) / 2.0) * 0.015 * (T.max() - T.min() + 10.0)
                ax.errorbar(T + dx, y, yerr=e, fmt="o-" if ens else "o", ms=4 if ens else 2.5, color=col,
                            mfc=col if ens else "none", alpha=1.0 if ens else 0.5, lw=1.0 if ens else 0,
                            elinewidth=0.8, label=f"{s} ({m})" if ens else None)
        ax.axhline(1.0, color="0.5", ls=":", lw=0.8)
        ax.set_xlabel("T (K)")
        ax.set_ylabel(r"Haven ratio $H_R = \sigma_\mathrm{tr}/\sigma_\mathrm{full}$")
        ax.legend(loc="best")
        return fig

    ctx.add(Job("haven_ratio", draw, inputs,
                "Haven ratio H_R = σ_tracer/σ_full against temperature for each structure: ensemble (filled, "
                "line) with SEM from the nested block/seed/model statistics (ratio of correlated estimates), "
                "members (open, small). H_R < 1: correlated ion motion raises the full conductivity."))


SIGMA_COLUMNS = ["structure", "model", "temperature_K",
                 "sigma_tracer_S_cm", "sigma_tracer_sem_S_cm", "sigma_full_S_cm", "sigma_full_sem_S_cm",
                 "haven_ratio", "haven_ratio_sem", "D_tracer_cm2_s", "D_tracer_sem_cm2_s",
                 "D_sigma_cm2_s", "D_sigma_sem_cm2_s", "converged", "result"]
ARRHENIUS_COLUMNS = ["structure", "model", "n_temperatures", "T_min_K", "T_max_K",
                     "Ea_tracer_eV", "Ea_tracer_sem_eV", "Ea_full_eV", "Ea_full_sem_eV",
                     "sigma_tracer_300K_S_cm", "sigma_tracer_300K_ci95_lo", "sigma_tracer_300K_ci95_hi",
                     "sigma_full_300K_S_cm", "sigma_full_300K_ci95_lo", "sigma_full_300K_ci95_hi",
                     "Ea_diffusion_eV", "Ea_diffusion_sem_eV", "D0_cm2_s", "non_arrhenius", "all_converged",
                     "result"]


def sigma_rows(cond: dict) -> list[dict]:
    rows = []
    for s in sorted(cond):
        for m in _model_order(cond[s]):
            for T in sorted(cond[s][m]):
                p, r = cond[s][m][T]
                row = {"structure": s, "model": m, "temperature_K": float(r["temperature_K"]),
                       "converged": bool(r.get("converged")), "result": str(p)}
                for key, col, semcol in (("sigma_tracer_S_cm", "sigma_tracer_S_cm", "sigma_tracer_sem_S_cm"),
                                         ("sigma_full_S_cm", "sigma_full_S_cm", "sigma_full_sem_S_cm"),
                                         ("haven_ratio", "haven_ratio", "haven_ratio_sem"),
                                         ("D_tracer_cm2_s", "D_tracer_cm2_s", "D_tracer_sem_cm2_s"),
                                         ("D_sigma_cm2_s", "D_sigma_cm2_s", "D_sigma_sem_cm2_s")):
                    row[col], row[semcol] = r[key].get("mean"), r[key].get("sem")
                rows.append(row)
    return rows


def arrhenius_rows(arr: dict) -> list[dict]:
    rows = []
    for s in sorted(arr):
        p, groups = arr[s]
        for m in _model_order(groups):
            g = groups[m]
            T = [float(t) for t in g.get("temperatures_K") or [q["temperature_K"] for q in g["points"]]]
            row = {"structure": s, "model": m, "n_temperatures": len(T), "T_min_K": min(T) if T else None,
                   "T_max_K": max(T) if T else None, "non_arrhenius": bool(g.get("non_arrhenius")),
                   "all_converged": bool(g.get("all_converged")), "result": str(p)}
            for kind in ("tracer", "full"):
                f = g[kind]
                row[f"Ea_{kind}_eV"], row[f"Ea_{kind}_sem_eV"] = (f.get("Ea_eV") or {}).get("mean"), \
                    (f.get("Ea_eV") or {}).get("sem")
                at = f.get("sigma_300K_S_cm") or {}
                ci = at.get("ci95") or [None, None]
                row[f"sigma_{kind}_300K_S_cm"] = at.get("mean")
                row[f"sigma_{kind}_300K_ci95_lo"], row[f"sigma_{kind}_300K_ci95_hi"] = ci[0], ci[1]
            d = g.get("diffusion") or {}
            row["Ea_diffusion_eV"], row["Ea_diffusion_sem_eV"] = (d.get("Ea_eV") or {}).get("mean"), \
                (d.get("Ea_eV") or {}).get("sem")
            row["D0_cm2_s"] = (d.get("D0_cm2_s") or {}).get("mean")
            rows.append(row)
    return rows


def latex_tables(srows: list[dict], arows: list[dict], study: str = "") -> str:
    out = ["% ionflow figures: results tables (values ± SEM; 300 K values with 95 % CI). Needs no package.",
           "\\begin{table}", "\\centering",
           f"\\caption{{Tracer and full ionic conductivity and Haven ratio{(' (' + _tex_escape(study) + ')') if study else ''}; "
           "mean $\\pm$ SEM over blocks, seeds and models.}", "\\label{tab:ionflow-sigma}",
           "\\begin{tabular}{llrlll}", "\\hline",
           "Structure & Model & $T$ (K) & $\\sigma_\\mathrm{tr}$ (S\\,cm$^{-1}$) & "
           "$\\sigma_\\mathrm{full}$ (S\\,cm$^{-1}$) & $H_R$ \\\\", "\\hline"]
    for r in srows:
        flag = "" if r["converged"] else "$^{*}$"
        out.append(f"{_tex_escape(r['structure'])} & {_tex_escape(r['model'])} & {r['temperature_K']:g}{flag} & "
                   f"{format_pm(r['sigma_tracer_S_cm'], r['sigma_tracer_sem_S_cm'])} & "
                   f"{format_pm(r['sigma_full_S_cm'], r['sigma_full_sem_S_cm'])} & "
                   f"{format_pm(r['haven_ratio'], r['haven_ratio_sem'])} \\\\")
    out += ["\\hline", "\\end{tabular}"]
    if any(not r["converged"] for r in srows):
        out.append("\\par\\smallskip{\\footnotesize $^{*}$ not converged (see the conductivity result).}")
    out += ["\\end{table}", ""]
    if arows:
        out += ["\\begin{table}", "\\centering",
                "\\caption{Arrhenius fits of $\\sigma T$: activation energies (mean $\\pm$ SEM) and "
                "$\\sigma$(300\\,K) extrapolated with its 95\\,\\% confidence interval.}",
                "\\label{tab:ionflow-arrhenius}", "\\begin{tabular}{llcllll}", "\\hline",
                "Structure & Model & $T$ range (K) & $E_a^\\mathrm{tr}$ (eV) & $E_a^\\mathrm{full}$ (eV) & "
                "$\\sigma_\\mathrm{tr}$(300\\,K) (S\\,cm$^{-1}$) & $\\sigma_\\mathrm{full}$(300\\,K) (S\\,cm$^{-1}$) \\\\",
                "\\hline"]
        for r in arows:
            rng = f"{r['T_min_K']:g}--{r['T_max_K']:g}" if r["T_min_K"] is not None else "--"
            out.append(f"{_tex_escape(r['structure'])} & {_tex_escape(r['model'])} & {rng} & "
                       f"{format_pm(r['Ea_tracer_eV'], r['Ea_tracer_sem_eV'])} & "
                       f"{format_pm(r['Ea_full_eV'], r['Ea_full_sem_eV'])} & "
                       f"{format_ci(r['sigma_tracer_300K_S_cm'], r['sigma_tracer_300K_ci95_lo'], r['sigma_tracer_300K_ci95_hi'])} & "
                       f"{format_ci(r['sigma_full_300K_S_cm'], r['sigma_full_300K_ci95_lo'], r['sigma_full_300K_ci95_hi'])} \\\\")
        out += ["\\hline", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)


def html_tables(srows: list[dict], arows: list[dict]) -> str:
    h1 = ["structure", "model", "T (K)", "σ_tracer (S/cm)", "σ_full (S/cm)", "H_R", "converged"]
    b1 = [[r["structure"], r["model"], f"{r['temperature_K']:g}",
           format_pm(r["sigma_tracer_S_cm"], r["sigma_tracer_sem_S_cm"], latex=False),
           format_pm(r["sigma_full_S_cm"], r["sigma_full_sem_S_cm"], latex=False),
           format_pm(r["haven_ratio"], r["haven_ratio_sem"], latex=False), "yes" if r["converged"] else "NO"]
          for r in srows]
    t1 = _html_table(h1, b1, "Conductivity and Haven ratio (mean ± SEM over blocks, seeds, models)")
    if not arows:
        return t1
    h2 = ["structure", "model", "Ea tracer (eV)", "Ea full (eV)", "σ_tracer(300 K) [95 % CI] (S/cm)",
          "σ_full(300 K) [95 % CI] (S/cm)", "non-Arrhenius"]
    b2 = [[r["structure"], r["model"], format_pm(r["Ea_tracer_eV"], r["Ea_tracer_sem_eV"], latex=False),
           format_pm(r["Ea_full_eV"], r["Ea_full_sem_eV"], latex=False),
           format_ci(r["sigma_tracer_300K_S_cm"], r["sigma_tracer_300K_ci95_lo"], r["sigma_tracer_300K_ci95_hi"],
                     latex=False),
           format_ci(r["sigma_full_300K_S_cm"], r["sigma_full_300K_ci95_lo"], r["sigma_full_300K_ci95_hi"],
                     latex=False), "yes" if r["non_arrhenius"] else "no"] for r in arows]
    t2 = _html_table(h2, b2, "Arrhenius fits")
    # one document: the body of the second table appended to the first
    return t1.replace("</body></html>\n", t2[t2.index("<h3>"):])


def prepare_tables(ctx: Context, cond: dict, arr: dict, study: str) -> None:
    if not cond and not arr:
        ctx.skip("results tables", f"no {ctx.path('conductivity')}/*/*/*K.json (analysis not run)")
        return
    srows, arows = sigma_rows(cond), arrhenius_rows(arr)
    inputs = [r["result"] for r in srows] + [p for p, _ in arr.values()]
    ctx.add(Job("results_sigma", lambda: _csv_text(SIGMA_COLUMNS, srows), inputs,
                "σ_tracer, σ_full, H_R, D per structure, model and temperature.", kind="table", suffix=".csv"))
    ctx.add(Job("results_arrhenius", lambda: _csv_text(ARRHENIUS_COLUMNS, arows), inputs,
                "Ea and σ(300 K) per structure and model.", kind="table", suffix=".csv"))
    ctx.add(Job("results_tables", lambda: latex_tables(srows, arows, study), inputs,
                "Results tables (LaTeX).", kind="table", suffix=".tex"))
    ctx.add(Job("results_tables", lambda: html_tables(srows, arows), inputs,
                "Results tables.", kind="table", suffix=".html"))


# ----------------------------------------------------------------------------------------------
# 4. Li density from the MD dumps

def density_histograms(paths: list[Path], species: str, bins: int, stride: int = 1) -> dict:
    """Superposed projected density of ``species`` over the given runs.

    Positions are referenced to the framework (count average of the other atoms, as in the
    conductivity analysis: the framework's own drift is removed), wrapped into the cell and
    projected on the three lattice planes. Returns {"hist": (3, bins, bins) counts over
    (a,b), (a,c), (b,c) fractional coordinates, "frames", "n_mobile", "cell" (3, 3) mean cell,
    "framework_frac" (N_fw, 3) time-averaged framework positions of the first run, "framework_symbols"}.
    """
    from .io.trajectory import TrajectoryReader

    hist = np.zeros((3, bins, bins))
    frames, cells, fw_frac, fw_sym, n_mob = 0, [], None, None, None
    edges = np.linspace(0.0, 1.0, bins + 1)
    for path in paths:
        reader = TrajectoryReader(path)
        sym = np.asarray(reader.symbols)
        mob = sym == species
        if not mob.any():
            raise InputError(path, f"no {species} atoms (species in file: {', '.join(sorted(set(sym.tolist())))})",
                             field="element")
        if mob.all():
            raise InputError(path, "no framework atoms to reference the positions to", field="element")
        n_mob = int(mob.sum())
        r0 = None
        fw_sum, fw_n, cell_sum = None, 0, np.zeros((3, 3))
        k = 0
        for chunk in reader:
            pos = chunk.positions
            sel = np.arange(pos.shape[0]) + k
            k += pos.shape[0]
            take = sel % stride == 0
            if not take.any():
                continue
            pos, cell = pos[take], chunk.cells[take]
            rf = pos[:, ~mob].mean(axis=1)                      # (f, 3) framework reference
            if r0 is None:
                r0 = rf[0].copy()
            shift = (rf - r0)[:, None, :]
            inv = np.linalg.inv(cell)
            frac = np.einsum("tni,tij->tnj", pos[:, mob] - shift, inv)
            frac -= np.floor(frac)
            for h, (p, q) in enumerate(PLANES):
                hist[h] += np.histogram2d(frac[..., p].ravel(), frac[..., q].ravel(), bins=(edges, edges))[0]
            frames += pos.shape[0]
            cells.append(cell.sum(axis=0))
            if fw_frac is None:
                rel = (pos[:, ~mob] - shift).sum(axis=0)
                fw_sum = rel if fw_sum is None else fw_sum + rel
                fw_n += pos.shape[0]
                cell_sum += cell.sum(axis=0)
        if fw_frac is None and fw_n:
            fw_frac = (fw_sum / fw_n) @ np.linalg.inv(cell_sum / fw_n)
            fw_sym = sym[~mob]
    if frames == 0:
        raise IonflowError("no frames in the MD dumps: " + ", ".join(map(str, paths)))
    return {"hist": hist, "frames": frames, "n_mobile": n_mob, "cell": np.sum(cells, axis=0) / frames,
            "framework_frac": fw_frac, "framework_symbols": fw_sym}


def _md_runs(ctx: Context) -> dict:
    """{structure: {T: [(dump, ok, why)]}} of results/md/S/M/TK/seed*/dump.lammpstrj."""
    out: dict = {}
    for d in sorted(ctx.path("md").glob("*/*/*K/seed*/dump.lammpstrj")):
        T = _temperature_of(d.parent.parent.name)
        if T is None:
            continue
        st_path = d.parent / "status.json"
        ok, why = True, None
        if st_path.is_file():
            st = read_json(st_path, obj=True)
            if str(st.get("status")).lower() != "ok":
                ok, why = False, st.get("reason") or "status.json says failed"
        out.setdefault(d.parent.parent.parent.parent.name, {}).setdefault(T, []).append((d, ok, why))
    return out


def prepare_density(ctx: Context, mobile: str) -> None:
    runs = _md_runs(ctx)
    if not runs:
        ctx.skip("Li density", f"no {ctx.path('md')}/*/*/*K/seed*/dump.lammpstrj (md not run)")
        return
    for s, by_T in sorted(runs.items()):
        Ts = sorted(by_T)
        if ctx.density_temperatures:
            Ts = [T for T in Ts if any(math.isclose(T, t) for t in ctx.density_temperatures)]
        data, inputs, notes = {}, [], []
        for T in Ts:
            good = [d for d, ok, _ in by_T[T] if ok]
            for d, ok, why in by_T[T]:
                if not ok:
                    notes.append(f"{d}: excluded ({why})")
            if good:
                data[T] = density_histograms(good, mobile, ctx.density_bins, ctx.density_stride)
                inputs += good
        for n in notes:
            ctx.skip(f"density {s}", n)
        if not data:
            inputs = [d for T in Ts for d, _, _ in by_T[T]]
            why = "no usable MD run (all failed)" if Ts else "none of the requested temperatures"

        def draw(plt, s=s, data=data, why=None if data else why):
            from matplotlib.colors import LogNorm

            if not data:
                fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, 1.5))
                _no_data(ax, f"{s}: {why}")
                return fig
            rows = sorted(data)
            fig, axes = plt.subplots(len(rows), 3, figsize=(DOUBLE_COLUMN_IN, 2.3 * len(rows)), squeeze=False,
                                     constrained_layout=True)
            m = None
            for r, T in enumerate(rows):
                dd = data[T]
                for h, (p, q) in enumerate(PLANES):
                    ax = axes[r][h]
                    img = dd["hist"][h] / dd["hist"][h].max()
                    img = np.where(img > 0, img, np.nan)
                    cmap = plt.get_cmap("magma").with_extremes(bad="black")
                    m, a2, b2 = _draw_plane(ax, img, dd["cell"], p, q, norm=LogNorm(vmin=1e-3, vmax=1.0), cmap=cmap)
                    if dd["framework_frac"] is not None:
                        _overlay_atoms(ax, dd["framework_frac"], dd["framework_symbols"], p, q, a2, b2)
                    ax.set_title(f"{T:g} K ({dd['frames']} frames), {AXES[p]}{AXES[q]} plane" if h == 0 else
                                 f"{T:g} K, {AXES[p]}{AXES[q]} plane", fontsize=ctx.style.font_size)
                    if r == 0 and h == 0 and ax.get_legend_handles_labels()[0]:
                        leg = ax.legend(loc="upper right", fontsize=ctx.style.font_size - 2, labelcolor="white",
                                        handletextpad=0.2, borderaxespad=0.2)
                        for hnd in leg.legend_handles:
                            hnd.set_edgecolor("white")
            fig.colorbar(m, ax=axes, label=f"projected {mobile} density / maximum",
                         shrink=min(0.8, 0.45 * len(rows)), aspect=25)
            return fig

        ctx.add(Job(f"li_density_{s}", draw, inputs,
                    f"{s}: {mobile} density (superposition of all frames of all seeds and models at each "
                    "temperature): positions relative to the framework reference (its drift removed), wrapped "
                    "into the cell and projected on the ab, ac and bc lattice planes; log colour scale, "
                    "normalized to the maximum. White markers: time-averaged framework cations."))


# ----------------------------------------------------------------------------------------------
# 5. screening

def _descriptors(ctx: Context) -> dict:
    from .screening.rank import load_descriptors

    return {p.parent.name: load_descriptors(p) for p in sorted(ctx.path("screening").glob("*/descriptors.json"))}


def _ranking_rows(ctx: Context, descs: dict) -> tuple[list[dict], list]:
    rp = ctx.path("screening/ranking.csv")
    if rp.is_file():
        with open(rp, newline="") as fh:
            rows = list(csv.DictReader(fh))
        for k in ("structure", "xi", "mpe_eV"):
            if rows and k not in rows[0]:
                raise InputError(rp, "missing column", field=k)
        out = [{"structure": r["structure"], "xi": float(r["xi"]),
                "mpe_eV": float(r["mpe_eV"]) if r["mpe_eV"] not in ("", None) else None} for r in rows]
        return out, [rp]
    from .screening.rank import rank_rows

    return rank_rows(list(descs.values())), [d["_path"] for d in descs.values()]


def prepare_screening(ctx: Context, arr: dict) -> None:
    descs = _descriptors(ctx)
    has_rank = ctx.path("screening/ranking.csv").is_file()
    if not descs and not has_rank:
        ctx.skip("screening", f"no {ctx.path('screening')}/*/descriptors.json (screening not run)")
        return
    rows, inputs = _ranking_rows(ctx, descs)

    def draw_rank(plt):
        n = len(rows)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 0.25 * n + 1.0), sharey=True,
                                     constrained_layout=True)
        names = [r["structure"] for r in rows][::-1]
        y = np.arange(n)
        a1.barh(y, [r["xi"] for r in rows][::-1], color=color(4), height=0.6)
        a1.set_yticks(y, names)
        a1.set_xlim(0, 1)
        a1.set_xlabel(r"$\Xi$ (higher: more likely superionic)")
        mpe = [r["mpe_eV"] for r in rows][::-1]
        a2.barh(y, [m if m is not None else 0.0 for m in mpe], color=color(1), height=0.6)
        for k, m in enumerate(mpe):
            if m is None:
                a2.text(0.0, k, " no percolation", va="center", fontsize=ctx.style.font_size - 1)
        a2.set_xlabel("minimum percolation energy (eV)")
        return fig

    ctx.add(Job("screening_ranking", draw_rank, inputs,
                "PES screening: structures ranked by Ξ (descending), then by the minimum percolation energy "
                "MPE (ascending), from frozen-framework single-ion scans."))

    from ase.io.cube import read_cube_data

    for s in sorted(descs):
        cp = ctx.path(f"screening/{s}/level.cube")
        if not cp.is_file():
            ctx.skip(f"level map {s}", f"{cp} not found")
            continue
        try:
            with open(cp) as fh:
                level, atoms = read_cube_data(fh)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a user error
            raise InputError(cp, f"not a readable CUBE file ({exc})".splitlines()[0]) from None
        d = descs[s]

        def draw_level(plt, s=s, level=level, atoms=atoms, d=d):
            fig, axes = plt.subplots(1, 3, figsize=(DOUBLE_COLUMN_IN, 2.4), constrained_layout=True)
            cmap = plt.get_cmap("viridis").with_extremes(over="0.85", bad="0.6")
            cell = np.asarray(atoms.cell)
            m = None
            for h, (p, q) in enumerate(PLANES):
                img = np.min(level, axis=3 - p - q)
                m, a2, b2 = _draw_plane(axes[h], img, cell, p, q, centred=True, cmap=cmap, vmin=0.0,
                                        vmax=ctx.level_cap_eV)
                axes[h].set_title(f"min over {AXES[3 - p - q]}", fontsize=ctx.style.font_size)
            fig.colorbar(m, ax=axes, extend="max", shrink=0.85, label="level above the site (eV)")
            mpe = d.get("mpe_eV")
            fig.suptitle(f"{s}: MPE {'none' if mpe is None else f'{mpe:.2f} eV'}, Ξ = {d['xi']:.3f}",
                         fontsize=ctx.style.font_size)
            return fig

        ctx.add(Job(f"level_map_{s}", draw_level, [cp, d["_path"]],
                    f"{s}: level map of the frozen-framework single-ion scan (minimax energy of the best path "
                    "from the site, eV), minimum along each lattice direction, so channels along any axis show; "
                    f"light grey: above {ctx.level_cap_eV:g} eV, excluded or unreachable."))

    common = sorted(set(descs) & set(arr))
    if not common:
        ctx.skip("Xi vs MD", "no structure has both screening descriptors and an Arrhenius result")
        return
    pts = []
    for s in common:
        p, groups = arr[s]
        g = groups.get("ensemble") or groups[_model_order(groups)[0]]
        pts.append((s, descs[s], g, p))

    def draw_vs(plt):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.6), constrained_layout=True)
        for kind, mk, col in (("tracer", "o", color(0)), ("full", "s", color(4))):
            for i, (s, d, g, _) in enumerate(pts):
                at = g[kind].get("sigma_300K_S_cm")
                if at and at.get("mean"):
                    lo, hi = at.get("ci95") or (at["mean"], at["mean"])
                    a1.errorbar([at["mean"]], [d["xi"]], xerr=[[at["mean"] - lo], [hi - at["mean"]]], fmt=mk,
                                color=col, mfc="white" if kind == "tracer" else col,
                                label=f"σ {kind}" if i == 0 else None)
                    if kind == "full":
                        a1.annotate(s, (at["mean"], d["xi"]), xytext=(3, 3), textcoords="offset points")
                ea, se = _mean_sem(g[kind].get("Ea_eV"))
                if math.isfinite(ea) and d.get("mpe_eV") is not None:
                    a2.errorbar([ea], [d["mpe_eV"]], xerr=[se if math.isfinite(se) else 0.0], fmt=mk, color=col,
                                mfc="white" if kind == "tracer" else col, label=f"$E_a$ {kind}" if i == 0 else None)
                    if kind == "full":
                        a2.annotate(s, (ea, d["mpe_eV"]), xytext=(3, 3), textcoords="offset points")
        a1.set_xscale("log")
        a1.set_xlabel(r"MD $\sigma$(300 K) (S cm$^{-1}$)")
        a1.set_ylabel(r"$\Xi$")
        a2.set_xlabel(r"MD $E_a$ (eV)")
        a2.set_ylabel("MPE (eV)")
        for a in (a1, a2):
            if a.get_legend_handles_labels()[0]:
                a.legend(loc="best")
        return fig

    ctx.add(Job("xi_vs_md", draw_vs, [q for _, d, _, p in pts for q in (d["_path"], p)],
                "PES descriptors against the MLIP-MD result of the same structures: Ξ vs the extrapolated "
                "σ(300 K) (95 % CI) and MPE vs the activation energy (SEM), tracer (open) and full (filled)."))


# ----------------------------------------------------------------------------------------------
# driver

def collect(ctx: Context, study: str = "") -> None:
    """Read every input and queue the outputs (raises InputError before anything is written)."""
    cond = load_conductivity(ctx)
    arr = load_arrhenius(ctx)
    mobile = ctx.mobile
    if mobile is None:
        sp = [res for models in cond.values() for by_T in models.values() for _, res in by_T.values()]
        mobile = (sp[0].get("species") or ["Li"])[0] if sp else "Li"
    prepare_dataset(ctx)
    prepare_training(ctx)
    prepare_learning_curve(ctx)
    prepare_validation(ctx)
    if cond:
        prepare_transport(ctx, cond)
        prepare_haven(ctx, cond)
    else:
        ctx.skip("conductivity figures", f"no {ctx.path('conductivity')}/*/*/*K.json (analysis not run)")
    if arr:
        prepare_arrhenius(ctx, arr)
    else:
        ctx.skip("Arrhenius figures", f"no {ctx.path('arrhenius')}/*.json (arrhenius not run)")
    prepare_tables(ctx, cond, arr, study)
    prepare_density(ctx, mobile)
    prepare_screening(ctx, arr)


def write_all(ctx: Context) -> list[dict]:
    """Draw and write every queued output (atomic per file); the records for the manifest."""
    from .figstyle import pyplot
    from .io.atomic import save_figure, write_text

    plt = pyplot(ctx.style)
    records = []
    for job in ctx.jobs:
        files = []
        if job.kind == "figure":
            fig = job.draw(plt)
            try:
                for fmt in ctx.style.formats:
                    path = ctx.out / f"{job.name}.{fmt}"
                    kw = {"dpi": ctx.style.dpi} if fmt in RASTER else {}
                    if fmt == "pdf":
                        kw["metadata"] = {"CreationDate": None, "ModDate": None}
                    save_figure(fig, path, **kw)
                    files.append(path.name)
                    fig.set_layout_engine("none")   # the layout is fixed: later formats skip it
            finally:
                plt.close(fig)
        else:
            path = ctx.out / f"{job.name}{job.suffix}"
            write_text(path, job.draw())
            files.append(path.name)
        records.append({"name": job.name, "kind": job.kind, "files": files, "caption": job.caption,
                        "inputs": sorted({str(p) for p in job.inputs})})
    return records


def make_figures(results_dir, out_dir, *, style: Style | None = None, mobile: str | None = None,
                 density_bins: int = 80, density_stride: int = 1, density_temperatures=(),
                 level_cap_eV: float = 1.5, study: str = "") -> dict:
    """Library entry point: every figure and table for what exists under ``results_dir``."""
    from .io.atomic import write_json
    from .provenance import provenance

    results = Path(results_dir)
    if not results.is_dir():
        raise InputError(results, "results directory not found")
    ctx = Context(results=results, out=Path(out_dir), style=style or Style(), mobile=mobile,
                  density_bins=int(density_bins), density_stride=int(density_stride),
                  density_temperatures=tuple(float(t) for t in density_temperatures or ()),
                  level_cap_eV=float(level_cap_eV))
    collect(ctx, study)
    ctx.out.mkdir(parents=True, exist_ok=True)
    records = write_all(ctx)
    manifest = {
        "schema": SCHEMA,
        "results_dir": str(results),
        "study": study or None,
        "outputs": records,
        "skipped": ctx.skipped,
        "style": {"formats": list(ctx.style.formats), "dpi": ctx.style.dpi, "font_size_pt": ctx.style.font_size},
        "provenance": provenance(
            stage="figures", inputs=sorted(ctx.inputs),
            options={"formats": list(ctx.style.formats), "dpi": ctx.style.dpi, "font_size": ctx.style.font_size,
                     "mobile": ctx.mobile, "density_bins": ctx.density_bins, "density_stride": ctx.density_stride,
                     "density_temperatures": list(ctx.density_temperatures), "level_cap_eV": ctx.level_cap_eV}),
    }
    write_json(ctx.out / MANIFEST, manifest)
    return manifest


# ----------------------------------------------------------------------------------------------
# CLI

def _formats(text: str) -> tuple[str, ...]:
    out = tuple(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    bad = [f for f in out if f not in ("pdf", "png", "svg", "eps", "jpg", "tif")]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"formats must be a comma list of pdf, png, svg, eps, jpg, tif: {text!r}")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", metavar="RESULTS_DIR", help="the results directory of a run (e.g. results)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory for figures, tables and figures.json (e.g. results/figures/paper)")
    p.add_argument("--formats", type=_formats, default=("pdf", "png"), help="figure formats (comma list)")
    p.add_argument("--dpi", type=int, default=300, help="resolution of raster formats")
    p.add_argument("--font-size", type=float, default=8.0, help="base font size in pt")
    p.add_argument("--mobile", default=None,
                   help="mobile species of the density plot (default: from the conductivity results, else Li)")
    p.add_argument("--density-bins", type=int, default=80, help="histogram bins per cell edge (density plot)")
    p.add_argument("--density-stride", type=int, default=1, help="use every n-th MD frame (density plot)")
    p.add_argument("--density-temperatures", type=float, nargs="*", default=[],
                   help="temperatures (K) of the density plot rows (default: every MD temperature)")
    p.add_argument("--level-cap-eV", type=float, default=1.5, help="top of the level-map colour scale (eV)")
    p.add_argument("--study", default="", help="study name (table captions, manifest)")


def run(args: argparse.Namespace) -> int:
    if args.dpi < 10:
        raise InputError("command line", "must be >= 10", field="--dpi")
    if args.density_bins < 4 or args.density_stride < 1:
        raise InputError("command line", "need --density-bins >= 4 and --density-stride >= 1", field="--density-bins")
    if not args.level_cap_eV > 0 or not args.font_size > 0:
        raise InputError("command line", "must be positive", field="--level-cap-eV/--font-size")
    man = make_figures(args.results, args.output, style=Style(font_size=args.font_size, dpi=args.dpi,
                                                              formats=tuple(args.formats)),
                       mobile=args.mobile, density_bins=args.density_bins, density_stride=args.density_stride,
                       density_temperatures=args.density_temperatures, level_cap_eV=args.level_cap_eV,
                       study=args.study)
    n_files = sum(len(r["files"]) for r in man["outputs"])
    print(f"ionflow figures: {len(man['outputs'])} outputs ({n_files} files) -> {args.output}")
    for s in man["skipped"]:
        print(f"ionflow figures: skipped {s['part']}: {s['reason']}")
    return 0
