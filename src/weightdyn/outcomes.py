"""Outcome classes of a training run, the prediction events, and flow time.

Single definitions used by every stage (docs/methods.md §2):

* class codes LOW = 0 (c_f < low), MIDDLE = 1, HIGH = 2 (c_f > high or c_f not finite;
  diverged runs have c_f = +inf), with names ``CLASS_LABELS[code]``;
* events E_low = {c_f < low} and E_high = {c_f > high or c_f not finite};
* flow time t = n·η of step n, rounded to 12 decimals so that e.g. 3 × 0.005 is exactly 0.015
  and times from different stages compare equal.
"""

from __future__ import annotations

import numpy as np

LOW, MIDDLE, HIGH = 0, 1, 2
CLASS_LABELS = ("low", "middle", "high")
#: the events, in the order they are reported (E_low only where a middle class exists)
EVENTS = ("high", "low")
#: decimals of flow times (see module docstring)
TIME_DECIMALS = 12


def flow_time(steps, step_length: float) -> np.ndarray:
    """t = steps · step_length (η per step, or s·η per propagator stride), rounded to
    TIME_DECIMALS decimals."""
    return np.round(np.asarray(steps) * step_length, TIME_DECIMALS)


def _check_thresholds(low: float, high: float) -> None:
    if not low < high:
        raise ValueError(f"loss thresholds must satisfy low < high, got low={low!r}, high={high!r}")


def outcome_events(final_loss, low: float = 4.0, high: float = 100.0) -> dict[str, np.ndarray]:
    """The binary events {'low': c_f < low, 'high': c_f > high or c_f non-finite} (bool arrays)."""
    _check_thresholds(low, high)
    c = np.asarray(final_loss, dtype=float)
    finite = np.isfinite(c)
    return {"low": finite & (c < low), "high": ~finite | (c > high)}


def classify(final_loss, low: float = 4.0, high: float = 100.0) -> np.ndarray:
    """Outcome class per run: LOW (c_f < low), HIGH (c_f > high or non-finite), MIDDLE otherwise.

    Returns an int8 array of codes; ``CLASS_LABELS[code]`` is the class name.
    """
    e = outcome_events(final_loss, low, high)
    return np.where(e["low"], LOW, np.where(e["high"], HIGH, MIDDLE)).astype(np.int8)
