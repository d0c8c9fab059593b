"""Figure 8: accuracy of the fixed-lag CLV estimate (the CLV features' approximation of
Ginelli's CLVs) against the lag, at the headline prediction time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..prediction import CLV_CONVERGENCE_ANGLE
from .helpers import _any_finite, _finite, _gathered_headline, _nearest_index, _positive, _silent
from .style import SEQUENTIAL_CMAP, _grid_figure, _note, _outer_labels, _styled

__all__ = ["lag_accuracy"]


@_styled
def lag_accuracy(gathered: Mapping, t: float | None = None, lag: int | None = None,
                 vectors: Sequence[int] = (5, 6, 7, 8)) -> Figure:
    """Figure 8: median over networks of the angle between the fixed-lag CLV estimate and
    Ginelli's CLV, per CLV index, against the lag L (steps), at prediction time ``t``; log–log.
    ``t`` defaults to the datasets' ``headline_time`` attribute, else the first prediction
    time; the nearest stored prediction time is used (and named in the title).

    Colour = CLV index (sequential map); the CLVs ``vectors`` used by the CLV features drawn
    thicker; dashed line at the convergence criterion CLV_CONVERGENCE_ANGLE, dotted line at
    the features' lag ``lag`` (none if None).
    """
    if t is None:
        t = _gathered_headline(gathered)
    if t is None:
        t = float(np.asarray(next(iter(gathered.values()))["prediction_time"].values)[0])
    fig, axs, panels = _grid_figure(gathered, sharex=True, sharey=True, extra_height=0.3)
    d = max(int(G.sizes["exponent"]) for G in gathered.values())
    t_used = t
    cmap = matplotlib.colormaps[SEQUENTIAL_CMAP]
    colours = {i: cmap(0.9 * (i - 1) / max(d - 1, 1)) for i in range(1, d + 1)}
    shown = set()
    for key, ax in panels.items():
        G = gathered[key]
        ax.set_xscale("log")
        ax.set_yscale("log")
        lags = _positive(G["lag"].values)
        coord = np.asarray(G["prediction_time"].values, dtype=float)
        t_used = float(coord[_nearest_index(coord, t)])
        err = G["clv_lag_error"].sel(prediction_time=t_used)
        err = err.transpose("network", "lag", "exponent").values
        median = _positive(_silent(np.nanmedian, _finite(err), axis=0))  # (lag, exponent)
        drawn = False
        for k, exponent in enumerate(int(e) for e in G["exponent"].values):
            y = median[:, k]
            if not _any_finite(y):
                continue
            drawn = True
            shown.add(exponent)
            ax.plot(lags, y, color=colours.get(exponent, "k"), marker="o", markersize=2.5,
                    linewidth=1.6 if exponent in vectors else 0.8)
        ax.axhline(CLV_CONVERGENCE_ANGLE, color="k", linestyle="--", linewidth=0.7)
        if lag is not None:
            ax.axvline(lag, color="k", linestyle=":", linewidth=0.9)
        if not drawn:
            _note(ax, "no lagged CLV estimate")
    _outer_labels(axs, panels.values(), "lag $L$ (steps)", "median angle to Ginelli CLV (rad)")
    handles = [Line2D([], [], color=colours[i], marker="o", markersize=2.5,
                      linewidth=1.6 if i in vectors else 0.8, label=f"CLV {i}")
               for i in sorted(shown)]
    handles.append(Line2D([], [], color="k", linestyle="--", linewidth=0.7,
                          label=f"{CLV_CONVERGENCE_ANGLE:g} rad (converged)"))
    if lag is not None:
        handles.append(Line2D([], [], color="k", linestyle=":", linewidth=0.9,
                              label=f"feature lag $L$ = {lag} steps"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
                   columnspacing=1.0, handlelength=1.5)
    fig.suptitle(f"Fixed-lag CLV estimate vs Ginelli at $t^* = {t_used:g}$"
                 + ("" if np.isclose(t_used, t) else f" (nearest to {t:g})"))
    return fig
