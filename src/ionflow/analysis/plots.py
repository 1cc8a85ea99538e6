"""Figures of the conductivity analysis, drawn from result dictionaries only, written atomically (PNG)."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _arr(v):
    return np.array([np.nan if x is None else x for x in v], float)


def _title(res: dict) -> str:
    bits = [res.get("structure"), res.get("model"), f"{res['temperature_K']:g} K"]
    return " / ".join(str(b) for b in bits if b)


def plot_msd(res: dict, path) -> None:
    """Tracer MSD and charge MSD per ion vs lag (linear and log-log), fit window and fitted lines."""
    from ..io.atomic import save_figure

    plt = _plt()
    c = res["curves"]
    t = _arr(c["lag_ps"])
    msd, mscd = _arr(c["msd_A2"]), _arr(c["mscd_per_ion_A2"])
    w0, w1 = res["fit_window"]["start_ps"], res["fit_window"]["end_ps"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, log in zip(axes, (False, True)):
        ax.plot(t, msd, label="tracer MSD", color="C0")
        ax.plot(t, mscd, label="charge MSD / sum q$^2$", color="C1")
        for key, col in (("msd_sem_A2", "C0"), ("mscd_per_ion_sem_A2", "C1")):
            s = _arr(c.get(key, [None] * len(t)))
            base = msd if col == "C0" else mscd
            if np.isfinite(s).any():
                ax.fill_between(t, base - s, base + s, color=col, alpha=0.2, lw=0)
        ax.axvspan(w0, w1, color="0.85", zorder=0, label="fit window")
        # fitted lines: slope 6 D (in Å^2/ps), intercept from the curve mean in the window
        inw = (t >= w0) & (t <= w1)
        for D_key, base, col in (("D_tracer_cm2_s", msd, "C0"), ("D_sigma_cm2_s", mscd, "C1")):
            D = res[D_key]["mean"]
            if D is None or not inw.any():
                continue
            slope = 6.0 * D * 10.0 * 1000.0  # cm^2/s -> Å^2/fs (x10) -> Å^2/ps (x1000)
            icpt = np.nanmean(base[inw] - slope * t[inw])
            tt = np.linspace(w0, w1, 50)
            ax.plot(tt, icpt + slope * tt, "--", color=col, lw=1)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            b = res.get("diagnostics", {}).get("beta_tracer")
            if b is not None:
                ax.text(0.03, 0.95, f"beta (tracer, fit window) = {b:.2f}", transform=ax.transAxes, va="top")
        ax.set_xlabel("lag (ps)")
        ax.set_ylabel("Å$^2$")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"MSD / MSCD  {_title(res)}")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def plot_running(res: dict, path) -> None:
    """Running sigma*T(tau) for tracer and full conductivity with the fitted values as bands."""
    from ..io.atomic import save_figure

    plt = _plt()
    c = res["curves"]
    t = _arr(c["lag_ps"])
    T = res["temperature_K"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, res_key, col, lab in (("sigmaT_tracer_S_K_cm", "sigma_tracer_S_cm", "C0", "tracer"),
                                   ("sigmaT_full_S_K_cm", "sigma_full_S_cm", "C1", "full")):
        ax.plot(t, _arr(c[key]), color=col, label=f"{lab} (running)")
        m, s = res[res_key]["mean"], res[res_key]["sem"]
        if m is not None:
            s = s if s is not None and np.isfinite(s) else 0.0
            ax.axhspan((m - s) * T, (m + s) * T, color=col, alpha=0.2, lw=0)
            ax.axhline(m * T, color=col, ls="--", lw=1, label=f"{lab} fit: {m:.3g} S/cm")
    fw = res.get("fit_window") or {}
    if fw:
        ax.axvspan(fw["start_ps"], fw["end_ps"], color="0.9", zorder=0, label="fit window")
    ax.set_xscale("log")
    ax.set_xlabel("lag tau (ps)")
    ax.set_ylabel(r"$\sigma T$ (S K / cm)")
    ax.set_title(f"running conductivity  {_title(res)}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def plot_arrhenius(arr: dict, path) -> None:
    """sigma*T vs 1000/T (log scale) with error bars and weighted fit lines, tracer and full."""
    from ..io.atomic import save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for gi, g in enumerate(arr["groups"]):
        col = f"C{gi % 10}"
        name = f"{g['structure']}/{g['model']}"
        for kind, key, marker, fill in (("tracer", "sigma_tracer_S_cm", "o", col), ("full", "sigma_full_S_cm",
                                                                                    "s", "none")):
            T = np.array([p["temperature_K"] for p in g["points"]], float)
            m = _arr([p[key]["mean"] for p in g["points"]])
            s = _arr([p[key]["sem"] for p in g["points"]])
            ok = m > 0
            lo = np.where(np.isfinite(s), np.minimum(s, m * 0.999), 0.0)
            ax.errorbar(1000.0 / T[ok], (m * T)[ok], yerr=[(lo * T)[ok], (np.nan_to_num(s) * T)[ok]],
                        fmt=marker, mfc=fill, mec=col, color=col, capsize=3, label=f"{name} {kind}")
            f = g[kind]
            if "Ea_eV" in f:
                x = np.linspace(1000.0 / max(T.max(), 1), 1000.0 / 300.0, 50)
                y = np.exp(f["ln_prefactor"]["mean"] - f["Ea_eV"]["mean"] / (8.617333262e-5 * 1000.0 / x))
                ax.plot(x, y, "-" if kind == "tracer" else "--", color=col, lw=1,
                        label=f"{kind} Ea = {f['Ea_eV']['mean']:.3f} ± {f['Ea_eV']['sem']:.3f} eV")
                ci = f["sigma_300K_S_cm"]["ci95"]
                xb = 1000.0 / 300.0 + (-0.02 if kind == "tracer" else 0.02)
                ax.plot([xb, xb], [ci[0] * 300.0, ci[1] * 300.0], color=col, lw=3, alpha=0.4)
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(r"$\sigma T$ (S K / cm)")
    ax.set_title("Arrhenius (bars at 1000/300: 95 % CI of the 300 K extrapolation)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def plot_failed(result: dict, path) -> None:
    """Placeholder figure for a failed result: states which runs failed and why."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import save_figure

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.axis("off")
    head = f"{result.get('structure') or ''} {result.get('model') or ''} {result.get('temperature_K', 0):g} K: FAILED"
    ax.text(0.0, 1.0, head + "\n" + textwrap.fill(str(result.get("reason", "")), 90), va="top", ha="left",
            fontsize=8, family="monospace", transform=ax.transAxes)
    save_figure(fig, path, dpi=100)
    plt.close(fig)
