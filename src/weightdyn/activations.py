"""Activation functions with their first and second derivatives.

Each activation is one function ``derivatives(z) -> (σ(z), σ'(z), σ''(z))`` written with
NumPy operations only, so the same source serves two paths:

* called directly on arrays, it is the plain-NumPy reference path;
* compiled with :func:`numba.njit` it is called on scalars inside the compiled kernel.

Add an activation with :func:`register`; it is then accepted everywhere by name
(config, simulation, tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np


@dataclass(frozen=True)
class Activation:
    """A named activation: ``derivatives`` on arrays, ``compiled`` on scalars in kernels."""

    name: str
    derivatives: Callable
    compiled: Callable

    def __call__(self, z):
        return self.derivatives(z)


_REGISTRY: dict[str, Activation] = {}


def register(name: str, derivatives: Callable) -> Activation:
    """Register ``derivatives(z) -> (σ, σ', σ'')`` under ``name`` (NumPy ops only)."""
    act = Activation(name, derivatives, numba.njit(cache=True)(derivatives))
    _REGISTRY[name] = act
    return act


def get(name: str) -> Activation:
    """The registered activation called ``name``; ValueError naming the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; known activations: {sorted(_REGISTRY)}"
        ) from None


def names() -> list[str]:
    """Names of all registered activations."""
    return sorted(_REGISTRY)


def tanh(z):
    """σ = tanh z, σ' = 1 − σ², σ'' = −2σσ'."""
    f = np.tanh(z)
    d1 = 1.0 - f * f
    return f, d1, -2.0 * f * d1


def relu(z):
    """σ = max(z, 0), σ' = [z > 0] (so σ'(0) = 0), σ'' = 0."""
    d1 = (z > 0.0) * 1.0
    return z * d1, d1, z * 0.0


def sigmoid(z):
    """σ = 1/(1 + e^{−z}) = (1 + tanh(z/2))/2, σ' = σ(1 − σ), σ'' = σ'(1 − 2σ)."""
    f = 0.5 + 0.5 * np.tanh(0.5 * z)
    d1 = f * (1.0 - f)
    return f, d1, d1 * (1.0 - 2.0 * f)


def softplus(z):
    """σ = ln(1 + e^z) (overflow-safe form), σ' = sigmoid(z), σ'' = σ'(1 − σ')."""
    f = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    d1 = 0.5 + 0.5 * np.tanh(0.5 * z)
    return f, d1, d1 * (1.0 - d1)


def linear(z):
    """σ = z, σ' = 1, σ'' = 0 (a linear network; used as a test case)."""
    return z * 1.0, z * 0.0 + 1.0, z * 0.0


for _fn in (tanh, relu, sigmoid, softplus, linear):
    register(_fn.__name__, _fn)
