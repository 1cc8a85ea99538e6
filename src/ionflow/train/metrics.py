"""Test-split error metrics and parity plots from nequip-train's test predictions.

The predictions come from the official test run (best checkpoint, ``TestTimeXYZFileWriter``);
the metric definitions are nequip's: per-atom energy error per frame, force error per Cartesian
component, stress error per component of the 3x3 tensor. Metrics are given for the member's own
test frames (structures it was trained on) and per structure for every structure in the test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IonflowError

EV_A3_TO_GPA = 160.21766208

UNITS = {
    "E_MAE": "eV/atom", "E_RMSE": "eV/atom", "E_MAE_meV_per_atom": "meV/atom", "E_RMSE_meV_per_atom": "meV/atom",
    "F_MAE": "eV/Å", "F_RMSE": "eV/Å", "S_MAE": "eV/Å³", "S_RMSE": "eV/Å³", "S_MAE_GPa": "GPa",
    "WS": "dimensionless (λ in inverse units of each MAE)",
}


def read_predictions(pred_file: Path, reference: list) -> dict[str, np.ndarray]:
    """Predicted and reference E/atom, F, S arrays, checked to line up with ``reference`` frames."""
    from ase.io import read

    if not Path(pred_file).is_file():
        raise IonflowError(f"{pred_file}: nequip-train wrote no test predictions")
    pred = read(pred_file, index=":", format="extxyz")
    if len(pred) != len(reference):
        raise IonflowError(f"{pred_file}: {len(pred)} predicted frames, expected {len(reference)}")
    nat = np.array([len(a) for a in reference])
    if not all(len(p) == n for p, n in zip(pred, nat)) or not np.allclose(
            np.concatenate([p.positions for p in pred]), np.concatenate([a.positions for a in reference]),
            atol=1e-4):
        raise IonflowError(f"{pred_file}: predicted frames are not in the order of the test file")
    out = {
        "structure": np.array([str(a.info["structure"]) for a in reference]),
        "natoms": nat,
        "E_pred": np.array([p.get_potential_energy() for p in pred]) / nat,
        "E_ref": np.array([a.get_potential_energy() for a in reference]) / nat,
        "F_pred": np.concatenate([p.get_forces() for p in pred]),
        "F_ref": np.concatenate([a.get_forces() for a in reference]),
        "F_frame": np.repeat(np.arange(len(reference)), nat),
    }
    ref_has_s = np.array([("stress" in (a.calc.results if a.calc else {})) for a in reference])
    if ref_has_s.any():
        keep = np.flatnonzero(ref_has_s)
        out["S_frame"] = keep
        out["S_ref"] = np.array([reference[i].get_stress(voigt=False) for i in keep])
        out["S_pred"] = np.array([pred[i].get_stress(voigt=False) for i in keep])
    return out


def error_metrics(p: dict[str, np.ndarray], frames: np.ndarray, weights: dict) -> dict:
    """MAE/RMSE of E (eV/atom and meV/atom), F (eV/Å), S (eV/Å³, and MAE in GPa) and WS over ``frames``."""
    frames = np.asarray(frames)
    dE = p["E_pred"][frames] - p["E_ref"][frames]
    fmask = np.isin(p["F_frame"], frames)
    dF = (p["F_pred"][fmask] - p["F_ref"][fmask]).ravel()
    m: dict = {
        "n_frames": int(frames.size),
        "n_atoms": int(p["natoms"][frames].sum()),
        "E_MAE": float(np.mean(np.abs(dE))), "E_RMSE": float(np.sqrt(np.mean(dE**2))),
        "F_MAE": float(np.mean(np.abs(dF))), "F_RMSE": float(np.sqrt(np.mean(dF**2))),
    }
    m["E_MAE_meV_per_atom"] = 1000.0 * m["E_MAE"]
    m["E_RMSE_meV_per_atom"] = 1000.0 * m["E_RMSE"]
    smask = np.isin(p.get("S_frame", np.array([], int)), frames)
    if smask.any():
        dS = (p["S_pred"][smask] - p["S_ref"][smask]).ravel()
        m.update(S_MAE=float(np.mean(np.abs(dS))), S_RMSE=float(np.sqrt(np.mean(dS**2))))
        m["S_MAE_GPa"] = m["S_MAE"] * EV_A3_TO_GPA
    else:
        m.update(S_MAE=None, S_RMSE=None, S_MAE_GPa=None)
    ws = weights["energy"] * m["E_MAE"] + weights["forces"] * m["F_MAE"]
    if m["S_MAE"] is not None:
        ws += weights["stress"] * m["S_MAE"]
    m["WS"] = float(ws)
    m["WS_includes_stress"] = m["S_MAE"] is not None
    return m


def parity_plot(p: dict[str, np.ndarray], own: np.ndarray, path: Path, title: str) -> None:
    """E/atom, force-component and stress-component parity panels; each structure its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import save_figure

    structs = sorted(set(p["structure"].tolist()))
    has_s = "S_ref" in p
    fig, axes = plt.subplots(1, 3 if has_s else 2, figsize=(12 if has_s else 8, 4), constrained_layout=True)
    panels = [("E", "energy (eV/atom)", p["E_ref"], p["E_pred"], p["structure"])]
    panels.append(("F", "force component (eV/Å)", p["F_ref"].ravel(), p["F_pred"].ravel(),
                   np.repeat(p["structure"][p["F_frame"]], 3)))
    if has_s:
        panels.append(("S", "stress component (eV/Å³)", p["S_ref"].reshape(-1), p["S_pred"].reshape(-1),
                       np.repeat(p["structure"][p["S_frame"]], 9)))
    own_set = set(p["structure"][own].tolist())
    for ax, (key, label, ref, pred, st) in zip(axes, panels):
        for s in structs:
            sel = st == s
            tag = "" if s in own_set else " (not trained on)"
            ax.scatter(ref[sel], pred[sel], s=6 if key != "E" else 14, alpha=0.6, label=f"{s}{tag}")
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.8)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"model {label}")
        d = pred - ref
        ax.set_title(f"{key}: MAE {np.mean(np.abs(d)):.3g}, RMSE {np.sqrt(np.mean(d**2)):.3g}", fontsize=9)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{title} — test split", fontsize=10)
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def training_history(run_dir: Path) -> dict:
    """Epochs trained and the validation score curve from Lightning's CSV logs (all restarts)."""
    import csv

    epochs: dict[int, float] = {}
    for f in sorted(Path(run_dir).glob("csv/version_*/metrics.csv"), key=lambda q: int(q.parent.name.split("_")[1])):
        with open(f) as fh:
            for row in csv.DictReader(fh):
                v = row.get("val0_epoch/weighted_sum")
                if v:
                    epochs[int(row["epoch"])] = float(v)
    if not epochs:
        return {"epochs_trained": 0, "best_epoch": None, "val_WS": []}
    e = sorted(epochs)
    best = min(e, key=lambda k: epochs[k])
    return {"epochs_trained": e[-1] + 1, "best_epoch": best, "val_WS": [[k, epochs[k]] for k in e]}


def nequip_test_metrics(run_dir: Path) -> dict:
    """The ``test0_epoch/*`` numbers nequip logged (last CSV version), for cross-checking."""
    import csv

    files = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"), key=lambda q: int(q.parent.name.split("_")[1]))
    out: dict = {}
    for f in files[-1:]:
        with open(f) as fh:
            for row in csv.DictReader(fh):
                out.update({k: float(v) for k, v in row.items() if k.startswith("test0_epoch/") and v})
    return out


def count_parameters(ckpt: Path) -> int:
    """Trainable parameters (the EMA copies track exactly the trainable weights)."""
    import torch

    sd = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    n = sum(v.numel() for k, v in sd.items() if k.startswith("ema.ema_weight_"))
    if n == 0:
        n = sum(v.numel() for k, v in sd.items() if k.startswith("model.") and v.is_floating_point())
    return int(n)
