"""One-hidden-layer network y = W2 σ(W1 x + b1) + b2 and its flat parameter vector θ.

θ = [W1 (row-major, hidden × inputs), b1, W2 (row-major, outputs × hidden), b2]; for the
default 2-2-1 network θ = [W1[0,0], W1[0,1], W1[1,0], W1[1,1], b1[0], b1[1], w2[0], w2[1], b2].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Architecture:
    """Layer sizes of a network with one hidden layer and a linear output layer."""

    inputs: int
    hidden: int
    outputs: int

    def __post_init__(self):
        for key in ("inputs", "hidden", "outputs"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"network.{key} must be a positive integer, got {value!r}")

    @classmethod
    def from_config(cls, cfg: dict) -> "Architecture":
        net = cfg["network"]
        return cls(net["inputs"], net["hidden"], net["outputs"])

    @property
    def offsets(self) -> tuple[int, int, int, int]:
        """Start of W1, b1, W2, b2 in θ."""
        n_w1 = self.hidden * self.inputs
        return 0, n_w1, n_w1 + self.hidden, n_w1 + self.hidden + self.outputs * self.hidden

    @property
    def dim(self) -> int:
        """Number of parameters d = h·n + h + o·h + o."""
        return self.offsets[3] + self.outputs

    def param_names(self) -> list[str]:
        """Labels of θ's entries, e.g. ``W1[0,1]``, ``b1[0]``, ``w2[1]``, ``b2``."""
        h, n, o = self.hidden, self.inputs, self.outputs
        names = [f"W1[{i},{j}]" for i in range(h) for j in range(n)]
        names += [f"b1[{i}]" for i in range(h)]
        if o == 1:
            names += [f"w2[{i}]" for i in range(h)] + ["b2"]
        else:
            names += [f"W2[{k},{i}]" for k in range(o) for i in range(h)]
            names += [f"b2[{k}]" for k in range(o)]
        return names

    def unpack(self, theta: np.ndarray):
        """Views (W1, b1, W2, b2) of θ with any leading batch axes."""
        a, b, c, d = self.offsets
        lead = theta.shape[:-1]
        return (
            theta[..., a:b].reshape(*lead, self.hidden, self.inputs),
            theta[..., b:c],
            theta[..., c:d].reshape(*lead, self.outputs, self.hidden),
            theta[..., d:],
        )

    def pack(self, W1, b1, W2, b2) -> np.ndarray:
        """Flat θ from the layer arrays (inverse of :meth:`unpack`)."""
        W1, b1, W2, b2 = (np.asarray(v, dtype=float) for v in (W1, b1, W2, b2))
        lead = W1.shape[:-2]
        theta = np.concatenate(
            [W1.reshape(*lead, -1), b1, W2.reshape(*lead, -1), b2.reshape(*lead, -1)], axis=-1
        )
        if theta.shape[-1] != self.dim:
            raise ValueError(f"parameters have {theta.shape[-1]} entries, expected {self.dim}")
        return theta

    def forward(self, theta: np.ndarray, x: np.ndarray, activation) -> np.ndarray:
        """Outputs y (..., samples, outputs) of networks θ (..., d) on inputs x (samples, n)."""
        W1, b1, W2, b2 = self.unpack(theta)
        z = np.einsum("...hn,sn->...sh", W1, x) + b1[..., None, :]
        h = activation(z)[0]
        return np.einsum("...oh,...sh->...so", W2, h) + b2[..., None, :]
