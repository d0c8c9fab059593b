"""Figures of the prediction of the outcome from early dynamics: ROC curves at the headline
time (figure 6), AUC against availability time (figure 7) and early stopping (figure 9).

Each has one row per (activation, event), E_high first, and one column per initialisation
(figure 9: one panel per combination); the headline time comes from ``t`` / ``t_mark`` or the
datasets' ``headline_time`` attribute (:func:`~weightdyn.figures.helpers.headline_time`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from ..outcomes import EVENTS
from .helpers import _finite, _nearest_index, headline_time
from .style import (FAMILY_STYLES, FIGURE_WIDTH, FONT_SIZE, GINELLI_COLOUR, SEQUENTIAL_CMAP,
                    _grid_figure, _headline_line, _layout, _new_figure, _note, _outer_labels,
                    _sqrt, _styled, _title)

__all__ = ["auc_vs_time", "best_series", "early_stopping", "roc_curves"]

#: panel-title label of each event
_EVENT_LABEL = {event: rf"$E_\mathrm{{{event}}}$" for event in EVENTS}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _events(P) -> list[str]:
    return [str(e) for e in P["event"].values]


def _event_grid(data: Mapping, panel_height: float, extra_height: float = 0.0):
    """Grid with one row per (activation, event) and one column per initialisation; events =
    those reported by any dataset (E_high first). Returns (fig, axs, {(key, event): ax},
    events); a combination that omits an event keeps its panel, with the reason as a note."""
    activations, initializations = _layout(data)
    events = [e for e in EVENTS if any(e in _events(P) for P in data.values())]
    rows = [(a, e) for a in activations for e in events]
    panel_height = min(panel_height, (9.6 - 0.35 - extra_height) / len(rows))  # fits a page
    fig = _new_figure(FIGURE_WIDTH, panel_height * len(rows) + 0.35 + extra_height)
    axs = fig.subplots(len(rows), len(initializations), squeeze=False, sharex=True,
                       sharey=True)
    panels = {}
    for r, (activation, event) in enumerate(rows):
        for c, initialization in enumerate(initializations):
            ax = axs[r, c]
            key = (activation, initialization)
            if key not in data:
                fig.delaxes(ax)
                continue
            ax.set_title(f"{_title(key)}: {_EVENT_LABEL[event]}")
            if event in _events(data[key]):
                panels[(key, event)] = ax
            else:
                note = str(data[key].attrs.get("e_low_note", "")) or f"{event} not reported"
                _note(ax, "\n".join(_wrap(note, 34)))
    present = [ax for ax in axs.ravel() if ax.figure is fig and ax in fig.axes]
    return fig, axs, panels, events, present


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def best_series(P, event: str, family: str):
    """The nested best of ``family`` for ``event`` by availability time τ: arrays
    (tau, auc_mean, ci_low, ci_high) and the chosen-set labels (NaN / '' where not computable)."""
    at = dict(event=event, best_family=family)
    tau = np.asarray(P["tau"].values, dtype=float)
    return (tau, _finite(P["best_auc_mean"].sel(**at).values),
            _finite(P["best_auc_ci_low"].sel(**at).values),
            _finite(P["best_auc_ci_high"].sel(**at).values),
            [str(v) for v in P["best_chosen"].sel(**at).values])


def _family_style(family: str) -> dict:
    return FAMILY_STYLES.get(family, {"linestyle": "-.", "marker": "D", "color": "0.3"})


# --------------------------------------------------------------------------------------------
# 6. ROC curves
# --------------------------------------------------------------------------------------------

@_styled
def roc_curves(predictions: Mapping, t: float | None = None,
               families: Sequence[str] = tuple(FAMILY_STYLES)) -> Figure:
    """Figure 6: mean out-of-fold ROC curves of the nested best predictor of each family
    available at the headline time (``t``, default ``P.attrs['headline_time']``; the nearest
    availability time τ is used and named if it differs); the CLV family, which is available
    only at t* + L, is drawn at its first availability time instead. Legend: family, most
    AUC [95 % CI], τ (the chosen sets are in auc.csv / summary.md). Colour / line style =
    family; dotted diagonal = chance. One row per (activation, event), E_low only where it is
    reported.
    """
    fig, axs, panels, events, present = _event_grid(predictions, panel_height=2.5)
    titles = set()
    for (key, event), ax in panels.items():
        P = predictions[key]
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        fpr = np.asarray(P["fpr"].values, dtype=float)
        tau_all = np.asarray(P["tau"].values, dtype=float)
        th = headline_time(P, t)
        k_head = _nearest_index(tau_all, th)
        titles.add(f"{th:g}" if np.isclose(tau_all[k_head], th) else
                   f"{th:g} (nearest τ = {tau_all[k_head]:g})")
        handles = []
        for family in families:
            style = _family_style(family)
            tau, mean, lo, hi, chosen = best_series(P, event, family)
            if family == "CLV":
                ok = np.flatnonzero(np.isfinite(mean) & (tau >= tau_all[k_head] - 1e-12))
                k = int(ok[0]) if ok.size else None
            else:
                k = k_head if np.isfinite(mean[k_head]) else None
            if k is None:
                handles.append(Line2D([], [], color=style["color"], alpha=0.4,
                                      linestyle=style["linestyle"],
                                      label=f"{family}: not computable"))
                continue
            tpr = _finite(P["best_roc_tpr"].sel(event=event, best_family=family).values[k])
            ax.plot(fpr, tpr, color=style["color"], linestyle=style["linestyle"], linewidth=1.2)
            handles.append(Line2D([], [], color=style["color"], linestyle=style["linestyle"],
                                  label=f"{family} {mean[k]:.2f} [{lo[k]:.2f}, {hi[k]:.2f}] "
                                        f"τ={tau[k]:g}"))
        ax.legend(handles=handles, loc="lower right", handlelength=1.5, borderaxespad=0.2,
                  labelspacing=0.2, handletextpad=0.4)
        if not any("not computable" not in h.get_label() for h in handles):
            _note(ax, "no computable predictor", y=0.75)
    _outer_labels(axs, present, "false-positive rate", "true-positive rate")
    when = ", ".join(sorted(titles))
    fig.suptitle(f"ROC of the nested best predictor per family available at τ = {when} "
                 "(CLV: first τ it is available); AUC [95 % CI]", fontsize=FONT_SIZE)
    return fig


# --------------------------------------------------------------------------------------------
# 7. AUC against availability time
# --------------------------------------------------------------------------------------------

@_styled
def auc_vs_time(predictions: Mapping, t_mark: float | None = None,
                families: Sequence[str] = tuple(FAMILY_STYLES)) -> Figure:
    """Figure 7: AUC of the nested best predictor of each family against the time τ at which it
    is AVAILABLE (log x), with its 95 % DeLong interval as a band; the baseline family is
    drawn like the others. The Ginelli CLV set (``ginelli_all``) is drawn dashed, at the
    prediction time t* it refers to, and labelled as an upper bound (it uses the future).
    One row per (activation, event): E_low has its own panels (where it is reported).
    Dotted lines: chance (AUC 0.5) and the headline time (``t_mark``, default from the
    dataset attrs).
    """
    fig, axs, panels, events, present = _event_grid(predictions, panel_height=2.2,
                                                    extra_height=0.35)
    labels = {}
    ymin = 0.45
    for (key, event), ax in panels.items():
        P = predictions[key]
        ax.set_xscale("log")
        ax.axhline(0.5, color="0.6", linestyle=":", linewidth=0.8)
        _headline_line(ax, headline_time(P, t_mark))
        drawn = False
        for family in families:
            style = _family_style(family)
            tau, mean, lo, hi, _ = best_series(P, event, family)
            labels[family] = Line2D([], [], color=style["color"], marker=style["marker"],
                                    linestyle=style["linestyle"], markersize=3.5,
                                    label=f"best {family} (nested)")
            ok = np.isfinite(mean) & (tau > 0)
            if not ok.any():
                continue
            drawn = True
            ax.fill_between(tau[ok], lo[ok], hi[ok], color=style["color"], alpha=0.15,
                            linewidth=0)
            ax.plot(tau[ok], mean[ok], color=style["color"], marker=style["marker"],
                    linestyle=style["linestyle"], markersize=3.0, linewidth=1.0)
            ymin = min(ymin, float(np.nanmin(lo[ok])))
        if "ginelli_all" in set(np.asarray(P["feature"].values).astype(str)):
            g = P["auc_mean"].sel(event=event, feature="ginelli_all")
            x = np.asarray(P["prediction_time"].values, dtype=float)
            y = _finite(g.values)
            ok = np.isfinite(y) & (x > 0)
            if ok.any():
                ax.plot(x[ok], y[ok], color=GINELLI_COLOUR, linestyle="--", marker="x",
                        markersize=3.5, linewidth=0.9)
                labels["ginelli"] = Line2D([], [], color=GINELLI_COLOUR, linestyle="--",
                                           marker="x", markersize=3.5,
                                           label="Ginelli CLVs at $t^*$: upper bound "
                                                 "(uses the future)")
                ymin = min(ymin, float(np.nanmin(y[ok])))
        if not drawn:
            _note(ax, "no computable predictor")
    for ax in panels.values():
        ax.set_ylim(max(0.0, ymin - 0.03), 1.02)
    for ax in panels.values():
        ax.xaxis.set_minor_formatter(NullFormatter())
    _outer_labels(axs, present, "availability time τ (flow time)", "AUC [95 % CI]")
    handles = list(labels.values())
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3))
    return fig


# --------------------------------------------------------------------------------------------
# 9. early stopping
# --------------------------------------------------------------------------------------------

@_styled
def early_stopping(predictions: Mapping, mark_threshold: float | None = 0.5,
                   t_mark: float | None = None) -> Figure:
    """Figure 9: compute saved against the fraction of E_low runs stopped by mistake.

    At each prediction time t*, runs whose out-of-fold P(E_high) from the nested best of all
    families available by t* exceeds a threshold are stopped at step n* = t*/η; sweeping the
    threshold traces one curve per t* (colour = t*, sequential map; the headline t* — ``t_mark``,
    default from the dataset attrs — thicker). A dot marks ``mark_threshold``. Grey dashed:
    chance at the headline t* (stopping a random fraction f loses f of the E_low runs and saves
    f (T − n*)/T); stars: the best possible point per t* (stop exactly the E_high runs: nothing
    lost, frac_high (T − n*)/T saved). The x axis has a square-root scale.
    """
    fig, axs, panels = _grid_figure(predictions, sharex=True, sharey=True, extra_height=0.35)
    times = sorted({float(t) for P in predictions.values()
                    for t in P["prediction_time"].values})
    cmap = matplotlib.colormaps[SEQUENTIAL_CMAP]
    colours = {t: cmap(0.9 * k / max(len(times) - 1, 1)) for k, t in enumerate(times)}
    shown = set()
    heads = set()
    for key, ax in panels.items():
        P = predictions[key]
        ax.set_xscale("function", functions=(_sqrt, np.square))
        thresholds = np.asarray(P["threshold"].values, dtype=float)
        ptimes = np.asarray(P["prediction_time"].values, dtype=float)
        head = ptimes[_nearest_index(ptimes, headline_time(P, t_mark))]
        heads.add(float(head))
        if "stop_chance_slope" in P:
            slope = float(P["stop_chance_slope"].sel(prediction_time=head))
            f = np.linspace(0.0, 1.0, 101)
            ax.plot(f, f * slope, color="0.5", linestyle="--", linewidth=0.8, zorder=1)
        drawn = False
        for t in ptimes:
            lost = _finite(P["stop_low_lost"].sel(prediction_time=t).values)
            saved = _finite(P["stop_compute_saved"].sel(prediction_time=t).values)
            ok = np.isfinite(lost) & np.isfinite(saved)
            colour = colours[float(t)]
            if "stop_best_saved" in P:
                best = float(P["stop_best_saved"].sel(prediction_time=t))
                if np.isfinite(best):
                    ax.plot(0.0, best, marker="*", color=colour, markersize=6,
                            markeredgecolor="k", markeredgewidth=0.3, zorder=5, clip_on=False)
            if not ok.any():
                continue
            drawn = True
            shown.add(float(t))
            is_head = np.isclose(t, head)
            ax.plot(lost[ok], saved[ok], color=colour, linewidth=2.0 if is_head else 1.0,
                    zorder=3 if is_head else 2)
            if mark_threshold is not None:
                k = int(np.argmin(np.abs(thresholds - mark_threshold)))
                if ok[k]:
                    ax.plot(lost[k], saved[k], marker="o", color=colour, markersize=3.5,
                            markeredgecolor="k", markeredgewidth=0.4, zorder=4)
        if not drawn:
            _note(ax, "early stopping not computable\n"
                      r"(no $E_\mathrm{high}$ predictor)")
    for ax in panels.values():
        ax.set_xlim(0.0, 1.0)
        ax.set_xticks([0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0],
                      ["0", "0.01", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1"])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, color="0.9", linewidth=0.5)
    _outer_labels(axs, panels.values(), "fraction of $E_\\mathrm{low}$ runs stopped (lost)",
                  "compute saved (fraction of steps)")
    handles = [Line2D([], [], color=colours[t],
                      linewidth=2.0 if any(np.isclose(t, h) for h in heads) else 1.0,
                      label=f"$t^* = {t:g}$") for t in times if t in shown]
    if mark_threshold is not None and handles:
        handles.append(Line2D([], [], marker="o", color="0.5", markeredgecolor="k",
                              markeredgewidth=0.4, linestyle="none", markersize=3.5,
                              label=f"threshold {mark_threshold:g}"))
    handles.append(Line2D([], [], color="0.5", linestyle="--", linewidth=0.8,
                          label="chance (random stopping, headline $t^*$)"))
    handles.append(Line2D([], [], marker="*", color="0.5", markeredgecolor="k",
                          markeredgewidth=0.3, linestyle="none", markersize=6,
                          label=r"best possible (stop exactly $E_\mathrm{high}$)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3))
    return fig
