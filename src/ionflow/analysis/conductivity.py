"""``ionflow conductivity``: tracer and full (Einstein-Helfand) conductivity of one structure, one
model, one temperature, from one or more MD trajectories (velocity seeds).

Physics (methods-and-anchors.md §1): mobile species D, framework = all other atoms.
Displacements are taken relative to the framework reference r_F(t) (count average, or
mass-weighted), which removes any drift of the whole cell.

- tracer:  MSD(tau) over all time origins and mobile ions; D_tr = slope/6;
           sigma_tr = sum_s q_s^2 N_s D_s e^2 / (V kB T)
- full:    P(t) = sum_i q_i (r_i - r_F) over the mobile ions (or over all atoms with
           ``--polarization all``); sigma_full = e^2 slope(<|dP|^2>) / (6 V kB T);
           D_sigma = slope / (6 sum_mobile q^2) (pymatgen's charge diffusivity)
- Haven ratio H_R = sigma_tr / sigma_full.

Every run is cut into ``--blocks`` contiguous blocks; slopes are fitted per block over one common
fit window; blocks -> runs -> (models, in ``combine``) are averaged with the variance components
kept apart (``ionflow.analysis.uncertainty``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, IonflowError
from . import A2_PER_FS_TO_CM2_PER_S, sigma_prefactor

#: frames averaged into one point of the coarse framework trajectory (creep check)
COARSE = 10
#: keys of the main estimates (each {"mean", "sem"} in the result)
QUANTITIES = ("D_tracer_cm2_s", "D_sigma_cm2_s", "sigma_tracer_S_cm", "sigma_full_S_cm")
SCHEMA = "ionflow.conductivity/1"

DEFAULTS = {
    "blocks": 5,
    "fit_start_fraction": 0.1,   # of the block length, when --fit-start-ps is not given
    "fit_end_fraction": 0.5,     # of the block length, when --fit-end-ps is not given
    "beta_tolerance": 0.15,      # |d ln MSD / d ln t - 1| allowed in the fit window
    "hop_length_A": 2.5,         # typical hop length: MSD(fit end) must reach its square
    "min_hops": 100,             # total hops (all ions, all seeds) for a converged result
    "max_rel_sem": 0.5,          # sem/mean of sigma_full above this is not converged
    "framework_msd_max_A2": 1.0,  # framework creep limit (10-frame averaged positions)
}


# ----------------------------------------------------------------------------------------------
# reading one run

@dataclass
class Run:
    path: str
    mobile: np.ndarray             # (T, N_D, 3) positions relative to the framework reference, Å
    mobile_species: np.ndarray     # (N_D,) species index into the species list
    collective: np.ndarray         # (T, 3) sum_i q_i (r_i - r_F), e Å
    volume_A3: float
    volume_rel_std: float
    n_frames_read: int
    n_dropped: int                 # frames superseded by a restart (repeated TIMESTEP)
    framework_coarse: np.ndarray | None  # (T // COARSE, N_fw, 3)
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.mobile.shape[0]


def parse_charges(items) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        for part in str(item).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise IonflowError(f"--charge {part!r}: expected SPECIES=CHARGE, e.g. Li=1")
            k, v = part.split("=", 1)
            try:
                out[k.strip()] = float(v)
            except ValueError:
                raise IonflowError(f"--charge {part!r}: charge is not a number") from None
    return out


def parse_type_map(text) -> dict[int, str]:
    """'1=Li,2=O' or 'Li,O' (types 1, 2, ...) -> {1: 'Li', 2: 'O'}."""
    if not text:
        return {}
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    out = {}
    for i, p in enumerate(parts, start=1):
        if "=" in p:
            k, v = p.split("=", 1)
            try:
                out[int(k)] = v.strip()
            except ValueError:
                raise IonflowError(f"--type-map {p!r}: expected TYPE=ELEMENT") from None
        else:
            out[i] = p
    return out


def load_run(path, species: list[str], charges: dict[str, float], *, reference: str = "count",
             polarization: str = "mobile", type_map=None) -> Run:
    """Stream a trajectory and keep only what the analysis needs (memory ~ mobile ions only)."""
    from ..io.trajectory import TrajectoryReader

    reader = TrajectoryReader(path, type_map=type_map)
    sym = reader.symbols
    present = sorted(set(sym.tolist()))
    for s in species:
        if s not in present:
            raise InputError(path, f"mobile species {s!r} not present (species in file: {', '.join(present)})",
                             field="species")
    mob_idx = np.flatnonzero(np.isin(sym, species))
    fw_idx = np.flatnonzero(~np.isin(sym, species))
    mobile_species = np.array([species.index(s) for s in sym[mob_idx]])
    if reference != "none" and fw_idx.size == 0:
        raise InputError(path, "no framework atoms to reference displacements to (use --reference none)",
                         field="species")
    if reference == "mass":
        if reader.masses is None:
            raise InputError(path, "mass-weighted reference needs element symbols or a mass column",
                             field="reference")
        w = reader.masses[fw_idx] / reader.masses[fw_idx].sum()
    elif reference == "count":
        w = np.full(fw_idx.size, 1.0 / max(fw_idx.size, 1))
    else:
        w = None
    if polarization == "all":
        missing = [s for s in present if s not in charges]
        if missing:
            raise InputError(path, f"--polarization all needs a charge for every species; missing "
                                   f"{', '.join(missing)} (give --charge {missing[0]}=Q)", field="charge")
        q_all = np.array([charges[s] for s in sym])
    else:
        q_all = np.zeros(len(sym))
        q_all[mob_idx] = [charges.get(s, 1.0) for s in sym[mob_idx]]
    q_tot = q_all.sum()
    if w is not None:
        w_full = np.zeros(len(sym))
        w_full[fw_idx] = w

    mob, coll, vol, ts, fwc = [], [], [], [], []
    for chunk in reader:
        pos = chunk.positions
        if w is not None:
            r_f = np.matmul(w_full, pos)          # (n,) @ (f, n, 3) -> (f, 3), BLAS
        else:
            r_f = np.zeros((pos.shape[0], 3))
        mob.append(pos[:, mob_idx] - r_f[:, None, :])
        coll.append(np.matmul(q_all, pos) - q_tot * r_f)
        vol.append(np.abs(np.linalg.det(chunk.cells)))
        if chunk.timesteps is not None:
            ts.append(chunk.timesteps)
        if fw_idx.size:
            n = (pos.shape[0] // COARSE) * COARSE
            if n:
                rel = pos[:n, fw_idx] - r_f[:n, None, :]
                fwc.append(rel.reshape(n // COARSE, COARSE, fw_idx.size, 3).mean(axis=1))
    mobile = np.concatenate(mob)
    collective = np.concatenate(coll)
    volumes = np.concatenate(vol)
    n_read = mobile.shape[0]
    n_dropped = 0
    if ts:
        steps = np.concatenate(ts)
        # a restart that repeats timesteps supersedes the frames it repeats: keep the latest
        later_min = np.minimum.accumulate(steps[::-1])[::-1]
        keep = np.ones(len(steps), bool)
        keep[:-1] = steps[:-1] < later_min[1:]
        if not keep.all():
            n_dropped = int((~keep).sum())
            mobile, collective, volumes, steps = mobile[keep], collective[keep], volumes[keep], steps[keep]
        strides = np.unique(np.diff(steps))
        if strides.size > 1:
            raise InputError(path, f"frames are not equally spaced in time (TIMESTEP strides "
                                   f"{', '.join(map(str, strides[:5]))})", field="TIMESTEP")
    return Run(path=str(path), mobile=mobile, mobile_species=mobile_species, collective=collective,
               volume_A3=float(volumes.mean()), volume_rel_std=float(volumes.std() / volumes.mean()),
               n_frames_read=n_read, n_dropped=n_dropped,
               framework_coarse=np.concatenate(fwc) if fwc else None,
               info={"format": reader.format, "coordinates": reader.coordinates,
                     "n_atoms": int(len(sym)), "n_framework": int(fw_idx.size),
                     "net_charge_e": float(q_tot), "species_in_file": present})


# ----------------------------------------------------------------------------------------------
# analysis

def _fit_window(runs, dt_fs, blocks, start_ps, end_ps):
    L_min = min(r.n_frames // blocks for r in runs)
    short = min(runs, key=lambda r: r.n_frames)
    if L_min < 8:
        raise InputError(short.path, f"{short.n_frames} frames are too few for {blocks} blocks "
                                     "(need >= 8 frames per block; use fewer --blocks)", field="blocks")
    block_ps = L_min * dt_fs / 1000.0
    rule = []
    if start_ps is None:
        start_ps = DEFAULTS["fit_start_fraction"] * block_ps
        rule.append(f"start = {DEFAULTS['fit_start_fraction']} x block length")
    if end_ps is None:
        end_ps = DEFAULTS["fit_end_fraction"] * block_ps
        rule.append(f"end = {DEFAULTS['fit_end_fraction']} x block length")
    i0 = max(1, int(math.ceil(start_ps * 1000.0 / dt_fs - 1e-9)))
    i1 = int(math.floor(end_ps * 1000.0 / dt_fs + 1e-9))
    if i1 > L_min - 1:
        raise IonflowError(f"fit window end {end_ps:g} ps exceeds the block length {block_ps:g} ps "
                           f"({short.path}: {short.n_frames} frames / {blocks} blocks); use fewer --blocks "
                           "or a shorter window")
    if i1 - i0 < 2:
        raise IonflowError(f"fit window {start_ps:g}-{end_ps:g} ps holds fewer than 3 lags at dt = {dt_fs:g} fs")
    return {
        "start_ps": i0 * dt_fs / 1000.0, "end_ps": i1 * dt_fs / 1000.0,
        "start_lag": i0, "end_lag": i1, "block_length_ps": block_ps, "block_frames": L_min,
        "default": bool(rule), "rule": "; ".join(rule) if rule else "user given",
    }


def _downsample(n: int, points: int = 240) -> np.ndarray:
    return np.unique(np.geomspace(1, n - 1, min(points, n - 1)).astype(int))


def analyse(runs: list[Run], *, species: list[str], charges: dict[str, float], temperature_K: float,
            dt_fs: float, blocks: int = DEFAULTS["blocks"], fit_start_ps=None, fit_end_ps=None,
            polarization: str = "mobile", thresholds: dict | None = None) -> dict:
    """Block/seed-averaged tracer and full conductivity from loaded runs (same structure, T, model)."""
    from .correlation import linear_fit, loglog_slope, msd_sum_blocks
    from .uncertainty import nested_mean, ratio_nested, summary

    th = {k: DEFAULTS[k] for k in ("beta_tolerance", "hop_length_A", "min_hops", "max_rel_sem",
                                   "framework_msd_max_A2")}
    th.update({k: v for k, v in (thresholds or {}).items() if v is not None})
    n_mob = {r.mobile.shape[1] for r in runs}
    if len(n_mob) != 1:
        raise IonflowError(f"trajectories have different numbers of mobile ions: {sorted(n_mob)}")
    win = _fit_window(runs, dt_fs, blocks, fit_start_ps, fit_end_ps)
    i0, i1, L = win["start_lag"], win["end_lag"], win["block_frames"]
    lags = np.arange(i0, i1 + 1) * dt_fs  # fs
    q_s = np.array([charges.get(s, 1.0) for s in species])
    per_run = []
    curves_msd, curves_mscd, curves_species = [], [], []
    for r in runs:
        Lr = r.n_frames // blocks
        N_s = np.array([(r.mobile_species == k).sum() for k in range(len(species))])
        msd_species = np.stack([
            msd_sum_blocks(r.mobile[:, r.mobile_species == k], blocks) / max(N_s[k], 1)
            for k in range(len(species))
        ])  # (S, blocks, Lr)
        msd_pool = np.einsum("s,sbl->bl", N_s, msd_species) / N_s.sum()
        mscd = msd_sum_blocks(r.collective, blocks)  # (blocks, Lr), e^2 Å^2
        sum_q2 = float((q_s[r.mobile_species] ** 2).sum())
        pref = sigma_prefactor(r.volume_A3, temperature_K)
        slope_pool, _ = linear_fit(lags, msd_pool[:, i0:i1 + 1])
        slope_s, _ = linear_fit(lags, msd_species[:, :, i0:i1 + 1])     # (S, blocks)
        slope_c, _ = linear_fit(lags, mscd[:, i0:i1 + 1])
        D_tr = slope_pool / 6.0                                          # Å^2/fs
        D_s = slope_s / 6.0
        sig_tr = pref * np.einsum("s,sb->b", q_s ** 2 * N_s, D_s)
        sig_full = pref * slope_c / 6.0
        D_sig = slope_c / (6.0 * sum_q2)
        blocks_out = {
            "D_tracer_cm2_s": D_tr * A2_PER_FS_TO_CM2_PER_S,
            "D_sigma_cm2_s": D_sig * A2_PER_FS_TO_CM2_PER_S,
            "sigma_tracer_S_cm": sig_tr,
            "sigma_full_S_cm": sig_full,
        }
        if len(species) > 1:
            for k, s in enumerate(species):
                blocks_out[f"D_tracer_{s}_cm2_s"] = D_s[k] * A2_PER_FS_TO_CM2_PER_S
        per_run.append({"run": r, "blocks": blocks_out, "L": Lr, "pref": pref, "sum_q2": sum_q2, "N_s": N_s})
        curves_msd.append(msd_pool[:, :L])
        curves_mscd.append(mscd[:, :L] / sum_q2)
        curves_species.append(msd_species[:, :, :L])

    nested = {key: [[pr["blocks"][key] for pr in per_run]] for key in per_run[0]["blocks"]}
    stats = {key: nested_mean(v) for key, v in nested.items()}
    haven = ratio_nested(nested["sigma_tracer_S_cm"], nested["sigma_full_S_cm"])

    # curves: mean over blocks and runs (lags up to the shortest block)
    msd_all = np.concatenate(curves_msd)            # (runs*blocks, L)
    mscd_all = np.concatenate(curves_mscd)
    msd_mean = msd_all.mean(axis=0)
    mscd_mean = mscd_all.mean(axis=0)
    nb = msd_all.shape[0]
    msd_sem = msd_all.std(axis=0, ddof=1) / math.sqrt(nb) if nb > 1 else np.full(L, np.nan)
    mscd_sem = mscd_all.std(axis=0, ddof=1) / math.sqrt(nb) if nb > 1 else np.full(L, np.nan)
    pref_T = float(np.mean([pr["pref"] for pr in per_run])) * temperature_K
    N_s = per_run[0]["N_s"]
    sum_q2 = per_run[0]["sum_q2"]
    spec_mean = np.concatenate(curves_species, axis=1).mean(axis=1)  # (S, L)
    tau = np.arange(L) * dt_fs
    with np.errstate(divide="ignore", invalid="ignore"):
        run_tr = pref_T * np.einsum("s,sl->l", q_s ** 2 * N_s, spec_mean) / (6.0 * tau)
        run_full = pref_T * sum_q2 * mscd_mean / (6.0 * tau)
    idx = _downsample(L)
    curves = {
        "lag_ps": tau[idx] / 1000.0,
        "msd_A2": msd_mean[idx], "msd_sem_A2": msd_sem[idx],
        "mscd_per_ion_A2": mscd_mean[idx], "mscd_per_ion_sem_A2": mscd_sem[idx],
        "sigmaT_tracer_S_K_cm": run_tr[idx], "sigmaT_full_S_K_cm": run_full[idx],
        "note": "mean over blocks and seeds; mscd_per_ion = <|sum q dr|^2> / sum_mobile q^2; "
                "sigmaT(tau) = e^2 <...>(tau) / (6 tau V kB) (Einstein running value)",
    }

    # diagnostics
    sl = slice(i0, i1 + 1)
    beta_tr = loglog_slope(tau[sl], msd_mean[sl])
    beta_full = loglog_slope(tau[sl], mscd_mean[sl])
    d_tr = stats["D_tracer_cm2_s"]["mean"] / A2_PER_FS_TO_CM2_PER_S  # Å^2/fs
    n_mobile = int(N_s.sum())
    total_fs = sum(pr["run"].n_frames for pr in per_run) * dt_fs
    hops = n_mobile * 6.0 * max(d_tr, 0.0) * total_fs / th["hop_length_A"] ** 2
    fw_msd = _framework_msd(runs, dt_fs, win["end_ps"])
    reasons = []
    if not (abs(beta_tr - 1.0) <= th["beta_tolerance"]):
        reasons.append(f"tracer MSD not diffusive in the fit window: log-log slope beta = {beta_tr:.2f} "
                       f"(want 1 +- {th['beta_tolerance']})")
    if not msd_mean[i1] >= th["hop_length_A"] ** 2:
        reasons.append(f"MSD at the fit-window end {msd_mean[i1]:.3g} A^2 < one hop length squared "
                       f"({th['hop_length_A']} A)^2")
    if not hops >= th["min_hops"]:
        reasons.append(f"about {hops:.3g} hops in total (all ions, all seeds) < {th['min_hops']}")
    for key in ("D_tracer_cm2_s", "sigma_full_S_cm"):
        m, s = stats[key]["mean"], stats[key]["sem"]
        if not m > 0:
            reasons.append(f"{key} not positive ({m:.3g})")
        elif key == "sigma_full_S_cm" and not (s / m <= th["max_rel_sem"]):
            reasons.append(f"sigma_full relative error {s / m:.2f} > {th['max_rel_sem']} "
                           "(more seeds or longer runs needed)" if np.isfinite(s) else
                           "sigma_full has no error estimate (one block of one run)")
    if fw_msd["msd_A2"] is not None and fw_msd["msd_A2"] > th["framework_msd_max_A2"]:
        reasons.append(f"framework creeps: its MSD (10-frame averaged) reaches {fw_msd['msd_A2']:.3g} A^2 "
                       f"> {th['framework_msd_max_A2']} A^2 at {fw_msd['lag_ps']:g} ps")
    diagnostics = {
        "beta_tracer": beta_tr, "beta_full": beta_full,
        "msd_at_fit_start_A2": float(msd_mean[i0]), "msd_at_fit_end_A2": float(msd_mean[i1]),
        "msd_max_A2": float(msd_mean[-1]), "max_lag_ps": float(tau[-1] / 1000.0),
        "hops_estimate": hops, "hop_length_A": th["hop_length_A"],
        "framework_msd_A2": fw_msd["msd_A2"], "framework_msd_lag_ps": fw_msd["lag_ps"],
        "thresholds": th,
        "converged": not reasons, "reasons": reasons,
    }

    trajectories = []
    for pr in per_run:
        r = pr["run"]
        est = {k: summary(nested_mean([[v]])) for k, v in pr["blocks"].items() if k in QUANTITIES}
        est["haven_ratio"] = summary(ratio_nested([[pr["blocks"]["sigma_tracer_S_cm"]]],
                                                  [[pr["blocks"]["sigma_full_S_cm"]]]))
        trajectories.append({
            "path": r.path, "status": "ok", "n_frames": r.n_frames, "n_frames_read": r.n_frames_read,
            "n_frames_dropped_restart": r.n_dropped, "frames_per_block": pr["L"],
            "duration_ps": r.n_frames * dt_fs / 1000.0, "volume_A3": r.volume_A3,
            "volume_rel_std": r.volume_rel_std, **r.info, **est,
            "blocks": {k: np.asarray(v).tolist() for k, v in pr["blocks"].items()},
        })

    out = {
        "schema": SCHEMA,
        "temperature_K": float(temperature_K),
        "volume_A3": float(np.mean([r.volume_A3 for r in runs])),
        "n_mobile": n_mobile,
        "species": list(species),
        "charges": {s: float(q) for s, q in zip(species, q_s)} | {k: float(v) for k, v in charges.items()},
        "polarization": polarization,
        "dt_fs": float(dt_fs),
        "blocks": int(blocks),
        "fit_window": win,
        "fit_start_ps": win["start_ps"], "fit_end_ps": win["end_ps"],
        **{k: summary(stats[k]) for k in QUANTITIES},
        "haven_ratio": summary(haven),
        "variance_components": {**{k: stats[k]["components"] for k in QUANTITIES},
                                "haven_ratio": haven.get("components", {})},
        "converged": not reasons,
        "not_converged_reason": "; ".join(reasons) if reasons else None,
        "diagnostics": diagnostics,
        "trajectories": trajectories,
        "curves": curves,
    }
    if len(species) > 1:
        out["D_tracer_by_species_cm2_s"] = {s: summary(stats[f"D_tracer_{s}_cm2_s"]) for s in species}
    return out


def _framework_msd(runs: list[Run], dt_fs: float, lag_ps: float) -> dict:
    """MSD of 10-frame-averaged framework positions (relative to r_F) at ~lag_ps; None if unknown."""
    vals, lag_used = [], None
    for r in runs:
        fc = r.framework_coarse
        if fc is None or fc.shape[0] < 2:
            continue
        m = int(round(lag_ps * 1000.0 / (COARSE * dt_fs)))
        m = min(max(m, 1), fc.shape[0] - 1)
        d = fc[m:] - fc[:-m]
        vals.append(float(np.einsum("tad,tad->", d, d) / (d.shape[0] * d.shape[1])))
        lag_used = m * COARSE * dt_fs / 1000.0
    if not vals:
        return {"msd_A2": None, "lag_ps": None}
    return {"msd_A2": float(np.mean(vals)), "lag_ps": lag_used}


# ----------------------------------------------------------------------------------------------
# status.json handling

def read_status(traj: Path) -> tuple[dict | None, Path]:
    sp = Path(traj).parent / "status.json"
    if not sp.is_file():
        return None, sp
    try:
        st = json.loads(sp.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(sp, f"unreadable JSON ({exc})") from None
    if not isinstance(st, dict) or "status" not in st:
        raise InputError(sp, "no 'status' key", field="status")
    return st, sp


# ----------------------------------------------------------------------------------------------
# CLI

def failed_result(reason: str, excluded: list, *, temperature: float, species, structure=None, model=None,
                  polarization=None) -> dict:
    """A result with status 'failed': every contract quantity null, the reason and the excluded runs kept."""
    return {"schema": SCHEMA, "status": "failed", "reason": reason, "temperature_K": float(temperature),
            "species": list(species), "structure": structure, "model": model, "polarization": polarization,
            "trajectories": [], "excluded": excluded,
            **{q: {"mean": None, "sem": None} for q in QUANTITIES}}


def is_failed(result: dict) -> bool:
    return str(result.get("status", "ok")).lower() == "failed"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("traj", nargs="+", metavar="TRAJ",
                   help="trajectories (LAMMPS text dump or anything ASE reads); several = independent seeds "
                        "at one temperature. A sibling status.json saying 'failed' excludes a run.")
    p.add_argument("--species", action="append", default=None,
                   help="mobile species (repeat or comma-separate for several; default Li)")
    p.add_argument("--temperature", type=float, required=True, help="temperature in K")
    p.add_argument("--dt-fs", type=float, default=None,
                   help="time between consecutive frames in fs (default: dt_fs_between_frames of status.json)")
    p.add_argument("--fit-start-ps", type=float, default=None,
                   help=f"fit window start (default {DEFAULTS['fit_start_fraction']} x block length)")
    p.add_argument("--fit-end-ps", type=float, default=None,
                   help=f"fit window end (default {DEFAULTS['fit_end_fraction']} x block length)")
    p.add_argument("--charge", action="append", default=None, metavar="SPECIES=Q",
                   help="formal charge in e (default +1 for each mobile species); repeat")
    p.add_argument("--blocks", type=int, default=DEFAULTS["blocks"], help="blocks per trajectory")
    p.add_argument("--reference", choices=("count", "mass", "none"), default="count",
                   help="framework reference: count average (default), mass-weighted, or none")
    p.add_argument("--polarization", choices=("mobile", "all"), default="mobile",
                   help="collective displacement of the mobile ions only, or all-ion polarization "
                        "sum_i q_i r_i (needs --charge for every species)")
    p.add_argument("--type-map", default=None,
                   help="LAMMPS type -> element for dumps without an element column: '1=Li,2=O' or 'Li,O'")
    p.add_argument("--structure", default=None, help="structure label recorded in the result")
    p.add_argument("--model", default=None, help="model (ensemble member) label recorded in the result")
    p.add_argument("--beta-tolerance", type=float, default=DEFAULTS["beta_tolerance"])
    p.add_argument("--hop-length-A", type=float, default=DEFAULTS["hop_length_A"])
    p.add_argument("--min-hops", type=float, default=DEFAULTS["min_hops"])
    p.add_argument("--max-rel-sem", type=float, default=DEFAULTS["max_rel_sem"])
    p.add_argument("--framework-msd-max-A2", type=float, default=DEFAULTS["framework_msd_max_A2"])
    p.add_argument("--plot-msd", default=None, metavar="PNG", help="MSD/MSCD plot with the fit window")
    p.add_argument("--plot-running", default=None, metavar="PNG", help="running sigma*T(tau) plot")
    p.add_argument("-o", "--output", required=True, help="result JSON")


def _species(arg) -> list[str]:
    out = []
    for item in arg or ["Li"]:
        out += [s.strip() for s in str(item).split(",") if s.strip()]
    if not out:
        raise IonflowError("--species: no species given")
    return list(dict.fromkeys(out))


def run(args) -> int:
    from ..io.atomic import write_json
    from ..provenance import provenance

    species = _species(args.species)
    charges = parse_charges(args.charge)
    type_map = parse_type_map(args.type_map)
    if args.blocks < 1:
        raise IonflowError("--blocks must be >= 1")
    if not args.temperature > 0:
        raise IonflowError("--temperature must be positive (K)")
    if args.dt_fs is not None and not args.dt_fs > 0:
        raise IonflowError("--dt-fs must be positive")
    for s in species:
        if s in charges and charges[s] == 0:
            raise IonflowError(f"--charge {s}=0: a mobile species needs a non-zero charge")

    included, excluded, statuses, status_files = [], [], {}, []
    for t in args.traj:
        st, sp = read_status(Path(t))
        if st is not None:
            status_files.append(sp)
            if str(st.get("status")).lower() != "ok":
                excluded.append({"path": str(t), "status": st.get("status"),
                                 "reason": st.get("reason") or "status.json says the run failed"})
                continue
        if not Path(t).is_file():
            raise InputError(t, "file not found")
        included.append(t)
        statuses[str(t)] = st
    if not included:
        if not excluded:
            raise IonflowError("no trajectories given")
        # every run of this model at this T blew up: record it as a failed result that combine and
        # arrhenius exclude and list (the seed study's "catastrophic MD instability" is a finding)
        why = "; ".join(f"{e['path']}: {e['reason']}" for e in excluded)
        result = failed_result(f"all trajectories excluded by their status.json ({why})", excluded,
                               temperature=args.temperature, species=species, structure=args.structure,
                               model=args.model, polarization=args.polarization)
        result["provenance"] = provenance(stage="conductivity", inputs=status_files,
                                          options={k: v for k, v in vars(args).items() if not k.startswith("_")})
        from . import plots

        for path in (args.plot_msd, args.plot_running):
            if path:
                plots.plot_failed(result, path)
        write_json(args.output, result)
        print(f"warning: {result['reason']}", file=sys.stderr)
        return 0

    dts = {}
    for t in included:
        st = statuses[str(t)]
        if st is not None and st.get("dt_fs_between_frames") is not None:
            try:
                dts[str(t)] = float(st["dt_fs_between_frames"])
            except (TypeError, ValueError):
                raise InputError(Path(t).parent / "status.json", "not a number",
                                 field="dt_fs_between_frames") from None
    dt = args.dt_fs
    for t, d in dts.items():
        if dt is None:
            dt = d
        if not math.isclose(d, dt, rel_tol=1e-6):
            src = "--dt-fs" if args.dt_fs is not None else "another run's status.json"
            raise InputError(Path(t).parent / "status.json",
                             f"dt_fs_between_frames {d:g} disagrees with {src} ({dt:g})",
                             field="dt_fs_between_frames")
    if dt is None:
        raise IonflowError("time between frames unknown: give --dt-fs (no status.json with dt_fs_between_frames)")
    missing_dt = [t for t in included if str(t) not in dts]
    if args.dt_fs is None and missing_dt:
        raise InputError(missing_dt[0], "no --dt-fs and no dt_fs_between_frames in a sibling status.json",
                         field="dt_fs_between_frames")

    runs = [load_run(t, species, charges, reference=args.reference, polarization=args.polarization,
                     type_map=type_map) for t in included]
    result = analyse(runs, species=species, charges=charges, temperature_K=args.temperature, dt_fs=dt,
                     blocks=args.blocks, fit_start_ps=args.fit_start_ps, fit_end_ps=args.fit_end_ps,
                     polarization=args.polarization,
                     thresholds={"beta_tolerance": args.beta_tolerance, "hop_length_A": args.hop_length_A,
                                 "min_hops": args.min_hops, "max_rel_sem": args.max_rel_sem,
                                 "framework_msd_max_A2": args.framework_msd_max_A2})
    for tr in result["trajectories"]:
        st = statuses.get(tr["path"])
        if st is not None:
            tr["md_status"] = {k: st.get(k) for k in ("status", "temperature_K", "ensemble", "seed",
                                                      "dt_fs_between_frames") if k in st}
    result = {"structure": args.structure, "model": args.model, **result,
              "framework_reference": args.reference, "excluded": excluded}
    seeds = {tr["path"]: tr.get("md_status", {}).get("seed") for tr in result["trajectories"]}
    result["provenance"] = provenance(
        stage="conductivity", inputs=[*included, *status_files],
        options={k: v for k, v in vars(args).items() if not k.startswith("_")} | {"dt_fs": dt},
        seeds={k: v for k, v in seeds.items() if v is not None})
    if args.plot_msd or args.plot_running:
        from . import plots

        if args.plot_msd:
            plots.plot_msd(result, args.plot_msd)
        if args.plot_running:
            plots.plot_running(result, args.plot_running)
    write_json(args.output, result)
    conv = "converged" if result["converged"] else f"NOT converged: {result['not_converged_reason']}"
    print(f"sigma_tracer = {_pm(result['sigma_tracer_S_cm'])} S/cm, sigma_full = {_pm(result['sigma_full_S_cm'])} "
          f"S/cm, H_R = {_pm(result['haven_ratio'])}; {len(runs)} run(s), {len(excluded)} excluded; {conv}")
    return 0


def _pm(d) -> str:
    m, s = d["mean"], d["sem"]
    return f"{m:.3g} +- {s:.2g}" if s is not None and np.isfinite(s) else f"{m:.3g}"
