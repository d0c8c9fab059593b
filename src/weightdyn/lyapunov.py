"""Local stability analysis of stacks of tangent propagators: FTLEs, CLVs and their angles.

Input: propagators ``M[s, k]`` of S networks and K strides (d × d, float32 or float64; all
arithmetic is float64). Stride k maps the tangent space at flow time k·dt to (k+1)·dt, with
dt = jacobian_stride · learning_rate. Work is batched over networks in compiled code (numba,
networks in parallel); each network's arithmetic is independent of the batch it is in, so its
results are bit-identical whatever the chunking.

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
FTLEs, predictor features and whole-run exponents (:func:`analyse_chunk`); the Benettin values
above remain the local and windowed exponents and the basis of the CLVs.

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

import math
from dataclasses import dataclass

import numba
import numpy as np
import xarray as xr

from . import chunkio

TINY = np.finfo(np.float64).tiny
LOG_FLOOR = math.log(TINY)
_BIG = 1e100  # bound on intermediate entries of the backward solve before rescaling


# --------------------------------------------------------------------------- compiled kernels


@numba.njit(cache=True)
def _qr_step(M, Q_in, Q_out, R, A, v):
    """Q_out R = M Q_in with diag R ≥ 0 (Householder; M may be float32). A, v: work arrays."""
    d = Q_in.shape[0]
    for i in range(d):
        for j in range(d):
            acc = 0.0
            for l in range(d):
                acc += M[i, l] * Q_in[l, j]
            A[i, j] = acc
            Q_out[i, j] = 1.0 if i == j else 0.0
    for j in range(d - 1):
        scale = 0.0
        for i in range(j, d):
            scale = max(scale, abs(A[i, j]))
        if scale == 0.0:
            continue
        sigma = 0.0
        for i in range(j + 1, d):
            v[i] = A[i, j] / scale
            sigma += v[i] * v[i]
        if sigma == 0.0:
            continue
        x0 = A[j, j] / scale
        norm = math.sqrt(x0 * x0 + sigma)
        v[j] = x0 + math.copysign(norm, x0)  # v = x − α e_j, α = −sign(x0)‖x‖
        beta = 2.0 / (v[j] * v[j] + sigma)
        A[j, j] = -math.copysign(norm, x0) * scale
        for i in range(j + 1, d):
            A[i, j] = 0.0
        for c in range(j + 1, d):  # A ← (I − β v vᵀ) A
            w = 0.0
            for i in range(j, d):
                w += v[i] * A[i, c]
            w *= beta
            for i in range(j, d):
                A[i, c] -= w * v[i]
        for r in range(d):  # Q ← Q (I − β v vᵀ)
            w = 0.0
            for i in range(j, d):
                w += Q_out[r, i] * v[i]
            w *= beta
            for i in range(j, d):
                Q_out[r, i] -= w * v[i]
    for i in range(d):
        sign = -1.0 if A[i, i] < 0.0 else 1.0
        for c in range(d):
            R[i, c] = sign * A[i, c] if c >= i else 0.0
            Q_out[c, i] *= sign


@numba.njit(cache=True)
def _inverse_scale(R):
    """(2^−e, e ln 2) with 2^e the power of two just above max|R_ij| (1, 0 for R = 0)."""
    rmax = 0.0
    for i in range(R.shape[0]):
        for j in range(i, R.shape[0]):
            rmax = max(rmax, abs(R[i, j]))
    if rmax == 0.0:
        return 1.0, 0.0
    e = math.frexp(rmax)[1]
    return math.ldexp(1.0, -e), e * math.log(2.0)


@numba.njit(cache=True)
def _solve_normalise(R, C, x):
    """C ← R^{-1} C with unit columns (in place; R, C upper triangular). x: work array.

    R is scaled by a power of two (exact; the direction is unchanged), R_ii is floored at TINY
    and the solution rescaled whenever an entry would exceed _BIG, so nothing overflows.
    """
    d = R.shape[0]
    inv = _inverse_scale(R)[0]
    for j in range(d):
        rhs = 1.0  # the system solved is R x = rhs · c_j
        for i in range(j, -1, -1):
            num = rhs * C[i, j]
            for l in range(i + 1, j + 1):
                num -= R[i, l] * inv * x[l]
            rii = max(R[i, i] * inv, TINY)
            if abs(num) > _BIG * rii:
                f = _BIG * rii / abs(num)
                for l in range(i + 1, j + 1):
                    x[l] *= f
                num *= f
                rhs *= f
            x[i] = num / rii
        norm = 0.0
        for i in range(j + 1):
            norm += x[i] * x[i]
        norm = math.sqrt(norm)
        if norm == 0.0:  # everything underflowed: keep the column's own direction e_j
            x[j] = 1.0
            norm = 1.0
        for i in range(j + 1):
            C[i, j] = x[i] / norm


@numba.njit(cache=True)
def _log_growth(R, C, out):
    """out[j] = ln‖R c_j‖ (R, C upper triangular), clamped below at LOG_FLOOR (+ scale)."""
    d = R.shape[0]
    inv, log_scale = _inverse_scale(R)
    for j in range(d):
        acc = 0.0
        for i in range(j + 1):
            y = 0.0
            for l in range(i, j + 1):
                y += R[i, l] * inv * C[l, j]
            acc += y * y
        out[j] = math.log(max(math.sqrt(acc), TINY)) + log_scale


@numba.njit(cache=True)
def _line_angle(U, i, V, j):
    """Angle in [0, π/2] between the lines of unit columns U[:, i] and V[:, j]."""
    dot = 0.0
    for l in range(U.shape[0]):
        dot += U[l, i] * V[l, j]
    sign = -1.0 if dot < 0.0 else 1.0
    minus = 0.0
    plus = 0.0
    for l in range(U.shape[0]):
        minus += (U[l, i] - sign * V[l, j]) ** 2
        plus += (U[l, i] + sign * V[l, j]) ** 2
    return 2.0 * math.atan2(math.sqrt(minus), math.sqrt(plus))


@numba.njit(cache=True)
def _pair_angles(C, out):
    """out[p] = angle between columns i < j of C, pairs in row-major order."""
    d = C.shape[0]
    p = 0
    for i in range(d):
        for j in range(i + 1, d):
            out[p] = _line_angle(C, i, C, j)
            p += 1


@numba.njit(parallel=True, cache=True)
def _qr_kernel(M, n_valid, frame, Q, R):
    """Q[s, k] = Q_k, R[s, k] = R_{k+1} for the leading valid strides; NaN after them."""
    S, d = M.shape[0], M.shape[2]
    for s in numba.prange(S):
        n = n_valid[s]
        A = np.empty((d, d))
        v = np.empty(d)
        Q[s, 0] = frame
        for k in range(n):
            _qr_step(M[s, k], Q[s, k], Q[s, k + 1], R[s, k], A, v)
        Q[s, n + 1 :] = np.nan
        R[s, n:] = np.nan


@numba.njit(parallel=True, cache=True)
def _clv_coefficient_kernel(R, n_valid, start, C):
    """C[s, m] = C_m of the Ginelli iteration from C_{n_s} = C*; NaN for m > n_s."""
    S, d = R.shape[0], R.shape[2]
    for s in numba.prange(S):
        n = n_valid[s]
        x = np.empty(d)
        C[s, n] = start
        for m in range(n, 0, -1):
            C[s, m - 1] = C[s, m]
            _solve_normalise(R[s, m - 1], C[s, m - 1], x)
        C[s, n + 1 :] = np.nan


@numba.njit(parallel=True, cache=True)
def _analysis_kernel(
    M, n_valid, frame, start, pred_index, lags,
    log_r, angle, log_growth, angle_pred, log_growth_pred, angle_lag, log_growth_lag, lag_error,
):  # fmt: skip
    """Benettin, Ginelli and fixed-lag estimates per network; logs (not yet divided by dt)."""
    S, d = M.shape[0], M.shape[2]
    n_pred, n_lag = pred_index.shape[0], lags.shape[0]
    for s in numba.prange(S):
        n = n_valid[s]
        R = np.empty((n, d, d))
        Q = frame.copy()
        Q_next = np.empty((d, d))
        A = np.empty((d, d))
        work = np.empty(d)
        for k in range(n):
            _qr_step(M[s, k], Q, Q_next, R[k], A, work)
            Q, Q_next = Q_next, Q
            for i in range(d):
                log_r[s, k, i] = math.log(max(R[k, i, i], TINY))
        log_r[s, n:] = np.nan
        angle[s, n:] = np.nan
        log_growth[s, n:] = np.nan

        # Ginelli: angle row m−1 holds v(m); growth row k the stride k → k+1.
        C = start.copy()
        C_at_pred = np.empty((n_pred, d, d))
        for m in range(n, -1, -1):
            if m < n:
                _solve_normalise(R[m], C, work)
                _log_growth(R[m], C, log_growth[s, m])
            if m >= 1:
                _pair_angles(C, angle[s, m - 1])
            for b in range(n_pred):
                if pred_index[b] == m:
                    C_at_pred[b] = C

        for b in range(n_pred):
            k = pred_index[b]
            if k >= n:
                angle_pred[s, b] = np.nan
                log_growth_pred[s, b] = np.nan
                continue
            _pair_angles(C_at_pred[b], angle_pred[s, b])
            _log_growth(R[k], C_at_pred[b], log_growth_pred[s, b])

        for a in range(n_lag):
            for b in range(n_pred):
                k = pred_index[b]
                if k + lags[a] > n:
                    angle_lag[s, a, b] = np.nan
                    log_growth_lag[s, a, b] = np.nan
                    lag_error[s, a, b] = np.nan
                    continue
                C[:] = start
                for m in range(k + lags[a], k, -1):
                    _solve_normalise(R[m - 1], C, work)
                _pair_angles(C, angle_lag[s, a, b])
                _log_growth(R[k], C, log_growth_lag[s, a, b])
                for i in range(d):
                    lag_error[s, a, b, i] = _line_angle(C, i, C_at_pred[b], i)


@numba.njit(cache=True)
def _graded_left_multiply(R, L, B, acc):
    """T ← R T for upper-triangular R and T held by rows T_i = e^{L_i} b_i, ‖b_i‖ = 1.

    Row i of R T is Σ_{j ≥ i} R_ij T_j, summed scaled by its largest term: no overflow or
    underflow, whatever the grading. Rows are updated top to bottom (row i uses rows ≥ i).
    """
    d = L.shape[0]
    for i in range(d):
        m = -np.inf
        for j in range(i, d):
            if R[i, j] != 0.0:
                m = max(m, math.log(abs(R[i, j])) + L[j])
        if m == -np.inf:  # a zero row of R: keep a direction, floor the size
            L[i] += LOG_FLOOR
            continue
        for c in range(d):
            acc[c] = 0.0
        for j in range(i, d):
            if R[i, j] != 0.0:
                w = R[i, j] * math.exp(L[j] - m)
                for c in range(d):
                    acc[c] += w * B[j, c]
        norm = 0.0
        for c in range(d):
            norm += acc[c] * acc[c]
        norm = math.sqrt(norm)
        if norm == 0.0:  # exact cancellation: keep a direction, floor the size
            L[i] = m + LOG_FLOOR
            continue
        L[i] = m + math.log(norm)
        for c in range(d):
            B[i, c] = acc[c] / norm


@numba.njit(cache=True)
def _row_jacobi(L, B, tol, max_sweeps):
    """One-sided Jacobi on the rows e^{L_i} b_i: rotate pairs of rows until all are orthogonal;
    then the row norms e^{L_i} are the singular values (returned unsorted, as logs in L).

    For rows x = e^{L_x} u (the larger), y = e^{L_y} v, ρ = e^{L_y − L_x} ≤ 1, g = u·v, the
    rotation x' = c x − s y, y' = s x + c y with x'·y' = 0 has t = s/c = ρτ,
        τ = −2g / ((1 − ρ²) + sqrt((1 − ρ²)² + 4ρ²g²)),   c = 1/sqrt(1 + t²),
        x' = e^{L_x} c (u − ρ²τ v),   y' = e^{L_y} c (τ u + v),
    finite for any ρ (ρ → 0: y' ∝ v − g u, Gram–Schmidt), so each 2 × 2 problem is solved to
    relative accuracy whatever the scales (Demmel & Veselić 1992 for graded matrices).
    """
    d = L.shape[0]
    for _ in range(max_sweeps):
        rotated = False
        for p in range(d - 1):
            for q in range(p + 1, d):
                x, y = (p, q) if L[p] >= L[q] else (q, p)
                g = 0.0
                for c in range(d):
                    g += B[x, c] * B[y, c]
                if abs(g) <= tol:
                    continue
                rotated = True
                rho = math.exp(L[y] - L[x])
                one = 1.0 - rho * rho
                tau = -2.0 * g / (one + math.sqrt(one * one + 4.0 * rho * rho * g * g))
                t = rho * tau
                cs = 1.0 / math.sqrt(1.0 + t * t)
                nx = 0.0
                ny = 0.0
                for c in range(d):
                    u = B[x, c]
                    v = B[y, c]
                    B[x, c] = u - rho * rho * tau * v
                    B[y, c] = tau * u + v
                    nx += B[x, c] * B[x, c]
                    ny += B[y, c] * B[y, c]
                nx = math.sqrt(nx)
                ny = math.sqrt(ny)
                for c in range(d):
                    B[x, c] /= nx
                    B[y, c] /= ny
                L[x] += math.log(cs * nx)
                L[y] += math.log(cs * ny)
        if not rotated:
            return


@numba.njit(parallel=True, cache=True)
def _singular_ftle_kernel(M, n_valid, counts, out):
    """out[s, b] = ln σ_i(M_{K_b−1} ⋯ M_0), descending (counts ascending); NaN if K_b > n_s."""
    S, d = M.shape[0], M.shape[2]
    for s in numba.prange(S):
        W = np.eye(d)
        W_next = np.empty((d, d))
        R = np.empty((d, d))
        A = np.empty((d, d))
        work = np.empty(d)
        L = np.zeros(d)
        B = np.eye(d)
        L_copy = np.empty(d)
        B_copy = np.empty((d, d))
        k = 0
        for b in range(counts.size):
            if counts[b] > n_valid[s]:
                out[s, b] = np.nan
                continue
            while k < counts[b]:  # M(t,0) = Q T: T ← R_{k+1} T
                _qr_step(M[s, k], W, W_next, R, A, work)
                W, W_next = W_next, W
                _graded_left_multiply(R, L, B, work)
                k += 1
            L_copy[:] = L
            B_copy[:] = B
            _row_jacobi(L_copy, B_copy, 1e-15, 60)
            out[s, b] = -np.sort(-L_copy)


# --------------------------------------------------------------------------- public API


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


def clv_angles(vectors: np.ndarray) -> np.ndarray:
    """θ_ij = arccos|v_i·v_j| ∈ [0, π/2] between the columns i < j of ``vectors`` (..., d, d);
    returns (..., d(d−1)/2) in :func:`pair_labels` order (columns are normalised first)."""
    i, j = np.triu_indices(vectors.shape[-1], 1)
    unit = vectors / np.linalg.norm(vectors, axis=-2, keepdims=True)
    u, v = unit[..., :, i], unit[..., :, j]
    sign = np.where(np.sum(u * v, axis=-2, keepdims=True) < 0.0, -1.0, 1.0)
    return 2.0 * np.arctan2(
        np.linalg.norm(u - sign * v, axis=-2), np.linalg.norm(u + sign * v, axis=-2)
    )


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


def _flow_time(index, dt):
    """Flow time index·dt, rounded to 12 decimals so that e.g. 3 · 0.005 is exactly 0.015."""
    return np.round(np.asarray(index) * dt, 12)


def analyse_chunk(sim: xr.Dataset, cfg: dict) -> xr.Dataset:
    """The per-chunk lyapunov dataset (design.md §6) of a simulation chunk ``sim``.

    ``cfg["lyapunov"]`` gives the transients and window (strides), the lags (steps, positive
    multiples of jacobian_stride) and the tangency threshold (rad); ``cfg["prediction"]["times"]``
    the flow times t* of the fixed-lag estimates (CLV index round(t*/dt), its time kept as
    ``prediction_clv_time``); ``cfg["seed"]`` seeds C*. A stride is invalid from the first
    non-finite propagator or from stride divergence_step // jacobian_stride on (the first stride
    reaching the divergence step); ``valid`` = 1 iff the network did not diverge and all its
    strides are valid, and ``lyapunov_exponent`` is NaN otherwise. NaNs as in :func:`analyse`.
    The cumulative FTLEs ``ftle`` (time series), ``ftle_at`` (prediction times) and the
    whole-run exponents ``lyapunov_exponent`` (t = T) are the frame-invariant
    (1/t) ln σ_i(M(t, 0)) of :func:`singular_value_ftle`: Benettin's cumulative means from a
    random frame still depend on that frame at t = T = 3 (by O(1) for small gaps, measured in
    docs/conditioning.md). The local and windowed exponents are Benettin's (frame F).
    ``clv_tangency_fraction`` is the fraction of converged, finite Ginelli angles below the
    threshold (NaN if there are none). Time series (λ, Λ, Λ^w, θ_ij, γ_i) are stored at the ends
    of every ``lyapunov.output_stride``-th stride and of the strides ending at the prediction
    times; whole-run quantities use every stride.
    """
    lcfg = cfg["lyapunov"]
    s = int(sim.attrs["jacobian_stride"])
    eta = float(sim.attrs["learning_rate"])
    dt = s * eta
    stride = sim["stride"].values
    K = stride.size
    if not np.array_equal(stride, np.arange(K)):
        raise ValueError("simulation chunk: coordinate 'stride' must be 0, 1, …, K−1")
    lag_steps = np.asarray(lcfg["lags"], dtype=np.int64)
    if np.any(lag_steps <= 0) or np.any(lag_steps % s):
        raise ValueError(
            f"lyapunov.lags={lag_steps.tolist()} must be positive multiples of "
            f"jacobian_stride={s} steps"
        )
    times = np.asarray(cfg["prediction"]["times"], dtype=float)
    pred = np.rint(times / dt).astype(np.int64)
    threshold = float(lcfg["tangency_threshold"])

    M = sim["propagator"].transpose("network", "stride", "param_i", "param_j").values
    div_step = sim["divergence_step"].values.astype(np.int64)
    n_valid = np.where(div_step >= 0, div_step // s, K)
    res = analyse(
        M, dt, seed=cfg["seed"], window=int(lcfg["window"]),
        forward_transient=int(lcfg["forward_transient"]),
        backward_transient=int(lcfg["backward_transient"]),
        prediction_index=pred, lags=lag_steps // s, n_valid=n_valid,
    )  # fmt: skip
    valid = res.valid & (sim["diverged"].values == 0)
    d = M.shape[2]
    # time series are stored every `output_stride` strides and at the prediction times
    keep = ((stride + 1) % int(lcfg["output_stride"]) == 0) | np.isin(stride + 1, pred)
    # frame-invariant FTLEs at the stored times, the prediction times and the end of the run
    counts = np.union1d(np.union1d(stride[keep] + 1, pred), [K])
    sv_ftle = singular_value_ftle(M, dt, counts, n_valid=n_valid)
    ftle = sv_ftle[:, np.searchsorted(counts, stride[keep] + 1)]
    ftle_at = sv_ftle[:, np.searchsorted(counts, pred)]
    whole_run = sv_ftle[:, -1]

    usable = res.clv_converged[None, :, None] & ~np.isnan(res.clv_angle)
    n_usable = usable.sum(axis=1)
    n_tangent = (usable & tangencies(res.clv_angle, threshold)).sum(axis=1)
    tangency_fraction = np.full(n_usable.shape, np.nan)
    np.divide(n_tangent, n_usable, out=tangency_fraction, where=n_usable > 0)

    def var(dims, data, long_name, units):
        return dims, data, {"long_name": long_name, "units": units}

    def thin(series):
        return series[:, keep]

    NTE, NLPP = ("network", "time", "exponent"), ("network", "lag", "prediction_time", "pair")
    NLPE = ("network", "lag", "prediction_time", "exponent")
    data = {
        "local_exponent": var(NTE, thin(res.local_exponent),
                              "local Lyapunov exponent ln(R_ii)/dt of the stride ending at time",
                              "1/t"),
        "ftle": var(NTE, ftle, "frame-invariant finite-time Lyapunov exponent (1/t) ln sigma_i "
                               "of the cumulative propagator from t = 0 to time", "1/t"),
        "ftle_at": var(("network", "prediction_time", "exponent"), ftle_at,
                       "frame-invariant finite-time Lyapunov exponent (1/t) ln sigma_i of the "
                       "cumulative propagator from t = 0 to prediction_clv_time", "1/t"),
        "clv_angle_ginelli_at": var(("network", "prediction_time", "pair"), res.clv_angle_at,
                                    "angle between Ginelli CLVs i and j at prediction_clv_time "
                                    "(uses the whole future)", "rad"),
        "clv_growth_ginelli_at": var(("network", "prediction_time", "exponent"), res.clv_growth_at,
                                     "growth rate along Ginelli CLV i over the stride starting at "
                                     "prediction_clv_time (uses the whole future)", "1/t"),
        "ftle_windowed": var(NTE, thin(res.ftle_windowed),
                             f"Benettin finite-time Lyapunov exponent over the last "
                             f"{lcfg['window']} strides (cumulative before)", "1/t"),
        "lyapunov_exponent": var(("network", "exponent"),
                                 np.where(valid[:, None], whole_run, np.nan),
                                 "whole-run Lyapunov exponent (1/T) ln sigma_i of the propagator "
                                 "of the whole run (NaN unless valid)", "1/t"),
        "clv_angle": var(("network", "time", "pair"), thin(res.clv_angle),
                         "angle between Ginelli CLVs i and j at time", "rad"),
        "clv_growth": var(NTE, thin(res.clv_growth),
                          "growth rate ln|M_k v_i(k)|/dt along Ginelli CLV i over the stride "
                          "ending at time", "1/t"),
        "clv_angle_lagged": var(NLPP, res.clv_angle_lagged,
                                "angle between fixed-lag CLV estimates i and j at "
                                "prediction_clv_time", "rad"),
        "clv_growth_lagged": var(NLPE, res.clv_growth_lagged,
                                 "growth rate along the fixed-lag CLV estimate i over the stride "
                                 "starting at prediction_clv_time", "1/t"),
        "clv_lag_error": var(NLPE, res.clv_lag_error,
                             "angle between the fixed-lag CLV estimate i and Ginelli CLV i",
                             "rad"),
        "lagged_available_time": var(("lag", "prediction_time"),
                                     _flow_time(res.lagged_available, dt),
                                     "flow time from which the fixed-lag estimate is available",
                                     "1"),
        "clv_tangency_fraction": var(("network", "pair"), tangency_fraction,
                                     f"fraction of converged times with clv_angle < {threshold}",
                                     "1"),
        "clv_converged": var(("time",), res.clv_converged[keep].astype(np.int8),
                             "1 if the Ginelli CLVs at both ends of the stride are outside the "
                             "transients", "1"),
        "valid": var(("network",), valid.astype(np.int8),
                     "1 if the network did not diverge (all strides valid)", "1"),
    }  # fmt: skip
    coords = {
        "network": ("network", sim["network"].values,
                    {"long_name": "network index within the combination"}),
        "time": ("time", _flow_time(stride[keep] + 1, dt),
                 {"long_name": "flow time t = n * eta at the end of the stride", "units": "1"}),
        "exponent": ("exponent", np.arange(1, d + 1), {"long_name": "Lyapunov index i (1-based)"}),
        "pair": ("pair", pair_labels(d), {"long_name": "CLV pair i-j (1-based, i < j)"}),
        "lag": ("lag", lag_steps, {"long_name": "fixed-lag CLV lag L", "units": "steps"}),
        "prediction_time": ("prediction_time", times,
                            {"long_name": "prediction time t*", "units": "1"}),
        "prediction_clv_time": ("prediction_time", _flow_time(pred, dt),
                                {"long_name": "flow time of the fixed-lag CLV estimate "
                                              "(t* rounded to a stride boundary)", "units": "1"}),
    }  # fmt: skip
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        {key: sim.attrs[key] for key in ("activation", "initialization") if key in sim.attrs}
    )
    ds.attrs.update(
        learning_rate=eta,
        jacobian_stride=s,
        steps=int(sim.attrs["steps"]),
        time_per_stride=dt,
        forward_transient=int(lcfg["forward_transient"]),
        backward_transient=int(lcfg["backward_transient"]),
        window=int(lcfg["window"]),
        tangency_threshold=threshold,
        output_stride=int(lcfg["output_stride"]),
        seed=int(cfg["seed"]),
        **chunkio.provenance(cfg, "lyapunov"),
    )
    return ds
