"""Curvature of the cost: the extreme eigenvalues λ_min(H) ≤ … ≤ λ_max(H) of the Hessian.

Gradient descent θ ← θ − η∇C is linearly stable at a minimum only while every eigenvalue of
J = I − ηH lies in (−1, 1], i.e. η·λ_max(H) < 2 (the "sharpness" η·λ_max; runs that hover at
η·λ_max ≈ 2 sit at the "edge of stability"); λ_min(H) < 0 means a direction of negative
curvature (a saddle or a ReLU kink), λ_min ≈ 0 a flat direction.

:func:`lane_extremes` computes λ_min and λ_max of one symmetric d × d matrix per SIMD lane
(the layout of :mod:`weightdyn.lane_kernel`: lane axis last, every arithmetic loop over the
lanes), called by the compiled integrator at the recorded steps:

1. Householder reduction to tridiagonal form T = Qᵀ A Q (Golub & Van Loan, Alg. 8.3.1): for
   k = 0 … d−3 with x = A[k+1:, k], v = x + sign(x_0)|x| e_1, β = 2/vᵀv,
   p = β A v, w = p − (β vᵀp / 2) v, A ← A − v wᵀ − w vᵀ on the trailing block;
2. bisection with Sturm counts on T (diagonal a, off-diagonal b): the number of eigenvalues
   below x is the number of negative pivots q_i = (a_i − x) − b_{i−1}² / q_{i−1} (q_0 = a_0 − x;
   a pivot smaller than ``pivmin`` is replaced by −pivmin, as LAPACK's dstebz), started from
   the Gershgorin interval and halved :data:`BISECTIONS` times: λ_min is the smallest x with
   one eigenvalue below, λ_max the smallest x with all d below.

Both steps are backward stable, so the error is a few ε·‖H‖ in absolute terms, as for LAPACK's
``eigvalsh`` (:func:`extremes_reference`, the test oracle). Every lane takes the same fixed
sequence of operations (no data-dependent iteration count), so lanes vectorise and each lane's
result is that of its matrix alone.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: halvings of the Gershgorin interval: its width W (≤ 2‖H‖) shrinks to W·2⁻⁶⁰ ≈ 10⁻¹⁸ W,
#: below the ε‖H‖ round-off of the reduction
BISECTIONS = 60


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def lane_extremes(A, out_min, out_max):
    """λ_min, λ_max of the symmetric matrices A[:, :, l] into out_min[l], out_max[l].

    ``A`` (d, d, L) is overwritten (its lower triangle and diagonal become T). The work arrays
    are allocated here, so that the compiler knows they alias nothing (vector code).
    """
    d, L = A.shape[0], A.shape[2]
    v = np.empty((d, L))
    p = np.empty((d, L))
    lo_min = np.empty(L)
    hi_min = np.empty(L)
    lo_max = np.empty(L)
    hi_max = np.empty(L)
    count_min = np.empty(L)
    count_max = np.empty(L)
    q_min = np.empty(L)
    q_max = np.empty(L)
    pivmin = np.empty(L)
    beta = np.empty(L)
    for k in range(d - 2):
        # v = x + sign(x_0)|x| e_1 over rows k+1 … d−1, β = 2/vᵀv (0 if x is already e_1-like)
        for l in range(L):
            hi_min[l] = 0.0
        for i in range(k + 2, d):
            for l in range(L):
                hi_min[l] += A[i, k, l] * A[i, k, l]
        for l in range(L):
            x0 = A[k + 1, k, l]
            norm = math.sqrt(x0 * x0 + hi_min[l])
            alpha = -norm if x0 >= 0.0 else norm
            v0 = x0 - alpha
            vv = v0 * v0 + hi_min[l]
            if hi_min[l] > 0.0 and vv > 0.0:
                beta[l] = 2.0 / vv
                v[k + 1, l] = v0
                A[k + 1, k, l] = alpha
            else:
                beta[l] = 0.0
                v[k + 1, l] = 0.0
        for i in range(k + 2, d):
            for l in range(L):
                v[i, l] = A[i, k, l]
        # p = β B v (B the trailing block, lower triangle stored), K = β vᵀp / 2, w = p − K v
        for i in range(k + 1, d):
            for l in range(L):
                p[i, l] = 0.0
            for j in range(k + 1, d):
                ii, jj = (i, j) if i >= j else (j, i)
                for l in range(L):
                    p[i, l] += A[ii, jj, l] * v[j, l]
            for l in range(L):
                p[i, l] *= beta[l]
        for l in range(L):
            hi_max[l] = 0.0
        for i in range(k + 1, d):
            for l in range(L):
                hi_max[l] += v[i, l] * p[i, l]
        for l in range(L):
            hi_max[l] *= 0.5 * beta[l]
        for i in range(k + 1, d):
            for l in range(L):
                p[i, l] -= hi_max[l] * v[i, l]
        # B ← B − v wᵀ − w vᵀ (lower triangle)
        for i in range(k + 1, d):
            for j in range(k + 1, i + 1):
                for l in range(L):
                    A[i, j, l] -= v[i, l] * p[j, l] + p[i, l] * v[j, l]

    # T: diagonal A[i, i], off-diagonal A[i+1, i]. Gershgorin interval and pivot floor.
    for l in range(L):
        lo_min[l] = math.inf
        hi_max[l] = -math.inf
        pivmin[l] = 0.0             # max b² for the pivot floor
    for i in range(d):
        for l in range(L):
            r = 0.0
            if i > 0:
                r += abs(A[i, i - 1, l])
            if i < d - 1:
                r += abs(A[i + 1, i, l])
                pivmin[l] = max(pivmin[l], A[i + 1, i, l] * A[i + 1, i, l])
            lo_min[l] = min(lo_min[l], A[i, i, l] - r)
            hi_max[l] = max(hi_max[l], A[i, i, l] + r)
    for l in range(L):
        pad = 4.0 * 2.220446049250313e-16 * max(abs(lo_min[l]), abs(hi_max[l]))
        lo_min[l] -= pad
        hi_max[l] += pad
        pivmin[l] = 1e-300 * max(1.0, pivmin[l])
        hi_min[l] = hi_max[l]
        lo_max[l] = lo_min[l]
    for _ in range(BISECTIONS):
        for l in range(L):
            x = 0.5 * (lo_min[l] + hi_min[l])
            y = 0.5 * (lo_max[l] + hi_max[l])
            q = A[0, 0, l] - x
            if abs(q) < pivmin[l]:
                q = -pivmin[l]
            q_min[l] = q
            count_min[l] = 1.0 if q < 0.0 else 0.0
            q = A[0, 0, l] - y
            if abs(q) < pivmin[l]:
                q = -pivmin[l]
            q_max[l] = q
            count_max[l] = 1.0 if q < 0.0 else 0.0
        for i in range(1, d):
            for l in range(L):
                b2 = A[i, i - 1, l] * A[i, i - 1, l]
                x = 0.5 * (lo_min[l] + hi_min[l])
                y = 0.5 * (lo_max[l] + hi_max[l])
                q = A[i, i, l] - x - b2 / q_min[l]
                if abs(q) < pivmin[l]:
                    q = -pivmin[l]
                q_min[l] = q
                count_min[l] += 1.0 if q < 0.0 else 0.0
                q = A[i, i, l] - y - b2 / q_max[l]
                if abs(q) < pivmin[l]:
                    q = -pivmin[l]
                q_max[l] = q
                count_max[l] += 1.0 if q < 0.0 else 0.0
        for l in range(L):
            x = 0.5 * (lo_min[l] + hi_min[l])
            y = 0.5 * (lo_max[l] + hi_max[l])
            if count_min[l] >= 1.0:
                hi_min[l] = x
            else:
                lo_min[l] = x
            if count_max[l] >= d:
                hi_max[l] = y
            else:
                lo_max[l] = y
    for l in range(L):
        out_min[l] = 0.5 * (lo_min[l] + hi_min[l])
        out_max[l] = 0.5 * (lo_max[l] + hi_max[l])


def extremes(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """λ_min and λ_max of symmetric matrices H (..., d, d) by :func:`lane_extremes` (NaN where
    H is not finite)."""
    H = np.asarray(H, dtype=np.float64)
    shape, d = H.shape[:-2], H.shape[-1]
    A = np.ascontiguousarray(np.moveaxis(H.reshape(-1, d, d), 0, -1))
    L = A.shape[2]
    lo, hi = np.empty(L), np.empty(L)
    finite = np.isfinite(A).all(axis=(0, 1))
    A[:, :, ~finite] = 0.0
    lane_extremes(A, lo, hi)
    lo[~finite] = hi[~finite] = np.nan
    return lo.reshape(shape), hi.reshape(shape)


def extremes_reference(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """λ_min and λ_max of symmetric matrices H (..., d, d) by LAPACK (numpy.linalg.eigvalsh)."""
    eig = np.linalg.eigvalsh(np.asarray(H, dtype=np.float64))
    return eig[..., 0], eig[..., -1]
