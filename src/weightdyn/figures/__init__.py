"""The study's figures (docs/methods.md §5), one public function per figure, and a deterministic
saver.

Every figure function takes a mapping ``{(activation, initialization): dataset}`` — the gathered
datasets ``G`` (figures 1–5, 8 and 10) or the prediction datasets ``P`` (figures 6, 7 and 9) — and
returns a :class:`matplotlib.figure.Figure`. Figures are built on their own Agg canvas (no
pyplot, no global backend switch, no open-figure bookkeeping), at paper width
(:data:`~.style.FIGURE_WIDTH` inches) under the style file ``weightdyn.mplstyle`` (every font
at least :data:`~.style.FONT_SIZE` points).

Modules, by theme:

* :mod:`.outcomes` — 1 final-loss distribution, 2 loss curves of sample runs;
* :mod:`.stability` — 3 FTLE spectra, 4 exponents against the final loss, 5 CLV angles;
* :mod:`.clv_lag` — 8 accuracy of the fixed-lag CLV estimate;
* :mod:`.prediction` — 6 ROC curves, 7 AUC against availability time, 9 early stopping;
* :mod:`.curvature` — 10 sharpness η·λ_max(H) over training and final Hessian eigenvalues;
* :mod:`.sensitivity` — the sweep figure (:func:`sweep_figure`, from the table of
  :func:`weightdyn.sensitivity.sweep_table`; made by the sweep rule, not in :data:`FIGURES`);
* :mod:`.style` — style, colours, panel layout and :func:`save`; :mod:`.helpers` — array
  and dataset helpers (headline time).

Layout. Figures 1, 2 and 6–9 have one panel per combination in a grid with one row per
activation and one column per initialisation (in the order the mapping lists them; a missing
combination leaves no panel). Figures 3 and 4 compare several exponents, so they have one column
per combination and one row per exponent (rows share the y axis). Figure 5 has one column per
combination: the tangency-frequency heatmap on top, angle time series below; figure 10 too:
sharpness over time on top, final (λ_min, η·λ_max) below. The sweep figure has one column per
activation and one row per quantity, against the swept value.

Colours. :data:`CLASS_COLOURS` (Okabe–Ito blue / grey / vermillion, colour-blind safe) marks the
outcome classes (:mod:`weightdyn.outcomes`) everywhere; the events E_low and E_high use the
colour of their class, feature families differ by line style and marker (:data:`FAMILY_STYLES`).

Headline time. The figures that mark the headline prediction time t* (3, 5–9) take it as an
argument — from the configuration's ``prediction.headline_time`` via :func:`figure_options` —
or else from the datasets' ``headline_time`` attribute.

Robustness. NaN and inf are dropped before plotting; an empty class, a non-computable
predictor or an all-NaN CLV quantity gives an empty panel with a note, never an exception or a
warning. :func:`save` writes PNG (200 dpi) and PDF without timestamps, so two saves of the same
figure are byte-identical; :func:`save_figures` builds and saves the study's figures, in
parallel processes if asked (the same bytes).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .clv_lag import lag_accuracy
from .curvature import curvature
from .helpers import headline_time
from .outcomes import final_loss_distribution, loss_curves
from .prediction import auc_vs_time, best_series, early_stopping, roc_curves
from .stability import (clv_angles, default_angle_pairs, default_scatter_exponents,
                        exponents_vs_final_loss, ftle_spectra, pair_colour)
from .sensitivity import sweep_figure
from .style import CLASS_COLOURS, FAMILY_STYLES, save

__all__ = [
    "CLASS_COLOURS", "FAMILY_STYLES", "FIGURES", "GATHERED_VARIABLES", "auc_vs_time",
    "best_series", "clv_angles", "curvature", "default_angle_pairs", "default_scatter_exponents",
    "early_stopping", "exponents_vs_final_loss", "figure_options", "final_loss_distribution",
    "ftle_spectra", "headline_time", "lag_accuracy", "loss_curves", "pair_colour",
    "roc_curves", "save", "save_figures", "sweep_figure",
]


def figure_options(cfg: Mapping) -> dict[str, dict]:
    """Keyword arguments of the figure functions that come from the study configuration
    (headline time, CLV feature lag and vectors), by output stem; ``cfg`` needs only its
    ``prediction`` section."""
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


#: the variables of the gathered datasets that the figures read (figures 1–5, 8 and 10)
GATHERED_VARIABLES = ("final_loss", "outcome", "diverged", "loss_curve", "sample_outcome",
                      "ftle_quantiles", "lyapunov_exponent", "clv_tangency_fraction",
                      "clv_angle_quantiles", "clv_lag_error", "hessian_max",
                      "final_hessian_max", "final_hessian_min")

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
    "fig10_curvature": (curvature, "gathered"),
}


#: what the worker processes of :func:`save_figures` inherit (forked: nothing is copied)
_JOB: dict = {}


def save_figures(stems: Sequence, inputs: Mapping, provenance: dict | None = None,
                 options: Mapping | None = None, workers: int = 1) -> Iterator[Path]:
    """Build the figure of every path stem in ``stems`` (named by :data:`FIGURES`) from
    ``inputs`` = {"gathered": …, "prediction": …} with the keyword arguments ``options``
    (:func:`figure_options`) and :func:`save` it there; yields the stems in order, each once
    written. ``workers`` > 1: that many forked processes build them (sharing ``inputs``;
    one process where fork is not available)."""
    workers = min(workers, len(stems))
    _JOB.update(inputs=inputs, provenance=provenance, options=options or {})
    try:
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            yield from map(_save_figure, stems)
        else:
            fork = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=fork) as pool:
                yield from pool.map(_save_figure, stems)
    finally:
        _JOB.clear()


def _save_figure(stem) -> Path:
    stem = Path(stem)
    plot, kind = FIGURES[stem.name]
    save(plot(_JOB["inputs"][kind], **_JOB["options"].get(stem.name, {})), stem,
         _JOB["provenance"])
    return stem
