"""Gradient descent as a map and its analytic tangent operator (plain-NumPy reference path).

Update map F(θ) = θ − η ∇C(θ) with C(θ) = ½ Σ_μ Σ_o e_μo², e = y − t. Its Jacobian is
J(θ) = I − η H(θ) with the Hessian

    H = Σ_μ Σ_o [ ∇y_μo ∇y_μoᵀ + e_μo ∇²y_μo ].

With z = W1 x + b1, h = σ(z), y = W2 h + b2 and x̃ = (x, 1) (b1 is W1's extra column):

    ∂y_o/∂W1[i,j] = W2[o,i] σ'(z_i) x̃_j,   ∂y_o/∂W2[o,i] = h_i,   ∂y_o/∂b2[o] = 1,
    ∂²y_o/∂W1[i,j]∂W1[i,m] = W2[o,i] σ''(z_i) x̃_j x̃_m,
    ∂²y_o/∂W1[i,j]∂W2[o,i] = σ'(z_i) x̃_j,            all other second derivatives 0.

Every function takes θ with a leading network axis (S, d) and works on all networks at once.
This module is the reference the compiled kernel (:mod:`weightdyn.kernel`) is tested against,
and the "plain batched NumPy" baseline of the benchmarks.
"""

from __future__ import annotations

import numpy as np

from .activations import Activation
from .network import Architecture
from .task import Task


def extended_inputs(x: np.ndarray) -> np.ndarray:
    """x̃ = (x, 1) for every sample."""
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)


def first_layer_index(arch: Architecture) -> np.ndarray:
    """Index in θ of W1[i, j] for j < inputs and of b1[i] for j = inputs, shape (h, n+1)."""
    _, b, _, _ = arch.offsets
    w = np.arange(arch.hidden * arch.inputs).reshape(arch.hidden, arch.inputs)
    return np.concatenate([w, b + np.arange(arch.hidden)[:, None]], axis=1)


def loss_gradient_hessian(theta: np.ndarray, arch: Architecture, act: Activation, task: Task):
    """C(θ) (S,), ∇C(θ) (S, d) and H(θ) (S, d, d) for S networks (equations above)."""
    W1, b1, W2, b2 = arch.unpack(theta)
    S, h, o, d = theta.shape[0], arch.hidden, arch.outputs, arch.dim
    xt = extended_inputs(task.inputs)                               # (N, n+1)
    z = np.einsum("shn,pn->sph", W1, task.inputs) + b1[:, None, :]  # (S, N, h)
    f, f1, f2 = act(z)
    e = np.einsum("soh,sph->spo", W2, f) + b2[:, None, :] - task.targets  # (S, N, o)
    loss = 0.5 * np.einsum("spo,spo->s", e, e)

    # ∇y (S, N, o, d): first layer via x̃, output layer via h̃ = (h, 1) on the diagonal in o.
    first, (_, _, c, _) = first_layer_index(arch), arch.offsets
    G = np.zeros((S, task.samples, o, d))
    G[..., first] = np.einsum("soh,sph,pj->spohj", W2, f1, xt)
    for k in range(o):  # loop over output units (layer structure), not over networks
        G[:, :, k, c + k * h : c + (k + 1) * h] = f
        G[:, :, k, arch.offsets[3] + k] = 1.0
    grad = np.einsum("spo,spod->sd", e, G)
    hess = np.einsum("spoa,spob->sab", G, G)

    # Residual term Σ e ∇²y: W1–W1 block (diagonal in the hidden unit) and W1–W2 block.
    u = np.einsum("spo,soh->sph", e, W2)                              # backpropagated error
    block = np.einsum("sph,pj,pm->shjm", u * f2, xt, xt)
    hidden = np.arange(h)
    hess[:, first[:, :, None], first[:, None, :]] += block
    cross = np.einsum("spo,sph,pj->sohj", e, f1, xt)                  # (S, o, h, n+1)
    rows = first[None, :, :]                                          # (1, h, n+1)
    cols = (c + np.arange(o)[:, None] * h + hidden[None, :])[:, :, None]  # (o, h, 1)
    hess[:, rows, cols] += cross
    hess[:, cols, rows] += cross
    return loss, grad, hess


def tangent_operator(theta, arch, act, task, learning_rate: float) -> np.ndarray:
    """J(θ) = I − η H(θ), shape (S, d, d)."""
    hess = loss_gradient_hessian(theta, arch, act, task)[2]
    return np.eye(arch.dim) - learning_rate * hess


def update(theta, arch, act, task, learning_rate: float) -> np.ndarray:
    """One gradient-descent step F(θ) = θ − η ∇C(θ)."""
    return theta - learning_rate * loss_gradient_hessian(theta, arch, act, task)[1]
