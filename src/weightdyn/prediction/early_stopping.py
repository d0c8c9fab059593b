"""Early stopping of training runs predicted to fail (docs/methods.md §3 "Prediction"; §5
figure 9).

At each prediction time t* the out-of-fold P(E_high) of the nested best of ALL families
available by τ = t* (repeat-mean log-odds, :func:`weightdyn.prediction.predict_combination`)
decides: runs with p > threshold are stopped at step n* = t*/η; runs without finite features
at t* (diverged) count as stopped. With T training steps, per threshold:

* compute saved = n_stopped (T − n*) / (n_runs T);
* E_low lost = #(stopped ∧ E_low) / #E_low;  E_high caught = #(stopped ∧ E_high) / #E_high.

References: chance (stopping a random fraction f): lost = f, saved = f (T − n*)/T. Best possible
(stop exactly the E_high runs): lost = 0, saved = frac_high (T − n*)/T.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..outcomes import TIME_DECIMALS

__all__ = [
    "STOP_THRESHOLDS", "EarlyStopping", "StoppingSweep", "best_possible_saving",
    "chance_saving", "early_stopping_curve", "stopping_sweep",
]

#: probability thresholds of the early-stopping sweep
STOP_THRESHOLDS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class EarlyStopping:
    """Early-stopping trade-off per threshold (arrays aligned with ``thresholds``).

    A fraction whose denominator class is empty is None.
    """

    thresholds: np.ndarray
    n_stopped: np.ndarray
    compute_saved: np.ndarray
    low_stopped: np.ndarray | None
    high_caught: np.ndarray | None


def early_stopping_curve(p_high, is_low, is_high, stop_step: int, total_steps: int,
                         thresholds, always_stopped=None) -> EarlyStopping:
    """Stop every run with p_high > threshold at step ``stop_step`` (the step t*/η at which the
    prediction is available, including any CLV lag).

    compute_saved = n_stopped (total_steps − stop_step) / (n_runs total_steps);
    low_stopped = #(stopped ∧ E_low) / #E_low; high_caught = #(stopped ∧ E_high) / #E_high.
    p_high must be finite: give runs without a prediction (e.g. dropped for non-finite
    features) an explicit value first, and mark them in ``always_stopped`` (bool mask) to count
    them as stopped at every threshold (runs that diverged before n* have failed already).
    """
    p = np.asarray(p_high, dtype=float)
    is_low = np.asarray(is_low, dtype=bool)
    is_high = np.asarray(is_high, dtype=bool)
    thr = np.asarray(thresholds, dtype=float)
    if p.ndim != 1 or p.size == 0 or is_low.shape != p.shape or is_high.shape != p.shape:
        raise ValueError(f"p_high, is_low, is_high must be 1-D, non-empty, of equal length, got "
                         f"{p.shape}, {is_low.shape}, {is_high.shape}")
    if not np.isfinite(p).all():
        raise ValueError("p_high contains non-finite values; assign runs without a prediction "
                         "an explicit probability")
    if not 0 <= stop_step <= total_steps or total_steps <= 0:
        raise ValueError(f"need 0 <= stop_step <= total_steps and total_steps > 0, got "
                         f"stop_step={stop_step}, total_steps={total_steps}")

    forced = (np.zeros(p.shape, dtype=bool) if always_stopped is None
              else np.asarray(always_stopped, dtype=bool))

    def n_above(mask):
        values = p[mask & ~forced]
        return (values.size - np.searchsorted(np.sort(values), thr, side="right")
                + int((mask & forced).sum()))

    everyone = np.ones(p.shape, dtype=bool)

    def fraction(mask):
        return n_above(mask) / mask.sum() if mask.any() else None

    n_stopped = n_above(everyone)
    return EarlyStopping(
        thresholds=thr, n_stopped=n_stopped,
        compute_saved=n_stopped * (total_steps - stop_step) / (p.size * total_steps),
        low_stopped=fraction(is_low), high_caught=fraction(is_high))


def chance_saving(lost, stop_step: int, total_steps: int):
    """Compute saved by stopping a random fraction f = ``lost`` of the runs at ``stop_step``:
    the same fraction f of the E_low runs is lost, and f (T − n*)/T of the compute is saved."""
    return np.asarray(lost, dtype=float) * (total_steps - stop_step) / total_steps


def best_possible_saving(frac_high: float, stop_step: int, total_steps: int) -> float:
    """Compute saved by stopping exactly the E_high runs at ``stop_step`` (no E_low run lost)."""
    return float(frac_high) * (total_steps - stop_step) / total_steps


@dataclass(frozen=True)
class StoppingSweep:
    """Early stopping at every prediction time (rows) and threshold of STOP_THRESHOLDS
    (columns): ``compute_saved``, ``low_lost``, ``high_caught`` (NaN where there is no
    predictor or the class is empty); per prediction time the ``stop_step`` n*, the best
    possible saving ``best_saved``, the chance slope (T − n*)/T ``chance_slope`` and the
    ``predictor`` used ('' if none)."""

    compute_saved: np.ndarray
    low_lost: np.ndarray
    high_caught: np.ndarray
    stop_step: np.ndarray
    best_saved: np.ndarray
    chance_slope: np.ndarray
    predictor: list


def stopping_sweep(stop_scores: Mapping[float, tuple], times: Sequence[float], is_low, is_high,
                   eta: float, total_steps: int) -> StoppingSweep:
    """:func:`early_stopping_curve` at every prediction time t in ``times`` with the predictor
    ``stop_scores[round(t, TIME_DECIMALS)]`` = (p_high of every run, always_stopped mask,
    predictor name); prediction times without an entry stay NaN."""
    T = len(times)
    stop = {key: np.full((T, STOP_THRESHOLDS.size), np.nan) for key in ("saved", "low", "high")}
    stop_step = np.array([int(round(t / eta)) for t in times])
    frac_high = float(np.asarray(is_high).mean())
    slope = (total_steps - stop_step) / total_steps
    predictor = []
    for k, t in enumerate(times):
        got = stop_scores.get(round(t, TIME_DECIMALS))
        predictor.append(got[2] if got else "")
        if got is None:
            continue
        curve = early_stopping_curve(got[0], is_low, is_high, int(stop_step[k]), total_steps,
                                     STOP_THRESHOLDS, always_stopped=got[1])
        stop["saved"][k] = curve.compute_saved
        if curve.low_stopped is not None:
            stop["low"][k] = curve.low_stopped
        if curve.high_caught is not None:
            stop["high"][k] = curve.high_caught
    return StoppingSweep(stop["saved"], stop["low"], stop["high"], stop_step,
                         frac_high * slope, slope, predictor)
