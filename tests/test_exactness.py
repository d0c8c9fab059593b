"""The analysed whole-run exponents on the study's own trajectories against a per-step QR.

docs/methods.md §3: "any storage, stride or algorithm choice must reproduce the exponents of a
float64 QR taken at every single step along the same stored trajectory, on real high- and
low-loss runs of every activation, within the conditioning of the quantity" — measured agreement
|ΔΛ_i| ≤ 0.1·(1 + |Λ_i|) for float64 stride-5 propagators, while float32 storage turns Λ_1 of
high-loss tanh runs spuriously positive.

For real networks of the default protocol (config.yaml) this test
1. integrates them with the compiled engine, θ recorded at every step, propagators stored in
   float64 (and, separately, float32);
2. recomputes J_n = I − η H(θ_n) at every step from the stored θ_n with the plain-NumPy reference
   (dynamics.loss_gradient_hessian) and runs a float64 Benettin QR at every step in NumPy
   (numpy.linalg.qr, sign-fixed, Q_0 = lyapunov.random_orthogonal(d, seed)), whole-run
   exponents Σ_n ln R_ii(n) / (T η);
3. asserts lyapunov.analyse on the float64 propagators agrees with it within the bound;
4. asserts the same analysis on float32 propagators misses the bound for high-loss tanh runs.

Conditioning (benchmarks/conditioning.py, docs/conditioning.md): high-loss tanh runs are
sensitive to last-bit changes of J (per-step |eig J| from ≈ 6e-4 to ≈ 2.8); for some of them a
1e-14 relative perturbation of every J moves Λ_1 by 0.5–0.9, so the 0.1·(1 + |Λ|) bound is at
the edge of what float64 determines there. The high-loss tanh runs chosen below are among the
better-conditioned ones (1e-15 perturbations move their frame-invariant Λ_1 by ≤ 0.1·(1 + |Λ|),
measured in the fixture), while float32 still fails by a factor > 5 beyond that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from weightdyn import activations, dynamics, engine, lyapunov
from weightdyn.initialization import initial_parameters
from weightdyn.network import Architecture
from weightdyn.task import teacher_task

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"

# Networks (activation, initialisation, index, class). Found by a scan of indices 0 … 199 of
# every (activation, initialisation) with the default config (engine.integrate, float64) and
# the per-step QR below: c_f < 4 is "low", c_f > 100 "high". Choices:
# * tanh uniform 0: low (c_f ≈ 1e-10);
# * tanh normal 1 and 8: high (c_f ≈ 105), well-conditioned high-loss runs whose float32
#   analysis gives Λ_1 ≈ +3.4 / +3.2 instead of ≈ −0.02 / −1.10; normal 1 is the run with
#   per-step |eig J| from 6.4e-4 to 2.76 quoted in docs/methods.md §3;
# * relu uniform 3: low (c_f ≈ 3e-28; converges onto the teacher, whose hidden unit 2 has z = 0
#   (to round-off) on one grid sample: the ReLU kink makes J jump with the last bit of z);
# * relu uniform 0: high (c_f ≈ 946) with a dead hidden unit (identity block in J).
NETWORKS = {
    "tanh": [("uniform", 0, "low"), ("normal", 1, "high"), ("normal", 8, "high")],
    "relu": [("uniform", 3, "low"), ("uniform", 0, "high")],
}


def bound(lam):
    """The documented agreement: |ΔΛ_i| ≤ 0.1·(1 + |Λ_i|)."""
    return 0.1 * (1.0 + np.abs(lam))


@pytest.fixture(scope="module")
def cfg():
    with open(CONFIG) as fh:
        return yaml.safe_load(fh)


def per_step_benettin(J, eta, frame):
    """Whole-run exponents of a float64 sign-fixed QR at every step: J (S, T, d, d)."""
    S, T, d, _ = J.shape
    Q = np.broadcast_to(frame, (S, d, d)).copy()
    logs = np.zeros((S, d))
    for n in range(T):
        q, r = np.linalg.qr(J[:, n] @ Q)
        diag = np.diagonal(r, axis1=1, axis2=2)
        Q = q * np.where(diag < 0, -1.0, 1.0)[:, None, :]
        logs += np.log(np.abs(diag))
    return logs / (T * eta)


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def runs(request, cfg):
    """Everything for the chosen networks of one activation."""
    name = request.param
    arch = Architecture.from_config(cfg)
    act = activations.get(name)
    task = teacher_task(arch, name, cfg["task"])
    train, seed = cfg["training"], cfg["seed"]
    eta, steps = train["learning_rate"], train["steps"]
    s = cfg["recording"]["jacobian_stride"]
    chosen = NETWORKS[name]
    theta0 = np.concatenate([initial_parameters(arch, seed, name, init, [index])
                             for init, index, _ in chosen])
    out = {dtype: engine.integrate(theta0, arch, act, task, eta, steps, 1, s,
                                   train["divergence_bound"], dtype)
           for dtype in ("float64", "float32")}
    theta = out["float64"].theta
    assert theta.shape[1] == steps + 1  # θ at every step
    np.testing.assert_array_equal(out["float32"].theta, theta)  # same trajectory

    d = arch.dim
    J = np.empty((len(chosen), steps, d, d))
    for n in range(steps):  # independent J_n from the stored θ_n (plain NumPy)
        J[:, n] = np.eye(d) - eta * dynamics.loss_gradient_hessian(theta[:, n], arch, act, task)[2]
    reference = per_step_benettin(J, eta, lyapunov.random_orthogonal(d, seed))
    analysed = {dtype: lyapunov.analyse(o.propagator, s * eta, seed=seed).lyapunov_exponent
                for dtype, o in out.items()}
    # the study's whole-run exponents: frame-invariant (1/T) ln σ_i(M(T, 0)), from the stored
    # stride products and, as the reference, from the per-step J (stride 1)
    reference_sv = lyapunov.singular_value_ftle(J, eta, [steps])[:, 0]
    # its conditioning: the largest change under 1e-15 relative perturbations of every J_n
    rng = np.random.default_rng(0)
    spread_sv = np.max([np.abs(lyapunov.singular_value_ftle(
        J * (1.0 + 1e-15 * rng.standard_normal(J.shape)), eta, [steps])[:, 0] - reference_sv)
        for _ in range(3)], axis=0)
    analysed_sv = {dtype: lyapunov.singular_value_ftle(o.propagator.astype(np.float64), s * eta,
                                                       [steps // s])[:, 0]
                   for dtype, o in out.items()}
    return {"name": name, "chosen": chosen, "cfg": cfg, "out": out, "J": J,
            "reference": reference, "analysed": analysed, "reference_sv": reference_sv,
            "spread_sv": spread_sv, "analysed_sv": analysed_sv}


def test_default_config_stores_float64_propagators(cfg):
    assert cfg["recording"]["propagator_dtype"] == "float64", (
        "docs/methods.md §3/§4: propagators must be stored in float64 (float32 falsifies the "
        "exponents of high-loss tanh runs, see test_float32_storage_misses_the_bound)")


def test_chosen_networks_are_in_their_class(runs):
    cf = runs["out"]["float64"].final_loss
    div = runs["out"]["float64"].divergence_step
    classes = runs["cfg"]["classes"]
    for j, (init, index, cls) in enumerate(runs["chosen"]):
        label = f"{runs['name']}/{init}/{index}"
        assert div[j] == -1, f"{label} diverged"
        if cls == "low":
            assert cf[j] < classes["low"], f"{label}: c_f = {cf[j]:.3g} is not low"
        else:
            assert cf[j] > classes["high"], f"{label}: c_f = {cf[j]:.3g} is not high"


def test_reference_is_a_genuine_per_step_computation(runs):
    """The per-step J agree with the engine's (up to round-off, except at ReLU kinks) and the
    per-step QR obeys Σ_i Λ_i = (1/Tη) Σ_n ln|det J_n|."""
    cfg = runs["cfg"]
    eta, steps = cfg["training"]["learning_rate"], cfg["training"]["steps"]
    logdet = np.linalg.slogdet(runs["J"])[1].sum(axis=1) / (steps * eta)
    np.testing.assert_allclose(runs["reference"].sum(axis=1), logdet, rtol=1e-10)
    # the engine's stride-5 product of the per-step J's equals its stored propagator
    J = runs["J"][:, :5]
    M0 = J[:, 4] @ J[:, 3] @ J[:, 2] @ J[:, 1] @ J[:, 0]
    np.testing.assert_allclose(runs["out"]["float64"].propagator[:, 0], M0, atol=1e-12)


def test_float64_stride_propagators_match_per_step_qr(runs):
    ref, lam = runs["reference"], runs["analysed"]["float64"]
    for j, (init, index, cls) in enumerate(runs["chosen"]):
        err = np.abs(lam[j] - ref[j])
        assert np.all(err <= bound(ref[j])), (
            f"{runs['name']}/{init}/{index} ({cls}): |ΔΛ| = {np.round(err, 4)} exceeds "
            f"0.1(1+|Λ|) = {np.round(bound(ref[j]), 3)}; per-step Λ = {np.round(ref[j], 3)}")


def test_float32_storage_misses_the_bound(runs):
    """float32 storage must be caught: Λ_1 of the high-loss tanh runs becomes spuriously
    positive (≈ +3), far outside the bound; elsewhere it is reported but not required to fail."""
    if runs["name"] != "tanh":
        # ReLU runs are well conditioned: float32 happens to stay inside the bound there
        ref, lam = runs["reference"], runs["analysed"]["float32"]
        assert np.all(np.isfinite(lam))
        return
    ref, lam = runs["reference"], runs["analysed"]["float32"]
    for j, (init, index, cls) in enumerate(runs["chosen"]):
        if cls != "high":
            continue
        err = np.abs(lam[j] - ref[j])
        assert np.any(err > bound(ref[j])), f"tanh/{init}/{index}: float32 was not caught"
        assert lam[j, 0] - ref[j, 0] > 2.0, (
            f"tanh/{init}/{index}: float32 Λ_1 = {lam[j, 0]:.3f}, per-step {ref[j, 0]:.3f}")
        assert ref[j, 0] < 0.0 < lam[j, 0]  # float32 flips the sign of Λ_1


def test_high_loss_tanh_tangent_maps_span_orders_of_magnitude(runs):
    """The source of the poor conditioning (docs/methods.md §3): along high-loss tanh runs the
    per-step |eig J| range over more than three orders of magnitude, with excursions past
    η λ_max(H) = 2 (|eig J| > 1 from a negative eigenvalue)."""
    if runs["name"] != "tanh":
        return
    for j, (init, index, cls) in enumerate(runs["chosen"]):
        if cls != "high":
            continue
        eig = np.linalg.eigvalsh(runs["J"][j])  # (T, d)
        assert np.abs(eig).min() < 1e-2 and np.abs(eig).max() > 2.0, (init, index)
        assert eig.min() < -1.0  # an eigenvalue of η H above 2: locally expanding by reflection


def test_frame_invariant_exponents_from_stored_products_match_the_per_step_ones(runs):
    """lyapunov_exponent of the lyapunov chunks is (1/T) ln σ_i(M(T, 0)): from the float64
    stride-5 products it agrees with the same quantity from the per-step J within
    0.02·(1 + |Λ|) plus twice the quantity's conditioning δ (the largest change under 1e-15
    relative perturbations of every J_n: the engine's and NumPy's J differ by ~3e-15). On
    these runs δ reaches 0.1·(1 + |Λ_1|) for a high-loss tanh run and the measured error
    0.03·(1 + |Λ_1|). float32 storage moves Λ_1 of the high-loss tanh runs by more than
    (1 + |Λ_1|), far beyond δ."""
    ref, spread = runs["reference_sv"], runs["spread_sv"]
    for dtype, lam in runs["analysed_sv"].items():
        err = np.abs(lam - ref) / (1.0 + np.abs(ref))
        allowed = 0.02 + 2.0 * spread / (1.0 + np.abs(ref))
        for j, (init, index, cls) in enumerate(runs["chosen"]):
            label = f"{runs['name']}/{init}/{index} ({cls}, {dtype})"
            if dtype == "float64":
                assert np.all(err[j] <= allowed[j]), (
                    f"{label}: relative error {np.round(err[j], 4)}, allowed "
                    f"{np.round(allowed[j], 4)}")
            elif runs["name"] == "tanh" and cls == "high":
                assert err[j, 0] > 1.0 and err[j, 0] > 5.0 * allowed[j, 0], (
                    f"{label}: float32 was not caught ({err[j, 0]:.3f})")
