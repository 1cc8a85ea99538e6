"""``ionflow rank``: rank screened structures by Xi (descending), then MPE (ascending).

Reads descriptors.json files of ``ionflow pes-descriptors`` and writes ``ranking.csv``; optional
figures: Xi and MPE of the top entries, and, when Arrhenius results of MLIP MD exist for the
same structures (``--md results/arrhenius/S.json``), Xi and MPE against the MD conductivity
(sigma at 300 K) and activation energy, tracer and full (Einstein-Helfand) side by side.
A structure whose MPE is null (does not percolate) sorts after every percolating one at equal Xi.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

from ..errors import InputError
from ..io.jsonio import read_json

COLUMNS = ["rank", "structure", "xi", "mpe_eV", "mpe_a_eV", "mpe_b_eV", "mpe_c_eV",
           "fv_connected_0.5", "fv_disconnected_0.5", "n_ions", "scan_cell_kind", "supercell",
           "calculator", "unreliable_fraction", "descriptors"]
MD_COLUMNS = ["sigma_tracer_300K_S_cm", "sigma_full_300K_S_cm", "Ea_tracer_eV", "Ea_full_eV", "md_model"]


def _num(x):
    return float(x) if isinstance(x, (int, float)) and x is not None else math.inf


def load_descriptors(path: str | Path) -> dict:
    path = Path(path)
    d = read_json(path)
    for key in ("xi", "mpe_eV", "mpe_axis_eV", "fv_connected", "fv_disconnected"):
        if key not in d:
            raise InputError(path, "missing (not a pes-descriptors result?)", field=key)
    if not isinstance(d["xi"], (int, float)):
        raise InputError(path, "must be a number", field="xi")
    d["_path"] = str(path)
    d["_name"] = d.get("structure") or path.parent.name
    return d


def load_md(path: str | Path) -> dict:
    """{structure: {sigma/Ea values}} from an ``ionflow arrhenius`` result (ensemble group preferred)."""
    path = Path(path)
    doc = read_json(path)
    groups = doc.get("groups")
    if not isinstance(groups, list):
        raise InputError(path, "missing list (not an arrhenius result?)", field="groups")
    out: dict[str, dict] = {}
    for g in sorted(groups, key=lambda g: g.get("model") != "ensemble"):
        s = g.get("structure")
        if s is None or s in out:
            continue

        def val(kind, key):
            v = (g.get(kind) or {}).get(key)
            return v.get("mean") if isinstance(v, dict) else None
        out[s] = {"sigma_tracer_300K_S_cm": val("tracer", "sigma_300K_S_cm"),
                  "sigma_full_300K_S_cm": val("full", "sigma_300K_S_cm"),
                  "Ea_tracer_eV": val("tracer", "Ea_eV"), "Ea_full_eV": val("full", "Ea_eV"),
                  "md_model": g.get("model")}
    return out


def rank_rows(descs: list[dict], md: dict | None = None) -> list[dict]:
    rows = []
    for d in descs:
        ax = list(d.get("mpe_axis_eV") or [None] * 3) + [None] * 3
        row = {
            "structure": d["_name"], "xi": d["xi"], "mpe_eV": d.get("mpe_eV"),
            "mpe_a_eV": ax[0], "mpe_b_eV": ax[1], "mpe_c_eV": ax[2],
            "fv_connected_0.5": d["fv_connected"].get("0.5"),
            "fv_disconnected_0.5": d["fv_disconnected"].get("0.5"),
            "n_ions": d.get("n_ions"), "scan_cell_kind": d.get("scan_cell_kind"),
            "supercell": "x".join(str(x) for x in d["supercell"]) if d.get("supercell") else None,
            "calculator": d.get("calculator"),
            "unreliable_fraction": d.get("unreliable_fraction_scan"),
            "descriptors": d["_path"],
        }
        if md is not None:
            row.update(md.get(d["_name"], {k: None for k in MD_COLUMNS}))
        rows.append(row)
    names = [r["structure"] for r in rows]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(", ".join(r["descriptors"] for r in rows if r["structure"] in dup),
                         f"duplicate structure names {dup}")
    rows.sort(key=lambda r: (-r["xi"], _num(r["mpe_eV"]), r["structure"]))
    for k, r in enumerate(rows, 1):
        r["rank"] = k
    return rows


def to_csv(rows: list[dict], with_md: bool) -> str:
    cols = COLUMNS + (MD_COLUMNS if with_md else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return buf.getvalue()


def plot_top(rows: list[dict], path, top: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import save_figure

    rows = rows[:top]
    names = [r["structure"] for r in rows][::-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.5), sharey=True,
                                 constrained_layout=True)
    a1.barh(names, [r["xi"] for r in rows][::-1], color="tab:blue")
    a1.set_xlabel("Xi (higher = more likely superionic)")
    a1.set_xlim(0, 1)
    mpe = [r["mpe_eV"] for r in rows][::-1]
    a2.barh(names, [m if m is not None else 0 for m in mpe], color="tab:orange")
    for k, m in enumerate(mpe):
        if m is None:
            a2.text(0, k, " no percolation", va="center")
    a2.set_xlabel("MPE (eV)")
    fig.suptitle(f"PES screening: top {len(rows)} by Xi, then MPE")
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def plot_vs_md(rows: list[dict], path) -> None:
    """Xi vs sigma(300 K) and MPE vs Ea, tracer and full, for structures with MD results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import save_figure

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    for kind, mk in (("tracer", "o"), ("full", "s")):
        pts = [(r["xi"], r[f"sigma_{kind}_300K_S_cm"], r["structure"]) for r in rows
               if r.get(f"sigma_{kind}_300K_S_cm")]
        if pts:
            a1.scatter([p[1] for p in pts], [p[0] for p in pts], marker=mk, label=f"sigma_{kind}")
            for x, s, n in pts:
                a1.annotate(n, (s, x), fontsize=8, xytext=(3, 3), textcoords="offset points")
        pts = [(r["mpe_eV"], r[f"Ea_{kind}_eV"], r["structure"]) for r in rows
               if r.get(f"Ea_{kind}_eV") is not None and r.get("mpe_eV") is not None]
        if pts:
            a2.scatter([p[1] for p in pts], [p[0] for p in pts], marker=mk, label=f"Ea_{kind}")
            for m, e, n in pts:
                a2.annotate(n, (e, m), fontsize=8, xytext=(3, 3), textcoords="offset points")
    a1.set_xscale("log")
    a1.set_xlabel("MD sigma(300 K) (S/cm)")
    a1.set_ylabel("Xi")
    a2.set_xlabel("MD activation energy (eV)")
    a2.set_ylabel("MPE (eV)")
    for a in (a1, a2):
        if a.get_legend_handles_labels()[0]:
            a.legend()
    fig.suptitle("PES descriptors vs MLIP-MD conductivity")
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("descriptors", nargs="+", help="descriptors.json files (one per structure)")
    p.add_argument("-o", "--output", required=True, help="ranking.csv")
    p.add_argument("--figure", help="PNG: Xi and MPE of the top entries")
    p.add_argument("--top", type=int, default=10, help="entries in --figure")
    p.add_argument("--md", nargs="*", default=[], metavar="ARRHENIUS_JSON",
                   help="ionflow arrhenius results; adds sigma(300 K)/Ea columns")
    p.add_argument("--md-figure", help="PNG: Xi and MPE against the MD conductivity (needs --md)")
    p.add_argument("--summary", help="also write the ranking as JSON (with provenance)")


def run(args: argparse.Namespace) -> int:
    from ..io.atomic import write_json, write_text
    from ..provenance import provenance

    descs = [load_descriptors(p) for p in args.descriptors]
    md = None
    if args.md:
        md = {}
        for p in args.md:
            md.update(load_md(p))
    rows = rank_rows(descs, md)
    write_text(args.output, to_csv(rows, md is not None))
    if args.figure:
        plot_top(rows, args.figure, args.top)
    if args.md_figure:
        if md is None:
            raise InputError("--md-figure", "needs --md arrhenius results")
        plot_vs_md(rows, args.md_figure)
    if args.summary:
        write_json(args.summary, {"ranking": rows, "provenance": provenance(
            stage="rank", inputs=list(args.descriptors) + list(args.md),
            options={"top": args.top})})
    for r in rows[: args.top]:
        mpe = "none" if r["mpe_eV"] is None else f"{r['mpe_eV']:.3f} eV"
        print(f"{r['rank']:3d}  {r['structure']:<24s} Xi {r['xi']:.3f}  MPE {mpe}")
    return 0
