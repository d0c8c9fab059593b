"""Data helpers shared by the figure modules: NaN-safe array cleaning, quantile selection,
class counts, and the headline time of the gathered and prediction datasets.

The headline time itself is defined once, in the configuration (``prediction.headline_time``);
the figures receive it through :func:`weightdyn.figures.figure_options` or read it from the
datasets' ``headline_time`` attribute (:func:`headline_time`, :func:`_gathered_headline`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from ..outcomes import CLASS_LABELS

__all__ = ["headline_time"]


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
    """Float copy with non-finite entries set to NaN."""
    v = np.array(values, dtype=float)
    v[~np.isfinite(v)] = np.nan
    return v


def _any_finite(*arrays) -> bool:
    return any(np.isfinite(np.asarray(a, dtype=float)).any() for a in arrays)


def _nearest_index(values, target: float) -> int:
    v = np.asarray(values, dtype=float)
    return int(np.argmin(np.abs(v - float(target))))


def _quantile_index(da, q: float) -> int:
    return _nearest_index(da["quantile"].values, q)


def _median_and_band(da):
    """(median, lower, upper) along a ``quantile`` dim: nearest to 0.5, smallest, largest."""
    coord = np.asarray(da["quantile"].values, dtype=float)
    med = da.isel(quantile=_quantile_index(da, 0.5)).values
    lo = da.isel(quantile=int(np.argmin(coord))).values
    hi = da.isel(quantile=int(np.argmax(coord))).values
    return _finite(med), _finite(lo), _finite(hi)


def _class_counts(outcome) -> dict[str, int]:
    """Number of networks per class name (``outcome`` holds class codes)."""
    outcome = np.asarray(outcome)
    return {name: int((outcome == code).sum()) for code, name in enumerate(CLASS_LABELS)}


def _gathered_headline(data: Mapping):
    """``headline_time`` attribute of the first dataset that has one (None otherwise)."""
    for G in data.values():
        if "headline_time" in G.attrs:
            return float(G.attrs["headline_time"])
    return None


def headline_time(P, t: float | None = None) -> float:
    """The headline time of prediction dataset ``P``: ``t`` if given, else
    ``P.attrs['headline_time']``, else its first prediction time."""
    if t is not None:
        return float(t)
    if "headline_time" in P.attrs:
        return float(P.attrs["headline_time"])
    return float(np.asarray(P["prediction_time"].values, dtype=float)[0])
