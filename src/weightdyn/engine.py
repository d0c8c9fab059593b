"""Integrate gradient descent for a batch of networks, with tangent propagators.

For every network, starting from θ_0:

    θ_{n+1} = θ_n − η ∇C(θ_n),          n = 0 … T−1,
    M_k     = J_{(k+1)s−1} ⋯ J_{ks+1} J_{ks},   J_n = I − η H(θ_n),   k = 0 … T/s − 1,

recording θ_n and C(θ_n) at the steps in ``record_steps``, C(θ_n) and the gradient norm
|∇C(θ_n)| at every step (n = 0 … T; the gradient norm at n = T is NaN: no update follows), the
propagators M_k (products accumulated in float64, stored in the output dtype) and the final loss
C(θ_T).

Divergence: before θ_n is used, C(θ_n) and every |θ_n,i| must be finite and ≤ ``bound``. The
first step n that fails is the network's ``divergence_step``; the network is frozen there:
its records from step n on are NaN, the propagators of strides that reach step n or beyond
(k with (k+1)s > n) are NaN, and its final loss is +inf. No other network is affected.

Two implementations with identical semantics:
* :func:`integrate` — compiled (numba), networks in parallel, each network's arithmetic
  independent of the batch it is in (bit-identical whatever the chunking);
* :func:`integrate_reference` — plain batched NumPy (einsum over a network axis) built on
  :mod:`weightdyn.dynamics`; the test oracle and the benchmark baseline.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import types
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from . import dynamics
from .activations import Activation
from .network import Architecture
from .task import Task

# Reassociation and FMA contraction let reductions over samples vectorise; no 'nnan'/'ninf',
# which would let the compiler drop the divergence checks.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@dataclass
class Trajectories:
    """Output of an integration of S networks (R records, K strides, d parameters)."""

    theta: np.ndarray            # (S, R, d) θ at the recorded steps
    loss: np.ndarray             # (S, R) C(θ) at the recorded steps
    step_loss: np.ndarray        # (S, T+1) C(θ_n) at every step
    gradient_norm: np.ndarray    # (S, T+1) |∇C(θ_n)| at every step (NaN at n = T)
    propagator: np.ndarray       # (S, K, d, d) M_k
    final_loss: np.ndarray       # (S,) C(θ_T), +inf if diverged
    divergence_step: np.ndarray  # (S,) first failing step, −1 if none


def record_steps(steps: int, record_stride: int) -> np.ndarray:
    """Steps 0, r, 2r, … and always the last step T."""
    return np.unique(np.append(np.arange(0, steps + 1, record_stride), steps))


def _allocate(S, d, steps, record_stride, jacobian_stride, dtype) -> Trajectories:
    if steps % jacobian_stride:
        raise ValueError(
            f"recording.jacobian_stride={jacobian_stride} must divide training.steps={steps}"
        )
    R = record_steps(steps, record_stride).size
    return Trajectories(
        theta=np.full((S, R, d), np.nan),
        loss=np.full((S, R), np.nan),
        step_loss=np.full((S, steps + 1), np.nan),
        gradient_norm=np.full((S, steps + 1), np.nan),
        propagator=np.full((S, steps // jacobian_stride, d, d), np.nan, dtype=dtype),
        final_loss=np.full(S, np.inf),
        divergence_step=np.full(S, -1, dtype=np.int64),
    )


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _dot(x, y):
    """Σ_p x_p y_p (a loop the compiler vectorises)."""
    acc = 0.0
    for p in range(x.size):
        acc += x[p] * y[p]
    return acc


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _sum(x):
    """Σ_p x_p."""
    acc = 0.0
    for p in range(x.size):
        acc += x[p]
    return acc


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _dot3(x, y, z):
    """Σ_p x_p y_p z_p."""
    acc = 0.0
    for p in range(x.size):
        acc += x[p] * y[p] * z[p]
    return acc


def _trajectory(theta0, xt, targets_t, hidden, eta, steps, rec_steps, stride, bound,
                theta_out, loss_out, step_loss_out, grad_norm_out, prop_out):
    """One network (see module docstring); returns (final loss, divergence step).

    Template: compiled per activation by :func:`compiled_kernel` with the global ``sigma``
    bound to the activation's compiled derivatives.
    """
    d = theta0.size
    n = xt.shape[0] - 1                 # xt = x̃ᵀ, last row ones
    samples = xt.shape[1]
    outputs = targets_t.shape[0]
    o1 = hidden * n                     # start of b1
    o2 = o1 + hidden                    # start of W2
    o3 = o2 + outputs * hidden          # start of b2
    first = np.empty((hidden, n + 1), dtype=np.int64)   # θ index of W1[i,j] / b1[i]
    for i in range(hidden):
        for j in range(n):
            first[i, j] = i * n + j
        first[i, n] = o1 + i

    xx = np.empty((n + 1, n + 1, samples))             # x̃_j x̃_m per sample
    for j in range(n + 1):
        for m in range(n + 1):
            for p in range(samples):
                xx[j, m, p] = xt[j, p] * xt[m, p]

    theta = theta0.copy()
    f = np.empty((hidden, samples))
    f1 = np.empty((hidden, samples))
    f2 = np.empty((hidden, samples))
    err = np.empty((outputs, samples))
    back = np.empty(samples)
    zbuf = np.empty(samples)
    G = np.zeros((outputs, d, samples))
    for k in range(outputs):            # ∂y_k/∂b2[k] = 1, ∂y_k/∂(other output units) = 0
        G[k, o3 + k, :] = 1.0
    H = np.empty((d, d))
    grad = np.empty(d)
    P = np.eye(d)
    PJ = np.empty((d, d))
    r = 0
    k_stride = 0

    for step in range(steps + 1):
        # forward pass: z = W1 x + b1, σ and derivatives, residuals e = y − t
        for i in range(hidden):
            for p in range(samples):
                z = theta[o1 + i]
                for j in range(n):
                    z += theta[i * n + j] * xt[j, p]
                zbuf[p] = z
            for p in range(samples):
                f[i, p], f1[i, p], f2[i, p] = sigma(zbuf[p])
        loss = 0.0
        for k in range(outputs):
            for p in range(samples):
                y = theta[o3 + k]
                for i in range(hidden):
                    y += theta[o2 + k * hidden + i] * f[i, p]
                err[k, p] = y - targets_t[k, p]
                loss += 0.5 * err[k, p] * err[k, p]

        healthy = np.isfinite(loss) and loss <= bound
        for q in range(d):
            healthy = healthy and abs(theta[q]) <= bound
        if not healthy:
            return np.inf, step
        step_loss_out[step] = loss
        if r < rec_steps.size and rec_steps[r] == step:
            theta_out[r, :] = theta
            loss_out[r] = loss
            r += 1
        if step == steps:
            return loss, -1

        # ∇y_k per sample: rows of W1/b1 are W2[k,i] σ'(z_i) x̃_j, rows of W2[k,:] are h
        for k in range(outputs):
            for i in range(hidden):
                w = theta[o2 + k * hidden + i]
                for j in range(n + 1):
                    row = first[i, j]
                    for p in range(samples):
                        G[k, row, p] = w * f1[i, p] * xt[j, p]
                for p in range(samples):
                    G[k, o2 + k * hidden + i, p] = f[i, p]

        # Gauss–Newton term H_ab = Σ_kμ ∂_a y_k ∂_b y_k (upper triangle)
        for a in range(d):
            for b in range(a, d):
                acc = 0.0
                for k in range(outputs):
                    acc += _dot(G[k, a], G[k, b])
                H[a, b] = acc

        # gradient and residual term Σ e ∇²y, both from the sums
        #   cross[i,j,k] = Σ_μ e_k σ'(z_i) x̃_j   and   Σ_μ u_i σ''(z_i) x̃_j x̃_m,
        # with u_i = Σ_k e_k W2[k,i] (upper triangle: first-layer index < W2 index)
        for k in range(outputs):
            grad[o3 + k] = _sum(err[k])
            for i in range(hidden):
                grad[o2 + k * hidden + i] = _dot(err[k], f[i])
        for i in range(hidden):
            for p in range(samples):
                acc = 0.0
                for k in range(outputs):
                    acc += err[k, p] * theta[o2 + k * hidden + i]
                back[p] = acc * f2[i, p]
            for j in range(n + 1):
                g = 0.0
                for k in range(outputs):
                    cross = _dot3(err[k], f1[i], xt[j])
                    H[first[i, j], o2 + k * hidden + i] += cross
                    g += theta[o2 + k * hidden + i] * cross
                grad[first[i, j]] = g
                for m in range(j, n + 1):
                    H[first[i, j], first[i, m]] += _dot(back, xx[j, m])
        for a in range(d):
            for b in range(a):
                H[a, b] = H[b, a]
        grad_norm_out[step] = math.sqrt(_dot(grad, grad))

        # propagator P ← J_n P = P − η H P, stored every `stride` steps
        for a in range(d):
            for b in range(d):
                PJ[a, b] = P[a, b]
            for c in range(d):
                h_ac = eta * H[a, c]
                for b in range(d):
                    PJ[a, b] -= h_ac * P[c, b]
        if (step + 1) % stride == 0:
            prop_out[k_stride] = PJ
            k_stride += 1
            P[:] = 0.0
            for a in range(d):
                P[a, a] = 1.0
        else:
            P[:] = PJ

        for a in range(d):
            theta[a] -= eta * grad[a]
    return loss, -1


def _integrate_all(theta0, xt, targets_t, hidden, eta, steps, rec_steps, stride, bound,
                   theta_out, loss_out, step_loss_out, grad_norm_out, prop_out, final_loss,
                   divergence_step):
    """All networks in parallel (template; global ``trajectory`` bound per activation)."""
    for s in numba.prange(theta0.shape[0]):
        final_loss[s], divergence_step[s] = trajectory(
            theta0[s], xt, targets_t, hidden, eta, steps, rec_steps, stride, bound,
            theta_out[s], loss_out[s], step_loss_out[s], grad_norm_out[s], prop_out[s],
        )


def _specialise(template, name: str, **bindings):
    """``template`` as a new function ``name`` whose globals also hold ``bindings``."""
    fn = types.FunctionType(template.__code__, {**template.__globals__, **bindings}, name)
    fn.__qualname__ = name
    fn.__doc__ = template.__doc__
    return fn


@functools.cache
def compiled_kernel(act: Activation):
    """The compiled integrator for one activation, σ inlined so that the loops vectorise.

    The templates above are compiled with σ bound as a global (not a closure variable, which
    numba's disk cache cannot key), under names carrying the activation's name and a hash of
    the source file defining it: the machine code is cached on disk across processes, and an
    edit of the activation's source compiles afresh.
    """
    source = Path(inspect.getsourcefile(act.derivatives)).read_bytes()
    tag = f"{act.name}_{hashlib.sha256(source).hexdigest()[:12]}"
    trajectory = numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")(
        _specialise(_trajectory, f"_trajectory_{tag}", sigma=act.compiled))
    return numba.njit(parallel=True, cache=True, error_model="numpy")(
        _specialise(_integrate_all, f"_integrate_all_{tag}", trajectory=trajectory))


def integrate(theta0, arch: Architecture, act: Activation, task: Task, learning_rate: float,
              steps: int, record_stride: int, jacobian_stride: int, bound: float,
              propagator_dtype="float64") -> Trajectories:
    """Compiled integration of the networks θ_0 (S, d) (see module docstring)."""
    theta0 = np.ascontiguousarray(theta0, dtype=np.float64)
    out = _allocate(theta0.shape[0], arch.dim, steps, record_stride, jacobian_stride,
                    propagator_dtype)
    xt = np.ascontiguousarray(dynamics.extended_inputs(task.inputs).T)
    compiled_kernel(act)(theta0, xt, np.ascontiguousarray(task.targets.T), arch.hidden,
                         float(learning_rate), int(steps), record_steps(steps, record_stride),
                         int(jacobian_stride), float(bound), out.theta, out.loss,
                         out.step_loss, out.gradient_norm, out.propagator, out.final_loss,
                         out.divergence_step)
    return out


def integrate_reference(theta0, arch: Architecture, act: Activation, task: Task,
                        learning_rate: float, steps: int, record_stride: int,
                        jacobian_stride: int, bound: float,
                        propagator_dtype="float64") -> Trajectories:
    """Plain batched-NumPy integration with the semantics of :func:`integrate`."""
    theta = np.array(theta0, dtype=np.float64)
    S, d = theta.shape
    out = _allocate(S, d, steps, record_stride, jacobian_stride, propagator_dtype)
    recorded = {int(n): r for r, n in enumerate(record_steps(steps, record_stride))}
    alive = np.ones(S, dtype=bool)
    P = np.broadcast_to(np.eye(d), (S, d, d)).copy()
    for step in range(steps + 1):
        loss, grad, hess = dynamics.loss_gradient_hessian(theta, arch, act, task)
        with np.errstate(invalid="ignore"):
            healthy = (loss <= bound) & (np.abs(theta) <= bound).all(axis=1)
        failing = alive & ~healthy
        out.divergence_step[failing] = step
        alive &= healthy
        theta[~alive] = 0.0            # frozen networks are carried along harmlessly
        if step in recorded:
            out.theta[alive, recorded[step]] = theta[alive]
            out.loss[alive, recorded[step]] = loss[alive]
        out.step_loss[alive, step] = loss[alive]
        if step == steps:
            out.final_loss[alive] = loss[alive]
            return out
        P = np.einsum("sab,sbc->sac", np.eye(d) - learning_rate * hess, P)
        if (step + 1) % jacobian_stride == 0:
            k = step // jacobian_stride
            out.propagator[alive, k] = P[alive]
            P[:] = np.eye(d)
        out.gradient_norm[alive, step] = np.linalg.norm(grad[alive], axis=1)
        theta = theta - learning_rate * grad
    return out
