"""Local stability analysis of stacks of tangent propagators: FTLEs, CLVs and their angles.

Input: propagators ``M[s, k]`` of S networks and K strides (d × d, float32 or float64; all
arithmetic is float64). Stride k maps the tangent space at flow time k·dt to (k+1)·dt, with
dt = jacobian_stride · learning_rate. The work is done by the compiled kernels of
:mod:`.kernels`, batched over networks; each network's results are bit-identical whatever the
chunking. Definitions below; the numerics (scaling, clamping, angle formula) are in
:mod:`.kernels`.

Benettin (forward), k = 0 … K−1:

    Q_0 = F,    M_k Q_k = Q_{k+1} R_{k+1},    diag R_{k+1} > 0      (Householder QR, sign-fixed)

F is a fixed random orthogonal frame drawn from the seed (the same for every network), not I:
with Q_0 = I a coordinate-aligned invariant block (the parameters of a dead ReLU unit, on which
every M_k is the identity) is never mixed into the other directions by the QR, so its zero
exponents keep their coordinate position instead of being sorted, and Ginelli's iteration then
pulls such CLVs onto others (angle exactly 0: a tangency made by the algorithm, not by the
dynamics). A generic frame removes that artefact; everything else is unchanged.

Index convention: ``Q[s, k]`` is Q_k (k = 0 … K, K+1 entries) and ``R[s, k]`` is R_{k+1}, the
triangular factor *of stride k* (K entries). Per stride k, labelled with the flow time at its
end, t = (k+1)·dt:

    local exponent     λ_i(k) = ln R_{k+1,ii} / dt              (Σ_i ln R_{k+1,ii} = ln|det M_k|)
    cumulative FTLE    Λ_i(k) = (1/(k+1)) Σ_{j=0…k} λ_i(j)        (from t = 0 to t = (k+1)·dt)
    windowed FTLE      Λ^w_i(k) = (1/w) Σ_{j=k−w+1…k} λ_i(j)      (trailing window of w strides;
                                                                  for k < w−1 it is Λ_i(k))
    whole-run exponent Λ_i = mean of λ_i(k) over k = f … K−1     (f = forward transient; = Λ_i(K−1)
                                                                  for f = 0)

Exponent i belongs to column i of Q; nothing is sorted (for a generic run Λ_1 ≥ … ≥ Λ_d).
Benettin's Λ_i(k) for i ≥ 2 depend on the frame F until the R_ii have converged (at the
study's early prediction times they are mostly F). The study therefore reports the
frame-invariant Λ_i(t) = (1/t) ln σ_i(M(t, 0)) of :func:`singular_value_ftle` as its cumulative
FTLEs, predictor features and whole-run exponents (:func:`.dataset.analyse_chunk`); the
Benettin values above remain the local and windowed exponents and the basis of the CLVs.

Ginelli CLVs (backward), m = K … 1, from a random upper-triangular C* with unit columns (drawn
from the seed, the same for every network):

    C_K = C*,    C_{m−1} = R_m^{-1} C_m N_m   (N_m diagonal: unit columns),    v_i(m) = Q_m c_i(m)

— the R that maps step m−1 to m takes C back from m to m−1. Then
M_k v_i(k) = Q_{k+1} R_{k+1} c_i(k) ∥ Q_{k+1} c_i(k+1) = v_i(k+1) (covariance). Per stride k
(label t = (k+1)·dt):

    CLV growth rate    γ_i(k) = ln‖M_k v_i(k)‖ / dt = ln‖R_{k+1} c_i(k)‖ / dt   (Q_{k+1} orthogonal)
    CLV angles         θ_ij(k+1) = arccos|v_i(k+1)·v_j(k+1)| = arccos|c_i·c_j|  ∈ [0, π/2], i < j

i.e. the angle at time t is that of the CLVs at time t (end of the stride), the growth rate at t
is that over the stride ending at t (like λ). Angles are evaluated as 2·atan2(‖u − σv‖, ‖u + σv‖),
σ = sign(u·v), which equals arccos|u·v| for unit u, v and stays accurate near tangency (arccos
loses half the digits there). A tangency is θ_ij < threshold (:func:`tangencies`).

Transients (in strides): CLVs v(m) are converged for f ≤ m ≤ K − b, with f the forward
transient (before it the CLVs still depend on the arbitrary initial frame Q_0 = F) and b the
backward transient (the last b CLV indices have not forgotten C*). ``clv_converged[k]`` is true
when both v(k) and v(k+1) are, so it covers the angle and the growth rate labelled (k+1)·dt.

Fixed-lag CLV estimate at CLV index k (time k·dt) with lag L ≥ 1 strides: the same backward
iteration started from C* at index k + L instead of K,

    Ĉ_{k+L} = C*,    Ĉ_{m−1} = R_m^{-1} Ĉ_m N_m   (m = k+L … k+1),    v̂_i(k) = Q_k ĉ_i(k),

uses M_0 … M_{k+L−1} only, so it is available at (k+L)·dt. Returned: its angles, its growth
rates ln‖R_{k+1} ĉ_i(k)‖/dt over stride k, and its error ∠(v̂_i(k), v_i(k)) against Ginelli.
L → ∞ (k + L = K) recovers Ginelli.

Degenerate cases (never NaN, inf or a RuntimeWarning for finite input):
* repeated exponents (identity blocks, e.g. dead ReLU units): λ_i = 0 to round-off; inside
  a degenerate subspace the CLVs are not unique and the ones returned are those selected by
  C* (finite, valid, but arbitrary);
* singular or near-singular propagators: ln R_ii is clamped below at ``LOG_FLOOR`` =
  ln(smallest normal float64) ≈ −708.4 (so λ ≥ LOG_FLOOR/dt), ln‖R c‖ likewise relative to
  the stride's scale (2^e ≈ max|R_ij|); the backward solve floors R_ii at that relative level
  and rescales to avoid overflow;
* invalid strides (diverged networks): stride k of network s is invalid if M_k has a
  non-finite entry or an earlier stride is invalid; n_s = number of leading valid strides
  (the caller may cap it further, e.g. from the simulation's divergence step). The network is
  analysed as if its run ended after n_s strides: the forward pass stops there and the Ginelli
  iteration starts from C* at index n_s. NaN marks what does not exist or is unconverged
  because of that: per-stride λ, Λ, Λ^w of strides k ≥ n_s; Ginelli angles/growth/lag errors
  involving CLVs v(m) with m > n_s, and if n_s < K also with m > n_s − b; fixed-lag estimates
  with k + L > n_s (not computable, also for valid networks if k + L > K); the whole-run
  exponents of networks with n_s < K. ``valid[s] = (n_s == K)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import (
    _analysis_kernel,
    _clv_coefficient_kernel,
    _qr_kernel,
    _singular_ftle_kernel,
)

__all__ = [
    "random_upper_triangular",
    "random_orthogonal",
    "leading_valid_strides",
    "pair_labels",
    "singular_value_ftle",
    "qr_cocycle",
    "ginelli_clvs",
    "tangencies",
    "cumulative_ftle",
    "windowed_ftle",
    "LyapunovAnalysis",
    "analyse",
]


def random_upper_triangular(d: int, seed) -> np.ndarray:
    """C*: upper-triangular d × d, off-diagonal N(0, 1), diagonal U(0.5, 1.5), unit columns.

    ``seed`` is anything ``numpy.random.default_rng`` accepts (an int or a Generator).
    """
    rng = np.random.default_rng(seed)
    C = np.triu(rng.standard_normal((d, d)), 1) + np.diag(rng.uniform(0.5, 1.5, d))
    return C / np.linalg.norm(C, axis=0)


def random_orthogonal(d: int, seed) -> np.ndarray:
    """F: a d × d orthogonal matrix, the sign-fixed QR factor of a Gaussian matrix (Haar).

    Drawn from the stream (seed, 1), independent of C* drawn from ``seed`` (an int).
    """
    q, r = np.linalg.qr(np.random.default_rng([int(seed), 1]).standard_normal((d, d)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def leading_valid_strides(propagators: np.ndarray) -> np.ndarray:
    """n_s: the number of leading strides of each network whose propagator is all finite."""
    finite = np.isfinite(propagators).all(axis=(-2, -1))
    return np.where(finite.all(axis=1), finite.shape[1], np.argmin(finite, axis=1))


def singular_value_ftle(propagators: np.ndarray, dt: float, counts, n_valid=None) -> np.ndarray:
    """Frame-invariant FTLEs Λ_i(t) = (1/t) ln σ_i(M(t, 0)), σ_1 ≥ … ≥ σ_d the singular values
    of the cumulative propagator M(t, 0) = M_{K_b−1} ⋯ M_0, t = K_b·dt, for each K_b in
    ``counts``: (S, len(counts), d); NaN where K_b exceeds the network's valid strides.

    M(t, 0) is never formed (its condition number passes 1e14 within one stride). Benettin's
    QR from Q_0 = I gives M(t, 0) = Q_K T with T = R_K ⋯ R_1 upper triangular and the same
    singular values; T is accumulated by rows in graded form e^{L_i} b_i (any dynamic range) and
    its rows are orthogonalised by one-sided Jacobi rotations, after which σ_i = e^{L_i}.
    Each step is backward stable: the result is exact for factors perturbed by ~ε‖M_k‖, which
    is also the rounding of the stored M_k. How much that moves Λ_i(t) is the quantity's own
    conditioning; tests compare with a 60+-digit SVD of the stored product within it.
    """
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    M, n = _prepare(propagators, n_valid)
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if np.any(counts < 1) or np.any(counts > M.shape[1]):
        raise ValueError(f"stride counts must lie in 1 … {M.shape[1]}, got {counts.tolist()}")
    order = np.argsort(counts, kind="stable")
    logs = np.empty((M.shape[0], counts.size, M.shape[2]))
    _singular_ftle_kernel(M, n, counts[order], logs)
    out = np.empty_like(logs)
    out[:, order] = logs
    return out / (counts[:, None] * dt)


def pair_labels(d: int) -> list[str]:
    """Labels "i-j" (1-based, i < j) in the order of the angle arrays."""
    i, j = np.triu_indices(d, 1)
    return [f"{a + 1}-{b + 1}" for a, b in zip(i, j)]


def _prepare(propagators, n_valid):
    M = np.asarray(propagators)
    if M.ndim != 4 or M.shape[2] != M.shape[3]:
        raise ValueError(f"propagators must have shape (S, K, d, d), got {M.shape}")
    if M.dtype not in (np.float32, np.float64):
        M = M.astype(np.float64)
    M = np.require(M, requirements=("C", "W"))  # one compiled specialisation per dtype
    n = leading_valid_strides(M)
    if n_valid is not None:
        n = np.minimum(n, np.clip(np.asarray(n_valid), 0, None))
    return M, n.astype(np.int64)


def qr_cocycle(propagators: np.ndarray, frame: np.ndarray, n_valid=None):
    """Benettin's sign-fixed QR from Q_0 = ``frame``: Q (S, K+1, d, d) with Q[:, k] = Q_k;
    R (S, K, d, d) with
    R[:, k] = R_{k+1} (stride k). NaN beyond each network's leading valid strides.

    Holds Q and R of the whole batch (2·S·K·d²·8 bytes): for tests and small inputs.
    """
    M, n = _prepare(propagators, n_valid)
    S, K, d = M.shape[:3]
    Q = np.empty((S, K + 1, d, d))
    R = np.empty((S, K, d, d))
    _qr_kernel(M, n, np.asarray(frame, dtype=np.float64), Q, R)
    return Q, R


def ginelli_clvs(propagators: np.ndarray, seed, n_valid=None) -> np.ndarray:
    """Ginelli CLVs V (S, K+1, d, d): v_i(m) = V[s, m, :, i] = Q_m c_i(m), unit columns.

    Q_0 = :func:`random_orthogonal` and C* = :func:`random_upper_triangular`, both from
    ``seed`` as in :func:`analyse`. The backward iteration starts from C* at
    index n_s; V[s, m] is NaN for m > n_s. Transients are not masked here.
    """
    M, n = _prepare(propagators, n_valid)
    Q, R = qr_cocycle(M, random_orthogonal(M.shape[2], seed), n)
    C = np.empty_like(Q)
    _clv_coefficient_kernel(R, n, random_upper_triangular(M.shape[2], seed), C)
    return Q @ C


def tangencies(angles: np.ndarray, threshold: float) -> np.ndarray:
    """Tangency flags θ_ij < threshold (False where the angle is NaN)."""
    return np.less(angles, threshold, where=~np.isnan(angles), out=np.zeros(angles.shape, bool))


def cumulative_ftle(local: np.ndarray) -> np.ndarray:
    """Λ_i(k) = (1/(k+1)) Σ_{j≤k} λ_i(j) for local exponents (..., K, d)."""
    return np.cumsum(local, axis=-2) / np.arange(1, local.shape[-2] + 1)[:, None]


def windowed_ftle(local: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean of λ over ``window`` strides (..., K, d); Λ_i(k) for k < window − 1."""
    if window < 1:
        raise ValueError(f"window must be ≥ 1 stride, got {window}")
    w = min(window, local.shape[-2])
    out = np.empty_like(local)
    out[..., : w - 1, :] = cumulative_ftle(local[..., : w - 1, :])
    out[..., w - 1 :, :] = np.lib.stride_tricks.sliding_window_view(local, w, axis=-2).mean(-1)
    return out


@dataclass
class LyapunovAnalysis:
    """Result of :func:`analyse` for S networks, K strides, d exponents, P = d(d−1)/2 pairs,
    NL lags and NP prediction indices (see the module docstring for definitions and NaNs)."""

    n_valid: np.ndarray            # (S,) leading valid strides n_s
    valid: np.ndarray              # (S,) bool, n_s == K
    local_exponent: np.ndarray     # (S, K, d) λ_i(k)
    ftle: np.ndarray               # (S, K, d) Λ_i(k), cumulative from t = 0
    ftle_windowed: np.ndarray      # (S, K, d) Λ^w_i(k)
    lyapunov_exponent: np.ndarray  # (S, d) whole-run exponents
    clv_angle: np.ndarray          # (S, K, P) θ_ij of v(k+1)
    clv_growth: np.ndarray         # (S, K, d) γ_i(k), stride k
    clv_converged: np.ndarray      # (K,) bool, v(k) and v(k+1) outside the transients
    clv_angle_at: np.ndarray       # (S, NP, P) θ_ij of the Ginelli v(k) at the prediction indices
    clv_growth_at: np.ndarray      # (S, NP, d) ln‖M_k v_i(k)‖/dt, Ginelli, stride k
    clv_angle_lagged: np.ndarray   # (S, NL, NP, P) θ_ij of v̂(k)
    clv_growth_lagged: np.ndarray  # (S, NL, NP, d) ln‖M_k v̂_i(k)‖/dt
    clv_lag_error: np.ndarray      # (S, NL, NP, d) ∠(v̂_i(k), v_i(k)) against Ginelli
    lagged_available: np.ndarray   # (NL, NP) k + L: index of the time the estimate exists


def analyse(
    propagators: np.ndarray,
    dt: float,
    *,
    seed,
    window: int = 20,
    forward_transient: int = 0,
    backward_transient: int = 100,
    prediction_index=(),
    lags=(),
    n_valid=None,
) -> LyapunovAnalysis:
    """Benettin FTLEs, Ginelli CLV angles and growth rates, and fixed-lag CLV estimates.

    ``propagators`` (S, K, d, d); ``dt`` flow time per stride; ``window``, the transients and
    ``lags`` (≥ 1) in strides; ``prediction_index`` CLV indices k ≥ 0 (time k·dt) of the
    fixed-lag estimates; ``seed`` for Q_0 = F and C*; ``n_valid`` optional cap on the valid
    strides.
    Memory: inputs and outputs plus one network's R per thread (no batch-sized Q or R).
    """
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    if forward_transient < 0 or backward_transient < 0:
        raise ValueError("transients must be ≥ 0 strides")
    lags = np.asarray(lags, dtype=np.int64).reshape(-1)
    pred = np.asarray(prediction_index, dtype=np.int64).reshape(-1)
    if np.any(lags < 1):
        raise ValueError(f"lags must be ≥ 1 stride, got {lags.tolist()}")
    M, n = _prepare(propagators, n_valid)
    S, K, d = M.shape[:3]
    if np.any(pred < 0):
        raise ValueError(f"prediction indices must be ≥ 0, got {pred.tolist()}")
    if forward_transient >= K:
        raise ValueError(f"forward_transient={forward_transient} leaves none of {K} strides")
    P, NL, NP = d * (d - 1) // 2, lags.size, pred.size

    log_r = np.empty((S, K, d))
    angle = np.empty((S, K, P))
    log_growth = np.empty((S, K, d))
    angle_pred = np.empty((S, NP, P))
    log_growth_pred = np.empty((S, NP, d))
    angle_lag = np.empty((S, NL, NP, P))
    log_growth_lag = np.empty((S, NL, NP, d))
    lag_error = np.empty((S, NL, NP, d))
    start = random_upper_triangular(d, seed)
    frame = random_orthogonal(d, seed)
    _analysis_kernel(
        M, n, frame, start, pred, lags, log_r, angle, log_growth, angle_pred, log_growth_pred,
        angle_lag, log_growth_lag, lag_error,
    )  # fmt: skip

    # Ginelli CLVs v(m) with m > cut_s are unconverged because the network's run ended early.
    cut = np.where(n < K, n - backward_transient, K)
    m_end = np.arange(1, K + 1)  # CLV index at the end of stride k
    angle[m_end > cut[:, None]] = np.nan
    log_growth[m_end - 1 > cut[:, None]] = np.nan
    unconverged = pred > cut[:, None]
    lag_error[np.broadcast_to(unconverged[:, None, :], (S, NL, NP))] = np.nan
    angle_pred[unconverged] = np.nan
    log_growth_pred[unconverged] = np.nan

    local = log_r / dt
    whole_run = np.full((S, d), np.nan)
    full = n == K
    whole_run[full] = local[full, forward_transient:].mean(axis=1)
    k = np.arange(K)
    return LyapunovAnalysis(
        n_valid=n,
        valid=full,
        local_exponent=local,
        ftle=cumulative_ftle(local),
        ftle_windowed=windowed_ftle(local, window),
        lyapunov_exponent=whole_run,
        clv_angle=angle,
        clv_growth=log_growth / dt,
        clv_converged=(k >= forward_transient) & (k + 1 <= K - backward_transient),
        clv_angle_at=angle_pred,
        clv_growth_at=log_growth_pred / dt,
        clv_angle_lagged=angle_lag,
        clv_growth_lagged=log_growth_lag / dt,
        clv_lag_error=lag_error,
        lagged_available=lags[:, None] + pred[None, :],
    )
