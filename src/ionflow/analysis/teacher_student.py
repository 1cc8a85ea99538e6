"""``ionflow teacher-student``: the universal potential's conductivity (teacher: SevenNet-0, whose
surrogate labels the ensemble was trained on) against the Allegro ensemble's (student), same
structure, same temperature, same MD protocol.

Inputs: the teacher's ``ionflow conductivity`` result (its seeds) and the ensemble's ``ionflow
combine`` result. For sigma_tracer and sigma_full the student/teacher ratio r = s / t is reported
with its uncertainty propagated in log space (independent runs, delta method):

    ln r = ln s - ln t,    sem(ln r) = sqrt((sem_s / s)^2 + (sem_t / t)^2),
    ratio_sem = r * sem(ln r),    1-sigma interval r * exp(-+ sem(ln r)).

Verdict per quantity: ``within_factor`` = |ln r| <= ln f (f = --within-factor, default 2; the goal of
issue #8), and ``z_beyond_factor`` = (|ln r| - ln f) / sem(ln r): the verdict holds at 2 sigma
(``conclusive``) when |z| >= 2. A non-positive mean (a noisy short run) leaves the ratio undefined
(verdict None, with the reason). A failed input (every run blew up) gives a result with status
"failed" that names it.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import InputError

#: the compared quantities: result key -> label
QUANTITIES = {"sigma_tracer_S_cm": "tracer", "sigma_full_S_cm": "full"}
SCHEMA = "ionflow.teacher_student/1"
DEFAULT_WITHIN_FACTOR = 2.0


# ----------------------------------------------------------------------------------------------
# reading


def _number(value, path, field, *, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(path, "missing or not a number" if value is None else f"not a number ({value!r})", field)
    return float(value)


def load_side(path, role: str) -> dict:
    """One side's facts from a conductivity/combine result: T, structure, model, sigma mean/sem.

    Raises InputError naming the file and field for a missing file, malformed JSON or a missing field.
    """
    from ..io.jsonio import read_json
    from .conductivity import SCHEMA as COND_SCHEMA
    from .conductivity import is_failed

    path = Path(path)
    res = read_json(path, missing=f"{role} conductivity result not found")
    if not isinstance(res, dict):
        raise InputError(path, "expected a JSON object (an ionflow conductivity result)")
    if res.get("schema") != COND_SCHEMA:
        raise InputError(path, f"not an ionflow conductivity result (schema != {COND_SCHEMA})", "schema")
    side = {"path": str(path), "role": role, "model": res.get("model"), "structure": res.get("structure"),
            "temperature_K": _number(res.get("temperature_K"), path, "temperature_K"),
            "failed": is_failed(res), "reason": res.get("reason"),
            "converged": res.get("converged"), "not_converged_reason": res.get("not_converged_reason")}
    if side["failed"]:
        side.update({key: {"mean": None, "sem": None} for key in QUANTITIES})
        return side
    for key in QUANTITIES:
        q = res.get(key)
        if not isinstance(q, dict):
            raise InputError(path, "missing (expected {\"mean\": ..., \"sem\": ...})", key)
        mean = _number(q.get("mean"), path, f"{key}.mean")
        if "sem" not in q:
            raise InputError(path, "missing", f"{key}.sem")
        sem = _number(q.get("sem"), path, f"{key}.sem", allow_none=True)
        if sem is not None and not (sem >= 0 or math.isnan(sem)):
            raise InputError(path, f"must be >= 0 (got {sem:g})", f"{key}.sem")
        side[key] = {"mean": mean, "sem": sem}
    if "trajectories" in res:
        side["n_runs"] = len(res["trajectories"])
    if "models" in res:
        side["n_models"] = len(res["models"])
    return side


# ----------------------------------------------------------------------------------------------
# the comparison


def log_ratio(student: dict, teacher: dict) -> dict:
    """Ratio student/teacher of two {"mean", "sem"} estimates with log-space error propagation."""
    s, t = student["mean"], teacher["mean"]
    if s is None or t is None:
        return {"ratio": None, "ratio_sem": None, "log_ratio": None, "log_ratio_sem": None,
                "ratio_1sigma": None, "note": "a mean is missing (failed input): ratio undefined"}
    if not (s > 0 and t > 0):
        return {"ratio": s / t if t else None, "ratio_sem": None, "log_ratio": None, "log_ratio_sem": None,
                "ratio_1sigma": None, "note": "a mean is not positive (too short or too noisy a run): "
                                              "ratio undefined in log space"}
    r = s / t
    lr = math.log(r)
    rel = [x["sem"] / x["mean"] if x["sem"] is not None and math.isfinite(x["sem"]) else float("nan")
           for x in (student, teacher)]
    slr = math.sqrt(rel[0] ** 2 + rel[1] ** 2)
    ok = math.isfinite(slr)
    return {"ratio": r, "ratio_sem": r * slr if ok else None, "log_ratio": lr,
            "log_ratio_sem": slr if ok else None,
            "ratio_1sigma": [r * math.exp(-slr), r * math.exp(slr)] if ok else None,
            "note": None if ok else "a standard error is unknown: ratio without uncertainty"}


def verdict(ratio: dict, factor: float) -> dict:
    """within_factor (|ln r| <= ln f), z = (|ln r| - ln f) / sem(ln r) and whether |z| >= 2."""
    lr, slr = ratio["log_ratio"], ratio["log_ratio_sem"]
    if lr is None:
        return {"within_factor": None, "z_beyond_factor": None, "conclusive": False}
    excess = abs(lr) - math.log(factor)
    within = bool(excess <= 1e-12)
    z = excess / slr if slr else None
    return {"within_factor": within, "z_beyond_factor": z,
            "conclusive": bool(z is not None and abs(z) >= 2.0)}


def compare(teacher: dict, student: dict, *, within_factor: float = DEFAULT_WITHIN_FACTOR) -> dict:
    """The teacher-student result (without provenance) from two load_side() dicts."""
    if not within_factor > 1:
        raise InputError("command line", f"must be > 1 (got {within_factor:g})", "--within-factor")
    Tt, Ts = teacher["temperature_K"], student["temperature_K"]
    if abs(Tt - Ts) > 1e-6 * max(Tt, Ts):
        raise InputError(teacher["path"], f"{Tt:g} K differs from the student's {Ts:g} K ({student['path']})",
                         "temperature_K")
    if teacher["structure"] and student["structure"] and teacher["structure"] != student["structure"]:
        raise InputError(teacher["path"], f"{teacher['structure']!r} differs from the student's "
                                          f"{student['structure']!r} ({student['path']})", "structure")
    failed = [s for s in (teacher, student) if s["failed"]]
    quantities = {}
    for key, label in QUANTITIES.items():
        ratio = log_ratio(student[key], teacher[key])
        quantities[key] = {"label": label, "teacher": teacher[key], "student": student[key],
                           **ratio, **verdict(ratio, within_factor)}
    verdicts = [q["within_factor"] for q in quantities.values()]
    notes = []
    for s in (teacher, student):
        if s["failed"]:
            notes.append(f"{s['role']} result failed: {s['reason']}")
        elif s.get("converged") is False:
            notes.append(f"{s['role']} result not converged: {s.get('not_converged_reason') or 'see its JSON'}")
    return {
        "schema": SCHEMA,
        "status": "failed" if failed else "ok",
        "reason": "; ".join(f"{s['role']} ({s['path']}): {s['reason']}" for s in failed) or None,
        "structure": teacher["structure"] or student["structure"],
        "temperature_K": Tt,
        "within_factor": float(within_factor),
        "teacher": {k: v for k, v in teacher.items() if k not in QUANTITIES},
        "student": {k: v for k, v in student.items() if k not in QUANTITIES},
        "quantities": quantities,
        "all_within_factor": (all(verdicts) if all(v is not None for v in verdicts) else None),
        "notes": notes,
    }


def summary_line(res: dict) -> str:
    bits = []
    for q in res["quantities"].values():
        if q["ratio"] is None or q["log_ratio"] is None:
            bits.append(f"{q['label']}: ratio undefined")
            continue
        err = f" +- {q['ratio_sem']:.2g}" if q["ratio_sem"] is not None else ""
        v = "within" if q["within_factor"] else "OUTSIDE"
        sure = "" if q.get("conclusive") else ", not conclusive at 2 sigma"
        bits.append(f"{q['label']}: student/teacher = {q['ratio']:.3g}{err} ({v} factor {res['within_factor']:g}{sure})")
    return f"{res['structure']} {res['temperature_K']:g} K: " + "; ".join(bits)


# ----------------------------------------------------------------------------------------------
# figure


def plot(res: dict, path) -> None:
    """Left: sigma of teacher and student (log axis, 1-sigma bars); right: ratio with the factor band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..io.atomic import save_figure

    qs = list(res["quantities"].values())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.0, 3.2), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(qs))
    names = {"teacher": res["teacher"].get("model") or "teacher", "student": res["student"].get("model") or "ensemble"}
    for dx, side, marker, col in ((-0.12, "teacher", "s", "#D55E00"), (0.12, "student", "o", "#0072B2")):
        m = np.array([np.nan if q[side]["mean"] is None else q[side]["mean"] for q in qs], float)
        s = np.array([np.nan if q[side]["sem"] is None else q[side]["sem"] for q in qs], float)
        ok = m > 0
        lo = np.where(np.isfinite(s), np.minimum(s, 0.999 * m), 0.0)   # a log axis cannot go below 0
        hi = np.where(np.isfinite(s), s, 0.0)
        if ok.any():
            ax1.errorbar(x[ok] + dx, m[ok], yerr=[lo[ok], hi[ok]], fmt=marker, color=col, capsize=3,
                         label=f"{side}: {names[side]}")
    ax1.set_yscale("log")
    ax1.set_xticks(x, [f"$\\sigma_{{\\rm {q['label']}}}$" for q in qs])
    ax1.set_xlim(-0.6, len(qs) - 0.4)
    ax1.set_ylabel(r"$\sigma$ (S/cm)")
    ax1.set_title(f"{res['structure']}  {res['temperature_K']:g} K", fontsize=9)
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=7, loc="best")
    f = res["within_factor"]
    ax2.axhspan(1.0 / f, f, color="0.9", zorder=0, label=f"within factor {f:g}")
    ax2.axhline(1.0, color="0.5", lw=0.8)
    for i, q in enumerate(qs):
        if q["log_ratio"] is None:
            ax2.text(i, 1.0, "undefined", ha="center", va="bottom", fontsize=7)
            continue
        lo, hi = (q["ratio_1sigma"] or [q["ratio"], q["ratio"]])
        ax2.errorbar([i], [q["ratio"]], yerr=[[q["ratio"] - lo], [hi - q["ratio"]]], fmt="o", color="k",
                     capsize=3)
    ax2.set_yscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    lo_y, hi_y = ax2.get_ylim()
    ladder = {m * 10.0 ** e for e in range(-3, 3) for m in (1.0, 2.0, 5.0)} | {1.0 / f, f}
    ticks = sorted(v for v in ladder if lo_y <= v <= hi_y)
    ax2.yaxis.set_major_locator(FixedLocator(ticks))
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax2.yaxis.set_minor_formatter(NullFormatter())
    ax2.set_xticks(x, [q["label"] for q in qs])
    ax2.set_xlim(-0.6, len(qs) - 0.4)
    ax2.set_ylabel("student / teacher")
    if res["status"] == "failed":
        ax2.set_title("FAILED input (see JSON)", fontsize=9, color="#D55E00")
    else:
        ax2.set_title(r"ratio ($\pm 1\sigma$, log-space)", fontsize=9)
    ax2.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=150)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, type=Path,
                   help="the teacher's conductivity result (ionflow conductivity on the --calculator runs)")
    p.add_argument("--student", required=True, type=Path,
                   help="the ensemble's result at the same structure and T "
                        "(results/conductivity/{structure}/ensemble/{T}K.json)")
    p.add_argument("--within-factor", type=float, default=DEFAULT_WITHIN_FACTOR,
                   help="goal: student/teacher within this factor (both ways)")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG", help="sigma and ratio figure")
    p.add_argument("-o", "--output", required=True, type=Path, help="result JSON")


def run(args) -> int:
    from ..io.atomic import write_json
    from ..provenance import provenance

    teacher = load_side(args.teacher, "teacher")
    student = load_side(args.student, "student")
    res = compare(teacher, student, within_factor=args.within_factor)
    res["provenance"] = provenance(
        stage="teacher-student", inputs=[args.teacher, args.student],
        options={"within_factor": args.within_factor, "teacher": str(args.teacher), "student": str(args.student)})
    if args.plot:
        plot(res, args.plot)
    write_json(args.output, res)
    if res["status"] == "failed":
        print(f"warning: {res['reason']}")
    else:
        print(summary_line(res))
    for note in res["notes"]:
        print(f"note: {note}")
    return 0
