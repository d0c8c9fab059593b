"""Initial parameter vectors, one independent random stream per network.

Network k of (activation, initialisation) draws from
``SeedSequence([seed, crc32(activation), crc32(initialisation), k])``, so its θ_0 depends only on
those four values: never on chunk size, job order or the number of cores.

Schemes (all entries of θ, biases included, unless stated):
* ``uniform``: θ_i ~ U(−1, 1);
* ``normal``:  θ_i ~ N(0, 1);
* ``xavier``:  weights ~ N(0, 2/(fan_in + fan_out)), biases 0;
* ``he``:      weights ~ N(0, 2/fan_in), biases 0.
"""

from __future__ import annotations

import zlib

import numpy as np

from .network import Architecture

SCHEMES = ("uniform", "normal", "xavier", "he")


def network_rng(seed: int, activation: str, initialization: str, index: int) -> np.random.Generator:
    """The random generator of one network (see module docstring)."""
    key = [seed, zlib.crc32(activation.encode()), zlib.crc32(initialization.encode()), index]
    return np.random.default_rng(np.random.SeedSequence(key))


def _draw(rng: np.random.Generator, arch: Architecture, scheme: str) -> np.ndarray:
    if scheme == "uniform":
        return rng.uniform(-1.0, 1.0, arch.dim)
    if scheme == "normal":
        return rng.standard_normal(arch.dim)
    n, h, o = arch.inputs, arch.hidden, arch.outputs
    var1, var2 = (2.0 / (n + h), 2.0 / (h + o)) if scheme == "xavier" else (2.0 / n, 2.0 / h)
    W1 = rng.standard_normal((h, n)) * np.sqrt(var1)
    W2 = rng.standard_normal((o, h)) * np.sqrt(var2)
    return arch.pack(W1, np.zeros(arch.hidden), W2, np.zeros(arch.outputs))


def initial_parameters(
    arch: Architecture, seed: int, activation: str, initialization: str, indices
) -> np.ndarray:
    """θ_0 of the networks with the given global indices, shape (len(indices), d)."""
    if initialization not in SCHEMES:
        raise ValueError(f"unknown initialization {initialization!r}; known: {list(SCHEMES)}")
    indices = np.asarray(indices, dtype=np.int64)
    theta = np.empty((indices.size, arch.dim))
    for row, index in enumerate(indices):
        theta[row] = _draw(network_rng(seed, activation, initialization, int(index)), arch, initialization)
    return theta
