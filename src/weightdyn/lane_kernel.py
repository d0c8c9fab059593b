"""The compiled integrator: networks in lanes of SIMD vectors (see :mod:`weightdyn.engine`).

:func:`compiled_kernel` compiles, per activation, architecture and lane width, the template
:func:`_lane_group` (one group of :data:`LANES` networks, each in its own SIMD lane) and the
parallel driver :func:`_integrate_all` (groups in threads). The sums, gradient and Hessian it
computes are stated in :func:`_lane_group`'s docstring.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import types
from pathlib import Path

import numba
import numpy as np

from . import curvature
from .activations import Activation
from .network import Architecture

# FMA contraction only: the kernel vectorises across networks (lanes), so no reduction needs
# reassociation, and each lane's arithmetic is exactly that of a network computed alone. No
# 'nnan'/'ninf', which would let the compiler drop the divergence checks.
_FASTMATH = {"contract"}

#: networks integrated together, one per SIMD lane. Every loop over the lanes is a vector loop;
#: LLVM vectorises loops this long (shorter fixed-length loops were left scalar, measured with
#: benchmarks/bench_engine.py): eight AVX-512 registers of float64 per operation.
LANES = 64

#: samples whose terms are added to the sums in one pass (fewer loads and stores of the sums)
BLOCK = 8


def _lane_group(first, theta0, xt, targets_t, eta, steps, rec_steps, stride, bound,
                theta_out, loss_out, step_loss_out, grad_norm_out, prop_out, final_loss,
                divergence_step, hmin_out, hmax_out):
    """Networks first … first+LANES−1 (the map of :mod:`weightdyn.engine`), one per SIMD lane.

    Template: compiled by :func:`compiled_kernel` with the globals ``sigma`` (the activation's
    compiled derivatives), ``extremes`` (:func:`weightdyn.curvature.lane_extremes`), ``LANES``
    and the layer sizes ``N_IN``, ``N_HID``, ``N_OUT`` bound as compile-time constants. Every array has the lane axis last and every arithmetic loop runs
    over the lanes (a vector loop), so lane l performs exactly the operations of a network
    computed alone: results do not depend on the batch, on the network's lane or on the lane
    width. Lanes past the last network repeat network ``first``; their results are dropped.
    Samples are taken in blocks of :data:`BLOCK`, whose terms are added to the sums in sample
    order, so each sum is loaded and stored once per block.

    Per step and sample μ (x̃ = (x_μ, 1), z = W1 x̃, e = y − target) the sample loop
    accumulates, with the basis b = (σ'(z_i) x̃_j for all i, j;  σ(z_i) for all i;  1),

        K_ab = Σ_μ b_a b_b,   R_ijm = Σ_μ u_i σ''(z_i) x̃_j x̃_m  (u_i = Σ_k e_k W2_ki),
        E_ka = Σ_μ e_k b_a,   C = ½ Σ_μ |e|²,

    from which ∇C and H = Σ_μ Σ_k (∇y_k ∇y_kᵀ + e_k ∇²y_k) follow exactly (∂y_k/∂W1_ij =
    W2_ki b_(i,j), ∂y_k/∂W2_ki = σ(z_i), ∂y_k/∂b2_k = 1):

        H[W1_ij, W1_i'm] = (Σ_k W2_ki W2_ki') K_(i,j)(i',m) + δ_ii' R_ijm,
        H[W1_ij, W2_ki'] = W2_ki K_(i,j)(σ_i') + δ_ii' E_k(i,j),   H[W1_ij, b2_k] = W2_ki K_(i,j)(1),
        H[W2_ki | b2_k, W2_k'i' | b2_k'] = δ_kk' K (their basis entries),
        ∂C/∂W1_ij = Σ_k W2_ki E_k(i,j),   ∂C/∂W2_ki = E_k(σ_i),   ∂C/∂b2_k = E_k(1).

    At the recorded steps (the last included) the extreme eigenvalues λ_min(H), λ_max(H) of
    H(θ_n) are stored (:mod:`weightdyn.curvature`).
    """
    S, d = theta0.shape
    samples = xt.shape[1]
    nx = N_IN + 1                         # x̃ = (x, 1)
    nu = N_HID * nx                       # basis entries σ'(z_i) x̃_j
    nb = nu + N_HID + 1                   # … then σ(z_i), then 1
    o1 = N_HID * N_IN                     # start of b1 in θ
    o2 = o1 + N_HID                       # start of W2
    o3 = o2 + N_OUT * N_HID               # start of b2

    # θ index → (kind 0: first layer, 1: W2, 2: b2; basis index; hidden unit; output)
    kind = np.empty(d, dtype=np.int64)
    basis = np.empty(d, dtype=np.int64)
    unit = np.full(d, -1, dtype=np.int64)
    out = np.full(d, -1, dtype=np.int64)
    for i in range(N_HID):
        for j in range(nx):
            a = i * N_IN + j if j < N_IN else o1 + i
            kind[a], basis[a], unit[a] = 0, i * nx + j, i
        for k in range(N_OUT):
            a = o2 + k * N_HID + i
            kind[a], basis[a], unit[a], out[a] = 1, nu + i, i, k
    for k in range(N_OUT):
        kind[o3 + k], basis[o3 + k], out[o3 + k] = 2, nb - 1, k

    lane_net = np.empty(LANES, dtype=np.int64)
    for l in range(LANES):
        lane_net[l] = first + l if first + l < S else first
    th = np.empty((d, LANES))
    for a in range(d):
        for l in range(LANES):
            th[a, l] = theta0[lane_net[l], a]

    z = np.empty(LANES)
    f = np.empty((N_HID, LANES))
    f1 = np.empty((N_HID, LANES))
    f2 = np.empty((N_HID, LANES))
    bs = np.empty((BLOCK, nb, LANES))             # per sample of a block: basis b,
    es = np.empty((BLOCK, N_OUT, LANES))          # residuals e,
    backs = np.empty((BLOCK, N_HID, LANES))       # u_i σ''(z_i),
    xxs = np.empty((BLOCK, nx, nx))               # x̃_j x̃_m
    K = np.empty((nb * (nb + 1) // 2, LANES))     # K_ac (a ≤ c) packed by rows
    tri = np.empty((nb, nb), dtype=np.int64)      # (a, c) → packed index, either order
    q = 0
    for a in range(nb):
        for c in range(a, nb):
            tri[a, c] = tri[c, a] = q
            q += 1
    R = np.empty((N_HID, nx, nx, LANES))
    E = np.empty((N_OUT, nb, LANES))
    loss = np.empty(LANES)
    grad = np.empty((d, LANES))
    H = np.empty((d, d, LANES))
    P = np.empty((d, d, LANES))
    PJ = np.empty((d, d, LANES))
    HA = np.empty((d, d, LANES))                  # work: H reduced for its eigenvalues
    hmin = np.empty(LANES)
    hmax = np.empty(LANES)
    lane_acc = np.empty(LANES)
    alive = np.ones(LANES, dtype=np.bool_)      # not (yet) diverged
    real = np.empty(LANES, dtype=np.bool_)      # holds a network of the batch (not padding)
    for l in range(LANES):
        real[l] = first + l < S
    P[:] = 0.0
    for a in range(d):
        P[a, a, :] = 1.0
    r = 0
    k_stride = 0
    done = np.zeros(LANES, dtype=np.int64)      # strides stored per lane (prop_out is not pre-filled)

    for step in range(steps + 1):
        K[:] = 0.0
        R[:] = 0.0
        E[:] = 0.0
        loss[:] = 0.0
        for p0 in range(0, samples, BLOCK):
            # per sample of the block: forward pass z_i = W1_i x + b1_i, σ and derivatives,
            # residuals e_k = y_k − t_k, basis b, u_i σ''(z_i) and x̃_j x̃_m
            for s in range(BLOCK):
                p = p0 + s
                if p >= samples:            # past the last sample: contributes exactly 0
                    bs[s] = 0.0
                    es[s] = 0.0
                    backs[s] = 0.0
                    xxs[s] = 0.0
                    continue
                for i in range(N_HID):
                    for l in range(LANES):
                        z[l] = th[o1 + i, l]
                    for j in range(N_IN):
                        x = xt[j, p]
                        for l in range(LANES):
                            z[l] += th[i * N_IN + j, l] * x
                    for l in range(LANES):
                        f[i, l], f1[i, l], f2[i, l] = sigma(z[l])
                    for j in range(nx):
                        x = xt[j, p]
                        for l in range(LANES):
                            bs[s, i * nx + j, l] = f1[i, l] * x
                    for l in range(LANES):
                        bs[s, nu + i, l] = f[i, l]
                bs[s, nb - 1, :] = 1.0
                for k in range(N_OUT):
                    t = targets_t[k, p]
                    for l in range(LANES):
                        es[s, k, l] = th[o3 + k, l] - t
                    for i in range(N_HID):
                        for l in range(LANES):
                            es[s, k, l] += th[o2 + k * N_HID + i, l] * f[i, l]
                    for l in range(LANES):
                        loss[l] += 0.5 * es[s, k, l] * es[s, k, l]
                for i in range(N_HID):
                    for l in range(LANES):
                        backs[s, i, l] = 0.0
                    for k in range(N_OUT):
                        for l in range(LANES):
                            backs[s, i, l] += es[s, k, l] * th[o2 + k * N_HID + i, l]
                    for l in range(LANES):
                        backs[s, i, l] *= f2[i, l]
                for j in range(nx):
                    for m in range(j, nx):
                        xxs[s, j, m] = xt[j, p] * xt[m, p]
            # the block's terms of the sums K, E, R, added in sample order
            q = 0
            for a in range(nb):
                for c in range(a, nb):
                    for l in range(LANES):
                        acc = K[q, l]
                        for s in range(BLOCK):
                            acc += bs[s, a, l] * bs[s, c, l]
                        K[q, l] = acc
                    q += 1
            for k in range(N_OUT):
                for a in range(nb):
                    for l in range(LANES):
                        acc = E[k, a, l]
                        for s in range(BLOCK):
                            acc += es[s, k, l] * bs[s, a, l]
                        E[k, a, l] = acc
            for i in range(N_HID):
                for j in range(nx):
                    for m in range(j, nx):
                        for l in range(LANES):
                            acc = R[i, j, m, l]
                            for s in range(BLOCK):
                                acc += backs[s, i, l] * xxs[s, j, m]
                            R[i, j, m, l] = acc

        # divergence check of θ_n, records of step n
        recording = r < rec_steps.size and rec_steps[r] == step
        running = False
        for l in range(LANES):
            if alive[l]:
                healthy = np.isfinite(loss[l]) and loss[l] <= bound
                for a in range(d):
                    healthy = healthy and abs(th[a, l]) <= bound
                s = first + l
                if not real[l]:
                    alive[l] = healthy
                elif healthy:
                    running = True
                    step_loss_out[s, step] = loss[l]
                    if recording:
                        for a in range(d):
                            theta_out[s, r, a] = th[a, l]
                        loss_out[s, r] = loss[l]
                    if step == steps:
                        final_loss[s] = loss[l]
                else:
                    divergence_step[s] = step
                    alive[l] = False
            if not alive[l]:                    # carried along harmlessly from θ = 0
                for a in range(d):
                    th[a, l] = 0.0

        # gradient and Hessian from the sums (upper triangle, then mirrored)
        for a in range(d):
            ka, ba, ia, oa = kind[a], basis[a], unit[a], out[a]
            if ka == 0:
                for l in range(LANES):
                    grad[a, l] = 0.0
                for k in range(N_OUT):
                    for l in range(LANES):
                        grad[a, l] += th[o2 + k * N_HID + ia, l] * E[k, ba, l]
            else:
                for l in range(LANES):
                    grad[a, l] = E[oa, ba, l]
            for c in range(a, d):
                kc, bc, ic, oc = kind[c], basis[c], unit[c], out[c]
                q = tri[ba, bc]
                if ka == 0 and kc == 0:
                    for l in range(LANES):
                        lane_acc[l] = 0.0
                    for k in range(N_OUT):
                        for l in range(LANES):
                            lane_acc[l] += (th[o2 + k * N_HID + ia, l]
                                       * th[o2 + k * N_HID + ic, l])
                    for l in range(LANES):
                        H[a, c, l] = lane_acc[l] * K[q, l]
                    if ia == ic:
                        ja, jc = ba - ia * nx, bc - ic * nx
                        for l in range(LANES):
                            H[a, c, l] += R[ia, min(ja, jc), max(ja, jc), l]
                elif ka == 0:
                    for l in range(LANES):
                        H[a, c, l] = th[o2 + oc * N_HID + ia, l] * K[q, l]
                    if kc == 1 and ic == ia:
                        for l in range(LANES):
                            H[a, c, l] += E[oc, ba, l]
                elif oa == oc:
                    for l in range(LANES):
                        H[a, c, l] = K[q, l]
                else:
                    for l in range(LANES):
                        H[a, c, l] = 0.0
        for a in range(d):
            for c in range(a):
                for l in range(LANES):
                    H[a, c, l] = H[c, a, l]
        if recording:
            HA[:] = H
            extremes(HA, hmin, hmax)
            for l in range(LANES):
                if alive[l] and real[l]:
                    hmin_out[first + l, r] = hmin[l]
                    hmax_out[first + l, r] = hmax[l]
            r += 1
        if step == steps or not running:
            # strides a lane did not complete (it diverged, or training ended): NaN
            for l in range(LANES):
                if real[l]:
                    for k in range(done[l], prop_out.shape[1]):
                        prop_out[first + l, k] = np.nan
            return
        for l in range(LANES):
            lane_acc[l] = 0.0
        for a in range(d):
            for l in range(LANES):
                lane_acc[l] += grad[a, l] * grad[a, l]
        for l in range(LANES):
            if alive[l] and real[l]:
                grad_norm_out[first + l, step] = math.sqrt(lane_acc[l])

        # propagator P ← J_n P = P − η H P, stored every `stride` steps
        for a in range(d):
            for c in range(d):
                PJ[a, c, :] = P[a, c, :]
            for m in range(d):
                for l in range(LANES):
                    lane_acc[l] = eta * H[a, m, l]
                for c in range(d):
                    for l in range(LANES):
                        PJ[a, c, l] -= lane_acc[l] * P[m, c, l]
        if (step + 1) % stride == 0:
            for l in range(LANES):
                if alive[l] and real[l]:
                    for a in range(d):
                        for c in range(d):
                            prop_out[first + l, k_stride, a, c] = PJ[a, c, l]
                    done[l] = k_stride + 1
            k_stride += 1
            P[:] = 0.0
            for a in range(d):
                P[a, a, :] = 1.0
        else:
            P, PJ = PJ, P

        # gradient-descent update θ_{n+1} = θ_n − η ∇C(θ_n)
        for a in range(d):
            for l in range(LANES):
                th[a, l] -= eta * grad[a, l]


def _integrate_all(theta0, xt, targets_t, eta, steps, rec_steps, stride, bound, theta_out,
                   loss_out, step_loss_out, grad_norm_out, prop_out, final_loss,
                   divergence_step, hmin_out, hmax_out):
    """All networks, one lane group per task (template; global ``lane_group`` bound)."""
    groups = (theta0.shape[0] + LANES - 1) // LANES
    for g in numba.prange(groups):
        lane_group(g * LANES, theta0, xt, targets_t, eta, steps, rec_steps, stride, bound,
                   theta_out, loss_out, step_loss_out, grad_norm_out, prop_out, final_loss,
                   divergence_step, hmin_out, hmax_out)


def _specialise(template, name: str, **bindings):
    """``template`` as a new function ``name`` whose globals also hold ``bindings``."""
    fn = types.FunctionType(template.__code__, {**template.__globals__, **bindings}, name)
    fn.__qualname__ = name
    fn.__doc__ = template.__doc__
    return fn


@functools.cache
def compiled_kernel(act: Activation, arch: Architecture, lanes: int = LANES):
    """The compiled integrator for one activation, architecture and lane width.

    The templates above are compiled with σ, the lane width and the layer sizes bound as
    globals (compile-time constants: the lane loops become single vector instructions; a
    closure variable could not be keyed by numba's disk cache), under names carrying all of
    them and a hash of the source files defining the activation and the eigenvalue routine
    (:mod:`weightdyn.curvature`), which the kernel inlines: the machine code is cached on disk
    across processes, and an edit of either source compiles afresh.
    """
    source = (Path(inspect.getsourcefile(act.derivatives)).read_bytes()
              + Path(curvature.__file__).read_bytes())
    tag = (f"{act.name}_{hashlib.sha256(source).hexdigest()[:12]}_"
           f"{arch.inputs}x{arch.hidden}x{arch.outputs}_L{lanes}")
    sizes = {"LANES": lanes, "N_IN": arch.inputs, "N_HID": arch.hidden, "N_OUT": arch.outputs}
    group = numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")(
        _specialise(_lane_group, f"_lane_group_{tag}", sigma=act.compiled,
                    extremes=curvature.lane_extremes, **sizes))
    return numba.njit(parallel=True, cache=True, error_model="numpy")(
        _specialise(_integrate_all, f"_integrate_all_{tag}", lane_group=group, **sizes))
