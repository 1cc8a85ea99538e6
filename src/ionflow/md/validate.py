"""`ionflow validate`: model checks before production MD.

    ionflow validate stability --ensemble E --member M --structure-file GS --structure S1 --out DIR
        short MD at 900 K (python engine, the md blow-up criteria); DIR/status.json = pass/fail + reason
    ionflow validate minimize --ensemble E --member M --structure-file GS --structure S1 --out X.json
        LAMMPS minimize with box relaxation from the DFT ground state: dV %, dE/atom, max displacement
        (a model that knows the ground state barely moves); relaxed structure next to X.json
    ionflow validate table --stability */status.json --minimize *.json [--ensemble E] --out-dir results/validation
        stability.csv, minimize.csv and the combined model-validation table models.csv (+ .md) with the
        training test metrics; `accepted` marks members that pass (validate.exclude_failed_models)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from . import add_md_arguments, add_model_arguments, resolve_members, settings_from_args
from .settings import MDSettings

BOX_MODES = ("tri", "aniso", "iso", "none")
STABILITY_DEFAULTS = MDSettings(steps=2000, equilibration_steps=0, dump_every=100, thermo_every=50,
                                restart_every=1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="check", metavar="CHECK", required=True)

    st = sub.add_parser("stability", help="short MD at high temperature: pass/fail with reason",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(st)
    st.add_argument("--structure-file", type=Path, required=True)
    st.add_argument("--structure", required=True)
    st.add_argument("--temperature", type=float, default=900.0)
    st.add_argument("--seed", type=int, default=1)
    st.add_argument("--out", type=Path, required=True, help="run directory (status.json, dump, thermo)")
    add_md_arguments(st, STABILITY_DEFAULTS)
    st.set_defaults(_check=run_stability)

    mn = sub.add_parser("minimize", help="LAMMPS minimize with box relaxation from the ground state",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(mn)
    mn.add_argument("--structure-file", type=Path, required=True, help="DFT ground state (ASE-readable)")
    mn.add_argument("--structure", required=True)
    mn.add_argument("--out", type=Path, required=True, help="result JSON; relaxed structure -> .extxyz")
    mn.add_argument("--box", choices=BOX_MODES, default="tri",
                    help="fix box/relax mode at 0 pressure ('none': fixed cell)")
    mn.add_argument("--min-style", default="cg")
    mn.add_argument("--etol", type=float, default=0.0)
    mn.add_argument("--ftol", type=float, default=1.0e-3, help="force tolerance (eV/A)")
    mn.add_argument("--maxiter", type=int, default=2000)
    mn.add_argument("--maxeval", type=int, default=20000)
    mn.add_argument("--vmax", type=float, default=0.001, help="fix box/relax vmax (max volume change per iteration)")
    mn.add_argument("--max-volume-change-percent", type=float, default=5.0, help="pass limit on |dV|")
    mn.add_argument("--max-displacement-A", type=float, default=0.5, help="pass limit on the max displacement")
    mn.set_defaults(_check=run_minimize)

    tb = sub.add_parser("table", help="stability.csv, minimize.csv and the combined model-validation table",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tb.add_argument("--stability", type=Path, nargs="*", default=[], help="stability status.json files")
    tb.add_argument("--minimize", type=Path, nargs="*", default=[], help="minimize result JSON files")
    tb.add_argument("--ensemble", type=Path, help="ensemble.json (adds the members' training test metrics)")
    tb.add_argument("--require-minimize", action="store_true",
                    help="a member must also pass the minimize limits to be accepted")
    tb.add_argument("--out-dir", type=Path, required=True)
    tb.add_argument("--plot", type=Path, help="figure: dV and max displacement per member and structure, "
                                              "stability failures marked")
    tb.set_defaults(_check=run_table)


def run(args: argparse.Namespace) -> int:
    return args._check(args)


# ------------------------------------------------------------------------------- stability
def run_stability(args: argparse.Namespace) -> int:
    from .runner import RunSpec, run_md

    member, _others = resolve_members(args)
    settings = settings_from_args(args)
    spec = RunSpec(run_dir=args.out, structure_file=args.structure_file, structure=args.structure,
                   member=member, temperature_K=args.temperature, seed=args.seed, settings=settings,
                   stage="validate-stability")
    status = run_md(spec)
    verdict = "PASS" if status["status"] == "ok" else f"FAIL at step {status['step']}: {status['reason']}"
    print(f"ionflow validate stability: {member.name} on {args.structure} at {args.temperature:g} K: {verdict}")
    return 0


# ------------------------------------------------------------------------------- minimize
def relaxation_measures(pos0: np.ndarray, cell0: np.ndarray, pos1: np.ndarray, cell1: np.ndarray) -> dict:
    """Volume change, and atom displacements in fractional coordinates (minimum image, mean
    translation removed) expressed in the relaxed cell: a pure cell strain moves no atom."""
    f0 = np.linalg.solve(cell0.T, pos0.T).T
    f1 = np.linalg.solve(cell1.T, pos1.T).T
    df = f1 - f0
    df -= np.round(df)
    df -= df.mean(axis=0)
    d = np.linalg.norm(df @ cell1, axis=1)
    v0, v1 = abs(np.linalg.det(cell0)), abs(np.linalg.det(cell1))
    return {"volume0_A3": v0, "volume_A3": v1, "dV_percent": 100.0 * (v1 - v0) / v0,
            "max_displacement_A": float(d.max()), "rms_displacement_A": float(np.sqrt((d ** 2).mean())),
            "max_displacement_atom": int(d.argmax())}


def minimize_member(member, structure_file: Path, *, box: str = "tri", min_style: str = "cg",
                    etol: float = 0.0, ftol: float = 1e-3, maxiter: int = 2000, maxeval: int = 20000,
                    vmax: float = 0.001, log: Path | None = None) -> tuple[dict, object]:
    """Relax the structure with LAMMPS (forces, energy, virial from the model). Returns
    (measures, relaxed ase.Atoms)."""
    import tempfile

    from .engine import ExternalForceField, lammps_atoms, new_lammps
    from .models import load_calculator
    from .runner import check_species, read_structure, write_data_file
    from .settings import BlowupCriteria

    atoms = read_structure(structure_file)
    check_species(atoms, member, structure_file)
    species = list(member.type_names)
    calc = load_calculator(member)
    with tempfile.TemporaryDirectory(prefix="ionflow-min-") as tmp:
        data = Path(tmp) / "start.data"
        write_data_file(atoms, data, species)
        log = Path(log) if log is not None else Path(tmp) / "log.lammps"
        log_offset = log.stat().st_size if log.exists() else 0
        lmp = new_lammps(log=log)
        try:
            lmp.commands_string("\n".join([
                "units metal", "atom_style atomic", "atom_modify map array sort 0 0.0", "boundary p p p",
                f"read_data {data}",
                "pair_style zero 2.0", "pair_coeff * *",
                "fix ext all external pf/callback 1 1", "fix_modify ext energy yes virial yes",
                "thermo_style custom step pe press vol fmax fnorm pxx pyy pzz pyz pxz pxy", "thermo 50",
            ] + (["change_box all triclinic"] if box == "tri" else [])))
            # no blow-up limits on forces here: a bad start is what this check measures
            ff = ExternalForceField(lmp, "ext", calc, species,
                                    BlowupCriteria(max_force_eV_A=math.inf))
            _must(ff.run("run 0"))
            at0 = lammps_atoms(lmp, species)
            e0 = float(lmp.get_thermo("pe"))
            p0 = float(lmp.get_thermo("press"))
            if box != "none":
                lmp.command(f"fix relax all box/relax {box} 0.0 vmax {vmax:g}")
            lmp.command(f"min_style {min_style}")
            _must(ff.run(f"minimize {etol:g} {ftol:g} {maxiter:d} {maxeval:d}"))
            at1 = lammps_atoms(lmp, species)
            e1 = float(lmp.get_thermo("pe"))
            out = {
                "natoms": len(at1), "box": box, "min_style": min_style, "etol": etol, "ftol": ftol,
                "maxiter": maxiter, "maxeval": maxeval, "vmax": vmax,
                "iterations": int(lmp.extract_global("ntimestep")),
                "model_calls": ff.ncalls,
                "E0_eV": e0, "E_eV": e1, "dE_per_atom_eV": (e1 - e0) / len(at1),
                "pressure0_bar": p0, "pressure_bar": float(lmp.get_thermo("press")),
                "stress_bar": [-float(lmp.get_thermo(k)) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")],
                "fmax_eV_A": float(lmp.get_thermo("fmax")),
            }
        finally:
            lmp.close()
        with open(log) as fh:
            fh.seek(log_offset)
            stops = re.findall(r"Stopping criterion = (.*)", fh.read())
        out["stopping_criterion"] = stops[-1].strip() if stops else None
    out.update(relaxation_measures(at0.positions, at0.cell.array, at1.positions, at1.cell.array))
    # a reference energy in the file (DFT / labeler) -> model error at the ground state
    try:
        e_ref = atoms.get_potential_energy() if atoms.calc is not None else None
    except Exception:
        e_ref = None
    out["E_ref_eV"] = e_ref
    out["E0_minus_ref_per_atom_eV"] = (e0 - e_ref) / len(at1) if e_ref is not None else None
    return out, at1


def _must(failure) -> None:
    from ..errors import IonflowError

    if failure is not None:
        raise IonflowError(f"minimize stopped at step {failure.step}: {failure.reason}")


def run_minimize(args: argparse.Namespace) -> int:
    from ase.io import write

    from ..errors import IonflowError
    from ..io.atomic import atomic_path, write_json
    from ..provenance import provenance

    member, _others = resolve_members(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    options = {k: getattr(args, k) for k in ("box", "min_style", "etol", "ftol", "maxiter", "maxeval", "vmax")}
    result = {"member": member.name, "structure": args.structure, "manifest": str(member.manifest)}
    relaxed = None
    try:
        measures, relaxed = minimize_member(member, args.structure_file, **options,
                                            log=args.out.with_suffix(".log"))
        limits_ok = (abs(measures["dV_percent"]) <= args.max_volume_change_percent
                     and measures["max_displacement_A"] <= args.max_displacement_A)
        result.update(status="ok", reason=None, **measures, passed=bool(limits_ok))
        if not limits_ok:
            why = []
            if abs(measures["dV_percent"]) > args.max_volume_change_percent:
                why.append(f"|dV| {abs(measures['dV_percent']):.3g} % > {args.max_volume_change_percent:g} %")
            if measures["max_displacement_A"] > args.max_displacement_A:
                why.append(f"max displacement {measures['max_displacement_A']:.3g} A > {args.max_displacement_A:g} A")
            result["reason"] = "; ".join(why)
    except IonflowError as exc:
        if "minimize stopped" not in str(exc):
            raise
        result.update(status="failed", reason=str(exc), passed=False)
    result["limits"] = {"max_volume_change_percent": args.max_volume_change_percent,
                        "max_displacement_A": args.max_displacement_A}
    result["provenance"] = provenance(stage="validate-minimize",
                                      inputs=[args.structure_file, member.manifest, member.ase_model],
                                      options=options | result["limits"], engine="LAMMPS minimize + fix external")
    if relaxed is not None:
        with atomic_path(args.out.with_suffix(".extxyz")) as tmp:
            write(tmp, relaxed, format="extxyz")
    write_json(args.out, result)
    if result["status"] == "ok":
        print(f"ionflow validate minimize: {member.name} on {args.structure}: dV {result['dV_percent']:+.3f} %, "
              f"dE {1000 * result['dE_per_atom_eV']:+.2f} meV/atom, max displacement "
              f"{result['max_displacement_A']:.3f} A -> {'PASS' if result['passed'] else 'FAIL'}")
    else:
        print(f"ionflow validate minimize: {member.name} on {args.structure}: FAILED: {result['reason']}")
    return 0


# ------------------------------------------------------------------------------- tables
STABILITY_COLUMNS = ["member", "structure", "temperature_K", "passed", "status", "reason", "phase", "step",
                     "steps", "timestep_fs", "ensemble"]
MINIMIZE_COLUMNS = ["member", "structure", "passed", "status", "reason", "dV_percent", "dE_per_atom_eV",
                    "max_displacement_A", "rms_displacement_A", "E0_minus_ref_per_atom_eV", "pressure0_bar",
                    "pressure_bar", "fmax_eV_A", "iterations", "stopping_criterion", "box"]
MODEL_COLUMNS = ["member", "accepted", "stability_passed", "stability_failures", "minimize_passed",
                 "max_abs_dV_percent", "max_displacement_A", "min_dE_per_atom_eV",
                 "E_MAE_meV_per_atom", "F_MAE_eV_per_A", "S_MAE_eV_per_A3", "WS", "reasons"]


def stability_row(status: dict, path: Path) -> dict:
    from ..errors import InputError

    for key in ("status", "member", "structure"):
        if key not in status:
            raise InputError(path, "not an ionflow md/stability status.json", key)
    return {"member": status["member"], "structure": status["structure"],
            "temperature_K": status.get("temperature_K"), "passed": status["status"] == "ok",
            "status": status["status"], "reason": status.get("reason") or "", "phase": status.get("phase"),
            "step": status.get("step"), "steps": status.get("production_steps"),
            "timestep_fs": status.get("timestep_fs"), "ensemble": status.get("ensemble")}


def minimize_row(res: dict, path: Path) -> dict:
    from ..errors import InputError

    for key in ("status", "member", "structure"):
        if key not in res:
            raise InputError(path, "not an ionflow validate-minimize result", key)
    return {c: (res.get(c) if c != "passed" else bool(res.get("passed"))) for c in MINIMIZE_COLUMNS}


def training_metrics(ensemble: Path | None) -> dict[str, dict]:
    """member -> test metrics from each member's metrics.json (via its manifest), if available."""
    if ensemble is None:
        return {}
    from .models import load_ensemble

    out = {}
    for m in load_ensemble(ensemble):
        try:
            man = json.loads(Path(m.manifest).read_text())
            met = json.loads((Path(m.manifest).parent / man["metrics"]).read_text())["test"]
        except (OSError, KeyError, json.JSONDecodeError):
            continue
        out[m.name] = {"E_MAE_meV_per_atom": met.get("E_MAE_meV_per_atom"), "F_MAE_eV_per_A": met.get("F_MAE"),
                       "S_MAE_eV_per_A3": met.get("S_MAE"), "WS": met.get("WS")}
    return out


def model_table(stab: list[dict], mini: list[dict], metrics: dict[str, dict], require_minimize: bool) -> list[dict]:
    members = sorted({r["member"] for r in stab} | {r["member"] for r in mini} | set(metrics))
    rows = []
    for name in members:
        s = [r for r in stab if r["member"] == name]
        m = [r for r in mini if r["member"] == name]
        reasons = [f"{r['structure']}: stability {r['reason']}" for r in s if not r["passed"]]
        reasons += [f"{r['structure']}: minimize {r['reason']}" for r in m if not r["passed"]]
        s_ok = all(r["passed"] for r in s) if s else None
        m_ok = all(r["passed"] for r in m) if m else None
        dv = [abs(r["dV_percent"]) for r in m if r.get("dV_percent") is not None]
        dx = [r["max_displacement_A"] for r in m if r.get("max_displacement_A") is not None]
        de = [r["dE_per_atom_eV"] for r in m if r.get("dE_per_atom_eV") is not None]
        accepted = s_ok is not False and (not require_minimize or m_ok is not False)
        row = {"member": name, "accepted": accepted, "stability_passed": s_ok,
               "stability_failures": sum(not r["passed"] for r in s), "minimize_passed": m_ok,
               "max_abs_dV_percent": max(dv) if dv else None, "max_displacement_A": max(dx) if dx else None,
               "min_dE_per_atom_eV": min(de) if de else None, "reasons": "; ".join(reasons)}
        row.update(metrics.get(name, {}))
        rows.append(row)
    return rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    from ..io.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow([_fmt(r.get(c)) for c in columns])


def write_markdown(path: Path, rows: list[dict], columns: list[str]) -> None:
    from ..io.atomic import write_text

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    write_text(path, "\n".join(lines) + "\n")


def run_table(args: argparse.Namespace) -> int:
    from ..io.atomic import write_json
    from ..io.jsonio import read_json
    from ..provenance import provenance

    stab = sorted((stability_row(read_json(p, obj=True), p) for p in args.stability),
                  key=lambda r: (r["member"], r["structure"]))
    mini = sorted((minimize_row(read_json(p, obj=True), p) for p in args.minimize),
                  key=lambda r: (r["member"], r["structure"]))
    models = model_table(stab, mini, training_metrics(args.ensemble), args.require_minimize)
    out = args.out_dir
    write_csv(out / "stability.csv", stab, STABILITY_COLUMNS)
    write_csv(out / "minimize.csv", mini, MINIMIZE_COLUMNS)
    write_csv(out / "models.csv", models, MODEL_COLUMNS)
    write_markdown(out / "models.md", models, MODEL_COLUMNS)
    write_json(out / "models.json", {
        "accepted": [r["member"] for r in models if r["accepted"]],
        "rejected": {r["member"]: r["reasons"] for r in models if not r["accepted"]},
        "require_minimize": args.require_minimize,
        "provenance": provenance(stage="validate-table",
                                 inputs=[*args.stability, *args.minimize] + ([args.ensemble] if args.ensemble else []),
                                 options={"require_minimize": args.require_minimize}),
    })
    if args.plot:
        plot_validation(stab, mini, models, args.plot)
    n_ok = sum(r["accepted"] for r in models)
    print(f"ionflow validate table: {n_ok}/{len(models)} members accepted -> {out}/models.csv")
    return 0


def plot_validation(stab: list[dict], mini: list[dict], models: list[dict], path: Path) -> None:
    """Two panels (dV %, max displacement) of grouped bars, one group per member, one bar per
    structure; members failing stability are marked in the x labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import save_figure

    members = [r["member"] for r in models]
    structs = sorted({r["structure"] for r in mini} | {r["structure"] for r in stab})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    width = 0.8 / max(len(structs), 1)
    x = np.arange(len(members))
    for key, ax, label in (("dV_percent", axes[0], "ΔV after box relaxation (%)"),
                           ("max_displacement_A", axes[1], "max atom displacement (Å)")):
        for j, st in enumerate(structs):
            vals = []
            for m in members:
                r = next((r for r in mini if r["member"] == m and r["structure"] == st), None)
                vals.append(np.nan if r is None or r.get(key) is None else float(r[key]))
            ax.bar(x + (j - (len(structs) - 1) / 2) * width, vals, width, label=st)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_ylabel(label)
        ax.set_xticks(x)
        ax.set_xticklabels([m if r["stability_passed"] is not False else f"{m}\n(unstable)"
                            for m, r in zip(members, models)])
    if structs:
        axes[0].legend(title="structure", fontsize=8)
    fig.suptitle("Model validation: ground-state relaxation (stability failures marked)")
    save_figure(fig, path, dpi=120)
    plt.close(fig)
