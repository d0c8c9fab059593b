"""The sweep figure: how the outcome classes, the early prediction of failure and the final
sharpness change with one configuration value (:func:`weightdyn.sensitivity.sweep_table`).

Not part of :data:`~weightdyn.figures.FIGURES`: a sweep has its own rule, which builds this
figure from the sweep table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from ..outcomes import CLASS_LABELS, HIGH, LOW
from ..sensitivity import _value
from ..tables import STABILITY_EDGE as _EDGE
from .curvature import _include_edge, _number
from .style import CLASS_LINESTYLES, FIGURE_WIDTH, _new_figure, _note, _styled

__all__ = ["COMBINATION_COLOURS", "sweep_figure"]

#: colours of the combinations, in the order of the table (Okabe–Ito, without the class colours)
COMBINATION_COLOURS = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: how a swept configuration key reads on the axis
_KEY_SYMBOLS = {"training.learning_rate": r"$\eta$"}
#: y label of each row
_ROWS = ("(a) fraction of runs", r"(b) AUC of $E_\mathrm{high}$ at $t^*$",
         r"(c) final $\eta\,\lambda_{\max}(H)$, median")


def _positions(values: list):
    """x positions of the swept values, whether the axis is logarithmic, and the tick labels:
    numbers as they are (log if all > 0 and max/min ≥ 4), anything else as categories."""
    labels = [_value(v) for v in values]
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return np.arange(len(values), dtype=float), False, labels
    if not np.isfinite(x).all():
        return np.arange(len(values), dtype=float), False, labels
    log = bool(x.size and (x > 0).all() and x.max() / x.min() >= 4)
    return x, log, labels


def _dodge(x: np.ndarray, log: bool, k: int, n: int) -> np.ndarray:
    """Shift series ``k`` of ``n`` sideways so that error bars at one value do not overlap."""
    if n <= 1:
        return x
    offset = (k - (n - 1) / 2) * 0.012
    if log:
        return x * 10 ** offset
    span = (np.ptp(x) if x.size > 1 and np.ptp(x) > 0 else 1.0)
    return x + offset * span


def _series(ax, x, y, colour, linestyle="-", marker="o", filled=True, lower=None, upper=None):
    """A line with markers (gaps at NaN) and, given bounds, error bars at the finite points."""
    y = np.asarray(y, dtype=float)
    face = colour if filled else "white"
    ax.plot(x, y, color=colour, linestyle=linestyle, marker=marker, markersize=4,
            markerfacecolor=face, markeredgecolor=colour, linewidth=1.0)
    if lower is not None:
        lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            err = np.clip(np.vstack([y[ok] - lo[ok], hi[ok] - y[ok]]), 0.0, None)
            ax.errorbar(x[ok], y[ok], yerr=err, fmt="none", ecolor=colour, elinewidth=0.8,
                        capsize=1.5)
    return bool(np.isfinite(y).any())


@_styled
def sweep_figure(table: pd.DataFrame, name: str, key: str) -> Figure:
    """The sweep ``name`` over configuration ``key``: one column per activation, three rows
    against the swept value (log x if all values are > 0 and span a factor ≥ 4; ticks at the
    values), colour = combination (activation, initialisation):

    (a) fraction of runs in the high-loss class (solid), in the low-loss class (dashed, open)
    and of diverged runs (dotted); the rest is the middle class;
    (b) AUC at t (the time nearest t*) of E_high by the nested best baseline (dashed, open
    markers) and the nested best FTLE indicator (solid, filled), with 95 % CIs as error bars;
    not computable: no point, and a note if nothing is;
    (c) median final sharpness η·λ_max by class (low solid, high dashed; log y), dashed black
    line at η·λ_max = 2, the edge of stability.
    """
    if table.empty:
        raise ValueError("need a non-empty sweep table")
    values = list(dict.fromkeys(table["value"].tolist()))
    x_all, log, labels = _positions(values)
    position = dict(zip(values, x_all))
    activations = list(dict.fromkeys(table["activation"]))
    combos = list(dict.fromkeys(zip(table["activation"], table["initialization"])))
    colour = {c: COMBINATION_COLOURS[k % len(COMBINATION_COLOURS)] for k, c in enumerate(combos)}
    fig = _new_figure(FIGURE_WIDTH, 6.2)
    axs = fig.subplots(3, len(activations), squeeze=False, sharex=True, sharey="row")
    symbol = _KEY_SYMBOLS.get(key, "")
    for col, activation in enumerate(activations):
        mine = [c for c in combos if c[0] == activation]
        a, b, c_ax = axs[:, col]
        a.set_title(activation)
        auc_shown = False
        for k, combo in enumerate(mine):
            rows = table[(table["activation"] == combo[0])
                         & (table["initialization"] == combo[1])]
            x = np.array([position[v] for v in rows["value"]], dtype=float)
            order = np.argsort(x, kind="stable")
            rows, x = rows.iloc[order], x[order]
            colr = colour[combo]
            _series(a, x, rows["frac_high"], colr)
            _series(a, x, rows["frac_low"], colr, linestyle="--", marker="s", filled=False)
            _series(a, x, rows["frac_diverged"], colr, linestyle=":", marker="x")
            for j, (prefix, linestyle, marker, filled) in enumerate(
                    (("best_baseline", "--", "D", False), ("best_indicator", "-", "o", True))):
                xd = _dodge(x, log, 2 * k + j, 2 * len(mine))
                auc_shown |= _series(b, xd, rows[f"{prefix}_auc"], colr, linestyle, marker,
                                     filled, rows[f"{prefix}_ci_low"],
                                     rows[f"{prefix}_ci_high"])
            for code in (LOW, HIGH):
                cls = CLASS_LABELS[code]
                sharp = np.array(rows[f"final_sharpness_median_{cls}"], dtype=float)
                sharp[~(sharp > 0)] = np.nan
                _series(c_ax, x, sharp, colr, CLASS_LINESTYLES[cls],
                        "o" if code == LOW else "^", code == LOW)
        if not auc_shown:
            _note(b, "AUC not computable")
        b.axhline(0.5, color="0.6", linestyle=":", linewidth=0.8, zorder=0)
        c_ax.axhline(_EDGE, color="k", linestyle="--", linewidth=0.8, zorder=0)
        c_ax.set_yscale("log")
        c_ax.set_xlabel(f"{key} {symbol}".strip())
    axs[0, 0].set_ylim(-0.03, 1.03)
    _include_edge(axs[2])
    axs[2, 0].yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axs[2, 0].yaxis.set_major_formatter(FuncFormatter(_number))
    axs[2, 0].yaxis.set_minor_formatter(NullFormatter())
    for r, label in enumerate(_ROWS):
        axs[r, 0].set_ylabel(label)
    ax0 = axs[0, 0]
    if log:
        ax0.set_xscale("log")
    ax0.set_xticks(x_all, labels)
    ax0.xaxis.set_minor_locator(NullLocator())
    if len(values) == 1:
        x0 = float(x_all[0])
        half = abs(x0) * 0.5 if x0 else 0.5
        ax0.set_xlim(x0 - half, x0 + half)
    fig.suptitle(f"sweep {name}: {key} {symbol}".strip())
    fig.legend(handles=_legend_handles(combos, colour), loc="outside lower center", ncol=4,
               handlelength=2.2, columnspacing=1.0)
    return fig


def _legend_handles(combos, colour) -> list[Line2D]:
    handles = [Line2D([], [], color=colour[c], linewidth=2.0, label=f"{c[0]}, {c[1]}")
               for c in combos]
    grey = "0.3"
    handles += [
        Line2D([], [], color=grey, marker="o", label="(a) high class"),
        Line2D([], [], color=grey, linestyle="--", marker="s", markerfacecolor="white",
               label="(a) low class"),
        Line2D([], [], color=grey, linestyle=":", marker="x", label="(a) diverged"),
        Line2D([], [], color=grey, linestyle="--", marker="D", markerfacecolor="white",
               label="(b) best baseline"),
        Line2D([], [], color=grey, marker="o", label="(b) best indicator (FTLE)"),
        Line2D([], [], color=grey, linestyle=CLASS_LINESTYLES["low"], marker="o",
               label="(c) low class"),
        Line2D([], [], color=grey, linestyle=CLASS_LINESTYLES["high"], marker="^",
               markerfacecolor="white", label="(c) high class"),
        Line2D([], [], color="k", linestyle="--", linewidth=0.8,
               label=r"(c) $\eta\,\lambda_{\max} = 2$ (stability edge)"),
    ]
    for h in handles:
        h.set_markersize(4)
    return handles

