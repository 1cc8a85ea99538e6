"""``ionflow combine``: combine per-model conductivity results (one structure, one T, several
ensemble members) into an ensemble result.

The per-block values stored in every member's result are nested [model][seed][block] and averaged
with equal weight per model; the variance of the ensemble mean is split into within-run blocks,
between seeds and between models (``ionflow.analysis.uncertainty``), so a user sees whether more
seeds or more models would help. ``std_between_models`` is the model (epistemic) spread itself.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np

from ..errors import InputError, IonflowError
from ..io.jsonio import read_json
from .conductivity import QUANTITIES, SCHEMA


def load_result(path) -> dict:
    p = Path(path)
    res = read_json(p)
    if not isinstance(res, dict) or res.get("schema") != SCHEMA:
        raise InputError(p, f"not an ionflow conductivity result (schema != {SCHEMA})", field="schema")
    if str(res.get("status", "ok")).lower() == "failed":
        return res
    for key in ("temperature_K", "trajectories", *QUANTITIES):
        if key not in res:
            raise InputError(p, "missing key", field=key)
    return res


def _label_from_path(path: Path) -> tuple[str | None, str | None]:
    """results/conductivity/{structure}/{model}/{T}K.json -> (structure, model)."""
    if re.fullmatch(r"[0-9.]+K\.json", path.name) and len(path.parents) >= 2:
        return path.parent.parent.name, path.parent.name
    return None, None


def combine(results: list[dict], paths: list[str], *, model_label: str = "ensemble",
            structure: str | None = None) -> dict:
    from .uncertainty import nested_mean, ratio_nested, summary

    if not results:
        raise IonflowError("no results to combine")
    T = {float(r["temperature_K"]) for r in results}
    if max(T) - min(T) > 1e-6:
        raise InputError(paths[results.index(max(results, key=lambda r: r["temperature_K"]))],
                         f"temperatures differ between results: {sorted(T)}", field="temperature_K")
    ref = results[0]
    for r, p in zip(results, paths):
        for key in ("species", "polarization", "n_mobile"):
            if r.get(key) != ref.get(key):
                raise InputError(p, f"differs from {paths[0]} ({r.get(key)!r} vs {ref.get(key)!r})", field=key)
    structures = {r.get("structure") or _label_from_path(Path(p))[0] for r, p in zip(results, paths)}
    structures.discard(None)
    if structure is None and len(structures) == 1:
        structure = structures.pop()
    elif structure is None and len(structures) > 1:
        raise IonflowError(f"results are for different structures: {sorted(structures)}")

    names = []
    for r, p in zip(results, paths):
        names.append(r.get("model") or _label_from_path(Path(p))[1] or Path(p).stem)
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]

    keys = list(QUANTITIES)
    nested = {k: [[np.asarray(tr["blocks"][k], float) for tr in r["trajectories"]] for r in results]
              for k in keys}
    stats = {k: nested_mean(v) for k, v in nested.items()}
    haven = ratio_nested(nested["sigma_tracer_S_cm"], nested["sigma_full_S_cm"])

    models = []
    reasons = []
    for name, r, p in zip(names, results, paths):
        models.append({"model": name, "path": str(p), "converged": r.get("converged"),
                       "not_converged_reason": r.get("not_converged_reason"),
                       "excluded": r.get("excluded", []),
                       **{k: r[k] for k in (*QUANTITIES, "haven_ratio") if k in r},
                       "fit_window": r.get("fit_window"), "volume_A3": r.get("volume_A3"),
                       "n_runs": len(r["trajectories"])})
        if not r.get("converged", False):
            reasons.append(f"model {name}: {r.get('not_converged_reason') or 'not converged'}")
    fits = {(m["fit_window"] or {}).get("start_ps") for m in models} | set()
    fit_ends = {(m["fit_window"] or {}).get("end_ps") for m in models}
    if len(fits) > 1 or len(fit_ends) > 1:
        reasons.append("members used different fit windows")

    # curves: average when every member has the same lag grid
    curves = None
    lag = [tuple(r.get("curves", {}).get("lag_ps", [])) for r in results]
    if lag[0] and all(lg == lag[0] for lg in lag):
        curves = {"lag_ps": list(lag[0])}
        for key, val in results[0]["curves"].items():
            if key in ("lag_ps", "note") or not isinstance(val, list):
                continue
            arr = np.array([[np.nan if v is None else v for v in r["curves"][key]] for r in results], float)
            curves[key] = np.nanmean(arr, axis=0) if "sem" not in key else \
                np.sqrt(np.nansum(arr ** 2, axis=0)) / arr.shape[0]
        curves["note"] = "mean over models of the members' curves"

    diag_keys = ("beta_tracer", "beta_full", "msd_at_fit_end_A2", "hops_estimate", "framework_msd_A2")
    diagnostics = {
        "per_model": {n: {k: (r.get("diagnostics") or {}).get(k) for k in diag_keys} for n, r in zip(names, results)},
        "converged": not reasons, "reasons": reasons,
    }
    first_fw = ref.get("fit_window") or {}
    return {
        "schema": SCHEMA,
        "structure": structure,
        "model": model_label,
        "temperature_K": float(ref["temperature_K"]),
        "volume_A3": float(np.mean([r["volume_A3"] for r in results])),
        "n_mobile": ref["n_mobile"],
        "species": ref.get("species"),
        "charges": ref.get("charges"),
        "polarization": ref.get("polarization"),
        "framework_reference": ref.get("framework_reference"),
        "dt_fs": ref.get("dt_fs"),
        "blocks": ref.get("blocks"),
        "fit_window": first_fw,
        "fit_start_ps": first_fw.get("start_ps"), "fit_end_ps": first_fw.get("end_ps"),
        **{k: summary(stats[k]) for k in keys},
        "haven_ratio": summary(haven),
        "variance_components": {**{k: stats[k]["components"] for k in keys},
                                "haven_ratio": haven.get("components", {})},
        "converged": not reasons,
        "not_converged_reason": "; ".join(reasons) if reasons else None,
        "diagnostics": diagnostics,
        "models": models,
        "trajectories": [dict(tr, model=n) for n, r in zip(names, results) for tr in r["trajectories"]],
        "excluded": [dict(e, model=n) for n, r in zip(names, results) for e in r.get("excluded", [])],
        "curves": curves,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULT",
                   help="conductivity result.json of each ensemble member (same structure and T)")
    p.add_argument("--structure", default=None, help="structure label (default: from the results)")
    p.add_argument("--model", default="ensemble", help="label of the combined result")
    p.add_argument("--plot-running", default=None, metavar="PNG", help="running sigma*T(tau) plot")
    p.add_argument("-o", "--output", required=True, help="ensemble result JSON")


def run(args) -> int:
    from ..io.atomic import write_json
    from ..provenance import provenance

    from .conductivity import failed_result, is_failed

    loaded = [(str(p), load_result(p)) for p in args.results]
    failed = [{"path": p, "model": r.get("model"), "reason": r.get("reason")} for p, r in loaded if is_failed(r)]
    ok = [(p, r) for p, r in loaded if not is_failed(r)]
    results = [r for _, r in ok]
    if not ok:
        first = loaded[0][1]
        out = failed_result("every model's result failed: " + "; ".join(f"{f['path']}: {f['reason']}" for f in failed),
                            failed, temperature=first["temperature_K"], species=first.get("species", []),
                            structure=args.structure or first.get("structure"), model=args.model,
                            polarization=first.get("polarization"))
        out["excluded_models"] = failed
        out["provenance"] = provenance(stage="combine", inputs=args.results,
                                       options={k: v for k, v in vars(args).items() if not k.startswith("_")})
        if args.plot_running:
            from . import plots

            plots.plot_failed(out, args.plot_running)
        write_json(args.output, out)
        print(f"warning: {out['reason']}")
        return 0
    out = combine(results, [p for p, _ in ok], model_label=args.model, structure=args.structure)
    out["excluded_models"] = failed
    out["provenance"] = provenance(stage="combine", inputs=args.results,
                                   options={k: v for k, v in vars(args).items() if not k.startswith("_")})
    if args.plot_running and out.get("curves"):
        from . import plots

        plots.plot_running(out, args.plot_running)
    write_json(args.output, out)
    comp = out["variance_components"]["sigma_full_S_cm"]
    fmt = (lambda v: "n/a" if v is None or not math.isfinite(v) else f"{v:.2g}")
    print(f"{len(results)} models at {out['temperature_K']:g} K: sigma_full = {out['sigma_full_S_cm']['mean']:.3g} "
          f"+- {fmt(out['sigma_full_S_cm']['sem'])} S/cm (blocks {fmt(comp.get('within_blocks'))}, "
          f"seeds {fmt(comp.get('between_seeds'))}, models {fmt(comp.get('between_models'))})")
    return 0
