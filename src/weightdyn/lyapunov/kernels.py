"""Per-network numerics of the Lyapunov analysis (numba); the maths is in :mod:`.analysis`.

Everything is float64 (propagators may be float32; they are widened entry by entry). The routines
below define the arithmetic for one network; the kernel of :mod:`.lanes` applies the same
operations in the same order to many networks at once (bit-identical results) and calls them
lane by lane where it does not vectorise. Compiled code is cached on disk (``cache=True``).

* :func:`_qr_step`: Householder QR of M Q_in, sign-fixed so that diag R ≥ 0;
* :func:`_scale_triangular`: R scaled by 2^−e, 2^e the power of two just above max|R_ij|
  (exact), its diagonal floored at ``TINY``: the form in which the backward iteration uses R;
* :func:`_solve_column` (one column of a backward Ginelli step C ← R^{-1} C, unit columns)
  rescales the partial solution whenever an entry would exceed ``_BIG``: nothing overflows;
* :func:`_log_growth`: ln‖R c_j‖, clamped below at ``LOG_FLOOR`` relative to the same scale;
* :func:`_line_angle`: the angle between the lines of unit vectors u, v as
  2·atan2(‖u − σv‖, ‖u + σv‖), σ = sign(u·v), which equals arccos|u·v| and stays accurate near
  tangency (arccos loses half the digits there);
* :func:`_row_jacobi`: the singular values of the triangular product T = R_K ⋯ R_1, held by
  rows in graded form e^{L_i} b_i (:func:`.lanes._graded_lanes`), by one-sided Jacobi, for the
  frame-invariant FTLEs (:func:`.analysis.singular_value_ftle`).

The kernels ``_qr_kernel`` and ``_clv_coefficient_kernel`` (every Q_k, R_k and C_k of a batch,
for :func:`.analysis.qr_cocycle` and :func:`.analysis.ginelli_clvs`) loop over networks in
parallel (``numba.prange``).
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
def _scale_triangular(R, Rs, rii):
    """Rs = 2^−e R (upper triangle), rii_i = max(Rs_ii, TINY); returns e ln 2 (see
    :func:`_inverse_scale`). Scaling by a power of two is exact and keeps every direction."""
    inv, log_scale = _inverse_scale(R)
    for i in range(R.shape[0]):
        for j in range(i, R.shape[0]):
            Rs[i, j] = R[i, j] * inv
        rii[i] = max(Rs[i, i], TINY)
    return log_scale


@numba.njit(cache=True)
def _solve_column(Rs, rii, C, j, x):
    """Column j of C ← R^{-1} C, normalised (in place; Rs, rii from :func:`_scale_triangular`,
    C upper triangular). x: work array.

    The partial solution is rescaled whenever an entry would exceed _BIG, so nothing overflows
    (the direction is all that is kept).
    """
    rhs = 1.0  # the system solved is R x = rhs · c_j
    for i in range(j, -1, -1):
        num = rhs * C[i, j]
        for l in range(i + 1, j + 1):
            num -= Rs[i, l] * x[l]
        if abs(num) > _BIG * rii[i]:
            f = _BIG * rii[i] / abs(num)
            for l in range(i + 1, j + 1):
                x[l] *= f
            num *= f
            rhs *= f
        x[i] = num / rii[i]
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
def _log_growth(Rs, log_scale, C, out):
    """out[j] = ln‖R c_j‖ (R = 2^e Rs, C upper triangular), clamped below at LOG_FLOOR + e ln 2."""
    d = Rs.shape[0]
    for j in range(d):
        acc = 0.0
        for i in range(j + 1):
            y = 0.0
            for l in range(i, j + 1):
                y += Rs[i, l] * C[l, j]
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
        Rs = np.empty((d, d))
        rii = np.empty(d)
        x = np.empty(d)
        C[s, n] = start
        for m in range(n, 0, -1):
            C[s, m - 1] = C[s, m]
            _scale_triangular(R[s, m - 1], Rs, rii)
            for j in range(d):
                _solve_column(Rs, rii, C[s, m - 1], j, x)
        C[s, n + 1 :] = np.nan


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
                nx = math.sqrt(nx)  # > 0: |ρ²τ| ≤ ρ ≤ 1, and ρ = 1, v = ±u gives x' = 2u
                ny = math.sqrt(ny)
                for c in range(d):
                    B[x, c] /= nx
                L[x] += math.log(cs * nx)
                if ny > 0.0:
                    for c in range(d):
                        B[y, c] /= ny
                    L[y] += math.log(cs * ny)
                else:  # v = ±u exactly, equal sizes: singular value 0, floored (zero row kept)
                    L[y] = L[x] + LOG_FLOOR
        if not rotated:
            return
