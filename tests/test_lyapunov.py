"""Tests of weightdyn.lyapunov: known spectra, exact cocycles, covariance, an independent
reference implementation, fixed-lag convergence, degenerate inputs, and the lane kernel against
the per-network numerics bit for bit."""

import math
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import xarray as xr
from scipy.linalg import solve_triangular

from weightdyn import lyapunov as ly
from weightdyn.lyapunov import analysis, kernels

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

TRANSIENT = 80  # strides; the synthetic cocycle's gaps (≥ 0.4 per stride) converge far below 1e-8


def sine(u, v):
    """|sin ∠(u, v)| along axis −2 (columns), accurate for nearly parallel vectors."""
    u = u / np.linalg.norm(u, axis=-2, keepdims=True)
    v = v / np.linalg.norm(v, axis=-2, keepdims=True)
    return np.linalg.norm(u - np.sum(u * v, axis=-2, keepdims=True) * v, axis=-2)


def clv_angles(vectors):
    """Reference θ_ij = arccos|v_i·v_j| ∈ [0, π/2] between the columns i < j of ``vectors``
    (..., d, d), in ly.pair_labels order, in NumPy (columns are normalised first); evaluated as
    2·atan2(‖u − σv‖, ‖u + σv‖), σ = sign(u·v), accurate near tangency."""
    i, j = np.triu_indices(vectors.shape[-1], 1)
    unit = vectors / np.linalg.norm(vectors, axis=-2, keepdims=True)
    u, v = unit[..., :, i], unit[..., :, j]
    sign = np.where(np.sum(u * v, axis=-2, keepdims=True) < 0.0, -1.0, 1.0)
    return 2.0 * np.arctan2(
        np.linalg.norm(u - sign * v, axis=-2), np.linalg.norm(u + sign * v, axis=-2)
    )


def random_orthogonal(rng, shape, d):
    q, r = np.linalg.qr(rng.standard_normal(shape + (d, d)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def synthetic_cocycle(S=3, K=300, seed=1):
    """M_k = A_{k+1} D_k A_k^{-1}: CLVs a_i(k), exponents mean ln|D_ii| (distinct means)."""
    rng = np.random.default_rng(seed)
    mu = np.array([0.6, 0.2, -0.3, -0.9])
    d = mu.size
    sigma = rng.uniform(0.5, 2.0, (S, K + 1, 1, d))  # singular values: cond(A_k) ≤ 4
    A = random_orthogonal(rng, (S, K + 1), d) * sigma @ random_orthogonal(rng, (S, K + 1), d)
    log_D = mu + 0.3 * rng.standard_normal((S, K, d))
    D = rng.choice([-1.0, 1.0], (S, K, d)) * np.exp(log_D)
    M = A[:, 1:] * D[:, :, None, :] @ np.linalg.inv(A[:, :-1])
    return M, A, log_D


def near_identity_cocycle(S=3, K=200, d=9, eta=0.02, steps=5, seed=2):
    """Products of J = I − η H(t), H(t) symmetric and time-varying (like the project's)."""
    rng = np.random.default_rng(seed)
    B0, B1 = rng.standard_normal((2, S, 1, d, d))
    t = np.arange(K * steps).reshape(1, K * steps, 1, 1)
    B = B0 + np.sin(0.05 * t) * B1 + 0.5 * rng.standard_normal((S, K * steps, d, d))
    J = (np.eye(d) - eta * (B + B.swapaxes(-1, -2))).reshape(S, K, steps, d, d)
    M = J[:, :, 0]
    for n in range(1, steps):
        M = J[:, :, n] @ M
    return M


def henon_jacobians(n, a=1.4, b=0.3, transient=1000):
    x, y = 0.1, 0.1
    xs = np.empty(n)
    for i in range(transient + n):
        if i >= transient:
            xs[i - transient] = x
        x, y = 1.0 - a * x * x + y, b * x
    J = np.zeros((1, n, 2, 2))
    J[0, :, 0, 0] = -2.0 * a * xs
    J[0, :, 0, 1] = 1.0
    J[0, :, 1, 0] = b
    return J


# ----------------------------------------------------------------------------- known answers


def test_henon_exponents():
    res = ly.analyse(henon_jacobians(100_000), 1.0, seed=0, backward_transient=10)
    np.testing.assert_allclose(res.lyapunov_exponent[0], [0.4192, -1.6232], atol=2e-3)
    assert res.lyapunov_exponent.sum() == pytest.approx(np.log(0.3), abs=1e-10)


def test_synthetic_cocycle_exponents_and_clvs():
    M, A, log_D = synthetic_cocycle()
    K = M.shape[1]
    res = ly.analyse(M, 1.0, seed=3, forward_transient=TRANSIENT, backward_transient=TRANSIENT)
    inner = slice(TRANSIENT, K - TRANSIENT)

    # Once Q_k spans the flag of A_k = Q^A_k T_k: R_{k+1} = T_{k+1} D_k T_k^{-1} (up to signs).
    log_T = np.log(np.abs(np.diagonal(np.linalg.qr(A)[1], axis1=-2, axis2=-1)))
    exact_local = log_D + log_T[:, 1:] - log_T[:, :-1]
    np.testing.assert_allclose(res.local_exponent[:, TRANSIENT:], exact_local[:, TRANSIENT:],
                               rtol=0, atol=1e-8)
    f = TRANSIENT
    exact_whole = (log_D[:, f:].sum(1) + log_T[:, K] - log_T[:, f]) / (K - f)
    np.testing.assert_allclose(res.lyapunov_exponent, exact_whole, rtol=0, atol=1e-8)
    # i.e. the mean of ln|D_ii| up to a boundary term ≤ ln cond(A) / (K − f)
    np.testing.assert_allclose(res.lyapunov_exponent, log_D[:, TRANSIENT:].mean(1),
                               rtol=0, atol=np.log(4) / (K - TRANSIENT))

    # CLVs are the columns of A_k; growth along them is ln|D_ii| + ln|a_i(k+1)| − ln|a_i(k)|.
    V = ly.ginelli_clvs(M, seed=3)
    assert sine(V[:, inner], A[:, inner]).max() <= 1e-8
    log_a = np.log(np.linalg.norm(A, axis=-2))
    exact_growth = log_D + log_a[:, 1:] - log_a[:, :-1]
    np.testing.assert_allclose(res.clv_growth[:, inner], exact_growth[:, inner], rtol=0, atol=1e-8)
    exact_angles = clv_angles(A[:, 1:])
    np.testing.assert_allclose(res.clv_angle[:, inner], exact_angles[:, inner], rtol=0, atol=1e-8)


@pytest.mark.parametrize("make", [synthetic_cocycle, near_identity_cocycle])
def test_log_det_identity(make):
    M = make()[0] if make is synthetic_cocycle else make()
    res = ly.analyse(M, 0.5, seed=0, backward_transient=10)
    np.testing.assert_allclose(res.local_exponent.sum(-1) * 0.5, np.linalg.slogdet(M)[1],
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("make", [synthetic_cocycle, near_identity_cocycle])
def test_covariance(make):
    """M_k v_i(k) ∥ v_i(k+1); an off-by-one in R's index fails this on time-varying maps."""
    M = make()[0] if make is synthetic_cocycle else make()
    K = M.shape[1]
    V = ly.ginelli_clvs(M, seed=4)
    inner = slice(TRANSIENT, K - TRANSIENT)
    assert sine(M[:, inner] @ V[:, inner], V[:, TRANSIENT + 1 : K - TRANSIENT + 1]).max() <= 1e-8
    assert np.abs(np.linalg.norm(V, axis=-2) - 1.0).max() <= 1e-12


# ----------------------------------------------------------------------------- fixed lag


def test_fixed_lag_converges_to_ginelli():
    M, A, _ = synthetic_cocycle()
    K = M.shape[1]
    pred = [100, 120]
    lags = [1, 2, 5, 10, 20, 40, 80]
    res = ly.analyse(M, 1.0, seed=5, backward_transient=TRANSIENT, prediction_index=pred, lags=lags)
    error = res.clv_lag_error.max(axis=(0, 2, 3))
    assert np.all(np.diff(error[1:]) < 0), error
    assert error[-1] <= 1e-8
    ginelli_angle = res.clv_angle[:, np.array(pred) - 1]  # row m − 1 holds v(m)
    np.testing.assert_allclose(res.clv_angle_lagged[:, -1], ginelli_angle, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.clv_growth_lagged[:, -1], res.clv_growth[:, pred],
                               rtol=0, atol=1e-8)
    np.testing.assert_array_equal(res.lagged_available, np.add.outer(lags, pred))
    # the true CLVs are recovered too
    assert np.abs(res.clv_lag_error[:, -1]).max() <= 1e-8
    np.testing.assert_allclose(res.clv_angle_lagged[:, -1], clv_angles(A[:, pred]),
                               rtol=0, atol=1e-8)

    # L = K − k is Ginelli itself, bit for bit
    full = ly.analyse(M, 1.0, seed=5, backward_transient=TRANSIENT, prediction_index=[100],
                      lags=[K - 100])
    np.testing.assert_array_equal(full.clv_angle_lagged[:, 0, 0], full.clv_angle[:, 99])
    np.testing.assert_array_equal(full.clv_lag_error, 0.0)


def test_fixed_lag_uses_no_data_after_its_start():
    M = near_identity_cocycle(S=2, K=60, d=5)
    k, L = 20, 10
    a = ly.analyse(M, 0.1, seed=6, backward_transient=10, prediction_index=[k], lags=[L])
    M2 = M.copy()
    M2[:, k + L :] = np.random.default_rng(0).standard_normal(M2[:, k + L :].shape)
    b = ly.analyse(M2, 0.1, seed=6, backward_transient=10, prediction_index=[k], lags=[L])
    np.testing.assert_array_equal(a.clv_angle_lagged, b.clv_angle_lagged)
    np.testing.assert_array_equal(a.clv_growth_lagged, b.clv_growth_lagged)
    np.testing.assert_array_equal(a.ftle[:, : k + L], b.ftle[:, : k + L])


def test_fixed_lag_beyond_the_run_is_nan():
    M = near_identity_cocycle(S=2, K=30, d=4)
    res = ly.analyse(M, 0.1, seed=0, backward_transient=5, prediction_index=[10, 25], lags=[5, 6])
    assert np.isnan(res.clv_angle_lagged[:, 1, 1]).all()  # 25 + 6 > 30
    assert np.isfinite(res.clv_angle_lagged[:, 0]).all()
    assert np.isfinite(res.clv_angle_lagged[:, 1, 0]).all()


# ----------------------------------------------------------------------------- reference


def reference_analysis(M, dt, frame, start, pred, lags):
    """Per-network loop: np.linalg.qr with sign fix, scipy triangular solves, direct M v."""
    S, K, d = M.shape[:3]
    i, j = np.triu_indices(d, 1)
    keys = ("Q", "R", "V", "local", "growth", "angle", "angle_lag", "growth_lag")
    out = {key: [] for key in keys}

    def angles(V):
        return np.arccos(np.clip(np.abs(np.sum(V[:, i] * V[:, j], axis=0)), 0.0, 1.0))

    for s in range(S):
        Qs, Rs = [frame], []
        for k in range(K):
            q, r = np.linalg.qr(M[s, k] @ Qs[-1])
            sign = np.where(np.diag(r) < 0, -1.0, 1.0)
            Qs.append(q * sign)
            Rs.append(r * sign[:, None])

        def backward(top, bottom):
            C = start.copy()
            for m in range(top, bottom, -1):
                C = solve_triangular(Rs[m - 1], C)
                C /= np.linalg.norm(C, axis=0)
            return Qs[bottom] @ C

        V = [None] * (K + 1)
        C = start.copy()
        V[K] = Qs[K] @ C
        for m in range(K, 0, -1):
            C = solve_triangular(Rs[m - 1], C)
            C /= np.linalg.norm(C, axis=0)
            V[m - 1] = Qs[m - 1] @ C
        out["Q"].append(Qs)
        out["R"].append(Rs)
        out["V"].append(V)
        out["local"].append([np.log(np.diag(r)) / dt for r in Rs])
        out["growth"].append([np.log(np.linalg.norm(M[s, k] @ V[k], axis=0)) / dt
                              for k in range(K)])
        out["angle"].append([angles(V[m]) for m in range(1, K + 1)])
        lagged = [[backward(k + L, k) for k in pred] for L in lags]
        out["angle_lag"].append([[angles(v) for v in row] for row in lagged])
        out["growth_lag"].append([[np.log(np.linalg.norm(M[s, k] @ v, axis=0)) / dt
                                   for k, v in zip(pred, row)] for row in lagged])
    return {key: np.array(value) for key, value in out.items()}


def test_batched_equals_reference():
    rng = np.random.default_rng(7)
    S, K, d, dt = 4, 80, 5, 0.1
    M = np.eye(d) + 0.6 * rng.standard_normal((S, K, d, d))
    pred, lags, seed = [0, 3, 30], [1, 4, 25], 11
    ref = reference_analysis(M, dt, ly.random_orthogonal(d, seed),
                             ly.random_upper_triangular(d, seed), pred, lags)
    res = ly.analyse(M, dt, seed=seed, backward_transient=0, prediction_index=pred, lags=lags)
    Q, R = ly.qr_cocycle(M, ly.random_orthogonal(d, seed))
    V = ly.ginelli_clvs(M, seed)
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Q, ref["Q"], **tol)
    np.testing.assert_allclose(R, ref["R"], **tol)
    np.testing.assert_allclose(V, ref["V"], **tol)
    # logarithms compared before the division by dt
    np.testing.assert_allclose(res.local_exponent * dt, ref["local"] * dt, **tol)
    ref_ftle = np.cumsum(ref["local"], 1) / np.arange(1, K + 1)[:, None]
    np.testing.assert_allclose(res.ftle * dt, ref_ftle * dt, **tol)
    np.testing.assert_allclose(res.clv_growth * dt, ref["growth"] * dt, **tol)
    np.testing.assert_allclose(res.clv_angle, ref["angle"], **tol)
    np.testing.assert_allclose(res.clv_angle_lagged, ref["angle_lag"], **tol)
    np.testing.assert_allclose(res.clv_growth_lagged * dt, ref["growth_lag"] * dt, **tol)
    np.testing.assert_allclose(clv_angles(V[:, 1:]), res.clv_angle, **tol)
    # each network's arithmetic is independent of its batch
    alone = ly.analyse(M[2:3], dt, seed=seed, backward_transient=0, prediction_index=pred,
                       lags=lags)
    np.testing.assert_array_equal(alone.clv_angle_lagged[0], res.clv_angle_lagged[2])
    np.testing.assert_array_equal(alone.clv_angle[0], res.clv_angle[2])


def test_ginelli_features_at_the_prediction_indices_are_the_time_series_values():
    M = near_identity_cocycle(S=2, K=60, d=4)
    pred = [1, 3, 20]
    res = ly.analyse(M, 0.1, seed=3, backward_transient=10, prediction_index=pred, lags=[2])
    for b, k in enumerate(pred):
        np.testing.assert_array_equal(res.clv_angle_at[:, b], res.clv_angle[:, k - 1])  # v(k)
        np.testing.assert_array_equal(res.clv_growth_at[:, b], res.clv_growth[:, k])   # stride k


def products(M, counts):
    """M_{K−1} ⋯ M_0 of each network for each K in counts, formed directly (tests only)."""
    out = []
    for K in counts:
        P = np.broadcast_to(np.eye(M.shape[-1]), M[:, 0].shape)
        for k in range(K):
            P = M[:, k] @ P
        out.append(P)
    return np.stack(out, axis=1)


def test_singular_value_ftle_equals_svd_of_the_product():
    """Well-conditioned products can be formed: then the two agree to round-off."""
    M = near_identity_cocycle(S=3, K=40, d=6)
    counts = [1, 2, 7, 15]
    got = ly.singular_value_ftle(M, 0.25, counts)
    assert np.linalg.cond(products(M, counts)).max() < 1e9   # formed products are still exact
    sigma = np.linalg.svd(products(M, counts), compute_uv=False)
    # the formed product's SVD is itself accurate only to ε·cond(P) ≲ 1e-7 relative in σ_min
    np.testing.assert_allclose(got, np.log(sigma) / (np.array(counts)[:, None] * 0.25), rtol=1e-8,
                               atol=1e-12)
    assert (np.diff(got, axis=-1) <= 0).all()                              # descending


def test_singular_value_ftle_is_frame_invariant_and_exact_on_graded_diagonals():
    rng = np.random.default_rng(4)
    d, K = 5, 30
    # cond(M_k) ≈ e^15 (a rotated factor keeps its small σ to ~1e-9), cond(product) ≈ e^450
    logs = rng.normal([3.0, 1.0, 0.0, -4.0, -12.0], 1.0, (1, K, d))
    M = np.zeros((1, K, d, d))
    M[..., range(d), range(d)] = np.exp(logs) * rng.choice([-1, 1], (1, K, d))
    counts = np.array([30, 1, 10])                                      # any order
    expected = -np.sort(-np.cumsum(logs, axis=1)[:, counts - 1], axis=-1) / counts[:, None]
    np.testing.assert_allclose(ly.singular_value_ftle(M, 1.0, counts), expected, rtol=1e-12)
    # P M_k Pᵀ (a fixed orthogonal change of coordinates) leaves every σ unchanged
    P = random_orthogonal(rng, (), d)
    rotated = ly.singular_value_ftle(P @ M @ P.T, 1.0, counts)
    np.testing.assert_allclose(rotated, expected, rtol=1e-9, atol=1e-9)
    # and so does a different frame of the columns: M_0 → M_0 P (the start of the product)
    M2 = M.copy()
    M2[:, 0] = M[:, 0] @ P
    np.testing.assert_allclose(ly.singular_value_ftle(M2, 1.0, counts), expected, rtol=1e-9,
                               atol=1e-9)


def test_singular_value_ftle_degenerate_and_diverged():
    M = np.broadcast_to(np.eye(4), (2, 12, 4, 4)).copy()
    M[1, 5:] = np.nan
    got = ly.singular_value_ftle(M, 0.1, [1, 5, 6, 12])
    np.testing.assert_array_equal(got[0], 0.0)                # repeated exponents, exactly
    np.testing.assert_array_equal(got[1, :2], 0.0)
    assert np.isnan(got[1, 2:]).all()                         # beyond the valid strides
    with pytest.raises(ValueError, match="stride counts"):
        ly.singular_value_ftle(M, 0.1, [0])


def test_windowed_ftle():
    local = np.random.default_rng(8).standard_normal((2, 30, 3))
    w = ly.windowed_ftle(local, 7)
    by_hand = np.stack([local[:, k - 6 : k + 1].mean(1) for k in range(6, 30)], 1)
    np.testing.assert_allclose(w[:, 6:], by_hand)
    np.testing.assert_allclose(w[:, :6], ly.cumulative_ftle(local)[:, :6])


# ----------------------------------------------------------------------------- degenerate


def assert_sane(res):
    for name in ("local_exponent", "ftle", "ftle_windowed", "lyapunov_exponent", "clv_angle",
                 "clv_growth", "clv_angle_lagged", "clv_growth_lagged", "clv_lag_error"):
        assert np.isfinite(getattr(res, name)).all(), name
    assert (res.clv_angle >= 0).all() and (res.clv_angle <= np.pi / 2).all()


def test_identity_propagators():
    M = np.broadcast_to(np.eye(4), (2, 40, 4, 4)).astype(np.float32)
    res = ly.analyse(M, 0.005, seed=0, backward_transient=10, prediction_index=[1, 5], lags=[1, 20])
    assert_sane(res)
    assert np.abs(res.local_exponent).max() <= 1e-12     # ln R_ii = O(ε) with a random Q_0
    assert np.abs(res.lyapunov_exponent).max() <= 1e-12
    assert np.abs(res.clv_growth).max() <= 1e-12
    # nothing moves: every CLV is F c_i for its column c_i of C* (F orthogonal keeps angles)
    expected = clv_angles(ly.random_upper_triangular(4, 0))
    np.testing.assert_allclose(res.clv_angle, np.broadcast_to(expected, res.clv_angle.shape),
                               atol=1e-12)


def test_dead_unit_block_identity():
    """Dead ReLU units: M is the identity on their (coordinate-aligned) parameters.

    With the random initial frame the zero exponents are sorted into the spectrum of the live
    block and no CLV is pulled onto another (with Q_0 = I the angle of such pairs was exactly 0).
    """
    d, dead = 9, [2, 3, 5, 7]
    alive = [i for i in range(d) if i not in dead]
    B = near_identity_cocycle(S=2, K=150, d=len(alive), eta=0.05)
    M = np.zeros(B.shape[:2] + (d, d))
    M[..., dead, dead] = 1.0
    M[..., np.ix_(alive, alive)[0], np.ix_(alive, alive)[1]] = B
    res = ly.analyse(M.astype(np.float32), 0.005, seed=1, backward_transient=20,
                     prediction_index=[1, 3, 50], lags=[1, 10, 100])
    assert_sane(res)
    np.testing.assert_allclose(res.local_exponent.sum(-1) * 0.005,
                               np.linalg.slogdet(M.astype(np.float32).astype(float))[1], atol=1e-10)
    live = ly.analyse(B.astype(np.float32), 0.005, seed=1, backward_transient=20)
    outer = [0, 1, -2, -1]                                  # well separated from the zeros
    scale = np.abs(live.lyapunov_exponent).max()            # finite-time (K·dt = 0.75) spread
    np.testing.assert_allclose(res.lyapunov_exponent[:, outer],
                               live.lyapunov_exponent[:, [0, 1, -2, -1]], atol=0.03 * scale)
    assert (np.diff(res.lyapunov_exponent, axis=1) < 5.0).all()      # sorted up to transients
    assert res.clv_angle[:, res.clv_converged].min() > 1e-2


def test_singular_propagators():
    rng = np.random.default_rng(9)
    M = rng.standard_normal((2, 50, 4, 4))
    M[:, ::7, :, 1] = 0.0                # exactly singular strides
    M[:, 3] = 0.0                        # the zero map
    M[1, 10] *= 1e-300                   # nearly zero
    res = ly.analyse(M, 1.0, seed=0, backward_transient=5, prediction_index=[0, 4, 11], lags=[1, 3])
    assert_sane(res)
    assert res.local_exponent.min() >= ly.LOG_FLOOR
    np.testing.assert_array_equal(res.local_exponent[:, 3], ly.LOG_FLOOR)


def test_diverged_network_is_masked_and_isolated():
    M = near_identity_cocycle(S=3, K=120, d=5)
    n_div, b, pred, lags = 40, 10, [5, 25, 60], [1, 10]
    M[1, n_div:] = np.nan
    kw = dict(seed=2, backward_transient=b, window=8, prediction_index=pred, lags=lags)
    res = ly.analyse(M, 0.1, **kw)
    np.testing.assert_array_equal(res.n_valid, [120, n_div, 120])
    np.testing.assert_array_equal(res.valid, [True, False, True])

    others = ly.analyse(M[[0, 2]], 0.1, **kw)
    for name in ("local_exponent", "ftle", "ftle_windowed", "lyapunov_exponent", "clv_angle",
                 "clv_growth", "clv_angle_lagged", "clv_growth_lagged", "clv_lag_error"):
        np.testing.assert_array_equal(getattr(res, name)[[0, 2]], getattr(others, name))

    # the diverged network is analysed as a run of n_div strides; NaN exactly where documented
    short = ly.analyse(M[1:2, :n_div], 0.1, **kw)
    for name in ("local_exponent", "ftle", "ftle_windowed"):
        x = getattr(res, name)[1]
        np.testing.assert_array_equal(x[:n_div], getattr(short, name)[0])
        assert np.isnan(x[n_div:]).all()
    assert np.isnan(res.lyapunov_exponent[1]).all()
    cut = n_div - b
    angle, growth = res.clv_angle[1], res.clv_growth[1]
    np.testing.assert_array_equal(angle[:cut], short.clv_angle[0, :cut])  # row m−1 = v(m)
    assert np.isnan(angle[cut:]).all() and np.isfinite(angle[:cut]).all()
    assert np.isnan(growth[cut + 1 :]).all() and np.isfinite(growth[: cut + 1]).all()
    available = np.add.outer(lags, pred) <= n_div
    assert np.isfinite(res.clv_angle_lagged[1][available]).all()
    assert np.isnan(res.clv_angle_lagged[1][~available]).all()
    np.testing.assert_array_equal(res.clv_lag_error[1][:, 2], np.nan)  # Ginelli v(60) unconverged


def test_tangencies_and_labels():
    assert ly.pair_labels(3) == ["1-2", "1-3", "2-3"]
    angles = np.array([0.05, 0.2, np.nan])
    np.testing.assert_array_equal(ly.tangencies(angles, 0.1), [True, False, False])


# ----------------------------------------------------------------------------- chunk file


def make_chunk(S=4, K=30, d=3, s=5, eta=1e-3):
    M = near_identity_cocycle(S=S, K=K, d=d, eta=0.05)
    M[2, 20:] = np.nan
    names = [f"p{i}" for i in range(d)]
    return xr.Dataset(
        {"propagator": (("network", "stride", "param_i", "param_j"), M),
         "diverged": ("network", np.array([0, 0, 1, 0], np.int8)),
         "divergence_step": ("network", np.array([-1, -1, 100, -1]))},
        coords={"network": np.arange(100, 100 + S), "stride": np.arange(K),
                "param_i": names, "param_j": names},
        attrs={"learning_rate": eta, "jacobian_stride": s, "steps": K * s,
               "activation": "tanh", "initialization": "uniform"},
    )  # fmt: skip


CFG = {
    "seed": 3,
    "lyapunov": {"forward_transient": 0, "backward_transient": 10, "window": 4,
                 "lags": [5, 10, 20], "tangency_threshold": 0.1, "output_stride": 1},
    "prediction": {"times": [0.005, 0.010, 0.015, 0.025, 0.05]},
}  # fmt: skip


def test_analyse_chunk(tmp_path):
    ds = ly.analyse_chunk(make_chunk(), CFG)
    assert dict(ds.sizes) == {"network": 4, "time": 30, "exponent": 3, "pair": 3, "lag": 3,
                              "prediction_time": 5}
    dims = {
        "local_exponent": ("network", "time", "exponent"), "ftle": ("network", "time", "exponent"),
        "ftle_windowed": ("network", "time", "exponent"),
        "lyapunov_exponent": ("network", "exponent"), "clv_angle": ("network", "time", "pair"),
        "clv_growth": ("network", "time", "exponent"),
        "clv_angle_lagged": ("network", "lag", "prediction_time", "pair"),
        "clv_growth_lagged": ("network", "lag", "prediction_time", "exponent"),
        "clv_lag_error": ("network", "lag", "prediction_time", "exponent"),
        "lagged_available_time": ("lag", "prediction_time"), "clv_converged": ("time",),
        "ftle_at": ("network", "prediction_time", "exponent"),
        "clv_angle_ginelli_at": ("network", "prediction_time", "pair"),
        "clv_growth_ginelli_at": ("network", "prediction_time", "exponent"),
        "clv_tangency_fraction": ("network", "pair"), "valid": ("network",),
    }  # fmt: skip
    for name, dim in dims.items():
        assert ds[name].dims == dim, name
        assert ds[name].attrs["long_name"] and "units" in ds[name].attrs, name
        if name not in ("valid", "clv_converged"):
            assert ds[name].dtype == np.float64, name
    # flow time is dimensionless: rates per unit flow time have UDUNITS "1"
    assert ds["local_exponent"].attrs["units"] == "1" and ds["clv_angle"].attrs["units"] == "rad"
    assert "per unit flow time" in ds["lyapunov_exponent"].attrs["long_name"]
    for name, meanings in (("valid", "invalid valid"), ("clv_converged", "unconverged converged")):
        np.testing.assert_array_equal(ds[name].attrs["flag_values"], [0, 1])
        assert ds[name].attrs["flag_values"].dtype == ds[name].dtype == np.int8
        assert ds[name].attrs["flag_meanings"] == meanings
    np.testing.assert_array_equal(ds["network"], np.arange(100, 104))
    np.testing.assert_array_equal(ds["time"][:3], [0.005, 0.010, 0.015])
    np.testing.assert_array_equal(ds["lag"], [5, 10, 20])
    assert list(ds["pair"].values) == ["1-2", "1-3", "2-3"]
    np.testing.assert_array_equal(ds["valid"], [1, 1, 0, 1])
    assert int(ds["clv_converged"].sum()) == 30 - 10
    # t* = 0.015 is CLV index 3; with L = 10 steps = 2 strides it is available at index 5
    assert ds["lagged_available_time"].sel(lag=10, prediction_time=0.015) == 0.025
    assert ds["ftle"].sel(time=0.015).shape == (4, 3)
    ok = ds.sel(network=[100, 101, 103])
    for name in ("ftle", "clv_angle_lagged", "clv_tangency_fraction", "lyapunov_exponent"):
        assert np.isfinite(ok[name]).all(), name
    assert np.isfinite(ok["clv_angle"].where(ds["clv_converged"] == 1, 0.0)).all()
    assert np.isnan(ds["lyapunov_exponent"].sel(network=102)).all()
    assert np.isnan(ds["ftle"].sel(network=102).isel(time=slice(20, None))).all()
    assert ds.attrs["weightdyn_version"] and ds.attrs["activation"] == "tanh"

    # frame-invariant FTLEs at t*: (1/t*) ln σ_i of the cumulative propagator, descending
    M = make_chunk()["propagator"].values
    for t in (0.005, 0.015, 0.025):
        k = round(t / 0.005)
        sigma = np.linalg.svd(np.linalg.multi_dot(M[0, :k][::-1]) if k > 1 else M[0, 0],
                              compute_uv=False)
        np.testing.assert_allclose(ds["ftle_at"].sel(network=100, prediction_time=t),
                                   np.log(sigma) / t, rtol=1e-10)
    assert np.isfinite(ds["ftle_at"].sel(network=[100, 101, 103])).all()
    path = tmp_path / "chunk.nc"
    ds.to_netcdf(path, engine="netcdf4")
    with xr.open_dataset(path, engine="netcdf4") as back:
        xr.testing.assert_identical(back.load(), ds)


def test_analyse_chunk_thins_time_series_but_keeps_prediction_times():
    full = ly.analyse_chunk(make_chunk(), CFG)
    cfg = {**CFG, "lyapunov": {**CFG["lyapunov"], "output_stride": 4}}
    thin = ly.analyse_chunk(make_chunk(), cfg)
    ends = [1, 2, 3, 4, 5, 8, 10, 12, 16, 20, 24, 28]     # multiples of 4 ∪ t*/dt
    np.testing.assert_allclose(thin["time"], np.round(np.array(ends) * 0.005, 12))
    for name in ("local_exponent", "ftle", "ftle_windowed", "clv_angle", "clv_growth"):
        xr.testing.assert_identical(thin[name], full[name].sel(time=thin["time"]))
    for name in ("clv_tangency_fraction", "lyapunov_exponent", "clv_angle_lagged"):
        xr.testing.assert_identical(thin[name], full[name])   # from the full resolution


def test_analyse_chunk_ftles_do_not_depend_on_the_random_frame():
    """The seed fixes Benettin's frame Q_0 = F and Ginelli's C*: the cumulative FTLEs, the
    predictor features Λ_i(t*) and the whole-run exponents are the same under any seed (they
    are singular values of M(t, 0)); Benettin's local exponents are not."""
    a = ly.analyse_chunk(make_chunk(), CFG)
    b = ly.analyse_chunk(make_chunk(), {**CFG, "seed": 12345})
    for name in ("ftle", "ftle_at", "lyapunov_exponent"):
        xr.testing.assert_identical(a[name], b[name])
    assert not np.allclose(a["local_exponent"][:, :3], b["local_exponent"][:, :3])


def test_analyse_chunk_rejects_lag_not_multiple_of_stride():
    cfg = {**CFG, "lyapunov": {**CFG["lyapunov"], "lags": [5, 7]}}
    with pytest.raises(ValueError, match="lyapunov.lags"):
        ly.analyse_chunk(make_chunk(), cfg)


def test_analyse_chunk_reads_the_propagators_of_an_open_file_by_blocks(tmp_path, tiny_config,
                                                                       monkeypatch):
    """The lyapunov job's way (chunkio.open_simulation_chunk, blocks of LANES networks) gives
    the dataset of the chunk in memory, bit for bit."""
    from test_gather import fake_chunk  # tests/ is on sys.path (rootdir conftest)

    from weightdyn import chunkio

    sim = fake_chunk(tiny_config, "tanh", "uniform", 0, 10, diverge=[4])
    S, K, d = sim["propagator"].shape[:3]
    sim["propagator"].values[:] = near_identity_cocycle(S=S, K=K, d=d, eta=0.02)
    expected = ly.analyse_chunk(sim, tiny_config)
    path = tmp_path / "chunk000.nc"
    chunkio.write_simulation_chunk(sim, path)
    monkeypatch.setattr(analysis, "LANES", 3)
    with chunkio.open_simulation_chunk(path) as opened:
        xr.testing.assert_identical(ly.analyse_chunk(opened, tiny_config), expected)


@pytest.mark.parametrize("act_name", ["tanh", "relu"])
def test_covariance_on_the_project_propagators(act_name, default_config):
    """M_k v_i(k) ∥ v_i(k+1) on real training trajectories (float64 propagators)."""
    from weightdyn import activations, engine
    from weightdyn.initialization import initial_parameters
    from weightdyn.network import Architecture
    from weightdyn.task import teacher_task

    cfg = default_config
    arch = Architecture.from_config(cfg)
    theta0 = initial_parameters(arch, cfg["seed"], act_name, "normal", range(6))
    out = engine.integrate(theta0, arch, activations.get(act_name),
                           teacher_task(arch, act_name, cfg["task"]), 1e-3, 600, 10, 5, 1e8,
                           "float64")
    M = out.propagator
    V = ly.ginelli_clvs(M, seed=cfg["seed"])
    K, b = M.shape[1], 30                                   # b: backward transient (strides)
    image = M[:, : K - b] @ V[:, : K - b]                    # columns M_k v_i(k)
    nxt = V[:, 1 : K - b + 1]                                # columns v_i(k+1)
    size = np.linalg.norm(image, axis=-2)
    u = image / size[..., None, :]
    sine = np.linalg.norm(u - np.sum(u * nxt, axis=-2, keepdims=True) * nxt, axis=-2)
    # Rounding of v_i(k) (relative ε) is amplified by κ = ‖M_k‖ / ‖M_k v_i(k)‖; strides where
    # η·λ_max(H) ≈ 1 make M_k nearly singular (κ up to 1e14 for the most contracting CLV), so
    # the bound is 1e-8 where κ ≤ 1e6 and round-off level (100 ε κ) everywhere.
    kappa = np.linalg.norm(M[:, : K - b], ord=2, axis=(-2, -1))[..., None] / size
    assert (kappa <= 1e6).mean() > 0.9
    assert sine[kappa <= 1e6].max() <= 1e-8
    assert (sine <= 100 * np.finfo(float).eps * kappa + 1e-12).all()


# ----------------------------------------------------------------------------- lane kernel


@numba.njit(cache=True)
def _graded_left_multiply(R, L, B, acc):
    """T ← R T for upper-triangular R and T held by rows T_i = e^{L_i} b_i (per network, as
    first written: the package's version is the lane kernel's)."""
    d = L.shape[0]
    for i in range(d):
        m = -np.inf
        for j in range(i, d):
            if R[i, j] != 0.0:
                m = max(m, math.log(abs(R[i, j])) + L[j])
        if m == -np.inf:
            L[i] += kernels.LOG_FLOOR
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
        if norm == 0.0:
            L[i] = m + kernels.LOG_FLOOR
            continue
        L[i] = m + math.log(norm)
        for c in range(d):
            B[i, c] = acc[c] / norm


@numba.njit(cache=True)
def _backward_step(R, C, x, Rs, rii):
    """C ← R^{-1} C, unit columns (per network; Rs, rii, x: work arrays)."""
    kernels._scale_triangular(R, Rs, rii)
    for j in range(R.shape[0]):
        kernels._solve_column(Rs, rii, C, j, x)


@numba.njit(cache=True)
def _growth(R, C, out, Rs, rii):
    """out = ln‖R c_j‖ (per network; Rs, rii: work arrays)."""
    kernels._log_growth(Rs, kernels._scale_triangular(R, Rs, rii), C, out)


@numba.njit(cache=True)
def _per_network(M, n_valid, frame, start, pred, lags, counts,
                 log_r, angle, log_growth, angle_pred, log_growth_pred, angle_lag,
                 log_growth_lag, lag_error, sv_log):  # fmt: skip
    """The analysis one network at a time with the per-network numerics, every stride kept:
    Benettin, Ginelli and fixed-lag estimates (one lag run per lag and prediction index), and
    the frame-invariant FTLEs from a second QR pass."""
    S, d = M.shape[0], M.shape[2]
    for s in range(S):
        n = n_valid[s]
        R = np.empty((n, d, d))
        Q = frame.copy()
        Q_next = np.empty((d, d))
        A = np.empty((d, d))
        Rs = np.empty((d, d))
        rii = np.empty(d)
        work = np.empty(d)
        for k in range(n):
            kernels._qr_step(M[s, k], Q, Q_next, R[k], A, work)
            Q, Q_next = Q_next, Q
            for i in range(d):
                log_r[s, k, i] = math.log(max(R[k, i, i], kernels.TINY))
        C = start.copy()
        C_at_pred = np.empty((pred.size, d, d))
        for m in range(n, -1, -1):
            if m < n:
                _backward_step(R[m], C, work, Rs, rii)
                _growth(R[m], C, log_growth[s, m], Rs, rii)
            if m >= 1:
                kernels._pair_angles(C, angle[s, m - 1])
            for b in range(pred.size):
                if pred[b] == m:
                    C_at_pred[b] = C
                    if m < n:
                        kernels._pair_angles(C, angle_pred[s, b])
                        _growth(R[m], C, log_growth_pred[s, b], Rs, rii)
        for a in range(lags.size):
            for b in range(pred.size):
                k = pred[b]
                if k + lags[a] > n:
                    continue
                C[:] = start
                for m in range(k + lags[a], k, -1):
                    _backward_step(R[m - 1], C, work, Rs, rii)
                kernels._pair_angles(C, angle_lag[s, a, b])
                _growth(R[k], C, log_growth_lag[s, a, b], Rs, rii)
                for i in range(d):
                    lag_error[s, a, b, i] = kernels._line_angle(C, i, C_at_pred[b], i)
        W = np.eye(d)
        L = np.zeros(d)
        B = np.eye(d)
        k = 0
        for b in range(counts.size):
            if counts[b] > n:
                continue
            while k < counts[b]:
                kernels._qr_step(M[s, k], W, Q_next, Rs, A, work)
                W, Q_next = Q_next, W
                _graded_left_multiply(Rs, L, B, work)
                k += 1
            L_copy, B_copy = L.copy(), B.copy()
            kernels._row_jacobi(L_copy, B_copy, 1e-15, 60)
            sv_log[s, b] = -np.sort(-L_copy)


def per_network_analysis(M, dt, *, seed, window, forward, backward, pred, lags, threshold, counts):
    """Everything analyse returns, computed network by network at full time resolution with the
    per-network numerics and NumPy for the rest (tangencies from all angles, windowed means)."""
    S, K, d = M.shape[:3]
    P, NP, NL = d * (d - 1) // 2, len(pred), len(lags)
    pred, lags, counts = (np.asarray(a, dtype=np.int64) for a in (pred, lags, counts))
    n = ly.leading_valid_strides(M)
    out = {name: np.full(shape, np.nan) for name, shape in (
        ("log_r", (S, K, d)), ("angle", (S, K, P)), ("log_growth", (S, K, d)),
        ("angle_pred", (S, NP, P)), ("log_growth_pred", (S, NP, d)),
        ("angle_lag", (S, NL, NP, P)), ("log_growth_lag", (S, NL, NP, d)),
        ("lag_error", (S, NL, NP, d)), ("sv_log", (S, counts.size, d)))}
    _per_network(np.ascontiguousarray(M), n.astype(np.int64),
                 np.ascontiguousarray(ly.random_orthogonal(d, seed)),
                 ly.random_upper_triangular(d, seed), pred, lags, counts, *out.values())
    cut = np.where(n < K, n - backward, K)[:, None]
    k = np.arange(K)
    out["angle"][k + 1 > cut] = np.nan
    out["log_growth"][k > cut] = np.nan
    unconverged = pred > cut
    out["lag_error"][np.broadcast_to(unconverged[:, None, :], (S, NL, NP))] = np.nan
    out["angle_pred"][unconverged] = np.nan
    out["log_growth_pred"][unconverged] = np.nan
    converged = (k >= forward) & (k + 1 <= K - backward)
    usable = converged[None, :, None] & ~np.isnan(out["angle"])
    n_usable = usable.sum(axis=1)
    fraction = np.full(n_usable.shape, np.nan)
    np.divide((usable & ly.tangencies(out["angle"], threshold)).sum(axis=1), n_usable,
              out=fraction, where=n_usable > 0)
    local = out["log_r"] / dt
    windowed = np.empty_like(local)
    w = min(window, K)
    windowed[:, : w - 1] = ly.cumulative_ftle(local[:, : w - 1])
    windowed[:, w - 1 :] = np.lib.stride_tricks.sliding_window_view(local, w, axis=1).mean(-1)
    whole_run = np.full((S, d), np.nan)
    whole_run[n == K] = local[n == K, forward:].mean(axis=1)
    return {
        "local_exponent": local, "ftle": ly.cumulative_ftle(local), "ftle_windowed": windowed,
        "lyapunov_exponent": whole_run, "clv_angle": out["angle"],
        "clv_growth": out["log_growth"] / dt, "clv_tangency_fraction": fraction,
        "clv_angle_at": out["angle_pred"], "clv_growth_at": out["log_growth_pred"] / dt,
        "clv_angle_lagged": out["angle_lag"], "clv_growth_lagged": out["log_growth_lag"] / dt,
        "clv_lag_error": out["lag_error"],
        "singular_ftle": out["sv_log"] / (counts[:, None] * dt),
    }  # fmt: skip


def project_propagators(act_name, config, networks=6, steps=600):
    """Propagators of real training runs (default protocol, normal initialisation)."""
    from weightdyn import activations, engine
    from weightdyn.initialization import initial_parameters
    from weightdyn.network import Architecture
    from weightdyn.task import teacher_task

    arch = Architecture.from_config(config)
    theta0 = initial_parameters(arch, config["seed"], act_name, "normal", range(networks))
    return engine.integrate(theta0, arch, activations.get(act_name),
                            teacher_task(arch, act_name, config["task"]), 1e-3, steps, 10, 5,
                            1e8, "float64").propagator


def assert_equals_reference(M, dt):
    """analyse (full resolution) equals per_network_analysis bit for bit."""
    kw = dict(seed=7, window=6, forward=2, backward=10, pred=[0, 1, 3, 10], lags=[1, 2, 7, 15],
              threshold=0.3, counts=[1, 2, 5, 20, M.shape[1]])
    ref = per_network_analysis(M, dt, **kw)
    res = ly.analyse(M, dt, seed=kw["seed"], window=kw["window"],
                     forward_transient=kw["forward"], backward_transient=kw["backward"],
                     prediction_index=kw["pred"], lags=kw["lags"],
                     tangency_threshold=kw["threshold"], ftle_counts=kw["counts"])
    for name, expected in ref.items():
        np.testing.assert_array_equal(getattr(res, name), expected, err_msg=name, strict=True)
    np.testing.assert_array_equal(ly.singular_value_ftle(M, dt, kw["counts"]),
                                  ref["singular_ftle"], strict=True)


@pytest.mark.parametrize("act_name", ["tanh", "relu"])
def test_lane_kernel_equals_the_per_network_numerics(act_name, default_config, monkeypatch):
    """Bit for bit on real training runs (a diverged tail added), also unrolled for d = 9, in
    blocks of 4 networks (the last one partial) run by 2 threads."""
    M = project_propagators(act_name, default_config, networks=7)
    M[3, 80:] = np.inf                          # a run that diverged after 80 strides
    assert_equals_reference(M, 0.005)
    monkeypatch.setattr(analysis, "UNROLL_WORK", 0)
    monkeypatch.setattr(analysis, "LANES", 4)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    assert_equals_reference(M, 0.005)


def test_lane_kernel_equals_the_per_network_numerics_on_degenerate_input():
    """Singular maps, identity blocks (dead ReLU units, float32), tiny entries, and a
    threshold that equals one of the angles (decided from the angle itself)."""
    M = near_identity_cocycle(S=5, K=60, d=5, eta=0.05)
    M[0, ::7, :, 1] = 0.0
    M[1, 3] = 0.0
    M[2, 10] *= 1e-300
    M[3, :, 2, :] = M[3, :, :, 2] = 0.0
    M[3, :, 2, 2] = 1.0
    M[4, 30:] = np.nan
    assert_equals_reference(M, 0.1)
    assert_equals_reference(M.astype(np.float32), 0.1)
    dead = np.broadcast_to(np.eye(9), (3, 40, 9, 9)).copy()
    dead[:, :, :5, :5] = near_identity_cocycle(S=3, K=40, d=5, eta=0.05)
    assert_equals_reference(dead.astype(np.float32), 0.005)
    threshold = float(ly.analyse(M[:2], 0.1, seed=7, backward_transient=10).clv_angle[0, 25, 3])
    ref = per_network_analysis(M[:2], 0.1, seed=7, window=6, forward=0, backward=10, pred=[],
                               lags=[], threshold=threshold, counts=[])
    res = ly.analyse(M[:2], 0.1, seed=7, window=6, backward_transient=10,
                     tangency_threshold=threshold)
    np.testing.assert_array_equal(res.clv_tangency_fraction, ref["clv_tangency_fraction"])


ROOT = Path(__file__).resolve().parents[1]


def test_job_scripts_import_no_plotting_learning_or_scipy():
    """What the simulate and lyapunov scripts import, and their first compiled call, load none
    of Matplotlib, scikit-learn and SciPy (start-up of every job)."""
    import ast

    preamble = []  # each script's statements before its job (`with script_logging(…)`)
    for script in ("simulate.py", "lyapunov.py"):
        tree = ast.parse((ROOT / "workflow" / "scripts" / script).read_text())
        preamble += [ast.unparse(node) for node in tree.body if not isinstance(node, ast.With)]
    code = "\n".join([
        "import sys",
        f"sys.path[:0] = [{str(ROOT / 'workflow' / 'scripts')!r}]",
        *preamble,
        "import numpy as np",
        "from weightdyn import plan",
        "from weightdyn.simulate import simulate_chunk",
        "cfg = plan.simulation_config(plan.load_config())",
        "cfg['training']['steps'] = 20",
        "sim = simulate_chunk(cfg, 'tanh', 'normal', 0, 2)",
        "analyse_chunk(sim, plan.analysis_as_config(plan.analysis_config(plan.load_config(",
        "    {'lyapunov': {'backward_transient': 1, 'lags': [5], 'output_stride': 1},",
        "     'prediction': {'times': [0.005]}}))))",
        "heavy = ('matplotlib', 'sklearn', 'scipy')",
        "print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] in heavy))",
    ])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "IMPORTED []" in proc.stdout, proc.stdout[-3000:]
