"""Free baseline predictors: what training itself shows at the prediction time t*.

A stability indicator is worth something only beyond these (docs/methods.md §3, "Baselines"). From
the training cost C(θ_n) and the gradient norm |∇C(θ_n)| recorded at every step n, at the step
n* = round(t*/η) of each prediction time t*:

    loss            C(θ_{n*})
    log-loss slope  the least-squares slope of ln C(θ_n) against flow time t = nη over the
                    w + 1 steps n = n* − w … n* (w = ``slope_steps``, fewer if n* < w):
                    Σ (t_n − t̄)(ln C_n − m) / Σ (t_n − t̄)², m the mean of ln C_n;
                    NaN for n* = 0 (a single point)
    gradient norm   |∇C(θ_{n*})|

and the initial parameters θ_0 (known at t = 0). Runs that diverged before n* have NaN.
"""

from __future__ import annotations

import numpy as np


def prediction_steps(times, learning_rate: float) -> np.ndarray:
    """n* = round(t*/η) for each prediction time t*."""
    return np.rint(np.asarray(times, dtype=float) / learning_rate).astype(np.int64)


def log_loss_slope(step_loss: np.ndarray, learning_rate: float, steps, slope_steps: int):
    """d ln C/dt by least squares over steps n* − w … n* (see module docstring): (S, len(steps))."""
    if slope_steps < 1:
        raise ValueError(f"slope_steps must be ≥ 1, got {slope_steps}")
    log_c = np.log(np.where(step_loss > 0, step_loss, np.nan))
    out = np.full((step_loss.shape[0], len(steps)), np.nan)
    for b, n in enumerate(steps):
        first = max(int(n) - slope_steps, 0)
        if n <= first:
            continue
        t = np.arange(first, n + 1) * learning_rate
        dt = t - t.mean()
        y = log_c[:, first:n + 1]
        out[:, b] = ((y - y.mean(axis=1, keepdims=True)) @ dt) / (dt @ dt)
    return out


def baseline_features(step_loss: np.ndarray, gradient_norm: np.ndarray, learning_rate: float,
                      times, slope_steps: int) -> dict[str, np.ndarray]:
    """{'loss_at', 'log_loss_slope_at', 'gradient_norm_at'}: (S, len(times)) arrays from the
    per-step cost and gradient norm (S, T+1) of S runs."""
    steps = prediction_steps(times, learning_rate)
    if steps.size and (steps.min() < 0 or steps.max() >= step_loss.shape[1]):
        raise ValueError(f"prediction steps {steps.tolist()} outside the {step_loss.shape[1]} "
                         "recorded steps")
    return {
        "loss_at": step_loss[:, steps],
        "log_loss_slope_at": log_loss_slope(step_loss, learning_rate, steps, slope_steps),
        "gradient_norm_at": gradient_norm[:, steps],
    }
