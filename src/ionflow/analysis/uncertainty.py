"""Hierarchical (nested) means: blocks within runs, runs (velocity seeds) within models, models.

MD is chaotic, so a single run is one sample. Values y[k][r][b] (model k, run r, block b) are
averaged with equal weight per block within a run, per run within a model and per model. The
variance of the grand mean is split into the three components a user can act on:

    within_blocks  = s_w^2 / (M R K)             (longer runs / more blocks would shrink it)
    between_seeds  = max(0, s_r^2 - s_w^2/M) / (R K)   (more seeds)
    between_models = max(0, s_k^2 - s_r^2/R) / K       (more models)

with s_w^2 the pooled within-run variance of block values, s_r^2 the pooled within-model variance
of run means, s_k^2 the variance of model means, M and R harmonic means of blocks per run and
runs per model (one-way random-effects ANOVA, method of moments). When a level has a single unit
everywhere (one block, one seed, one model) its component cannot be separated; it is reported as
None and its variance stays inside the next level up. ``sem`` is the square root of the sum of
the components, which for a balanced design equals the conservative max of the usual estimators.
"""

from __future__ import annotations

import math

import numpy as np


def _hmean(xs) -> float:
    xs = np.asarray(xs, dtype=float)
    return float(len(xs) / np.sum(1.0 / xs))


def nested_mean(values) -> dict:
    """Grand mean, SEM and variance components of nested values [model][run][block]."""
    runs = [[np.asarray(r, dtype=float) for r in model] for model in values]
    runs = [[r[np.isfinite(r)] for r in model] for model in runs]
    runs = [[r for r in model if r.size] for model in runs]
    runs = [m for m in runs if m]
    if not runs:
        return {"mean": float("nan"), "sem": float("nan"), "components": {}}
    K = len(runs)
    run_means = [np.array([r.mean() for r in m]) for m in runs]
    model_means = np.array([rm.mean() for rm in run_means])
    mean = float(model_means.mean())

    blocks_per_run = [r.size for m in runs for r in m]
    runs_per_model = [len(m) for m in runs]
    Mh = _hmean(blocks_per_run)
    Rh = _hmean(runs_per_model)

    dof_w = sum(n - 1 for n in blocks_per_run)
    s_w2 = (sum(float(((r - r.mean()) ** 2).sum()) for m in runs for r in m) / dof_w) if dof_w > 0 else None
    dof_r = sum(n - 1 for n in runs_per_model)
    s_r2 = (sum(float(((rm - rm.mean()) ** 2).sum()) for rm in run_means) / dof_r) if dof_r > 0 else None
    s_k2 = float(model_means.var(ddof=1)) if K > 1 else None

    v_w = s_w2 / Mh if s_w2 is not None else None                 # variance of one run mean from blocks
    if s_r2 is not None:
        var_s = max(0.0, s_r2 - v_w) if v_w is not None else s_r2  # seed component (+ blocks if unknown)
        v_run = s_r2 if v_w is None else max(s_r2, v_w)            # variance of one run mean
    else:
        var_s = None
        v_run = v_w
    v_model = v_run / Rh if v_run is not None else None            # variance of one model mean
    if s_k2 is not None:
        var_m = max(0.0, s_k2 - v_model) if v_model is not None else s_k2
    else:
        var_m = None

    comp_w = v_w / (Rh * K) if v_w is not None else None
    comp_s = var_s / (Rh * K) if var_s is not None else None
    comp_m = var_m / K if var_m is not None else None
    parts = [c for c in (comp_w, comp_s, comp_m) if c is not None]
    sem = math.sqrt(sum(parts)) if parts else float("nan")
    sq = (lambda v: math.sqrt(v) if v is not None else None)
    return {
        "mean": mean,
        "sem": sem,
        "components": {
            "within_blocks": sq(comp_w),
            "between_seeds": sq(comp_s),
            "between_models": sq(comp_m),
            "std_blocks": sq(s_w2),
            "std_between_seeds": sq(var_s),
            "std_between_models": sq(var_m),
            "n_models": K,
            "n_runs": int(sum(runs_per_model)),
            "n_blocks": int(sum(blocks_per_run)),
            "dof": int(dof_w + dof_r + (K - 1)),
        },
    }


def ratio_nested(num, den) -> dict:
    """Ratio of two nested means (e.g. Haven ratio = sigma_tracer / sigma_full) with its SEM.

    Delta method on the linearised per-block values z = (num - H den) / mean(den), which keeps the
    block-by-block correlation between numerator and denominator. Same nesting as ``nested_mean``.
    """
    a, b = nested_mean(num), nested_mean(den)
    if not (np.isfinite(a["mean"]) and np.isfinite(b["mean"])) or b["mean"] <= 0:
        return {"mean": float("nan"), "sem": float("nan"), "components": {},
                "note": "denominator mean not positive: ratio undefined"}
    H = a["mean"] / b["mean"]
    z = [[(np.asarray(rn, float) - H * np.asarray(rd, float)) / b["mean"] for rn, rd in zip(mn, md)]
         for mn, md in zip(num, den)]
    zz = nested_mean(z)
    return {"mean": H, "sem": zz["sem"], "components": zz["components"]}


def summary(stat: dict) -> dict:
    """The {"mean", "sem"} pair of a nested statistic."""
    return {"mean": stat["mean"], "sem": stat["sem"]}
