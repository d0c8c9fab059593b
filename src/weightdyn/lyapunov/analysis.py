"""Local stability analysis of stacks of tangent propagators: FTLEs, CLVs and their angles.

Input: propagators ``M[s, k]`` of S networks and K strides (d × d, float32 or float64; all
arithmetic is float64). Stride k maps the tangent space at flow time k·dt to (k+1)·dt, with
dt = jacobian_stride · learning_rate. The work is done by the compiled lane kernel of
:mod:`.lanes` (many networks at a time, one per SIMD lane, one pass over the propagators); each
network's results are bit-identical whatever the chunking. Definitions below; the numerics
(scaling, clamping, angle formula) are in :mod:`.kernels`.

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
loses half the digits there). A tangency is θ_ij < threshold (:func:`tangencies`); the tangency
fraction of a pair is the fraction of its converged, finite angles (every stride) that are
tangencies (NaN if none).

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

import functools
from dataclasses import dataclass, field

import numba
import numpy as np

from .kernels import _clv_coefficient_kernel, _qr_kernel
from .lanes import LANES, block_kernel

#: network-strides (S·K) from which the kernel compiled for the matrix size d is used
#: (lanes.block_kernel(d)): ≈ 20 % faster, the same results; its compilation (≈ 15 s per d,
#: then cached on disk) pays on study-sized inputs, not on the many small ones of the tests
UNROLL_WORK = 50_000

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


def _propagators(propagators) -> np.ndarray:
    """(S, K, d, d) float32/float64, C-contiguous and writeable (one compiled specialisation
    per dtype; no copy if it already is)."""
    M = np.asarray(propagators)
    if M.ndim != 4 or M.shape[2] != M.shape[3]:
        raise ValueError(f"propagators must have shape (S, K, d, d), got {M.shape}")
    if M.dtype not in (np.float32, np.float64):
        M = M.astype(np.float64)
    return np.require(M, requirements=("C", "W"))


def _batch(propagators):
    """``propagators`` itself if it can be sliced into arrays without being read whole (an
    array, or a variable of an open file); otherwise as an array. Checks the shape."""
    if not (hasattr(propagators, "shape") and hasattr(propagators, "__getitem__")):
        propagators = np.asarray(propagators)
    shape = tuple(propagators.shape)
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"propagators must have shape (S, K, d, d), got {shape}")
    return propagators


def _cap(S: int, K: int, n_valid) -> np.ndarray:
    """The caller's bound on each network's valid strides (K if none)."""
    if n_valid is None:
        return np.full(S, K, dtype=np.int64)
    return np.clip(np.broadcast_to(np.asarray(n_valid, dtype=np.int64), (S,)), 0, K)


def _sorted_counts(counts, K: int):
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if np.any(counts < 1) or np.any(counts > K):
        raise ValueError(f"stride counts must lie in 1 … {K}, got {counts.tolist()}")
    order = np.argsort(counts, kind="stable")
    return counts, order


def _singular_ftle(logs: np.ndarray, counts: np.ndarray, order: np.ndarray, dt: float):
    """Λ_i = ln σ_i / (K_b·dt) in the caller's order of ``counts`` (logs in sorted order)."""
    out = np.empty_like(logs)
    out[:, order] = logs
    return out / (counts[:, None] * dt)


def _run(propagators, cap, *, seed, clv, out_index=(), forward=0, backward=0, threshold=0.0,
         pred=(), lags=(), counts=()):
    """Fill the output arrays of the lane kernel (NaN, counts 0) and run it on blocks of
    LANES networks, read one at a time from ``propagators`` (an array, or anything that
    yields one when sliced along its first axis, such as a variable of an open file)."""
    S, K, d = propagators.shape[:3]
    P = d * (d - 1) // 2
    out_index, pred, lags, counts = (np.asarray(a, dtype=np.int64).reshape(-1)
                                     for a in (out_index, pred, lags, counts))
    NO, NP, NL, NC = out_index.size, pred.size, lags.size, counts.size
    out_pos = np.full(K, -1, dtype=np.int64)
    out_pos[out_index] = np.arange(NO)
    # fixed-lag estimates that start at the same CLV index k + L share one backward run
    group_start, lag_group = np.unique(np.add.outer(lags, pred), return_inverse=True)
    lag_group = lag_group.reshape(NL, NP).astype(np.int64)
    group_stop = np.full(group_start.size, np.iinfo(np.int64).max)
    np.minimum.at(group_stop, lag_group, np.broadcast_to(pred, (NL, NP)))
    nan = functools.partial(np.full, fill_value=np.nan)
    out = {
        "n_valid": np.zeros(S, dtype=np.int64),
        "log_r": nan((S, K if clv else 0, d)),
        "angle": nan((S, NO, P)),
        "log_growth": nan((S, NO, d)),
        "n_tangent": np.zeros((S, P), dtype=np.int64),
        "n_usable": np.zeros((S, P), dtype=np.int64),
        "angle_pred": nan((S, NP, P)),
        "log_growth_pred": nan((S, NP, d)),
        "angle_lag": nan((S, NL, NP, P)),
        "log_growth_lag": nan((S, NL, NP, d)),
        "lag_error": nan((S, NL, NP, d)),
        "sv_log": nan((S, NC, d)),
    }
    kernel = block_kernel(d if S * K >= UNROLL_WORK else 0)
    shared = (np.ascontiguousarray(random_orthogonal(d, seed)), random_upper_triangular(d, seed),
              clv, out_pos, forward, backward, float(threshold), pred, lag_group,
              group_start.astype(np.int64), group_stop, counts)

    def block(first, M):
        rows = slice(first, first + M.shape[0])
        kernel(M, cap[rows], *shared, *(a[rows] for a in out.values()))

    blocks = ((first, _propagators(propagators[first:first + LANES]))
              for first in range(0, S, LANES))
    # (asking numba for its threads starts its thread pool: not where one is configured)
    threads = numba.get_num_threads() if numba.config.NUMBA_NUM_THREADS > 1 else 1
    if threads == 1:
        for first, M in blocks:
            block(first, M)
        return out
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(threads) as pool:  # read here; the kernels release the GIL
        pending = set()
        for first, M in blocks:
            if len(pending) >= threads:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for job in done:
                    job.result()
            pending.add(pool.submit(block, first, M))
        for job in pending:
            job.result()
    return out


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
    M = _batch(propagators)
    S, K = M.shape[:2]
    counts, order = _sorted_counts(counts, K)
    out = _run(M, _cap(S, K, n_valid), seed=0, clv=False, counts=counts[order])
    return _singular_ftle(out["sv_log"], counts, order, dt)


def pair_labels(d: int) -> list[str]:
    """Labels "i-j" (1-based, i < j) in the order of the angle arrays."""
    i, j = np.triu_indices(d, 1)
    return [f"{a + 1}-{b + 1}" for a, b in zip(i, j)]


def _prepare(propagators, n_valid):
    M = _propagators(propagators)
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


def windowed_ftle(local: np.ndarray, window: int, index=None) -> np.ndarray:
    """Trailing mean of λ over ``window`` strides (..., K, d) at the strides ``index`` (default
    all): (λ(k−w+1) + … + λ(k)) / w, summed in that order; Λ_i(k) for k < window − 1."""
    if window < 1:
        raise ValueError(f"window must be ≥ 1 stride, got {window}")
    K = local.shape[-2]
    w = min(window, K)
    index = np.arange(K) if index is None else np.asarray(index, dtype=np.int64)
    early = index < w - 1
    out = np.empty(local.shape[:-2] + (index.size, local.shape[-1]))
    out[..., early, :] = cumulative_ftle(local[..., : w - 1, :])[..., index[early], :]
    first = index[~early] - (w - 1)
    total = local[..., first, :]
    for j in range(1, w):
        total = total + local[..., first + j, :]
    out[..., ~early, :] = total / w
    return out


@dataclass
class LyapunovAnalysis:
    """Result of :func:`analyse` for S networks, K strides, d exponents, P = d(d−1)/2 pairs,
    NL lags, NP prediction indices and NC stride counts; time series at the NT strides
    ``time_index`` (see the module docstring for definitions and NaNs). Benettin's cumulative
    FTLEs ``ftle`` and whole-run exponents ``lyapunov_exponent`` are computed when first used."""

    n_valid: np.ndarray            # (S,) leading valid strides n_s
    valid: np.ndarray              # (S,) bool, n_s == K
    time_index: np.ndarray         # (NT,) strides k of the time series (label t = (k+1)·dt)
    local_exponent: np.ndarray     # (S, NT, d) λ_i(k)
    ftle_windowed: np.ndarray      # (S, NT, d) Λ^w_i(k)
    clv_angle: np.ndarray          # (S, NT, P) θ_ij of v(k+1)
    clv_growth: np.ndarray         # (S, NT, d) γ_i(k), stride k
    clv_converged: np.ndarray      # (NT,) bool, v(k) and v(k+1) outside the transients
    clv_tangency_fraction: np.ndarray  # (S, P) converged finite angles (all strides) < threshold
    clv_angle_at: np.ndarray       # (S, NP, P) θ_ij of the Ginelli v(k) at the prediction indices
    clv_growth_at: np.ndarray      # (S, NP, d) ln‖M_k v_i(k)‖/dt, Ginelli, stride k
    clv_angle_lagged: np.ndarray   # (S, NL, NP, P) θ_ij of v̂(k)
    clv_growth_lagged: np.ndarray  # (S, NL, NP, d) ln‖M_k v̂_i(k)‖/dt
    clv_lag_error: np.ndarray      # (S, NL, NP, d) ∠(v̂_i(k), v_i(k)) against Ginelli
    lagged_available: np.ndarray   # (NL, NP) k + L: index of the time the estimate exists
    singular_ftle: np.ndarray      # (S, NC, d) frame-invariant Λ_i at the stride counts
    local_exponent_all: np.ndarray = field(repr=False)  # (S, K, d) λ_i(k) at every stride
    forward_transient: int = 0

    @functools.cached_property
    def ftle(self) -> np.ndarray:
        """(S, NT, d) Benettin's Λ_i(k), cumulative from t = 0 (computed when first used)."""
        return cumulative_ftle(self.local_exponent_all)[:, self.time_index]

    @functools.cached_property
    def lyapunov_exponent(self) -> np.ndarray:
        """(S, d) Benettin's whole-run exponents, NaN unless valid (computed when first used)."""
        local = self.local_exponent_all
        whole_run = np.full(local.shape[::2], np.nan)
        whole_run[self.valid] = local[self.valid, self.forward_transient:].mean(axis=1)
        return whole_run


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
    time_index=None,
    tangency_threshold: float = 0.1,
    ftle_counts=(),
) -> LyapunovAnalysis:
    """Benettin FTLEs, Ginelli CLV angles, growth rates and tangencies, fixed-lag CLV estimates
    and (for ``ftle_counts``) frame-invariant FTLEs, in one pass over the propagators.

    ``propagators`` (S, K, d, d): an array, or anything that gives one when sliced along its
    first axis (e.g. a variable of an open file), read LANES networks at a time;
    ``dt`` flow time per stride; ``window``, the transients and
    ``lags`` (≥ 1) in strides; ``prediction_index`` CLV indices k ≥ 0 (time k·dt) of the
    fixed-lag estimates; ``seed`` for Q_0 = F and C*; ``n_valid`` optional cap on the valid
    strides; ``time_index`` the strides of the time series (default: all);
    ``tangency_threshold`` in rad; ``ftle_counts`` stride counts K_b of
    :func:`singular_value_ftle`.
    Memory: the outputs, and per thread one block of LANES networks' propagators and R factors.
    """
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    if forward_transient < 0 or backward_transient < 0:
        raise ValueError("transients must be ≥ 0 strides")
    lags = np.asarray(lags, dtype=np.int64).reshape(-1)
    pred = np.asarray(prediction_index, dtype=np.int64).reshape(-1)
    if np.any(lags < 1):
        raise ValueError(f"lags must be ≥ 1 stride, got {lags.tolist()}")
    M = _batch(propagators)
    S, K, d = M.shape[:3]
    if np.any(pred < 0):
        raise ValueError(f"prediction indices must be ≥ 0, got {pred.tolist()}")
    if forward_transient >= K:
        raise ValueError(f"forward_transient={forward_transient} leaves none of {K} strides")
    k = np.arange(K) if time_index is None else np.asarray(time_index, dtype=np.int64)
    if k.ndim != 1 or np.any(np.diff(k) <= 0) or (k.size and (k[0] < 0 or k[-1] >= K)):
        raise ValueError(f"time_index must be increasing strides in 0 … {K - 1}")
    counts, order = _sorted_counts(ftle_counts, K)
    out = _run(M, _cap(S, K, n_valid), seed=seed, clv=True, out_index=k,
               forward=forward_transient, backward=backward_transient,
               threshold=tangency_threshold, pred=pred, lags=lags, counts=counts[order])
    n = out["n_valid"]
    angle, log_growth = out["angle"], out["log_growth"]
    angle_pred, log_growth_pred = out["angle_pred"], out["log_growth_pred"]
    lag_error = out["lag_error"]

    # Ginelli CLVs v(m) with m > cut_s are unconverged because the network's run ended early.
    cut = np.where(n < K, n - backward_transient, K)[:, None]
    angle[k + 1 > cut] = np.nan
    log_growth[k > cut] = np.nan
    unconverged = pred > cut
    lag_error[np.broadcast_to(unconverged[:, None, :], lag_error.shape[:3])] = np.nan
    angle_pred[unconverged] = np.nan
    log_growth_pred[unconverged] = np.nan
    n_tangent, n_usable = out["n_tangent"], out["n_usable"]
    tangency_fraction = np.full(n_usable.shape, np.nan)
    np.divide(n_tangent, n_usable, out=tangency_fraction, where=n_usable > 0)

    local = out["log_r"]
    local /= dt
    return LyapunovAnalysis(
        n_valid=n,
        valid=n == K,
        time_index=k,
        local_exponent=local[:, k],
        ftle_windowed=windowed_ftle(local, window, k),
        clv_angle=angle,
        clv_growth=log_growth / dt,
        clv_converged=(k >= forward_transient) & (k + 1 <= K - backward_transient),
        clv_tangency_fraction=tangency_fraction,
        clv_angle_at=angle_pred,
        clv_growth_at=log_growth_pred / dt,
        clv_angle_lagged=out["angle_lag"],
        clv_growth_lagged=out["log_growth_lag"] / dt,
        clv_lag_error=lag_error,
        lagged_available=lags[:, None] + pred[None, :],
        singular_ftle=_singular_ftle(out["sv_log"], counts, order, dt),
        local_exponent_all=local,
        forward_transient=forward_transient,
    )
