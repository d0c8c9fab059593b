"""Compiled (numba) kernels of the Lyapunov analysis; the maths is in :mod:`.analysis`.

Everything is float64 (propagators may be float32; they are widened entry by entry). Kernels
named ``*_kernel`` loop over networks in parallel (``numba.prange``); each network's arithmetic
is independent of the batch it is in, so its results are bit-identical whatever the chunking.
Compiled code is cached on disk (``cache=True``).

Numerics shared by the callers in :mod:`.analysis`:

* :func:`_qr_step`: Householder QR of M Q_in, sign-fixed so that diag R ≥ 0;
* :func:`_solve_normalise` (one backward Ginelli step C ← R^{-1} C, unit columns) scales R by a
  power of two (exact), floors R_ii at ``TINY`` relative to that scale and rescales the
  partial solution whenever an entry would exceed ``_BIG``: nothing overflows;
* :func:`_log_growth`: ln‖R c_j‖, clamped below at ``LOG_FLOOR`` relative to the same scale;
* :func:`_line_angle`: the angle between the lines of unit vectors u, v as
  2·atan2(‖u − σv‖, ‖u + σv‖), σ = sign(u·v), which equals arccos|u·v| and stays accurate near
  tangency (arccos loses half the digits there);
* :func:`_graded_left_multiply` and :func:`_row_jacobi`: the triangular product T = R_K ⋯ R_1
  held by rows in graded form e^{L_i} b_i and its singular values by one-sided Jacobi, for the
  frame-invariant FTLEs (:func:`.analysis.singular_value_ftle`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["TINY", "LOG_FLOOR"]

TINY = np.finfo(np.float64).tiny
LOG_FLOOR = math.log(TINY)
_BIG = 1e100  # bound on intermediate entries of the backward solve before rescaling


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
