"""Look and layout of the study's figures, and the deterministic saver.

The rcParams live in ``weightdyn.mplstyle`` beside this module (loaded once into
:data:`STYLE`); every figure function is wrapped in :func:`_styled`, which builds the figure
under that style on its own Agg canvas. The helpers here lay panels out on the
(activation × initialisation) grid, label the outer panels and choose the y scale of a row;
:func:`save` writes PNG and PDF without timestamps.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..chunkio import atomic_path
from ..outcomes import CLASS_LABELS, HIGH, LOW

__all__ = [
    "CLASS_COLOURS", "CLASS_LINESTYLES", "COMPARED_CLASSES", "FAMILY_STYLES", "FIGURE_WIDTH",
    "FONT_SIZE", "GINELLI_COLOUR", "HEATMAP_CMAP", "PNG_DPI", "SEQUENTIAL_CMAP", "STYLE",
    "STYLE_FILE", "save",
]

#: the style file (package data)
STYLE_FILE = Path(__file__).with_name("weightdyn.mplstyle")
#: rcParams of every figure: the style file's settings only, applied on top of the current ones
STYLE = dict(matplotlib.rc_params_from_file(STYLE_FILE, use_default_template=False))

#: outcome-class colours (Okabe–Ito: blue, grey, vermillion), used by every figure
CLASS_COLOURS = dict(zip(CLASS_LABELS, ("#0072B2", "#999999", "#D55E00")))
#: the classes that class-conditional panels compare (``class_name`` of the gathered files)
COMPARED_CLASSES = (CLASS_LABELS[LOW], CLASS_LABELS[HIGH])
#: line style per class where colour encodes something else (figure 5's angle panel)
CLASS_LINESTYLES = dict(zip(COMPARED_CLASSES, ("-", "--")))
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
#: colour map of the tangency-frequency heatmap (the style's image.cmap)
HEATMAP_CMAP = STYLE["image.cmap"]
FIGURE_WIDTH = 7.0  # inches
#: points, the smallest font used (the style's font.size)
FONT_SIZE = STYLE["font.size"]
PNG_DPI = 200

_NOTE_COLOUR = "0.35"


# --------------------------------------------------------------------------------------------
# style
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


def _note(ax, text: str, y: float = 0.5) -> None:
    """A grey note in the middle of a panel (empty class, not computable, ...)."""
    ax.text(0.5, y, text, transform=ax.transAxes, ha="center", va="center",
            color=_NOTE_COLOUR, fontsize=FONT_SIZE, wrap=True)


def _headline_line(ax, t) -> None:
    """Dotted vertical line at the headline time ``t`` (none if ``t`` is None)."""
    if t is not None:
        ax.axvline(float(t), color="0.5", linestyle=":", linewidth=0.8, zorder=0)


# --------------------------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------------------------

def _title(key) -> str:
    activation, initialization = key
    return f"{activation}, {initialization}"


def _layout(data: Mapping):
    """(activations, initialisations) of ``{(activation, initialization): dataset}``, in the
    order the mapping lists them; ValueError for an empty mapping or malformed keys."""
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


def _row_figure(gathered: Mapping, n_rows: int, row_height: float, extra_height: float = 0.5):
    """Figure with one column per combination and ``n_rows`` rows sharing y within a row."""
    _layout(gathered)
    keys = list(gathered)
    fig = _new_figure(FIGURE_WIDTH, row_height * n_rows + extra_height)
    axs = fig.subplots(n_rows, len(keys), squeeze=False, sharex=True, sharey="row")
    for c, key in enumerate(keys):
        axs[0, c].set_title(_title(key))
    return fig, axs, keys


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


def _sqrt(x):
    """Square root that maps negatives to 0 (forward function of a sqrt axis scale)."""
    return np.sqrt(np.clip(x, 0.0, None))


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------

def save(fig: Figure, path_stem, provenance: dict | None = None) -> tuple[Path, Path]:
    """Write ``path_stem.png`` (200 dpi) and ``path_stem.pdf``; return both paths.

    ``provenance`` (e.g. :func:`weightdyn.chunkio.provenance`) is embedded as text metadata:
    PNG text chunks under its own keys, the PDF's Subject (version) and Keywords (config).

    No timestamps are written, and the constrained layout is computed once (in the PNG's
    draw, at its resolution) and then frozen, so saving the same figure twice, or a freshly
    built copy of it, gives byte-identical files. A trailing .png/.pdf on
    ``path_stem`` is dropped; parent directories are created.
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.with_name(stem.name + ".png")
    pdf = stem.with_name(stem.name + ".pdf")
    # the date of writing (``history``) is left out: reruns on any day give the same bytes
    info = {key: str(value) for key, value in (provenance or {}).items() if key != "history"}
    pdf_info = {"Subject": f"weightdyn {info['weightdyn_version']}",
                "Keywords": info.get("config_json", "")} if info else {}
    with matplotlib.rc_context(STYLE):
        # The layout engine runs in this draw, then the layout is frozen: constrained layout is
        # not idempotent to the last bit (another run starts from the previous positions and
        # may move axes by ~1e-10), so the PDF and any later save reuse these positions.
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=PNG_DPI, metadata={"Software": None, **info},
                        facecolor="white")
        fig.set_layout_engine("none")
        with atomic_path(pdf) as tmp:
            fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "ModDate": None,
                                                     "Producer": None, "Creator": None,
                                                     **pdf_info}, facecolor="white")
    return png, pdf
