"""Local stability analysis of the training dynamics from its tangent propagators.

From stacks of propagators M[s, k] (S networks, K strides) the package computes Benettin's
local, cumulative and windowed Lyapunov exponents, the frame-invariant finite-time exponents
(1/t) ln σ_i(M(t, 0)), Ginelli's covariant Lyapunov vectors (CLVs) with their angles, growth
rates and tangencies, and fixed-lag CLV estimates that use no data after their availability
time. Submodules:

* :mod:`.analysis`: the NumPy-facing API and the definitions (:func:`analyse`,
  :func:`singular_value_ftle`, :func:`ginelli_clvs`, …);
* :mod:`.dataset`: :func:`analyse_chunk`, the per-chunk lyapunov dataset of the workflow
  (docs/methods.md §6);
* :mod:`.lanes`: the compiled kernel of :func:`analyse`, many networks at a time (one per
  SIMD lane), bit-identical to the per-network numerics;
* :mod:`.kernels`: the per-network numerics (numba) and the constants ``TINY``, ``LOG_FLOOR``.
"""

from .analysis import (
    LyapunovAnalysis,
    analyse,
    cumulative_ftle,
    ginelli_clvs,
    leading_valid_strides,
    pair_labels,
    qr_cocycle,
    random_orthogonal,
    random_upper_triangular,
    singular_value_ftle,
    tangencies,
    windowed_ftle,
)
from .dataset import analyse_chunk
from .kernels import LOG_FLOOR, TINY

__all__ = [
    "LOG_FLOOR",
    "TINY",
    "LyapunovAnalysis",
    "analyse",
    "analyse_chunk",
    "cumulative_ftle",
    "ginelli_clvs",
    "leading_valid_strides",
    "pair_labels",
    "qr_cocycle",
    "random_orthogonal",
    "random_upper_triangular",
    "singular_value_ftle",
    "tangencies",
    "windowed_ftle",
]
