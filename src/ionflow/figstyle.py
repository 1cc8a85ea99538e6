"""One publication style for every paper figure of ``ionflow figures``.

Sizes are journal column widths (single 3.4 in, double 7.0 in); fonts are the DejaVu fonts that ship
with matplotlib (same glyphs on every machine), embedded as TrueType (PDF fonttype 42) so the PDFs
stay editable; colours are the Okabe-Ito colour-blind-safe palette. PDFs carry no creation date,
so regenerating a figure from the same results gives the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Okabe-Ito palette (colour-blind safe), black first
PALETTE = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442")
SINGLE_COLUMN_IN = 3.4
DOUBLE_COLUMN_IN = 7.0


@dataclass(frozen=True)
class Style:
    font_size: float = 8.0
    dpi: int = 300
    formats: tuple[str, ...] = ("pdf", "png")

    def rc(self) -> dict:
        from cycler import cycler

        fs = self.font_size
        return {
            "font.family": "DejaVu Sans",
            "mathtext.fontset": "dejavusans",
            "font.size": fs,
            "axes.titlesize": fs,
            "axes.labelsize": fs,
            "legend.fontsize": fs - 1,
            "legend.frameon": False,
            "xtick.labelsize": fs - 1,
            "ytick.labelsize": fs - 1,
            "xtick.direction": "in",
            "ytick.direction": "in",
            "xtick.top": True,
            "ytick.right": True,
            "axes.linewidth": 0.6,
            "lines.linewidth": 1.0,
            "lines.markersize": 4.0,
            "errorbar.capsize": 2.0,
            "axes.prop_cycle": cycler(color=list(PALETTE[1:]) + [PALETTE[0]]),
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "svg.fonttype": "none",
            "savefig.bbox": "standard",     # exact journal widths; the layout is constrained_layout's
            "figure.dpi": 100,
            "image.cmap": "viridis",
        }


def pyplot(style: Style):
    """matplotlib.pyplot with the Agg backend and this style applied (global rcParams)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(style.rc())
    return plt


def color(i: int) -> str:
    """i-th colour of the palette after black (black is kept for ensembles / references)."""
    return PALETTE[1 + i % (len(PALETTE) - 1)]


def panel_label(ax, text: str) -> None:
    """(a), (b), ... in the upper-left corner of a panel."""
    ax.text(0.02, 0.97, f"({text})", transform=ax.transAxes, va="top", ha="left", fontweight="bold")
