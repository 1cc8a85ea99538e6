"""Stage ``ionflow metrics-table``: the ensemble's training metrics table and ensemble.json.

    ionflow metrics-table results/models/*/manifest.json --csv T.csv --markdown T.md --ensemble E.json
    ionflow metrics-table results/models/learning_curve/*/manifest.json --learning-curve LC.png --learning-curve-json LC.json

The table has one row per member (preset, seed, training subset, parameters, training frames,
epochs, test E/F/S MAE and RMSE, weighted score WS), like the seed study's "Allegro Training
Metrics" table, plus the ensemble mean ± standard deviation. ``ensemble.json`` lists the members
and their manifests (the input of the MD and validation stages). A learning curve plots test MAE
against the number of training frames (log-log) for members trained on nested fractions.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from .errors import InputError
from .io.jsonio import read_json

COLUMNS = [  # (key in the row, CSV header, Markdown header, format)
    ("member", "member", "Model", "{}"),
    ("preset", "preset", "Preset", "{}"),
    ("seed", "seed", "Seed", "{}"),
    ("subset", "subset", "Trained on", "{}"),
    ("n_params", "n_params", "Parameters", "{:d}"),
    ("n_train", "n_train_frames", "Train frames", "{:d}"),
    ("epochs", "epochs", "Epochs", "{:d}"),
    ("n_test", "n_test_frames", "Test frames", "{:d}"),
    ("E_MAE_meV", "E_MAE_meV_per_atom", "E MAE (meV/atom)", "{:.2f}"),
    ("E_RMSE_meV", "E_RMSE_meV_per_atom", "E RMSE (meV/atom)", "{:.2f}"),
    ("F_MAE", "F_MAE_eV_per_A", "F MAE (eV/Å)", "{:.4f}"),
    ("F_RMSE", "F_RMSE_eV_per_A", "F RMSE (eV/Å)", "{:.4f}"),
    ("S_MAE", "S_MAE_eV_per_A3", "S MAE (eV/Å³)", "{:.5f}"),
    ("S_RMSE", "S_RMSE_eV_per_A3", "S RMSE (eV/Å³)", "{:.5f}"),
    ("WS", "WS", "WS", "{:.4f}"),
]
NUMERIC = ("E_MAE_meV", "E_RMSE_meV", "F_MAE", "F_RMSE", "S_MAE", "S_RMSE", "WS")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifests", nargs="+", type=Path, help="member manifest.json files (results/models/*/manifest.json)")
    p.add_argument("--csv", type=Path, help="metrics table as CSV")
    p.add_argument("--markdown", type=Path, help="metrics table as Markdown")
    p.add_argument("--ensemble", type=Path, help="write ensemble.json listing these members")
    p.add_argument("--learning-curve", type=Path, help="log-log plot of test MAE vs training frames (PNG)")
    p.add_argument("--learning-curve-json", type=Path, help="learning-curve data (JSON)")


def load_member(manifest: Path) -> tuple[dict, dict]:
    """(manifest, metrics) of one member, with a clear error for a missing or malformed file."""
    man = read_json(manifest, "manifest not found", obj=True)
    for key in ("member", "metrics", "package", "compiled"):
        if key not in man:
            raise InputError(manifest, "not a member manifest (run 'ionflow train')", field=key)
    mpath = Path(manifest).parent / man["metrics"]
    met = read_json(mpath, "metrics file named by the manifest not found", obj=True)
    return man, met


def row(man: dict, met: dict) -> dict:
    t = met["test"]
    return {
        "member": man["member"], "preset": man["preset"], "seed": man["seed"],
        "subset": "+".join(man["subset"]), "n_params": int(met["n_params"]),
        "n_train": int(met["frames"]["frames"]["train"]), "epochs": int(met["history"]["epochs_trained"]),
        "n_test": int(t["n_frames"]),
        "E_MAE_meV": t["E_MAE_meV_per_atom"], "E_RMSE_meV": t["E_RMSE_meV_per_atom"],
        "F_MAE": t["F_MAE"], "F_RMSE": t["F_RMSE"], "S_MAE": t["S_MAE"], "S_RMSE": t["S_RMSE"], "WS": t["WS"],
    }


def _fmt(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return fmt.format(v)


def summary_row(rows: list[dict]) -> dict:
    out = {"member": "mean ± sd", "preset": "", "seed": "", "subset": "", "n_params": None, "n_train": None,
           "epochs": None, "n_test": None}
    for k in NUMERIC:
        vals = np.array([r[k] for r in rows if r[k] is not None], float)
        out[k] = (float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0) if vals.size else None
    return out


def to_csv(rows: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c[1] for c in COLUMNS])
    for r in rows:
        w.writerow(["" if r[c[0]] is None else (f"{r[c[0]]:.10g}" if isinstance(r[c[0]], float) else r[c[0]])
                    for c in COLUMNS])
    return buf.getvalue()


def to_markdown(rows: list[dict], labels: list[str], weights: dict | None) -> str:
    lines = ["| " + " | ".join(c[2] for c in COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[c[0]], c[3]) for c in COLUMNS) + " |")
    if len(rows) > 1:
        s = summary_row(rows)
        cells = []
        for c in COLUMNS:
            v = s[c[0]]
            if isinstance(v, tuple):
                cells.append(f"{_fmt(v[0], c[3])} ± {_fmt(v[1], c[3])}")
            else:
                cells.append("" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    lam = (f"λE = {weights['energy']:g} atom/eV, λF = {weights['forces']:g} Å/eV, λS = {weights['stress']:g} Å³/eV"
           if weights else "")
    note = [
        "",
        "Allegro training metrics on each member's held-out test split (structures it was trained on).",
        f"WS = λE·E_MAE + λF·F_MAE + λS·S_MAE with E_MAE in eV/atom, F_MAE in eV/Å, S_MAE in eV/Å³ ({lam}).",
        f"Reference labels: {', '.join(labels)}"
        + ("" if labels == ["dft"] else " (surrogate labels, not DFT)") + ".",
    ]
    return "\n".join(lines + note) + "\n"


def learning_curve(entries: list[tuple[dict, dict]]) -> dict:
    pts = sorted(({"member": man["member"], "train_fraction": man.get("train_fraction"),
                   "n_train": int(met["frames"]["frames"]["train"]),
                   "E_MAE_meV_per_atom": met["test"]["E_MAE_meV_per_atom"], "F_MAE": met["test"]["F_MAE"],
                   "S_MAE": met["test"]["S_MAE"]} for man, met in entries), key=lambda d: d["n_train"])
    fits = {}
    n = np.array([p["n_train"] for p in pts], float)
    for k in ("E_MAE_meV_per_atom", "F_MAE", "S_MAE"):
        y = np.array([np.nan if p[k] is None else p[k] for p in pts], float)
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() >= 2 and np.unique(n[ok]).size >= 2:
            slope, icpt = np.polyfit(np.log(n[ok]), np.log(y[ok]), 1)
            fits[k] = {"loglog_slope": float(slope), "loglog_intercept": float(icpt)}
    return {"points": pts, "fits": fits,
            "units": {"E_MAE_meV_per_atom": "meV/atom", "F_MAE": "eV/Å", "S_MAE": "eV/Å³"}}


def plot_learning_curve(lc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io.atomic import save_figure

    pts = lc["points"]
    n = np.array([p["n_train"] for p in pts], float)
    panels = [("E_MAE_meV_per_atom", "E MAE (meV/atom)"), ("F_MAE", "F MAE (eV/Å)"), ("S_MAE", "S MAE (eV/Å³)")]
    panels = [p for p in panels if any(q[p[0]] is not None for q in pts)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), constrained_layout=True)
    for ax, (k, label) in zip(np.atleast_1d(axes), panels):
        y = np.array([np.nan if q[k] is None else q[k] for q in pts], float)
        ax.loglog(n, y, "o-")
        if k in lc["fits"]:
            f = lc["fits"][k]
            ax.loglog(n, np.exp(f["loglog_intercept"]) * n ** f["loglog_slope"], "k--", lw=0.8,
                      label=f"slope {f['loglog_slope']:.2f}")
            ax.legend(fontsize=8)
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xticks(n)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training frames")
        ax.set_ylabel(f"test {label}")
    fig.suptitle("Learning curve (same preset and seed, nested training subsets)", fontsize=10)
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def ensemble_record(entries, manifests, ensemble_path: Path, labels, prov) -> dict:
    """ensemble.json: ``manifest`` relative to the working directory (the workflow root, e.g.
    ``results/models/m0/manifest.json``) and ``manifest_rel`` relative to ensemble.json itself."""
    here = Path(ensemble_path).resolve().parent
    return {
        "members": [{"name": man["member"], "manifest": os.path.relpath(Path(m).resolve(), Path.cwd()),
                     "manifest_rel": os.path.relpath(Path(m).resolve(), here),
                     "compiled": sorted(man["compiled"])}
                    for (man, _), m in zip(entries, manifests)],
        "labels": labels,
        "provenance": prov,
    }


def load_ensemble(path: str | Path) -> list[tuple[str, Path]]:
    """(member name, absolute manifest path) for each member of an ensemble.json, wherever it lies."""
    path = Path(path)
    rec = read_json(path, "ensemble file not found")
    if not isinstance(rec, dict) or not rec.get("members"):
        raise InputError(path, "no members (expected output of 'ionflow metrics-table --ensemble')", field="members")
    out = []
    for m in rec["members"]:
        cand = [path.resolve().parent / m["manifest_rel"]] if "manifest_rel" in m else []
        cand.append(Path(m["manifest"]))
        found = next((c for c in cand if c.is_file()), None)
        if found is None:
            raise InputError(path, f"manifest of member {m.get('name')!r} not found ({m['manifest']})",
                             field="members")
        out.append((m["name"], found.resolve()))
    return out


def run(args: argparse.Namespace) -> int:
    from .io.atomic import write_json, write_text
    from .provenance import provenance

    entries = [load_member(m) for m in args.manifests]
    names = [man["member"] for man, _ in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(args.manifests[names.index(dup[0])], f"member {dup[0]!r} given twice", field="member")
    rows = [row(man, met) for man, met in entries]
    labels = sorted({lab for man, _ in entries for lab in man.get("labels", [])})
    weights = entries[0][1].get("score_weights")
    if any(met.get("score_weights") != weights for _, met in entries):
        raise InputError(args.manifests[0], "members were scored with different weights λ; retrain or align "
                         "train.score_weights", field="score_weights")
    prov = provenance(stage="metrics-table", inputs=args.manifests, options={"members": names}, labeler=labels)
    if args.csv:
        write_text(args.csv, to_csv(rows))
    if args.markdown:
        write_text(args.markdown, to_markdown(rows, labels, weights))
    if args.ensemble:
        write_json(args.ensemble, ensemble_record(entries, args.manifests, args.ensemble, labels, prov))
    if args.learning_curve or args.learning_curve_json:
        if len(entries) < 2:
            raise InputError(args.manifests[0], "a learning curve needs at least two members")
        lc = learning_curve(entries)
        lc["provenance"] = prov
        if args.learning_curve_json:
            write_json(args.learning_curve_json, lc)
        if args.learning_curve:
            plot_learning_curve(lc, args.learning_curve)
    if not (args.csv or args.markdown or args.ensemble or args.learning_curve or args.learning_curve_json):
        print(to_markdown(rows, labels, weights), end="")
    return 0
