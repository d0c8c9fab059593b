"""Figures of the Lyapunov analysis by outcome class: FTLE spectra over time (figure 3),
whole-run exponents against the final loss (figure 4) and CLV angle statistics (figure 5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..outcomes import CLASS_LABELS, HIGH, LOW
from .helpers import (_any_finite, _gathered_headline, _median_and_band, _positive,
                      _quantile_index, _silent)
from .style import (CLASS_COLOURS, CLASS_LINESTYLES, COMPARED_CLASSES, FIGURE_WIDTH,
                    HEATMAP_CMAP, _headline_line, _layout, _new_figure, _note, _row_figure,
                    _scale_row, _styled, _title)

__all__ = ["clv_angles", "default_angle_pairs", "default_scatter_exponents",
           "exponents_vs_final_loss", "ftle_spectra", "pair_colour"]


# --------------------------------------------------------------------------------------------
# 3. FTLE spectra over time
# --------------------------------------------------------------------------------------------

def _exponent_rows(gathered: Mapping, exponents) -> list[int]:
    if exponents is None:
        available = [int(e) for G in gathered.values() for e in G["exponent"].values]
        return sorted(dict.fromkeys(available))
    return [int(e) for e in exponents]


def _exponent_label(i) -> str:
    return rf"$\Lambda_{{{int(i)}}}(t)$ (1/t)"


@_styled
def ftle_spectra(gathered: Mapping, exponents: Sequence[int] | None = None,
                 t_mark: float | None = None) -> Figure:
    """Figure 3: cumulative FTLE Λ_i(t) against flow time, low vs high class.

    One row per exponent i (default: all), one column per combination; rows share the y axis
    (symlog when values exceed ±30 and change sign or span > 2 decades). Line = class median,
    band = the quartiles (smallest to largest quantile in ``G.ftle_quantiles``), in class
    colours.
    Dotted vertical line at the headline prediction time ``t_mark`` (default: the datasets'
    ``headline_time`` attribute; no line if there is none).
    """
    t_mark = _gathered_headline(gathered) if t_mark is None else t_mark
    rows = _exponent_rows(gathered, exponents)
    fig, axs, keys = _row_figure(gathered, len(rows), row_height=0.95 if len(rows) > 4 else 1.6)
    for r, exponent in enumerate(rows):
        row_values = []
        for c, key in enumerate(keys):
            G = gathered[key]
            ax = axs[r, c]
            ax.set_xscale("log")
            _headline_line(ax, t_mark)
            if exponent not in set(int(e) for e in G["exponent"].values):
                _note(ax, f"no exponent {exponent}")
                continue
            t = _positive(G["time"].values)
            quantiles = G["ftle_quantiles"].sel(exponent=exponent)
            missing = []
            for name in COMPARED_CLASSES:
                med, lo, hi = _median_and_band(quantiles.sel(class_name=name))
                if not _any_finite(med):
                    missing.append(name)
                    continue
                colour = CLASS_COLOURS[name]
                ax.fill_between(t, lo, hi, color=colour, alpha=0.25, linewidth=0)
                ax.plot(t, med, color=colour, linewidth=1.0)
                row_values.extend([med, lo, hi])
            if missing:
                _note(ax, "no " + " / ".join(missing) + " class",
                      y=0.5 if len(missing) == 2 else 0.85)
        _scale_row(axs[r], row_values)
        axs[r, 0].set_ylabel(_exponent_label(exponent))
    for ax in axs[-1]:
        ax.set_xlabel("flow time $t$")
    handles = [Patch(facecolor=CLASS_COLOURS[name], alpha=0.25, edgecolor=CLASS_COLOURS[name],
                     label=f"{name} class: median and quartiles") for name in COMPARED_CLASSES]
    if t_mark is not None:
        handles.append(Line2D([], [], color="0.5", linestyle=":", label=f"$t^* = {t_mark:g}$"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles))
    return fig


# --------------------------------------------------------------------------------------------
# 4. whole-run exponents against the final loss
# --------------------------------------------------------------------------------------------

def default_scatter_exponents(d: int) -> list[int]:
    """Λ_1 and the marginally stable Λ_5 … Λ_8 (for d ≥ 8), else Λ_1 and Λ_d."""
    if d >= 8:
        return [1, 5, 6, 7, 8]
    return sorted({1, d})


@_styled
def exponents_vs_final_loss(gathered: Mapping, exponents: Sequence[int] | None = None) -> Figure:
    """Figure 4: whole-run exponents Λ_i against the final loss c_f (log x).

    One row per exponent (default :func:`default_scatter_exponents`: Λ_1 and Λ_5 … Λ_8), one
    column per combination; points in class colours, dashed lines at the thresholds, grey line
    at Λ = 0. Diverged runs (no exponents, no finite c_f) are left out.
    """
    if exponents is None:
        d = max(int(G.sizes["exponent"]) for G in gathered.values())
        rows = default_scatter_exponents(d)
    else:
        rows = [int(e) for e in exponents]
    fig, axs, keys = _row_figure(gathered, len(rows), row_height=1.15 if len(rows) > 3 else 1.7)
    for r, exponent in enumerate(rows):
        row_values = []
        for c, key in enumerate(keys):
            G = gathered[key]
            ax = axs[r, c]
            ax.set_xscale("log")
            for threshold in (float(G.attrs["low"]), float(G.attrs["high"])):
                ax.axvline(threshold, color="k", linestyle="--", linewidth=0.7)
            if exponent not in set(int(e) for e in G["exponent"].values):
                _note(ax, f"no exponent {exponent}")
                continue
            cf = np.asarray(G["final_loss"].values, dtype=float)
            lam = np.asarray(G["lyapunov_exponent"].sel(exponent=exponent).values, dtype=float)
            outcome = np.asarray(G["outcome"].values)
            ok = np.isfinite(cf) & (cf > 0) & np.isfinite(lam)
            if not ok.any():
                _note(ax, "no finite exponents")
                continue
            for code, name in enumerate(CLASS_LABELS):
                m = ok & (outcome == code)
                if m.any():
                    ax.scatter(cf[m], lam[m], s=3, color=CLASS_COLOURS[name], alpha=0.5,
                               linewidths=0, rasterized=True)
            row_values.append(lam[ok])
        _scale_row(axs[r], row_values)
        axs[r, 0].set_ylabel(rf"$\Lambda_{{{exponent}}}$ (1/t)")
    for ax in axs[-1]:
        ax.set_xlabel("final loss $c_f$")
    handles = [Line2D([], [], color=CLASS_COLOURS[name], marker="o", linestyle="none",
                      markersize=4, label=name) for name in CLASS_LABELS]
    handles.append(Line2D([], [], color="k", linestyle="--", linewidth=0.7,
                          label="class thresholds"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles))
    return fig


# --------------------------------------------------------------------------------------------
# 5. CLV angles
# --------------------------------------------------------------------------------------------

def _parse_pair(name) -> tuple[int, int]:
    i, j = str(name).split("-")
    return int(i), int(j)


def pair_colour(pair: str):
    """A fixed colour per CLV pair "i-j" (qualitative map, by position of the pair)."""
    i, j = _parse_pair(pair)
    return matplotlib.colormaps["tab10"]((i * 7 + j) % 10)


def default_angle_pairs(pairs, vectors=(5, 6, 7, 8)) -> list[str]:
    """The pairs among ``vectors`` (both CLV indices in it); all pairs if there are none."""
    chosen = [p for p in pairs if all(k in set(vectors) for k in _parse_pair(p))]
    return chosen or [str(p) for p in pairs]


def _tangency_matrix(G) -> tuple[np.ndarray, int]:
    """d×d matrix: upper triangle = mean tangency fraction of low networks, lower = high."""
    d = int(G.sizes["exponent"])
    matrix = np.full((d, d), np.nan)
    frac = np.asarray(G["clv_tangency_fraction"].transpose("network", "pair").values, float)
    outcome = np.asarray(G["outcome"].values)
    low = _silent(np.nanmean, frac[outcome == LOW], axis=0)
    high = _silent(np.nanmean, frac[outcome == HIGH], axis=0)
    for k, pair in enumerate(G["pair"].values):
        i, j = _parse_pair(pair)
        if frac[outcome == LOW].shape[0]:
            matrix[i - 1, j - 1] = low[k]
        if frac[outcome == HIGH].shape[0]:
            matrix[j - 1, i - 1] = high[k]
    return matrix, d


def _tangency_heatmaps(fig, heat_axes, gathered: Mapping, keys) -> None:
    """Figure 5's top row: one tangency-frequency heatmap per combination, one colour bar."""
    low_name, high_name = COMPARED_CLASSES
    matrices = {key: _tangency_matrix(gathered[key]) for key in keys}
    finite = np.concatenate([m[np.isfinite(m)] for m, _ in matrices.values()])
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    cmap = matplotlib.colormaps[HEATMAP_CMAP].with_extremes(bad="white")
    image = None
    for c, key in enumerate(keys):
        ax = heat_axes[c]
        matrix, d = matrices[key]
        im = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=vmax,
                       extent=(0.5, d + 0.5, d + 0.5, 0.5), interpolation="nearest")
        if image is None:
            image = im
        ticks = np.arange(1, d + 1)
        ax.set_xticks(ticks, [str(k) if (k % 2 or d <= 6) else "" for k in ticks])
        ax.set_yticks(ticks, [str(k) if (k % 2 or d <= 6) else "" for k in ticks])
        ax.tick_params(length=2)
        ax.set_title(_title(key))
        ax.set_xlabel("CLV $j$")
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0}
        ax.text(0.97, 0.97, low_name, transform=ax.transAxes, ha="right", va="top",
                color=CLASS_COLOURS[low_name], fontweight="bold", bbox=box)
        ax.text(0.03, 0.03, high_name, transform=ax.transAxes, ha="left", va="bottom",
                color=CLASS_COLOURS[high_name], fontweight="bold", bbox=box)
        upper = matrix[np.triu_indices(d, 1)]
        lower = matrix[np.tril_indices(d, -1)]
        if not _any_finite(upper, lower):
            _note(ax, "no CLV data")
        elif not _any_finite(upper) or not _any_finite(lower):
            _note(ax, "no " + (low_name if not _any_finite(upper) else high_name) + " class",
                  y=0.3 if not _any_finite(lower) else 0.7)
    heat_axes[0].set_ylabel("CLV $i$")
    fig.colorbar(image, ax=heat_axes, label="tangency frequency", shrink=0.9, aspect=15,
                 pad=0.01)


@_styled
def clv_angles(gathered: Mapping, pairs: Sequence[str] | None = None,
               t_mark: float | None = None, vectors: Sequence[int] = (5, 6, 7, 8)) -> Figure:
    """Figure 5: CLV angle statistics, one column per combination.

    Top row: tangency frequency (mean over the class's networks of the fraction of times with
    angle below ``G.attrs['tangency_threshold']``) of every pair (i, j) as a d×d heatmap, low
    class above the diagonal (row i < column j), high class below it; one shared colour bar.
    Bottom row: class median of the Ginelli CLV angle θ_ij(t) against flow time (log–log) for
    ``pairs`` (default: the pairs among CLVs ``vectors``), colour = pair (named in the legend),
    solid = low class, dashed = high class; dash-dotted line at the tangency threshold. Dotted
    line at ``t_mark`` (default: the datasets' ``headline_time`` attribute; none if absent).
    """
    _layout(gathered)
    t_mark = _gathered_headline(gathered) if t_mark is None else t_mark
    keys = list(gathered)
    fig = _new_figure(FIGURE_WIDTH, 4.3)
    gs = fig.add_gridspec(2, len(keys), height_ratios=[1.1, 1.0])
    heat_axes = [fig.add_subplot(gs[0, c]) for c in range(len(keys))]
    line_axes = []
    for c in range(len(keys)):
        share = line_axes[0] if line_axes else None
        line_axes.append(fig.add_subplot(gs[1, c], sharex=share, sharey=share))

    drawn_pairs: set[str] = set()
    _tangency_heatmaps(fig, heat_axes, gathered, keys)

    thresholds = [float(gathered[key].attrs["tangency_threshold"]) for key in keys
                  if "tangency_threshold" in gathered[key].attrs]
    threshold = thresholds[0] if thresholds else None
    # fixed y range (angles lie in [0, π/2]): no autoscaling of empty or one-valued log axes
    angles = [_positive(gathered[key]["clv_angle_quantiles"].values).ravel() for key in keys]
    angles = np.concatenate([*angles, np.asarray(thresholds, dtype=float)])
    angles = angles[np.isfinite(angles)]
    bottom = float(angles.min()) / 1.5 if angles.size else 1e-3
    line_axes[0].set_yscale("log")
    line_axes[0].set_ylim(max(bottom, 1e-6), np.pi / 2 * 1.15)
    for c, key in enumerate(keys):
        G = gathered[key]
        ax = line_axes[c]
        ax.set_xscale("log")
        ax.set_yscale("log")
        chosen = (list(pairs) if pairs is not None
                  else default_angle_pairs(G["pair"].values, vectors))
        drawn_pairs.update(p for p in chosen if p in set(G["pair"].values))
        t = _positive(G["time"].values)
        quantiles = G["clv_angle_quantiles"]
        median = quantiles.isel(quantile=_quantile_index(quantiles, 0.5))
        missing = []
        for name in COMPARED_CLASSES:
            shown = False
            for pair in chosen:
                if pair not in set(G["pair"].values):
                    continue
                y = _positive(median.sel(class_name=name, pair=pair).values)
                if _any_finite(y):
                    ax.plot(t, y, color=pair_colour(pair), linewidth=0.9,
                            linestyle=CLASS_LINESTYLES[name])
                    shown = True
            if not shown:
                missing.append(name)
        _headline_line(ax, t_mark)
        if "tangency_threshold" in G.attrs:
            ax.axhline(float(G.attrs["tangency_threshold"]), color="k", linestyle="-.",
                       linewidth=0.7)
        if len(missing) == 2:
            _note(ax, "no CLV angles")
        elif missing:
            _note(ax, f"no {missing[0]} class", y=0.15)
        if c == 0:
            ax.set_ylabel(r"median angle $\theta_{ij}$ (rad)")
        else:
            ax.tick_params(axis="y", labelleft=False)
        ax.set_xlabel("flow time $t$")
    order = sorted(drawn_pairs, key=_parse_pair)
    handles = [Line2D([], [], color=pair_colour(p), linewidth=0.9,
                      label=r"$\theta_{" + p.replace("-", ",") + "}$") for p in order]
    handles += [Line2D([], [], color="0.3", linewidth=0.9, linestyle=CLASS_LINESTYLES[name],
                       label=f"{name} class") for name in COMPARED_CLASSES]
    if threshold is not None:
        handles.append(Line2D([], [], color="k", linestyle="-.", linewidth=0.7,
                              label=f"tangency threshold {float(threshold):g} rad"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
               columnspacing=1.0, handlelength=1.8)
    return fig
