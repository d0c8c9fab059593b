"""Benchmark of the per-chunk Lyapunov analysis (Benettin + Ginelli + fixed-lag CLVs +
frame-invariant FTLEs).

Times :func:`weightdyn.lyapunov.analyse_chunk` on a synthetic chunk of near-identity
propagators M_k = J_{5k+4} ⋯ J_{5k}, J = I − η H(t) with symmetric time-varying H (float64,
like the simulation's chunks), with the lags, prediction times and output stride of
config.yaml, against the same work done in plain NumPy: batched over networks (loop over
strides) and per network (a loop over networks, timed on a subset and extrapolated linearly).
The NumPy baselines get the frame-invariant FTLEs (1/t) ln σ_i(M(t, 0)) the plain way, by SVD
of the explicitly formed product: the same work count, but not the same accuracy (the formed
product loses the small σ_i once its condition number passes ~1e12).

    python benchmarks/bench_lyapunov.py            # default chunk, 500 × 600
    python benchmarks/bench_lyapunov.py --small    # 50 × 600, quick check
"""

from __future__ import annotations

import os

# The baselines work on single 9 × 9 matrices, where a threaded BLAS only adds overhead (and
# contends with numba's threads on a 2-core machine): give them one BLAS thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from scipy.linalg import solve_triangular  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from weightdyn import lyapunov as ly  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)

import yaml  # noqa: E402

CFG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
ETA, STRIDE = 1e-3, 5


def synthetic_chunk(networks: int, strides: int, d: int = 9, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    B0, B1 = rng.standard_normal((2, networks, d, d)) * 30.0
    M = np.empty((networks, strides, d, d))
    eye = np.eye(d)
    for k in range(strides):
        P = np.broadcast_to(eye, (networks, d, d))
        for n in range(k * STRIDE, (k + 1) * STRIDE):
            B = B0 + np.sin(0.01 * n) * B1 + 10.0 * rng.standard_normal((networks, d, d))
            P = (eye - ETA * (B + B.swapaxes(-1, -2))) @ P
        M[:, k] = P
    names = [f"p{i}" for i in range(d)]
    return xr.Dataset(
        {"propagator": (("network", "stride", "param_i", "param_j"), M),
         "diverged": ("network", np.zeros(networks, np.int8)),
         "divergence_step": ("network", np.full(networks, -1))},
        coords={"network": np.arange(networks), "stride": np.arange(strides),
                "param_i": names, "param_j": names},
        attrs={"learning_rate": ETA, "jacobian_stride": STRIDE, "steps": strides * STRIDE},
    )  # fmt: skip


def _sign_fixed_qr(A):
    q, r = np.linalg.qr(A)
    sign = np.where(np.diagonal(r, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
    return q * sign[..., None, :], r * sign[..., :, None]


def _angles(C, i, j):
    return np.arccos(np.clip(np.abs(np.sum(C[..., :, i] * C[..., :, j], axis=-2)), 0.0, 1.0))


def ftle_counts(K):
    """Stride counts of the frame-invariant FTLEs of analyse_chunk: every output_stride-th
    stride end, the prediction times and the end of the run."""
    dt = STRIDE * ETA
    pred = np.rint(np.array(CFG["prediction"]["times"]) / dt).astype(int)
    ends = np.arange(1, K + 1)
    return np.union1d(np.union1d(ends[ends % CFG["lyapunov"]["output_stride"] == 0], pred), [K])


def numpy_svd_ftle(M, counts):
    """ln σ_i of the explicitly formed cumulative products (batched over networks; the product
    is renormalised every stride, its log-norm carried along, so that it does not overflow)."""
    P = np.broadcast_to(np.eye(M.shape[-1]), M[:, 0].shape)
    log_scale = np.zeros(M.shape[0])
    out = []
    for k in range(M.shape[1]):
        P = M[:, k] @ P
        norm = np.linalg.norm(P, axis=(-2, -1))
        P = P / norm[:, None, None]
        log_scale += np.log(norm)
        if k + 1 in counts:  # the small σ of the formed product underflow to 0: ln → −inf
            with np.errstate(divide="ignore"):
                out.append(np.log(np.linalg.svd(P, compute_uv=False)) + log_scale[:, None])
    return out


def numpy_batched(M, pred, lags, frame, start):
    """Benettin, Ginelli (angles, growth), fixed-lag estimates and frame-invariant FTLEs,
    vectorised over networks."""
    S, K, d = M.shape[:3]
    svd_ftle = numpy_svd_ftle(M, ftle_counts(K))
    i, j = np.triu_indices(d, 1)
    Q = np.broadcast_to(frame, (S, d, d))
    R = np.empty((S, K, d, d))
    local = np.empty((S, K, d))
    for k in range(K):
        Q, R[:, k] = _sign_fixed_qr(M[:, k] @ Q)
        local[:, k] = np.log(np.diagonal(R[:, k], axis1=-2, axis2=-1))

    def back(C, m):  # C_{m-1} = R_m^{-1} C_m, unit columns
        C = np.linalg.solve(R[:, m - 1], C)
        return C / np.linalg.norm(C, axis=-2, keepdims=True)

    C = np.broadcast_to(start, (S, d, d))
    angle, growth = np.empty((S, K, len(i))), np.empty((S, K, d))
    for m in range(K, 0, -1):
        angle[:, m - 1] = _angles(C, i, j)
        C = back(C, m)
        growth[:, m - 1] = np.log(np.linalg.norm(R[:, m - 1] @ C, axis=-2))
    lagged = []
    for L in lags:
        for k in pred:
            C = np.broadcast_to(start, (S, d, d))
            for m in range(k + L, k, -1):
                C = back(C, m)
            lagged.append((_angles(C, i, j), np.log(np.linalg.norm(R[:, k] @ C, axis=-2))))
    return local, angle, growth, lagged, svd_ftle


def numpy_per_network(M, pred, lags, frame, start):
    """The same per network: np.linalg.qr, scipy triangular solves, Python loops."""
    S, K, d = M.shape[:3]
    i, j = np.triu_indices(d, 1)
    results = []
    for s in range(S):
        Q = frame
        Rs = []
        for k in range(K):
            Q, r = _sign_fixed_qr(M[s, k] @ Q)
            Rs.append(r)
        local = np.log(np.array([np.diag(r) for r in Rs]))

        def back(C, m):
            C = solve_triangular(Rs[m - 1], C)
            return C / np.linalg.norm(C, axis=0)

        C = start
        angle, growth = [], []
        for m in range(K, 0, -1):
            angle.append(_angles(C, i, j))
            C = back(C, m)
            growth.append(np.log(np.linalg.norm(Rs[m - 1] @ C, axis=0)))
        lagged = []
        for L in lags:
            for k in pred:
                C = start
                for m in range(k + L, k, -1):
                    C = back(C, m)
                lagged.append((_angles(C, i, j), np.log(np.linalg.norm(Rs[k] @ C, axis=0))))
        results.append((local, angle, growth, lagged, numpy_svd_ftle(M[s:s + 1], ftle_counts(K))))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=500)
    parser.add_argument("--strides", type=int, default=600)
    parser.add_argument("--loop-networks", type=int, default=10,
                        help="networks timed in the per-network loop (extrapolated)")
    parser.add_argument("--small", action="store_true", help="50 networks, 5 in the loop")
    args = parser.parse_args()
    if args.small:
        args.networks, args.loop_networks = 50, 5
    S, K = args.networks, args.strides

    sim = synthetic_chunk(S, K)
    M = sim["propagator"].values
    dt = STRIDE * ETA
    pred = np.rint(np.array(CFG["prediction"]["times"]) / dt).astype(int)
    lags = np.array(CFG["lyapunov"]["lags"]) // STRIDE
    start = ly.random_upper_triangular(M.shape[2], CFG["seed"])
    frame = ly.random_orthogonal(M.shape[2], CFG["seed"])
    work = S * K
    print(f"chunk: {S} networks x {K} strides of {M.shape[2]}x{M.shape[2]} {M.dtype} propagators; "
          f"Benettin + Ginelli + fixed-lag at {pred.size} prediction times x {lags.size} lags "
          f"+ frame-invariant FTLEs at {ftle_counts(K).size} times")

    # NumPy first: OpenMP threads left spinning by a numba parallel region slow NumPy down.
    batched = best_time(numpy_batched, M, pred, lags, frame, start)
    n_loop = min(args.loop_networks, S)
    loop = best_time(numpy_per_network, M[:n_loop], pred, lags, frame, start) * S / n_loop
    first = best_time(ly.analyse_chunk, sim, CFG)
    compiled = best_time(ly.analyse_chunk, sim, CFG, repeats=3)

    print(f"  analyse_chunk (numba, {numba.get_num_threads()} threads), best of 3: "
          f"{compiled:7.2f} s  {work / compiled:12.0f} network-strides/s")
    print(f"  analyse_chunk first call (incl. JIT compile or cache load): {first:7.2f} s")
    print(f"  numpy batched over networks:        {batched:7.2f} s  {work / batched:12.0f} "
          f"network-strides/s  (x{batched / compiled:.1f} slower)")
    print(f"  numpy per-network loop (timed on {n_loop} networks, extrapolated to {S}): "
          f"{loop:7.2f} s  {work / loop:12.0f} network-strides/s  (x{loop / compiled:.1f} slower)")
    print(f"  target <= 20 s per default chunk: {'met' if compiled <= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
