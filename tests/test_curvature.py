"""The extreme Hessian eigenvalues (weightdyn.curvature) against LAPACK's eigvalsh."""

import numpy as np
import pytest

from weightdyn.curvature import extremes, extremes_reference


def hard_matrices(d, rng):
    """Symmetric test matrices: random, zero, diagonal, rank one, identity, graded over 12
    decades with mixed signs, a zero row and column (a dead ReLU unit), repeated eigenvalues."""
    out = [rng.normal(size=(d, d)) for _ in range(50)]
    out = [a + a.T for a in out]
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    u = rng.normal(size=d)
    dead = out[0].copy()
    dead[0, :] = dead[:, 0] = 0.0
    out += [np.zeros((d, d)), np.diag(rng.normal(size=d)), 1e3 * np.outer(u, u), 5 * np.eye(d),
            q @ np.diag(np.logspace(-8, 4, d) * rng.choice([-1, 1], d)) @ q.T, dead,
            q @ np.diag(np.repeat([-2.0, 3.0], (d + 1) // 2)[:d]) @ q.T]
    return np.array(out)


@pytest.mark.parametrize("d", [1, 2, 3, 9, 13, 25])
def test_extremes_match_eigvalsh_to_round_off(d):
    H = hard_matrices(d, np.random.default_rng(d))
    lo, hi = extremes(H)
    ref_lo, ref_hi = extremes_reference(H)
    scale = np.linalg.norm(H, axis=(1, 2)) + 1e-300
    assert np.all(np.abs(lo - ref_lo) <= 4e-15 * d * scale)
    assert np.all(np.abs(hi - ref_hi) <= 4e-15 * d * scale)
    assert np.all(lo <= hi)


def test_extremes_keep_the_batch_shape_and_flag_non_finite_matrices():
    H = hard_matrices(4, np.random.default_rng(0))[:6].reshape(2, 3, 4, 4)
    H[1, 2, 0, 0] = np.nan
    lo, hi = extremes(H)
    assert lo.shape == hi.shape == (2, 3)
    assert np.isnan(lo[1, 2]) and np.isnan(hi[1, 2])
    ref_lo, ref_hi = extremes_reference(H[0])
    np.testing.assert_allclose(lo[0], ref_lo, atol=1e-13)
    np.testing.assert_allclose(hi[0], ref_hi, atol=1e-13)
