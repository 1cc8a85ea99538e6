"""``ionflow arrhenius``: weighted Arrhenius fits of conductivity results over temperature.

Per (structure, model) group: ln(sigma T) = ln A - Ea / (kB T) for the tracer and the full
conductivity, and ln D_tr = ln D0 - Ea / (kB T). Weights are 1/var(ln y) from each point's nested
SEM (blocks, seeds, models); when the scatter exceeds the error bars (reduced chi^2 > 1) the
parameter covariance is scaled by it (Birge ratio, as the PDG does); without error bars the fit is
unweighted with residual-based errors and Student-t quantiles. sigma(300 K)
is extrapolated with a 95 % confidence interval from the full parameter covariance. Curvature
(non-Arrhenius behaviour, e.g. a phase transition) is flagged when a quadratic term in 1/T is
significant (>= 4 temperatures) or the straight line is rejected by chi^2 (p < 0.001).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ..errors import IonflowError
from . import K_B_EV

SCHEMA = "ionflow.arrhenius/1"
T_REF = 300.0


def wls_polyfit(x, y, sy, degree: int = 1) -> dict:
    """Weighted least squares y = sum_k c_k x^k. sy None/0 -> unweighted with residual-scaled errors."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    weighted = sy is not None and np.all(np.isfinite(sy)) and np.all(np.asarray(sy, float) > 0)
    w = 1.0 / np.asarray(sy, float) ** 2 if weighted else np.ones(n)
    X = np.vander(x, degree + 1, increasing=True)
    A = X.T @ (w[:, None] * X)
    cov = np.linalg.inv(A)
    c = cov @ (X.T @ (w * y))
    r = y - X @ c
    chi2 = float((w * r * r).sum())
    dof = n - (degree + 1)
    scale = 1.0
    if not weighted:
        scale = chi2 / dof if dof > 0 else float("nan")
    elif dof > 0 and chi2 / dof > 1.0:
        scale = chi2 / dof
    return {"coef": c, "cov": cov * scale, "chi2": chi2, "dof": dof, "weighted": bool(weighted),
            "scaled": bool(scale != 1.0), "student_t": not weighted}


def _quantile(fit) -> float:
    from scipy import stats

    if fit["student_t"] and fit["dof"] > 0:
        return float(stats.t.ppf(0.975, fit["dof"]))
    return float(stats.norm.ppf(0.975))


def arrhenius_fit(T, value, sem, *, times_T: bool = True, label: str = "") -> dict:
    """Fit ln(value*T) (or ln value) vs 1/T. Returns Ea ± sem (eV), prefactor, 300 K extrapolation."""
    from scipy import stats

    T = np.asarray(T, float)
    v = np.asarray(value, float)
    s = np.asarray([np.nan if x is None else x for x in sem], float)
    ok = np.isfinite(v) & (v > 0) & np.isfinite(T) & (T > 0)
    dropped = [{"temperature_K": float(t), "value": float(x), "why": "not positive"} for t, x in zip(T[~ok], v[~ok])]
    T, v, s = T[ok], v[ok], s[ok]
    out = {"n_points": int(len(T)), "temperatures_K": T.tolist(), "excluded_points": dropped}
    if len(np.unique(T)) < 2:
        out["error"] = f"need >= 2 temperatures with positive {label or 'values'}, have {len(np.unique(T))}"
        return out
    y = np.log(v * T) if times_T else np.log(v)
    sy = s / v
    x = 1.0 / T
    use_w = np.all(np.isfinite(sy)) and np.all(sy > 0)
    if not use_w and len(T) < 3:
        out["error"] = "no error bars and only 2 points: Ea uncertainty unknown"
    fit = wls_polyfit(x, y, sy if use_w else None, 1)
    (a, b), cov = fit["coef"], fit["cov"]
    Ea = -b * K_B_EV
    Ea_sem = K_B_EV * math.sqrt(cov[1, 1]) if np.isfinite(cov[1, 1]) else float("nan")
    a_sem = math.sqrt(cov[0, 0]) if np.isfinite(cov[0, 0]) else float("nan")
    xr = 1.0 / T_REF
    y300 = a + b * xr
    se300 = math.sqrt(max(cov[0, 0] + 2 * xr * cov[0, 1] + xr * xr * cov[1, 1], 0.0))
    q = _quantile(fit)
    div = T_REF if times_T else 1.0
    p_chi2 = float(stats.chi2.sf(fit["chi2"], fit["dof"])) if (fit["weighted"] and fit["dof"] > 0) else None
    curv = {"tested": False, "flag": False}
    if len(T) >= 4:
        xc = x - x.mean()
        f2 = wls_polyfit(xc, y, sy if use_w else None, 2)
        c2, se2 = f2["coef"][2], math.sqrt(f2["cov"][2, 2]) if np.isfinite(f2["cov"][2, 2]) else float("nan")
        signif = abs(c2) / se2 if se2 > 0 else float("inf")
        curv = {"tested": True, "quadratic_coef": float(c2), "quadratic_sem": se2,
                "significance_sigma": float(signif), "flag": bool(signif > 3.0)}
    if p_chi2 is not None:
        curv["linear_chi2_p"] = p_chi2
        curv["flag"] = bool(curv["flag"] or p_chi2 < 1e-3)
    name = "prefactor_S_K_cm" if times_T else "prefactor"
    out.update({
        "Ea_eV": {"mean": float(Ea), "sem": Ea_sem},
        name: {"mean": float(math.exp(a)), "sem": float(math.exp(a) * a_sem)},
        "ln_prefactor": {"mean": float(a), "sem": a_sem},
        "at_300K": {"mean": float(math.exp(y300) / div), "ci95": [float(math.exp(y300 - q * se300) / div),
                                                                  float(math.exp(y300 + q * se300) / div)],
                    "sem_ln": se300},
        "chi2": fit["chi2"], "dof": fit["dof"],
        "reduced_chi2": fit["chi2"] / fit["dof"] if fit["dof"] > 0 else None,
        "weighted": fit["weighted"], "covariance_scaled_by_reduced_chi2": fit["scaled"],
        "non_arrhenius": bool(curv["flag"]), "curvature": curv,
    })
    return out


def group_results(paths) -> dict:
    from .combine import _label_from_path, load_result

    groups: dict[tuple, list] = {}
    for p in paths:
        res = load_result(p)
        s_path, m_path = _label_from_path(Path(p))
        key = (res.get("structure") or s_path or "unknown", res.get("model") or m_path or "unknown")
        groups.setdefault(key, []).append((str(p), res))
    return groups


def fit_group(items, *, converged_only: bool = False) -> dict:
    failed = [{"path": p, "temperature_K": r.get("temperature_K"), "reason": r.get("reason")}
              for p, r in items if str(r.get("status", "ok")).lower() == "failed"]
    items = sorted((it for it in items if str(it[1].get("status", "ok")).lower() != "failed"),
                   key=lambda it: it[1]["temperature_K"])
    points = []
    for p, r in items:
        points.append({
            "path": p, "temperature_K": r["temperature_K"], "converged": r.get("converged"),
            "not_converged_reason": r.get("not_converged_reason"),
            **{k: r[k] for k in ("sigma_tracer_S_cm", "sigma_full_S_cm", "D_tracer_cm2_s", "D_sigma_cm2_s",
                                 "haven_ratio")},
        })
    use = [pt for pt in points if (pt["converged"] or not converged_only)]
    temps = [pt["temperature_K"] for pt in use]
    if len(set(temps)) != len(temps):
        raise IonflowError(f"two results at the same temperature in one group: "
                           f"{[pt['path'] for pt in use]}")
    col = (lambda key, f: [pt[key][f] for pt in use])
    tracer = arrhenius_fit(temps, col("sigma_tracer_S_cm", "mean"), col("sigma_tracer_S_cm", "sem"),
                           label="sigma_tracer")
    full = arrhenius_fit(temps, col("sigma_full_S_cm", "mean"), col("sigma_full_S_cm", "sem"), label="sigma_full")
    diff = arrhenius_fit(temps, col("D_tracer_cm2_s", "mean"), col("D_tracer_cm2_s", "sem"), times_T=False,
                         label="D_tracer")
    for f in (tracer, full):
        if "at_300K" in f:
            f["sigma_300K_S_cm"] = f.pop("at_300K")
    if "at_300K" in diff:
        diff["D_300K_cm2_s"] = diff.pop("at_300K")
    if "prefactor" in diff:
        diff["D0_cm2_s"] = diff.pop("prefactor")
    flags = []
    if tracer.get("non_arrhenius"):
        flags.append("tracer")
    if full.get("non_arrhenius"):
        flags.append("full")
    ea_diff = None
    if "Ea_eV" in tracer and "Ea_eV" in full:
        d = full["Ea_eV"]["mean"] - tracer["Ea_eV"]["mean"]
        s = math.hypot(tracer["Ea_eV"]["sem"], full["Ea_eV"]["sem"])
        ea_diff = {"mean": d, "sem": s}
    return {
        "temperatures_K": temps,
        "points": points,
        "used_points": [pt["path"] for pt in use],
        "failed_points": failed,
        "tracer": tracer, "full": full, "diffusion": diff,
        "haven_ratio": [{"temperature_K": pt["temperature_K"], **pt["haven_ratio"]} for pt in points],
        "Ea_full_minus_tracer_eV": ea_diff,
        "non_arrhenius": bool(flags), "non_arrhenius_in": flags,
        "all_converged": all(bool(pt["converged"]) for pt in points),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULT",
                   help="conductivity (or ensemble) result.json files at several temperatures")
    p.add_argument("--converged-only", action="store_true", help="fit only results flagged converged")
    p.add_argument("--plot", default=None, metavar="PNG", help="Arrhenius plot (tracer and full, fits)")
    p.add_argument("-o", "--output", required=True, help="arrhenius JSON")


def run(args) -> int:
    from ..io.atomic import write_json
    from ..provenance import provenance

    groups = group_results(args.results)
    out_groups = []
    for (structure, model), items in sorted(groups.items()):
        g = fit_group(items, converged_only=args.converged_only)
        out_groups.append({"structure": structure, "model": model, **g})
    out = {"schema": SCHEMA, "groups": out_groups,
           "provenance": provenance(stage="arrhenius", inputs=args.results,
                                    options={k: v for k, v in vars(args).items() if not k.startswith("_")})}
    if args.plot:
        from . import plots

        plots.plot_arrhenius(out, args.plot)
    write_json(args.output, out)
    for g in out_groups:
        parts = []
        for kind in ("tracer", "full"):
            f = g[kind]
            parts.append(f"{kind}: " + (f"Ea = {f['Ea_eV']['mean']:.3f} +- {f['Ea_eV']['sem']:.3f} eV, "
                                        f"sigma(300 K) = {f['sigma_300K_S_cm']['mean']:.3g} S/cm"
                                        if "Ea_eV" in f else f.get("error", "no fit")))
        print(f"{g['structure']}/{g['model']}: " + "; ".join(parts)
              + ("  [non-Arrhenius]" if g["non_arrhenius"] else ""))
    return 0
