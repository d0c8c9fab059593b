"""The compiled kernel of the Lyapunov analysis: many networks at a time, one per SIMD lane.

:func:`block_kernel` computes, for a block of W networks, Benettin's QR cocycle from the frame F,
Ginelli's CLVs with their angles, growth rates and tangency counts, the fixed-lag CLV estimates,
and the frame-invariant FTLEs from the QR cocycle started at I — everything of
:func:`.analysis.analyse` in one pass over the propagators (definitions there). Work arrays
carry the network as their last axis (…, W), and the per-network operations are applied to all
lanes in innermost loops over the lane, in the order of the per-network numerics of
:mod:`.kernels`: the compiler vectorises those loops across networks, and each network's
floating-point results are bit-identical to the per-network arithmetic — the same IEEE
operations in the same order (numba without fastmath neither reassociates nor fuses
multiply-adds; ``error_model="numpy"`` only drops the zero checks of divisors that are never
zero), whatever the other networks of the block.

* Branches become per-lane selects (a Householder column with nothing to reflect); the rare
  ones of a backward solve (a column to rescale, or one that underflows to zero) rerun that
  lane's column with :func:`.kernels._solve_column`.
* Scaling R, logarithms, angles and the Jacobi sweeps run lane by lane with the per-network
  routines of :mod:`.kernels`.
* Tangencies θ_ij < θ_c are decided from |v_i·v_j| against cos θ_c with a margin of 1e-12
  (the angle formula and the dot product differ by round-off ≈ 1e-15); pairs inside the margin
  get the angle itself, so the counts are those of the angles.
* Fixed-lag estimates that start at the same CLV index share their backward iteration (the
  same operations on the same numbers).

Only the time series at the requested strides are stored; the caller fills every output with
NaN (counts with 0), and the kernel writes only what exists. ``block_kernel(d)`` is the same
kernel compiled for one matrix size d (its loops over d unrolled).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from .kernels import (
    _BIG,
    LOG_FLOOR,
    TINY,
    _line_angle,
    _log_growth,
    _pair_angles,
    _row_jacobi,
    _scale_triangular,
    _solve_column,
)

__all__ = ["LANES", "TANGENCY_MARGIN"]

#: networks per block (one per lane; a block's propagators are read at once: 25 MB for 600
#: strides): long lane loops amortise their overhead (a default chunk took 1.15 s with 16,
#: 0.85 s with 32, 0.78 s with 64 and 0.84 s with 128 lanes)
LANES = 64
#: margin on |v_i·v_j| within which a tangency is decided from the angle itself
TANGENCY_MARGIN = 1e-12

_JIT = dict(cache=True, error_model="numpy")
_LN2 = math.log(2.0)


@numba.njit(**_JIT)
def _qr_lanes(d, M, Q_in, Q_out, R, A, v, w, scale, sigma, beta, act):
    """Q_out R = M Q_in per lane: the operations of :func:`.kernels._qr_step` (A, v, w, scale,
    sigma, beta, act: work arrays). A column with nothing to reflect (scale or sigma 0) leaves
    its lane unchanged: v = β = 0 there, so every update subtracts an exact +0."""
    W = Q_in.shape[2]
    for i in range(d):
        for j in range(d):
            for p in range(W):
                acc = 0.0
                for l in range(d):
                    acc += M[i, l, p] * Q_in[l, j, p]
                A[i, j, p] = acc
            e = 1.0 if i == j else 0.0
            for p in range(W):
                Q_out[i, j, p] = e
    for j in range(d - 1):
        for p in range(W):
            scale[p] = 0.0
        for i in range(j, d):
            for p in range(W):
                scale[p] = max(scale[p], abs(A[i, j, p]))
        for p in range(W):
            sigma[p] = 0.0
        for i in range(j + 1, d):
            for p in range(W):
                v[i, p] = A[i, j, p] / scale[p]
                sigma[p] += v[i, p] * v[i, p]
        for p in range(W):
            x0 = A[j, j, p] / scale[p]
            norm = math.sqrt(x0 * x0 + sigma[p])
            vj = x0 + math.copysign(norm, x0)  # v = x − α e_j, α = −sign(x0)‖x‖
            b = 2.0 / (vj * vj + sigma[p])
            ok = (scale[p] != 0.0) & (sigma[p] != 0.0)
            act[p] = ok
            beta[p] = b if ok else 0.0
            v[j, p] = vj if ok else 0.0
            ajj = -math.copysign(norm, x0) * scale[p]
            A[j, j, p] = ajj if ok else A[j, j, p]
        for i in range(j + 1, d):
            for p in range(W):
                ok = act[p]
                v[i, p] = v[i, p] if ok else 0.0
                A[i, j, p] = 0.0 if ok else A[i, j, p]
        for c in range(j + 1, d):  # A ← (I − β v vᵀ) A
            for p in range(W):
                w[p] = 0.0
            for i in range(j, d):
                for p in range(W):
                    w[p] += v[i, p] * A[i, c, p]
            for p in range(W):
                w[p] *= beta[p]
            for i in range(j, d):
                for p in range(W):
                    A[i, c, p] -= w[p] * v[i, p]
        for r in range(d):  # Q ← Q (I − β v vᵀ)
            for p in range(W):
                w[p] = 0.0
            for i in range(j, d):
                for p in range(W):
                    w[p] += Q_out[r, i, p] * v[i, p]
            for p in range(W):
                w[p] *= beta[p]
            for i in range(j, d):
                for p in range(W):
                    Q_out[r, i, p] -= w[p] * v[i, p]
    for i in range(d):
        for c in range(d):
            for p in range(W):
                sign = -1.0 if A[i, i, p] < 0.0 else 1.0
                R[i, c, p] = sign * A[i, c, p] if c >= i else 0.0
                Q_out[c, i, p] *= sign


@numba.njit(**_JIT)
def _solve_lanes(d, Rs, rii, C, active, x, norm, big, work):
    """C ← R^{-1} C with unit columns in the lanes where ``active`` (others unchanged): the
    operations of :func:`.kernels._solve_column` without its rare branches; a lane's column
    that needs them is redone by that routine. x (d, W), norm, big (W,), work (d,)."""
    W = C.shape[2]
    for j in range(d):
        for p in range(W):
            big[p] = False
        for i in range(j, -1, -1):
            for p in range(W):
                x[i, p] = C[i, j, p]
            for l in range(i + 1, j + 1):
                for p in range(W):
                    x[i, p] -= Rs[i, l, p] * x[l, p]
            for p in range(W):
                num = x[i, p]
                big[p] |= abs(num) > _BIG * rii[i, p]
                x[i, p] = num / rii[i, p]
        for p in range(W):
            norm[p] = 0.0
        for i in range(j + 1):
            for p in range(W):
                norm[p] += x[i, p] * x[i, p]
        for p in range(W):
            norm[p] = math.sqrt(norm[p])
            big[p] = active[p] & (big[p] | (norm[p] == 0.0))
        for p in range(W):
            if big[p]:
                _solve_column(Rs[:, :, p], rii[:, p], C[:, :, p], j, work)
        for i in range(j + 1):
            for p in range(W):
                keep = big[p] | (not active[p])
                C[i, j, p] = C[i, j, p] if keep else x[i, p] / norm[p]


@numba.njit(**_JIT)
def _graded_lanes(d, R, L, B, acc, weight, top):
    """T ← R T per lane, for upper-triangular R and T held by rows T_i = e^{L_i} b_i,
    ‖b_i‖ = 1 (L (d, W), B (d, d, W); acc, weight (d, W), top (W,): work arrays).

    Row i of R T is Σ_{j ≥ i} R_ij T_j, summed scaled by its largest term e^top,
    top = max_j (ln|R_ij| + L_j): no overflow or underflow, whatever the grading. Rows are
    updated top to bottom (row i uses rows ≥ i). A zero row of R, or a row that cancels
    exactly, keeps its direction and gets the size e^LOG_FLOOR relative to its scale.
    Exact shortcuts: ln|R_ij| is taken only where the binary exponent of R_ij lets its term
    reach the largest lower bound of the others (the maximum is the same); e^(L_j − top) is +0
    below −746 without evaluation; terms of weight 0 (R_ij = 0, j < i, or underflow) add exact
    zeros to sums that start at +0 and so never hold −0: nothing changes.
    """
    W = L.shape[1]
    bits = R.view(np.int64)
    for i in range(d):
        for p in range(W):
            low = -np.inf  # lower bound of top from the binary exponents of normal R_ij
            for j in range(i, d):
                e = (bits[i, j, p] >> 52) & 0x7FF  # |R_ij| ∈ [2^(e−1023), 2^(e−1022))
                low = max(low, (e - 1023) * _LN2 + L[j, p]) if e != 0 else low
            bar = low - 1e-8 * (1.0 + abs(low))
            t = -np.inf
            for j in range(i, d):
                r = R[i, j, p]
                e = (bits[i, j, p] >> 52) & 0x7FF
                if r != 0.0 and (e - 1022) * _LN2 + L[j, p] >= bar:
                    t = max(t, math.log(abs(r)) + L[j, p])
            top[p] = t
            for j in range(d):
                r = R[i, j, p] if j >= i else 0.0
                x = L[j, p] - t
                weight[j, p] = r * math.exp(x) if r != 0.0 and x >= -746.0 else 0.0
        for c in range(d):
            for p in range(W):
                total = 0.0
                for j in range(d):
                    total += weight[j, p] * B[j, c, p]
                acc[c, p] = total
        for p in range(W):
            total = 0.0
            for c in range(d):
                total += acc[c, p] * acc[c, p]
            norm = math.sqrt(total)
            if top[p] == -np.inf:  # a zero row of R: keep a direction, floor the size
                L[i, p] += LOG_FLOOR
                norm = 0.0
            elif norm == 0.0:  # exact cancellation: keep a direction, floor the size
                L[i, p] = top[p] + LOG_FLOOR
            else:
                L[i, p] = top[p] + math.log(norm)
            for c in range(d):
                B[i, c, p] = B[i, c, p] if norm == 0.0 else acc[c, p] / norm


@numba.njit(**_JIT)
def _count_tangencies(d, C, use, cos_lo, cos_hi, threshold, n_tangent, n_usable, dot, close):
    """Add, in the lanes ``use``, the CLV pairs i < j with an angle below ``threshold`` to
    n_tangent[lane] and those with a finite angle to n_usable[lane]. dot, close: work arrays."""
    W = C.shape[2]
    pair = 0
    for i in range(d):
        for j in range(i + 1, d):
            for p in range(W):
                acc = 0.0
                for l in range(d):
                    acc += C[l, i, p] * C[l, j, p]
                a = abs(acc)
                decided = (a < cos_lo) | (a > cos_hi)  # False for NaN: the angle decides
                close[p] = use[p] & (not decided)
                n_tangent[p, pair] += use[p] & (a > cos_hi)
                n_usable[p, pair] += use[p] & decided
            for p in range(W):
                if close[p]:  # within the margin: decide from the angle itself
                    angle = _line_angle(C[:, :, p], i, C[:, :, p], j)
                    if not math.isnan(angle):
                        n_usable[p, pair] += 1
                        n_tangent[p, pair] += angle < threshold
            pair += 1


@numba.njit(**_JIT)
def _analyse_block(
    d, M, cap, frame, start, clv, out_pos, forward, backward, threshold,
    pred, lag_group, group_start, group_stop, counts,
    n_valid, log_r, angle, log_growth, n_tangent, n_usable,
    angle_pred, log_growth_pred, angle_lag, log_growth_lag, lag_error, sv_log,
):  # fmt: skip
    """The kernel for the W = M.shape[0] networks of M, one per lane (see :func:`block_kernel`)."""
    W, K = M.shape[0], M.shape[1]
    NP, NL, NC = pred.shape[0], lag_group.shape[0], counts.shape[0]
    n = np.zeros(W, np.int64)
    finite = np.ones(W, np.bool_)
    Ml = np.empty((d, d, W))
    A = np.empty((d, d, W))
    v = np.empty((d, W))
    w = np.empty(W)
    scale = np.empty(W)
    sigma = np.empty(W)
    beta = np.empty(W)
    act = np.empty(W, np.bool_)
    work = np.empty(d)
    # Benettin from Q_0 = F: R_{k+1} of every valid stride, scaled for the backward iteration
    Q = np.empty((d, d, W))
    Q_next = np.empty((d, d, W))
    R = np.empty((d, d, W))
    K_clv = K if clv else 0
    Rs = np.empty((K_clv, d, d, W))
    rii = np.empty((K_clv, d, W))
    log_scale = np.empty((K_clv, W))
    for p in range(W):
        Q[:, :, p] = frame
    # frame-invariant FTLEs: QR cocycle from Q_0 = I and the graded product T = R_K ⋯ R_1
    K_sv = counts[NC - 1] if NC else 0
    Wq = np.zeros((d, d, W))
    Wq_next = np.empty((d, d, W))
    R2 = np.empty((d, d, W))
    L = np.zeros((d, W))
    B = np.zeros((d, d, W))
    for i in range(d):
        Wq[i, i, :] = 1.0
        B[i, i, :] = 1.0
    acc = np.empty((d, W))
    weight = np.empty((d, W))
    L_copy = np.empty(d)
    B_copy = np.empty((d, d))
    b = 0
    for k in range(max(K_clv, K_sv)):
        # stride k is valid in a lane if M_k and all earlier factors are finite (and k < cap)
        for i in range(d):
            for j in range(d):
                for p in range(W):
                    Ml[i, j, p] = M[p, k, i, j]
                    finite[p] &= abs(Ml[i, j, p]) < np.inf
        alive = False
        for p in range(W):
            if finite[p] and k < cap[p]:
                n[p] = k + 1
                alive = True
        if not alive:
            break
        if k < K_clv:
            _qr_lanes(d, Ml, Q, Q_next, R, A, v, w, scale, sigma, beta, act)
            Q, Q_next = Q_next, Q
            for p in range(W):
                log_scale[k, p] = _scale_triangular(R[:, :, p], Rs[k, :, :, p], rii[k, :, p])
                if k < n[p]:
                    for i in range(d):
                        log_r[p, k, i] = math.log(max(R[i, i, p], TINY))
        if k < K_sv:
            _qr_lanes(d, Ml, Wq, Wq_next, R2, A, v, w, scale, sigma, beta, act)
            Wq, Wq_next = Wq_next, Wq
            _graded_lanes(d, R2, L, B, acc, weight, scale)
            while b < NC and counts[b] == k + 1:  # T of M_k ⋯ M_0: its singular values
                for p in range(W):
                    if k < n[p]:
                        L_copy[:] = L[:, p]
                        B_copy[:, :] = B[:, :, p]
                        _row_jacobi(L_copy, B_copy, 1e-15, 60)
                        sv_log[p, b] = -np.sort(-L_copy)
                b += 1
    n_valid[:] = n
    if not clv:
        return

    # Ginelli, backward from C* at n_s in every lane: C_{m−1} = R_m^{-1} C_m (unit columns).
    # Angle row m − 1 holds v(m); growth row m the stride m → m + 1.
    n_max = 0
    cut = np.empty(W, np.int64)
    for p in range(W):
        n_max = max(n_max, n[p])
        cut[p] = n[p] - backward if n[p] < K else K  # v(m), m > cut: unconverged
    C = np.empty((d, d, W))
    C_pred = np.empty((NP, d, d, W))
    x = np.empty((d, W))
    norm = np.empty(W)
    big = np.empty(W, np.bool_)
    use = np.empty(W, np.bool_)
    cos_lo = math.cos(threshold) - TANGENCY_MARGIN
    cos_hi = math.cos(threshold) + TANGENCY_MARGIN
    for p in range(W):
        C[:, :, p] = start
    for m in range(n_max, -1, -1):
        if m < n_max:
            for p in range(W):
                act[p] = m < n[p]
            _solve_lanes(d, Rs[m], rii[m], C, act, x, norm, big, work)
            row = out_pos[m]
            if row >= 0:
                for p in range(W):
                    if m < n[p]:
                        _log_growth(Rs[m, :, :, p], log_scale[m, p], C[:, :, p], log_growth[p, row])
        if m >= 1:
            if forward <= m - 1 and m <= K - backward:  # converged rows: tangencies
                for p in range(W):
                    use[p] = m <= cut[p]
                _count_tangencies(d, C, use, cos_lo, cos_hi, threshold, n_tangent, n_usable, norm,
                                  big)
            row = out_pos[m - 1]
            if row >= 0:
                for p in range(W):
                    if m <= n[p]:
                        _pair_angles(C[:, :, p], angle[p, row])
        for c in range(NP):
            if pred[c] == m:
                C_pred[c] = C
                for p in range(W):
                    if m < n[p]:
                        _pair_angles(C[:, :, p], angle_pred[p, c])
                        _log_growth(Rs[m, :, :, p], log_scale[m, p], C[:, :, p],
                                    log_growth_pred[p, c])

    # fixed-lag estimates: from C* at k + L down to k; estimates with one start share the way
    for g in range(group_start.shape[0]):
        top = group_start[g]
        if top > n_max:
            continue
        for p in range(W):
            C[:, :, p] = start
            act[p] = top <= n[p]
        for m in range(top, group_stop[g], -1):
            _solve_lanes(d, Rs[m - 1], rii[m - 1], C, act, x, norm, big, work)
            for a in range(NL):
                for c in range(NP):
                    if lag_group[a, c] != g or pred[c] != m - 1:
                        continue
                    for p in range(W):
                        if act[p]:
                            _pair_angles(C[:, :, p], angle_lag[p, a, c])
                            _log_growth(Rs[m - 1, :, :, p], log_scale[m - 1, p], C[:, :, p],
                                        log_growth_lag[p, a, c])
                            for i in range(d):
                                lag_error[p, a, c, i] = _line_angle(C[:, :, p], i,
                                                                    C_pred[c, :, :, p], i)


@functools.cache
def block_kernel(d: int = 0):
    """The compiled analysis of a block (below), for d × d propagators if ``d`` > 0 (a constant:
    the loops over the matrix size are unrolled, faster, the same results; one compilation per
    d, cached on disk), or for any size if ``d`` = 0 (d read from M: one compilation serves all,
    for small inputs where the unrolled compilation would cost more than it saves).

    The analysis of :func:`.analysis.analyse` for a block of W networks (one per lane), s the
    row in every array. Per network s (n_s = leading strides with finite M_k, at most cap[s]):

    * log_r[s, k] = ln R_{k+1,ii} of Benettin's QR from F (k < n_s), if ``clv``;
    * Ginelli, from C* at index n_s: angle[s, out_pos[k]] of v(k+1) (k + 1 ≤ n_s),
      log_growth[s, out_pos[k]] = ln‖M_k v_i(k)‖ (k < n_s); n_tangent, n_usable over the
      converged rows (forward ≤ k, k + 1 ≤ K − backward, v(k+1) before the cut);
      angle_pred, log_growth_pred at the CLV indices ``pred`` (< n_s);
    * fixed-lag estimates for lag a and prediction c (group lag_group[a, c], which runs from
      group_start down to group_stop), if pred[c] + lag ≤ n_s;
    * sv_log[s, b] = ln σ_i(M_{counts[b]−1} ⋯ M_0), descending (counts ascending, ≤ n_s).
    """

    @numba.njit(nogil=True, **_JIT)
    def kernel(
        M, cap, frame, start, clv, out_pos, forward, backward, threshold,
        pred, lag_group, group_start, group_stop, counts,
        n_valid, log_r, angle, log_growth, n_tangent, n_usable,
        angle_pred, log_growth_pred, angle_lag, log_growth_lag, lag_error, sv_log,
    ):  # fmt: skip
        _analyse_block(
            d if d > 0 else M.shape[2], M, cap, frame, start, clv, out_pos, forward, backward,
            threshold, pred, lag_group, group_start, group_stop, counts,
            n_valid, log_r, angle, log_growth, n_tangent, n_usable,
            angle_pred, log_growth_pred, angle_lag, log_growth_lag, lag_error, sv_log,
        )  # fmt: skip

    return kernel
