"""The compiled gradient-descent engine against the NumPy reference and exact identities."""

import functools

import numpy as np
import pytest

from weightdyn import activations, chunkio, curvature, dynamics, engine, simulate
from weightdyn.initialization import initial_parameters
from weightdyn.network import Architecture
from weightdyn.task import Task, teacher_task

ETA = 1e-3
BOUND = 1e8


def default_problem(cfg, act_name, init="normal", networks=20):
    arch = Architecture.from_config(cfg)
    task = teacher_task(arch, act_name, cfg["task"])
    theta0 = initial_parameters(arch, cfg["seed"], act_name, init, range(networks))
    return arch, activations.get(act_name), task, theta0


def random_problem(shape, act_name, networks=8, seed=0):
    rng = np.random.default_rng(seed)
    arch = Architecture(*shape)
    task = Task(rng.uniform(-1, 1, (30, arch.inputs)), rng.normal(size=(30, arch.outputs)))
    return arch, activations.get(act_name), task, rng.normal(scale=0.7, size=(networks, arch.dim))


PROBLEMS = [("default", "tanh"), ("default", "relu"), ((3, 4, 2), "sigmoid"),
            ((1, 5, 1), "softplus")]


def make(problem, cfg):
    shape, act_name = problem
    return default_problem(cfg, act_name) if shape == "default" else random_problem(shape, act_name)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_each_compiled_step_matches_reference_map(problem, default_config):
    """θ_{n+1} = F(θ_n), C(θ_n) and M_n = J(θ_n) (stride 1), checked from every stored state."""
    arch, act, task, theta0 = make(problem, default_config)
    out = engine.integrate(theta0, arch, act, task, ETA, 60, 1, 1, BOUND, "float64")
    theta = out.theta.reshape(-1, arch.dim)[~np.isnan(out.loss.ravel())]
    assert theta.shape[0] == out.theta.shape[0] * 61          # nothing diverged here
    states = out.theta[:, :-1].reshape(-1, arch.dim)
    loss, grad, _ = dynamics.loss_gradient_hessian(states, arch, act, task)
    np.testing.assert_allclose(out.theta[:, 1:].reshape(-1, arch.dim), states - ETA * grad,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out.loss[:, :-1].ravel(), loss, rtol=1e-11)
    np.testing.assert_array_equal(out.step_loss, out.loss)      # record_stride 1: every step
    np.testing.assert_allclose(out.gradient_norm[:, :-1].ravel(), np.linalg.norm(grad, axis=1),
                               rtol=1e-11)
    assert np.isnan(out.gradient_norm[:, -1]).all()            # no update after the last step
    J = dynamics.tangent_operator(states, arch, act, task, ETA)
    np.testing.assert_allclose(out.propagator.reshape(-1, arch.dim, arch.dim), J,
                               rtol=1e-11, atol=1e-14)
    # curvature at every stored state, the last included, against LAPACK on the reference H
    hess = dynamics.loss_gradient_hessian(out.theta.reshape(-1, arch.dim), arch, act, task)[2]
    lo, hi = curvature.extremes_reference(hess)
    scale = np.linalg.norm(hess, axis=(1, 2))
    assert np.all(np.abs(out.hessian_min.ravel() - lo) <= 1e-12 * scale)
    assert np.all(np.abs(out.hessian_max.ravel() - hi) <= 1e-12 * scale)


@pytest.mark.parametrize("problem", PROBLEMS[:2], ids=lambda p: p[1])
def test_stored_propagator_is_product_of_single_step_maps(problem, default_config):
    arch, act, task, theta0 = make(problem, default_config)
    s = 5
    out = engine.integrate(theta0, arch, act, task, ETA, 40, 1, s, BOUND, "float64")
    J = dynamics.tangent_operator(out.theta[:, :-1].reshape(-1, arch.dim), arch, act, task, ETA)
    J = J.reshape(theta0.shape[0], 40, arch.dim, arch.dim)
    for k in range(40 // s):
        M = np.broadcast_to(np.eye(arch.dim), J[:, 0].shape)
        for n in range(k * s, (k + 1) * s):
            M = J[:, n] @ M                                   # M_k = J_{ks+s−1} ⋯ J_{ks}
        np.testing.assert_allclose(out.propagator[:, k], M, rtol=1e-11, atol=1e-13)
    single = engine.integrate(theta0, arch, act, task, ETA, 40, 1, s, BOUND, "float32")
    np.testing.assert_array_equal(single.propagator, out.propagator.astype(np.float32))


@pytest.mark.parametrize("act_name", ["tanh", "relu"])
def test_compiled_run_matches_reference_run(act_name, default_config):
    """A short whole run (before chaos can amplify round-off) agrees with the NumPy engine."""
    arch, act, task, theta0 = default_problem(default_config, act_name, networks=30)
    a = engine.integrate(theta0, arch, act, task, ETA, 20, 5, 5, BOUND)
    b = engine.integrate_reference(theta0, arch, act, task, ETA, 20, 5, 5, BOUND)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a.final_loss, b.final_loss, rtol=1e-11)
    np.testing.assert_allclose(a.propagator, b.propagator, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a.step_loss, b.step_loss, rtol=1e-11)
    np.testing.assert_allclose(a.gradient_norm, b.gradient_norm, rtol=1e-10, equal_nan=True)
    scale = np.abs(b.hessian_max) + np.abs(b.hessian_min)
    assert np.all(np.abs(a.hessian_min - b.hessian_min) <= 1e-11 * scale)
    assert np.all(np.abs(a.hessian_max - b.hessian_max) <= 1e-11 * scale)


def test_record_steps_include_first_and_last():
    np.testing.assert_array_equal(engine.record_steps(25, 10), [0, 10, 20, 25])
    np.testing.assert_array_equal(engine.record_steps(20, 10), [0, 10, 20])


def test_jacobian_stride_must_divide_steps(default_config):
    arch, act, task, theta0 = default_problem(default_config, "tanh", networks=1)
    with pytest.raises(ValueError, match="jacobian_stride=7 must divide training.steps=20"):
        engine.integrate(theta0, arch, act, task, ETA, 20, 5, 7, BOUND)


def test_chunking_does_not_change_any_network(config):
    config["training"]["steps"] = 300
    act, init = "tanh", "normal"
    whole = simulate.simulate_chunk(config, act, init, 0, 100)
    parts = [simulate.simulate_chunk(config, act, init, a, min(a + 7, 100))
             for a in range(0, 100, 7)]
    import xarray as xr
    joined = xr.concat(parts, dim="network")
    for name in chunkio.SIMULATION_VARIABLES:
        np.testing.assert_array_equal(joined[name].values, whole[name].values, err_msg=name)
    np.testing.assert_array_equal(joined.network.values, np.arange(100))


@pytest.mark.parametrize("act_name", ["tanh", "relu"])
def test_lane_width_and_lane_position_do_not_change_any_network(act_name, default_config):
    """Lanes of 8 (scalar code: LLVM leaves such short loops unvectorised) and of the default
    width (vector code), and each network alone in a lane group of padding: same bits."""
    arch, act, task, theta0 = default_problem(default_config, act_name, networks=70)
    run = functools.partial(engine.integrate, arch=arch, act=act, task=task, learning_rate=ETA,
                            steps=60, record_stride=10, jacobian_stride=5, bound=BOUND)
    wide, narrow = run(theta0), run(theta0, lanes=8)
    alone = [run(theta0[s:s + 1]) for s in (0, 63, 64, 69)]
    for name in ("theta", "loss", "step_loss", "gradient_norm", "propagator", "final_loss",
                 "divergence_step", "hessian_min", "hessian_max"):
        np.testing.assert_array_equal(getattr(narrow, name), getattr(wide, name), err_msg=name)
        for s, one in zip((0, 63, 64, 69), alone):
            np.testing.assert_array_equal(getattr(one, name)[0], getattr(wide, name)[s],
                                          err_msg=f"{name} of network {s}")


def test_initial_parameters_depend_only_on_the_network_key(default_config):
    arch = Architecture.from_config(default_config)
    seed = default_config["seed"]
    block = initial_parameters(arch, seed, "relu", "uniform", range(100))
    np.testing.assert_array_equal(initial_parameters(arch, seed, "relu", "uniform", [57]), block[57:58])
    assert not np.array_equal(initial_parameters(arch, seed, "tanh", "uniform", [57]), block[57:58])
    assert not np.array_equal(initial_parameters(arch, seed + 1, "relu", "uniform", [57]), block[57:58])
    assert np.abs(block).max() <= 1.0
    for scheme in ("normal", "xavier", "he"):
        assert np.isfinite(initial_parameters(arch, seed, "tanh", scheme, range(5))).all()


@pytest.mark.parametrize("integrate", [engine.integrate, engine.integrate_reference])
def test_divergent_networks_are_flagged_and_isolated(integrate, default_config):
    """At η = 0.01 some tanh networks diverge; the others are bit-identical to a run without them."""
    arch, act, task, theta0 = default_problem(default_config, "tanh", networks=12)
    steps, s, eta = 200, 5, 0.01
    out = integrate(theta0, arch, act, task, eta, steps, 10, s, BOUND)
    bad = np.flatnonzero(out.divergence_step >= 0)
    good = np.flatnonzero(out.divergence_step < 0)
    assert bad.size and good.size
    rec = engine.record_steps(steps, 10)
    for net in bad:
        n = out.divergence_step[net]
        assert 0 < n < steps and np.isinf(out.final_loss[net])
        assert np.isfinite(out.loss[net, rec < n]).all() and np.isnan(out.loss[net, rec >= n]).all()
        for curve in (out.hessian_min[net], out.hessian_max[net]):
            assert np.isfinite(curve[rec < n]).all() and np.isnan(curve[rec >= n]).all()
        valid = (np.arange(steps // s) + 1) * s <= n
        assert np.isfinite(out.propagator[net, valid]).all()
        assert np.isnan(out.propagator[net, ~valid]).all()
    alone = integrate(theta0[good], arch, act, task, eta, steps, 10, s, BOUND)
    assert np.isnan(out.step_loss[net, n:]).all() and np.isfinite(out.step_loss[net, :n]).all()
    for name in ("theta", "loss", "step_loss", "gradient_norm", "propagator", "final_loss",
                 "divergence_step", "hessian_min", "hessian_max"):
        np.testing.assert_array_equal(getattr(out, name)[good], getattr(alone, name), err_msg=name)


def test_large_learning_rate_diverges_every_network(default_config):
    arch, act, task, theta0 = default_problem(default_config, "relu", networks=4)
    out = engine.integrate(theta0, arch, act, task, 0.5, 100, 10, 5, BOUND)
    assert (out.divergence_step > 0).all() and np.isinf(out.final_loss).all()


def test_chunk_file_round_trip(tmp_path, config):
    config["training"]["steps"] = 50
    ds = simulate.simulate_chunk(config, "relu", "uniform", 10, 14)
    path = tmp_path / "chunk000.nc"
    chunkio.write_simulation_chunk(ds, path)
    back = chunkio.read_simulation_chunk(path)
    assert back.propagator.dtype == np.float64 and back.theta.dtype == np.float64
    assert back.propagator.encoding.get("zlib") is not True      # temporary: not compressed
    np.testing.assert_array_equal(back.propagator.values, ds.propagator.values)
    np.testing.assert_array_equal(back.step_loss.values[:, ::10], back.loss.values)
    np.testing.assert_array_equal(back.theta.values, ds.theta.values)
    np.testing.assert_array_equal(back.network.values, [10, 11, 12, 13])
    np.testing.assert_allclose(back.t.values, back.step.values * 1e-3)
    assert back.attrs["activation"] == "relu" and back.attrs["jacobian_stride"] == 5
    assert list(back.param.values[[0, 4, 8]]) == ["W1[0,0]", "b1[0]", "b2"]
    for var in back.data_vars.values():
        assert "long_name" in var.attrs and "units" in var.attrs
    assert not list(tmp_path.glob(".*tmp"))                    # atomic write left nothing behind


def test_default_protocol_reaches_both_classes(config):
    """400 networks per combination: relu reaches both classes, tanh/normal has runs above 100."""
    fractions = {}
    for act in ("tanh", "relu"):
        for init in ("uniform", "normal"):
            c_f = simulate.simulate_chunk(config, act, init, 0, 400).final_loss.values
            fractions[act, init] = (np.mean(c_f < 4.0), np.mean(~(c_f <= 100.0)))
    print("class fractions (low, high):", fractions)
    for init in ("uniform", "normal"):
        low, high = fractions["relu", init]
        assert low >= 0.10 and high >= 0.10
    assert fractions["tanh", "normal"][1] > 0.0
