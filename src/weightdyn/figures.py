"""The study's figures (design.md §5), one public function per figure, and a deterministic saver.

Every figure function takes a mapping ``{(activation, initialization): dataset}`` — the gathered
datasets ``G`` (figures 1–5 and 8) or the prediction datasets ``P`` (figures 6, 7 and 9) — and
returns a :class:`matplotlib.figure.Figure`. Figures are built on their own Agg canvas (no
pyplot, no global backend switch, no open-figure bookkeeping), at paper width
(:data:`FIGURE_WIDTH` inches) with every font at least :data:`FONT_SIZE` points.

Layout. Figures 1, 2 and 6–9 have one panel per combination in a grid with one row per
activation and one column per initialisation (in the order the mapping lists them; a missing
combination leaves no panel). Figures 3 and 4 compare several exponents, so they have one column
per combination and one row per exponent (rows share the y axis). Figure 5 has one column per
combination: the tangency-frequency heatmap on top, angle time series below.

Colours. :data:`CLASS_COLOURS` (Okabe–Ito blue / grey / vermillion, colour-blind safe) marks the
outcome classes everywhere; the events E_low and E_high use the colour of their class, feature
families differ by line style and marker (:data:`FAMILY_STYLES`).

Robustness. NaN and inf are dropped before plotting; an empty class, a non-computable
predictor or an all-NaN CLV quantity gives an empty panel with a note, never an exception or a
warning. :func:`save` writes PNG (200 dpi) and PDF without timestamps, so two saves of the same
figure are byte-identical.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine, TightLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter

from .prediction import CLV_CONVERGENCE_ANGLE

__all__ = [
    "CLASS_COLOURS", "FAMILY_STYLES", "FIGURES", "auc_vs_time", "best_series",
    "clv_angles", "default_angle_pairs", "default_scatter_exponents",
    "early_stopping", "exponents_vs_final_loss", "final_loss_distribution", "ftle_spectra",
    "headline_time",
    "lag_accuracy", "loss_curves", "roc_curves", "save",
]

#: outcome-class colours (Okabe–Ito: blue, grey, vermillion), used by every figure
CLASS_COLOURS = {"low": "#0072B2", "middle": "#999999", "high": "#D55E00"}
#: line style per class where colour encodes something else (figure 5's angle panel)
CLASS_LINESTYLES = {"low": "-", "high": "--"}
#: outcome codes of ``G.outcome`` / ``G.sample_outcome`` → class names
OUTCOME_NAMES = ("low", "middle", "high")
#: colour, line style and marker per feature family (figures 6 and 7)
FAMILY_STYLES = {
    "baseline": {"linestyle": "-", "marker": "D", "color": "#000000"},
    "FTLE": {"linestyle": "-", "marker": "o", "color": "#009E73"},
    "CLV": {"linestyle": "--", "marker": "s", "color": "#CC79A7"},
    "combined": {"linestyle": "-.", "marker": "^", "color": "#E69F00"},
}
#: colour of the Ginelli upper bound (figure 7)
GINELLI_COLOUR = "#56B4E9"
#: sequential colour map for ordered quantities (CLV index, prediction time)
SEQUENTIAL_CMAP = "viridis"
#: colour map of the tangency-frequency heatmap
HEATMAP_CMAP = "viridis"
FIGURE_WIDTH = 7.0  # inches
FONT_SIZE = 8  # points, the smallest font used
PNG_DPI = 200

STYLE = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE,
    "legend.title_fontsize": FONT_SIZE,
    "figure.titlesize": FONT_SIZE + 1,
    "figure.labelsize": FONT_SIZE,
    "legend.frameon": False,
    "lines.linewidth": 1.2,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "image.cmap": HEATMAP_CMAP,
    "pdf.fonttype": 42,  # embed TrueType (editable text in the PDF)
    "svg.hashsalt": "weightdyn",
}

_EVENT_LABEL = {"low": r"$E_\mathrm{low}$", "high": r"$E_\mathrm{high}$"}
_NOTE_COLOUR = "0.35"
_LINESTYLE_NAMES = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dotted"}


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _styled(func):
    """Build the figure under :data:`STYLE` and fix tick-label sizes (ticks are made lazily)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            fig = func(*args, **kwargs)
            for ax in fig.axes:
                ax.tick_params(which="both", labelsize=FONT_SIZE)
            _guard_log_axes(fig)
        return fig

    return wrapper


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03, wspace=0.02, hspace=0.02)
    return fig


def _guard_log_axes(fig: Figure) -> None:
    """Give a log axis (and its shared siblings) fixed limits when nothing positive is on it.

    Matplotlib warns ("Data has no positive values") when it autoscales an empty log axis.
    """
    for ax in fig.axes:
        for name in ("x", "y"):
            if getattr(ax, f"get_{name}scale")() != "log":
                continue
            if not getattr(ax, f"get_autoscale{name}_on")():
                continue
            group = getattr(ax, f"get_shared_{name}_axes")().get_siblings(ax)
            minpos = [getattr(a.dataLim, f"minpos{name}") for a in group]
            if not np.isfinite(minpos).any():
                getattr(ax, f"set_{name}lim")(1e-3, 1.0)


def _silent(reduce, values, axis=None):
    """np.nan* reduction without the all-NaN-slice / empty-slice RuntimeWarnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(values, axis=axis)


def _positive(values) -> np.ndarray:
    """Float copy with non-finite and non-positive entries set to NaN (for log axes)."""
    v = np.array(values, dtype=float)
    v[~np.isfinite(v) | (v <= 0)] = np.nan
    return v


def _finite(values) -> np.ndarray:
    v = np.array(values, dtype=float)
    v[~np.isfinite(v)] = np.nan
    return v


def _any_finite(*arrays) -> bool:
    return any(np.isfinite(np.asarray(a, dtype=float)).any() for a in arrays)


def _note(ax, text: str, y: float = 0.5) -> None:
    """A grey note in the middle of a panel (empty class, not computable, ...)."""
    ax.text(0.5, y, text, transform=ax.transAxes, ha="center", va="center",
            color=_NOTE_COLOUR, fontsize=FONT_SIZE, wrap=True)


def _title(key) -> str:
    activation, initialization = key
    return f"{activation}, {initialization}"


def _layout(data: Mapping):
    if not isinstance(data, Mapping) or not data:
        raise ValueError("need a non-empty mapping {(activation, initialization): dataset}")
    for key in data:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"keys must be (activation, initialization) pairs, got {key!r}")
    activations = list(dict.fromkeys(key[0] for key in data))
    initializations = list(dict.fromkeys(key[1] for key in data))
    return activations, initializations


def _grid_figure(data: Mapping, panel_height: float = 2.3, sharex=False, sharey=False,
                 extra_height: float = 0.0):
    """Figure with one panel per combination: rows = activations, columns = initialisations.

    Returns (fig, axes array, {key: ax}); cells of missing combinations are removed.
    """
    activations, initializations = _layout(data)
    fig = _new_figure(FIGURE_WIDTH, panel_height * len(activations) + 0.35 + extra_height)
    axs = fig.subplots(len(activations), len(initializations), squeeze=False,
                       sharex=sharex, sharey=sharey)
    panels = {}
    for r, activation in enumerate(activations):
        for c, initialization in enumerate(initializations):
            ax = axs[r, c]
            if (activation, initialization) in data:
                panels[(activation, initialization)] = ax
                ax.set_title(_title((activation, initialization)))
            else:
                fig.delaxes(ax)
    return fig, axs, panels


def _outer_labels(axs: np.ndarray, present, xlabel: str, ylabel: str) -> None:
    """x label under the lowest panel of every column, y label left of the first of every row.

    Tick labels stay visible on those panels (also when a missing combination removed the
    panel that would otherwise carry them).
    """
    present = {id(ax) for ax in present}
    nrow, ncol = axs.shape
    for r in range(nrow):
        for c in range(ncol):
            ax = axs[r, c]
            if id(ax) not in present:
                continue
            if not any(id(axs[rr, c]) in present for rr in range(r + 1, nrow)):
                ax.set_xlabel(xlabel)
                ax.tick_params(axis="x", which="both", labelbottom=True)
            if not any(id(axs[r, cc]) in present for cc in range(c)):
                ax.set_ylabel(ylabel)
                ax.tick_params(axis="y", which="both", labelleft=True)


def _sel_close(da, dim: str, value: float):
    """``da`` at the coordinate of ``dim`` equal to ``value`` (float tolerance); ValueError if
    the value is not one of the coordinates."""
    coord = np.asarray(da[dim].values, dtype=float)
    idx = np.flatnonzero(np.isclose(coord, float(value), rtol=1e-6, atol=1e-12))
    if idx.size == 0:
        raise ValueError(f"{dim} = {value} is not available; {dim} values are {coord.tolist()}")
    return da.isel({dim: int(idx[0])})


def _quantile_index(da, q: float) -> int:
    coord = np.asarray(da["quantile"].values, dtype=float)
    return int(np.argmin(np.abs(coord - q)))


def _median_and_band(da):
    """(median, lower, upper) along a ``quantile`` dim: nearest to 0.5, smallest, largest."""
    coord = np.asarray(da["quantile"].values, dtype=float)
    med = da.isel(quantile=_quantile_index(da, 0.5)).values
    lo = da.isel(quantile=int(np.argmin(coord))).values
    hi = da.isel(quantile=int(np.argmax(coord))).values
    return _finite(med), _finite(lo), _finite(hi)


def _use_symlog(values, limit: float = 30.0, decades: float = 2.0) -> bool:
    """Symlog y when the values reach beyond ±``limit`` and either change
    sign or span more than ``decades`` decades in magnitude; linear otherwise."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size or float(np.abs(v).max()) <= limit:
        return False
    if v.min() < 0 < v.max():
        return True
    a = np.abs(v)
    return float(a.max()) > 10 ** decades * max(float(a.min()), 1.0)


def _scale_row(axes_row, row_values) -> None:
    """Shared y scale of a row of panels, and a zero line if the values change sign.

    Symlog rows are linear within ±1 (1/t): exponents smaller than one per unit flow time read
    as marginal (≈ 0) at this scale.
    """
    values = np.concatenate([np.ravel(v) for v in row_values]) if row_values else np.array([])
    finite = values[np.isfinite(values)]
    if _use_symlog(values):
        for ax in axes_row:
            ax.set_yscale("symlog", linthresh=1.0, linscale=0.5)
            ax.yaxis.get_major_locator().set_params(numticks=5)
    if finite.size and finite.min() < 0 < finite.max():
        for ax in axes_row:
            ax.axhline(0.0, color="0.6", linewidth=0.5, zorder=0)


def _parse_pair(name) -> tuple[int, int]:
    i, j = str(name).split("-")
    return int(i), int(j)


def pair_colour(pair: str):
    """A fixed colour per CLV pair "i-j" (qualitative map, by position of the pair)."""
    i, j = _parse_pair(pair)
    return matplotlib.colormaps["tab10"]((i * 7 + j) % 10)


def _exponent_label(i) -> str:
    return rf"$\Lambda_{{{int(i)}}}(t)$ (1/t)"


def _class_counts(outcome) -> dict[str, int]:
    outcome = np.asarray(outcome)
    return {name: int((outcome == code).sum()) for code, name in enumerate(OUTCOME_NAMES)}


def _sqrt(x):
    """Square root that maps negatives to 0 (forward function of a sqrt axis scale)."""
    return np.sqrt(np.clip(x, 0.0, None))


def _gathered_headline(data: Mapping):
    """``headline_time`` attribute of the first dataset that has one (None otherwise)."""
    for G in data.values():
        if "headline_time" in G.attrs:
            return float(G.attrs["headline_time"])
    return None


def _headline_line(ax, t) -> None:
    if t is not None:
        ax.axvline(float(t), color="0.5", linestyle=":", linewidth=0.8, zorder=0)


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
        ax.hist([cf[shown & (outcome == code)] for code in range(3)], bins=edges, stacked=True,
                color=[CLASS_COLOURS[name] for name in OUTCOME_NAMES], histtype="stepfilled",
                linewidth=0)
        counts = _class_counts(outcome)
        handles = [Patch(color=CLASS_COLOURS["low"], label=f"low {counts['low'] / n:.1%}"),
                   Patch(color=CLASS_COLOURS["middle"],
                         label=f"middle {counts['middle'] / n:.1%}"),
                   Patch(color=CLASS_COLOURS["high"],
                         label=f"high {counts['high'] / n:.1%} "
                               f"({diverged.sum() / n:.1%} diverged)"),
                   Line2D([], [], color="k", linestyle="--", linewidth=0.8,
                          label=f"thresholds {low:g}, {high:g}")]
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

    One line per sample run in its class colour; runs that diverge end in a cross at their
    last finite value; dotted lines at the class thresholds.
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
            name = OUTCOME_NAMES[int(code)] if 0 <= int(code) < 3 else "high"
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
               for name in OUTCOME_NAMES]
    handles.append(Line2D([], [], color="k", marker="x", linestyle="none",
                          label="diverged (last finite value)"))
    handles.append(Line2D([], [], color="k", linestyle=":", linewidth=0.7,
                          label="class thresholds"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles))
    return fig


# --------------------------------------------------------------------------------------------
# 3. FTLE spectra over time
# --------------------------------------------------------------------------------------------

def _exponent_rows(gathered: Mapping, exponents) -> list[int]:
    if exponents is None:
        available = [int(e) for G in gathered.values() for e in G["exponent"].values]
        return sorted(dict.fromkeys(available))
    return [int(e) for e in exponents]


def _row_figure(gathered: Mapping, n_rows: int, row_height: float, extra_height: float = 0.5):
    """Figure with one column per combination and ``n_rows`` rows sharing y within a row."""
    _layout(gathered)
    keys = list(gathered)
    fig = _new_figure(FIGURE_WIDTH, row_height * n_rows + extra_height)
    axs = fig.subplots(n_rows, len(keys), squeeze=False, sharex=True, sharey="row")
    for c, key in enumerate(keys):
        axs[0, c].set_title(_title(key))
    return fig, axs, keys


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
            for name in ("low", "high"):
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
                     label=f"{name} class: median and quartiles") for name in ("low", "high")]
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
            for code, name in enumerate(OUTCOME_NAMES):
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
                      markersize=4, label=name) for name in OUTCOME_NAMES]
    handles.append(Line2D([], [], color="k", linestyle="--", linewidth=0.7,
                          label="class thresholds"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles))
    return fig


# --------------------------------------------------------------------------------------------
# 5. CLV angles
# --------------------------------------------------------------------------------------------

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
    low = _silent(np.nanmean, frac[outcome == 0], axis=0)
    high = _silent(np.nanmean, frac[outcome == 2], axis=0)
    for k, pair in enumerate(G["pair"].values):
        i, j = _parse_pair(pair)
        if frac[outcome == 0].shape[0]:
            matrix[i - 1, j - 1] = low[k]
        if frac[outcome == 2].shape[0]:
            matrix[j - 1, i - 1] = high[k]
    return matrix, d


@_styled
def clv_angles(gathered: Mapping, pairs: Sequence[str] | None = None,
               t_mark: float | None = None, vectors: Sequence[int] = (5, 6, 7, 8)) -> Figure:
    """Figure 5: CLV angle statistics, one column per combination.

    Top row: tangency frequency (mean over the class's networks of the fraction of times with
    angle below ``G.attrs['tangency_threshold']``) of every pair (i, j) as a d×d heatmap, low
    class above the diagonal (row i < column j), high class below it; one shared colour bar.
    Bottom row: class median of the Ginelli CLV angle θ_ij(t) against flow time (log–log) for
    ``pairs`` (default: the pairs among CLVs ``vectors``), colour = pair (named in the legend),
    solid = low class, dashed = high class; dash-dotted line at the tangency threshold. Dotted line at ``t_mark`` (default: the
    datasets' ``headline_time`` attribute; none if absent).
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
        ax.text(0.97, 0.97, "low", transform=ax.transAxes, ha="right", va="top",
                color=CLASS_COLOURS["low"], fontweight="bold", bbox=box)
        ax.text(0.03, 0.03, "high", transform=ax.transAxes, ha="left", va="bottom",
                color=CLASS_COLOURS["high"], fontweight="bold", bbox=box)
        upper = matrix[np.triu_indices(d, 1)]
        lower = matrix[np.tril_indices(d, -1)]
        if not _any_finite(upper, lower):
            _note(ax, "no CLV data")
        elif not _any_finite(upper) or not _any_finite(lower):
            _note(ax, "no " + ("low" if not _any_finite(upper) else "high") + " class",
                  y=0.3 if not _any_finite(lower) else 0.7)
    heat_axes[0].set_ylabel("CLV $i$")
    fig.colorbar(image, ax=heat_axes, label="tangency frequency", shrink=0.9, aspect=15,
                 pad=0.01)

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
        for name in ("low", "high"):
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
                       label=f"{name} class") for name in ("low", "high")]
    if threshold is not None:
        handles.append(Line2D([], [], color="k", linestyle="-.", linewidth=0.7,
                              label=f"tangency threshold {float(threshold):g} rad"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
               columnspacing=1.0, handlelength=1.8)
    return fig


# --------------------------------------------------------------------------------------------
# prediction helpers (figures 6, 7, 9)
# --------------------------------------------------------------------------------------------

def _nearest_index(values, target: float) -> int:
    v = np.asarray(values, dtype=float)
    return int(np.argmin(np.abs(v - float(target))))


def headline_time(P, t: float | None = None) -> float:
    """The headline time of prediction dataset ``P``: ``t`` if given, else
    ``P.attrs['headline_time']``, else its first prediction time."""
    if t is not None:
        return float(t)
    if "headline_time" in P.attrs:
        return float(P.attrs["headline_time"])
    return float(np.asarray(P["prediction_time"].values, dtype=float)[0])


def _events(P) -> list[str]:
    return [str(e) for e in P["event"].values]


def _event_grid(data: Mapping, panel_height: float, extra_height: float = 0.0):
    """Grid with one row per (activation, event) and one column per initialisation; events =
    those reported by any dataset (E_high first). Returns (fig, axs, {(key, event): ax},
    events); a combination that omits an event keeps its panel, with the reason as a note."""
    activations, initializations = _layout(data)
    events = [e for e in ("high", "low") if any(e in _events(P) for P in data.values())]
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
               families: Sequence[str] = ("baseline", "FTLE", "CLV", "combined")) -> Figure:
    """Figure 6: mean out-of-fold ROC curves of the nested best predictor of each family
    available at the headline time (``t``, default ``P.attrs['headline_time']``; the nearest
    availability time τ is used and named if it differs); the CLV family, which is available
    only at t* + L, is drawn at its first availability time instead. Legend: family, most
    AUC [95 % CI], τ (the chosen sets are in auc.csv / summary.md). Colour / line style = family; dotted diagonal =
    chance. One row per (activation, event), E_low only where it is reported.
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
                families: Sequence[str] = ("baseline", "FTLE", "CLV", "combined")) -> Figure:
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
# 8. accuracy of the fixed-lag CLV estimate
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------

def _freeze_layout(fig: Figure) -> None:
    """Run the figure's layout engine once at :data:`PNG_DPI` and fix the result.

    Constrained layout is not idempotent to the last bit: a second draw (or a draw at another
    dpi) starts from the previous positions and may move axes by ~1e-10, which changes the PNG.
    Freezing after one layout pass makes every later save reproduce the same bytes.
    """
    if not isinstance(fig.get_layout_engine(), (ConstrainedLayoutEngine, TightLayoutEngine)):
        return  # no layout engine, or already frozen
    dpi = fig.dpi
    fig.set_dpi(PNG_DPI)
    try:
        fig.draw_without_rendering()
    finally:
        fig.set_dpi(dpi)
    fig.set_layout_engine("none")


def save(fig: Figure, path_stem, provenance: dict | None = None) -> tuple[Path, Path]:
    """Write ``path_stem.png`` (200 dpi) and ``path_stem.pdf``; return both paths.

    ``provenance`` (e.g. :func:`weightdyn.chunkio.provenance`) is embedded as text metadata:
    PNG text chunks under its own keys, the PDF's Subject (version) and Keywords (config).

    No timestamps are written, and the constrained layout is computed once (at the PNG
    resolution) and then frozen (:func:`_freeze_layout`), so saving the same figure twice, or
    a freshly built copy of it, gives byte-identical files. A trailing .png/.pdf on
    ``path_stem`` is dropped; parent directories are created.
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.with_name(stem.name + ".png")
    pdf = stem.with_name(stem.name + ".pdf")
    info = {key: str(value) for key, value in (provenance or {}).items()}
    pdf_info = {"Subject": f"weightdyn {info['weightdyn_version']}",
                "Keywords": info.get("config_json", "")} if info else {}
    with matplotlib.rc_context(STYLE):
        _freeze_layout(fig)
        fig.savefig(png, dpi=PNG_DPI, metadata={"Software": None, **info}, facecolor="white")
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                   "Creator": None, **pdf_info}, facecolor="white")
    return png, pdf


def figure_options(cfg: Mapping) -> dict[str, dict]:
    """Keyword arguments of the figure functions that come from the study configuration
    (headline time, CLV feature lag and vectors), by output stem."""
    p = cfg["prediction"]
    t, lag, vectors = float(p["headline_time"]), int(p["clv_lag"]), tuple(p["clv_vectors"])
    return {
        "fig3_ftle_spectra": {"t_mark": t},
        "fig5_clv_angles": {"t_mark": t, "vectors": vectors},
        "fig8_lag_accuracy": {"t": t, "lag": lag, "vectors": vectors},
        "fig6_roc_curves": {"t": t},
        "fig7_auc_vs_time": {"t_mark": t},
        "fig9_early_stopping": {"t_mark": t},
    }


#: output stem → (figure function, input kind) for the workflow's figure script
FIGURES = {
    "fig1_final_loss": (final_loss_distribution, "gathered"),
    "fig2_loss_curves": (loss_curves, "gathered"),
    "fig3_ftle_spectra": (ftle_spectra, "gathered"),
    "fig4_exponents_vs_final_loss": (exponents_vs_final_loss, "gathered"),
    "fig5_clv_angles": (clv_angles, "gathered"),
    "fig6_roc_curves": (roc_curves, "prediction"),
    "fig7_auc_vs_time": (auc_vs_time, "prediction"),
    "fig8_lag_accuracy": (lag_accuracy, "gathered"),
    "fig9_early_stopping": (early_stopping, "prediction"),
}
