"""Figures of the training outcomes: the final-loss distribution (figure 1) and the loss
curves of the sample runs (figure 2), in the colours of the outcome classes of
:mod:`weightdyn.outcomes`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..outcomes import CLASS_LABELS, HIGH, LOW, MIDDLE
from .helpers import _class_counts, _positive
from .style import CLASS_COLOURS, _grid_figure, _note, _outer_labels, _styled

__all__ = ["final_loss_distribution", "loss_curves"]


# --------------------------------------------------------------------------------------------
# 1. final loss distribution
# --------------------------------------------------------------------------------------------

@_styled
def final_loss_distribution(gathered: Mapping, bins: int = 40) -> Figure:
    """Figure 1: histogram of the final loss c_f (log axis) per combination.

    Stacked by class in :data:`CLASS_COLOURS`, dashed lines at the class thresholds
    (``G.attrs['low']``, ``G.attrs['high']``), the class fractions (of all networks, diverged
    runs counted in "high") in the legend. Diverged runs (non-finite c_f) cannot be placed on
    the axis and are only counted.
    """
    fig, axs, panels = _grid_figure(gathered, sharex=True)
    finite_all = [np.asarray(G["final_loss"].values, dtype=float) for G in gathered.values()]
    finite_all = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in finite_all])
    thresholds = [float(v) for G in gathered.values() for v in (G.attrs["low"], G.attrs["high"])]
    extent = np.concatenate([np.asarray(thresholds, dtype=float), finite_all])
    lo, hi = np.log10(extent.min()), np.log10(extent.max())
    edges = np.logspace(np.floor(lo * 4) / 4 - 0.25, np.ceil(hi * 4) / 4 + 0.25, bins + 1)

    for key, ax in panels.items():
        G = gathered[key]
        ax.set_xscale("log")
        low, high = float(G.attrs["low"]), float(G.attrs["high"])
        cf = np.asarray(G["final_loss"].values, dtype=float)
        outcome = np.asarray(G["outcome"].values)
        diverged = np.asarray(G["diverged"].values).astype(bool)
        n = cf.size
        for threshold in (low, high):
            ax.axvline(threshold, color="k", linestyle="--", linewidth=0.8)
        if n == 0:
            _note(ax, "no networks")
            continue
        shown = np.isfinite(cf) & (cf > 0)
        ax.hist([cf[shown & (outcome == code)] for code in (LOW, MIDDLE, HIGH)], bins=edges,
                stacked=True, color=[CLASS_COLOURS[name] for name in CLASS_LABELS],
                histtype="stepfilled", linewidth=0)
        counts = _class_counts(outcome)
        labels = {name: f"{name} {counts[name] / n:.1%}" for name in CLASS_LABELS}
        labels[CLASS_LABELS[HIGH]] += f" ({diverged.sum() / n:.1%} diverged)"
        handles = [Patch(color=CLASS_COLOURS[name], label=labels[name]) for name in CLASS_LABELS]
        handles.append(Line2D([], [], color="k", linestyle="--", linewidth=0.8,
                              label=f"thresholds {low:g}, {high:g}"))
        ax.legend(handles=handles, loc="upper left", handlelength=1.2, borderaxespad=0.3)
        if not shown.any():
            _note(ax, "no finite final loss")
            ax.set_ylim(0, 1)
            continue
        ax.margins(y=0.05)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # room for the legend above the bars
    _outer_labels(axs, panels.values(), "final loss $c_f$", "networks")
    return fig


# --------------------------------------------------------------------------------------------
# 2. loss curves of sample runs
# --------------------------------------------------------------------------------------------

@_styled
def loss_curves(gathered: Mapping) -> Figure:
    """Figure 2: training loss of the sample runs against flow time t = step·η, log y.

    One line per sample run in its class colour (an unknown code counts as high); runs that
    diverge end in a cross at their last finite value; dotted lines at the class thresholds.
    """
    fig, axs, panels = _grid_figure(gathered, sharex=True, sharey=True, extra_height=0.25)
    present = set()
    for key, ax in panels.items():
        G = gathered[key]
        ax.set_yscale("log")
        low, high = float(G.attrs["low"]), float(G.attrs["high"])
        for threshold in (low, high):
            ax.axhline(threshold, color="k", linestyle=":", linewidth=0.7, zorder=0)
        t = np.asarray(G["step"].values, dtype=float) * float(G.attrs["learning_rate"])
        curves = _positive(G["loss_curve"].values)
        sample_outcome = np.asarray(G["sample_outcome"].values)
        drawn = False
        for curve, code in zip(curves, sample_outcome):
            code = int(code) if int(code) in (LOW, MIDDLE, HIGH) else HIGH
            name = CLASS_LABELS[code]
            ok = np.flatnonzero(np.isfinite(curve))
            if ok.size == 0:
                continue
            drawn = True
            present.add(name)
            ax.plot(t, curve, color=CLASS_COLOURS[name], linewidth=0.9, alpha=0.85)
            if ok[-1] < curve.size - 1:  # NaN after the last finite value: diverged
                present.add("diverged")
                ax.plot(t[ok[-1]], curve[ok[-1]], marker="x", color=CLASS_COLOURS[name],
                        markersize=5, linestyle="none")
        if not drawn:
            _note(ax, "no sample runs")
    _outer_labels(axs, panels.values(), "flow time $t$", r"training loss $C(\theta)$")
    handles = [Line2D([], [], color=CLASS_COLOURS[name], label=f"{name} class")
               for name in CLASS_LABELS]
    handles.append(Line2D([], [], color="k", marker="x", linestyle="none",
                          label="diverged (last finite value)"))
    handles.append(Line2D([], [], color="k", linestyle=":", linewidth=0.7,
                          label="class thresholds"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles))
    return fig
