"""Figure 10: curvature of the cost along training and at its end, by outcome class.

The sharpness η·λ_max(H) (η the learning rate, λ_max the largest eigenvalue of the Hessian H of
the cost C) against flow time, and the final (λ_min, η·λ_max) of every run; gradient descent is
linearly stable only while η·λ_max < 2 (the edge of stability, drawn in both rows).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from ..outcomes import CLASS_LABELS, HIGH, LOW, MIDDLE
from ..tables import STABILITY_EDGE as _EDGE
from .helpers import _positive, _silent
from .style import (CLASS_COLOURS, COMPARED_CLASSES, FIGURE_WIDTH, _layout, _new_figure,
                    _note, _styled, _title)

__all__ = ["MAX_SCATTER_POINTS", "curvature"]

#: at most this many runs per class in a scatter panel (a fixed random subset beyond)
MAX_SCATTER_POINTS = 2000
_EDGE_STYLE = {"color": "k", "linestyle": "--", "linewidth": 0.8, "zorder": 1}


def _flow_time(G) -> np.ndarray:
    """Flow time of the ``step`` dimension: the ``t`` coordinate, else step·η."""
    if "t" in G.coords:
        return np.asarray(G["t"].values, dtype=float)
    return np.asarray(G["step"].values, dtype=float) * float(G.attrs["learning_rate"])


def _class_band(sharpness: np.ndarray):
    """(median, first quartile, third quartile) over networks (axis 0), NaN-safe."""
    q = _silent(lambda v, axis: np.nanquantile(v, [0.5, 0.25, 0.75], axis=axis), sharpness, 0)
    return q[0], q[1], q[2]


def _subsample(index: np.ndarray, limit: int = MAX_SCATTER_POINTS) -> np.ndarray:
    """At most ``limit`` of ``index``: a fixed random subset (seed 0), in index order."""
    if index.size <= limit:
        return index
    return np.sort(np.random.default_rng(0).choice(index, size=limit, replace=False))


def _symlog_threshold(values: np.ndarray) -> float:
    """Linear range of the λ_min axis: a power of ten near the 10 % quantile of |λ_min| (at
    least 1e-4 of the largest |λ_min|), so that the near-flat runs stay apart from 0."""
    a = np.abs(values[np.isfinite(values) & (values != 0)])
    if not a.size:
        return 1.0
    scale = max(float(np.quantile(a, 0.1)), 1e-4 * float(a.max()))
    return float(10.0 ** np.floor(np.log10(scale)))


def _time_panel(ax, G, eta: float) -> list[str]:
    """Median line and quartile band of η·λ_max(t) per compared class; the missing classes."""
    t = _flow_time(G)
    outcome = np.asarray(G["outcome"].values)
    hmax = np.asarray(G["hessian_max"].transpose("network", "step").values, dtype=float)
    missing = []
    for name in COMPARED_CLASSES:
        rows = outcome == CLASS_LABELS.index(name)
        sharp = _positive(eta * hmax[rows])
        if not rows.any() or not np.isfinite(sharp).any():
            missing.append(name)
            continue
        med, lo, hi = _class_band(sharp)
        colour = CLASS_COLOURS[name]
        ax.fill_between(t, lo, hi, color=colour, alpha=0.25, linewidth=0)
        ax.plot(t, med, color=colour, linewidth=1.0)
    return missing


def _scatter_panel(ax, G, eta: float) -> tuple[list[np.ndarray], bool]:
    """Final (λ_min, η·λ_max) per run in class colours; (λ_min values shown, anything shown)."""
    outcome = np.asarray(G["outcome"].values)
    lmin = np.asarray(G["final_hessian_min"].values, dtype=float)
    sharp = _positive(eta * np.asarray(G["final_hessian_max"].values, dtype=float))
    ok = np.isfinite(lmin) & np.isfinite(sharp)
    shown = []
    for code in (MIDDLE, LOW, HIGH):  # the compared classes on top
        index = _subsample(np.flatnonzero(ok & (outcome == code)))
        if index.size:
            ax.scatter(lmin[index], sharp[index], s=3, color=CLASS_COLOURS[CLASS_LABELS[code]],
                       alpha=0.5, linewidths=0, rasterized=True)
            shown.append(lmin[index])
    return shown, bool(shown)


@_styled
def curvature(gathered: Mapping) -> Figure:
    """Figure 10: sharpness η·λ_max(H) of the Hessian H of the cost, by outcome class.

    One column per combination. Top row: η·λ_max against flow time t (symlog x, linear up to
    the first recorded t > 0, so t = 0 is shown; log y), class median and quartile band (low,
    high). Bottom row: final λ_min(H) (symlog x) against final η·λ_max (log y), one point per
    run in class colours (at most :data:`MAX_SCATTER_POINTS` per class, a fixed random subset).
    Dashed line: η·λ_max = 2, the edge of linear stability of gradient descent. Diverged runs
    (NaN) and non-positive sharpness are left out; a missing class gets a note.
    """
    _layout(gathered)
    keys = list(gathered)
    fig = _new_figure(FIGURE_WIDTH, 4.6)
    axs = fig.subplots(2, len(keys), squeeze=False, sharex="row", sharey="row")
    first_t, last_t, lmin_shown = [], [], []
    for c, key in enumerate(keys):
        G = gathered[key]
        eta = float(G.attrs["learning_rate"])
        top, bottom = axs[0, c], axs[1, c]
        top.set_title(_title(key))
        t = _flow_time(G)
        first_t.extend(t[np.isfinite(t) & (t > 0)][:1])
        last_t.extend(t[np.isfinite(t)][-1:])
        missing = _time_panel(top, G, eta)
        if len(missing) == 2:
            _note(top, "no finite curvature")
        elif missing:  # where the missing class would be: high sharpness above low
            _note(top, f"no {missing[0]} class",
                  y=0.7 if missing[0] == CLASS_LABELS[HIGH] else 0.15)
        shown, any_shown = _scatter_panel(bottom, G, eta)
        lmin_shown.extend(shown)
        if not any_shown:
            _note(bottom, "no finite curvature")
        for ax in (top, bottom):
            ax.axhline(_EDGE, **_EDGE_STYLE)
            ax.set_yscale("log")
        bottom.axvline(0.0, color="0.6", linewidth=0.5, zorder=0)
        top.set_xlabel("flow time $t$")
        bottom.set_xlabel(r"final $\lambda_{\min}(H)$")
    _time_axis(axs[0, 0], min(first_t) if first_t else 1.0, max(last_t) if last_t else 1.0)
    lmin = np.concatenate(lmin_shown) if lmin_shown else np.array([])
    _lambda_axis(axs[1, 0], lmin)
    for r in range(2):
        axs[r, 0].set_ylabel(r"$\eta\,\lambda_{\max}(H)$" + ("" if r == 0 else " (final)"))
        _include_edge(axs[r])
    handles = [Patch(facecolor=CLASS_COLOURS[name], alpha=0.25, edgecolor=CLASS_COLOURS[name],
                     label=f"{name} class: median and quartiles") for name in COMPARED_CLASSES]
    handles += [Line2D([], [], color=CLASS_COLOURS[CLASS_LABELS[MIDDLE]], marker="o",
                       linestyle="none", markersize=3, label="middle class (final)"),
                Line2D([], [], **{k: v for k, v in _EDGE_STYLE.items() if k != "zorder"},
                       label=r"$\eta\,\lambda_{\max} = 2$ (stability edge)")]
    fig.legend(handles=handles, loc="outside upper center", ncol=2,
               handlelength=1.6, columnspacing=1.0)
    return fig


def _time_axis(ax, first: float, last: float) -> None:
    """Symlog flow-time axis from t = 0 (linear up to the first recorded t > 0) to ``last``,
    ticks at 0 and at the decades beyond ``first``."""
    ax.set_xscale("symlog", linthresh=first, linscale=0.4)
    ax.set_xlim(0.0, max(last, first))
    decades = 10.0 ** np.arange(np.ceil(np.log10(first)), np.floor(np.log10(max(last, first))) + 1)
    ax.xaxis.set_major_locator(FixedLocator([0.0, *decades]))
    ax.xaxis.set_major_formatter(FuncFormatter(_number))
    ax.xaxis.set_minor_locator(NullLocator())


def _number(v, _=None) -> str:
    return f"{v:g}".replace("-", "\u2212")


def _lambda_axis(ax, values: np.ndarray) -> None:
    """Symlog λ_min axis (:func:`_symlog_threshold`); ticks at 0 and at no more than two
    decades per sign, every other decade from the largest magnitude, none within a decade of
    the linear range (they would crowd 0)."""
    linthresh = _symlog_threshold(values)
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
    ticks = [0.0]
    v = values[np.isfinite(values)]
    for sign in (-1.0, 1.0):
        a = v[v * sign > 0] * sign
        if not a.size:
            continue
        top = int(np.floor(np.log10(a.max())))
        exponents = [k for k in range(top, int(np.log10(linthresh)), -2)][:2]
        ticks += [sign * 10.0 ** k for k in exponents]
    ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(_number))


def _include_edge(axes_row) -> None:
    """y limits of a log row that hold the data and the edge η·λ_max = 2 (a decade below and
    above it where there are no data)."""
    lows, highs = [], []
    for ax in axes_row:
        lim = ax.dataLim
        if np.isfinite(lim.minposy) and lim.y1 > 0:
            lows.append(lim.minposy)
            highs.append(lim.y1)
    low = min([*lows, _EDGE / 10]) if lows else _EDGE / 10
    high = max([*highs, _EDGE]) if highs else _EDGE * 10
    axes_row[0].set_ylim(low / 1.5, high * 1.5)
