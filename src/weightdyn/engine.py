"""Integrate gradient descent for a batch of networks, with tangent propagators.

For every network, starting from θ_0:

    θ_{n+1} = θ_n − η ∇C(θ_n),          n = 0 … T−1,
    M_k     = J_{(k+1)s−1} ⋯ J_{ks+1} J_{ks},   J_n = I − η H(θ_n),   k = 0 … T/s − 1,

recording θ_n, C(θ_n) and the extreme Hessian eigenvalues λ_min(H(θ_n)), λ_max(H(θ_n))
(:mod:`weightdyn.curvature`) at the steps in ``record_steps``, C(θ_n) and the gradient norm
|∇C(θ_n)| at every step (n = 0 … T; the gradient norm at n = T is NaN: no update follows), the
propagators M_k (products accumulated in float64, stored in the output dtype) and the final loss
C(θ_T).

Divergence: before θ_n is used, C(θ_n) and every |θ_n,i| must be finite and ≤ ``bound``. The
first step n that fails is the network's ``divergence_step``; the network is frozen there:
its records from step n on are NaN, the propagators of strides that reach step n or beyond
(k with (k+1)s > n) are NaN, and its final loss is +inf. No other network is affected.

Two implementations with identical semantics:
* :func:`integrate` — compiled (numba): networks in lane groups of :data:`LANES`, one network
  per SIMD lane, groups in parallel threads; each network's arithmetic is independent of the
  batch, its lane and the lane width (bit-identical whatever the chunking or threads);
* :func:`integrate_reference` — plain batched NumPy (einsum over a network axis) built on
  :mod:`weightdyn.dynamics`; the test oracle and the benchmark baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import curvature, dynamics
from .activations import Activation
from .lane_kernel import LANES, compiled_kernel
from .network import Architecture
from .task import Task


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
    hessian_min: np.ndarray      # (S, R) λ_min(H) at the recorded steps
    hessian_max: np.ndarray      # (S, R) λ_max(H) at the recorded steps


def record_steps(steps: int, record_stride: int) -> np.ndarray:
    """Steps 0, r, 2r, … and always the last step T."""
    return np.unique(np.append(np.arange(0, steps + 1, record_stride), steps))


def _allocate(S, d, steps, record_stride, jacobian_stride, dtype,
              fill_propagator=True) -> Trajectories:
    """Output arrays, NaN-filled (the propagators left unfilled if ``fill_propagator`` is
    false: the compiled kernel writes every stride, NaN where none exists)."""
    if steps % jacobian_stride:
        raise ValueError(
            f"recording.jacobian_stride={jacobian_stride} must divide training.steps={steps}"
        )
    R = record_steps(steps, record_stride).size
    shape = (S, steps // jacobian_stride, d, d)
    return Trajectories(
        theta=np.full((S, R, d), np.nan),
        loss=np.full((S, R), np.nan),
        step_loss=np.full((S, steps + 1), np.nan),
        gradient_norm=np.full((S, steps + 1), np.nan),
        propagator=(np.full(shape, np.nan, dtype=dtype) if fill_propagator
                    else np.empty(shape, dtype=dtype)),
        final_loss=np.full(S, np.inf),
        divergence_step=np.full(S, -1, dtype=np.int64),
        hessian_min=np.full((S, R), np.nan),
        hessian_max=np.full((S, R), np.nan),
    )


def integrate(theta0, arch: Architecture, act: Activation, task: Task, learning_rate: float,
              steps: int, record_stride: int, jacobian_stride: int, bound: float,
              propagator_dtype="float64", lanes: int = LANES) -> Trajectories:
    """Compiled integration of the networks θ_0 (S, d) (see module docstring)."""
    theta0 = np.ascontiguousarray(theta0, dtype=np.float64)
    out = _allocate(theta0.shape[0], arch.dim, steps, record_stride, jacobian_stride,
                    propagator_dtype, fill_propagator=False)
    xt = np.ascontiguousarray(dynamics.extended_inputs(task.inputs).T)
    compiled_kernel(act, arch, lanes)(
        theta0, xt, np.ascontiguousarray(task.targets.T), float(learning_rate), int(steps),
        record_steps(steps, record_stride), int(jacobian_stride), float(bound), out.theta,
        out.loss, out.step_loss, out.gradient_norm, out.propagator, out.final_loss,
        out.divergence_step, out.hessian_min, out.hessian_max)
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
            lo, hi = curvature.extremes_reference(hess[alive])
            out.hessian_min[alive, recorded[step]] = lo
            out.hessian_max[alive, recorded[step]] = hi
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
