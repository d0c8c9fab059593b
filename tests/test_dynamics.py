"""Analytic gradient, Hessian and tangent operator against independent truths."""

import numpy as np
import pytest

from weightdyn import activations, dynamics
from weightdyn.network import Architecture
from weightdyn.task import Task, grid_inputs, teacher_task

SHAPES = [(2, 2, 1), (1, 5, 1), (3, 4, 2)]
ETA = 1e-3


def random_problem(shape, act_name, seed=0, networks=3):
    """Random inputs, targets and parameters; relu parameters are kept away from kinks."""
    rng = np.random.default_rng(seed)
    arch = Architecture(*shape)
    x = rng.uniform(-1, 1, (17, arch.inputs))
    task = Task(x, rng.normal(size=(17, arch.outputs)))
    while True:
        theta = rng.normal(size=(networks, arch.dim))
        W1, b1, _, _ = arch.unpack(theta)
        z = np.einsum("shn,pn->sph", W1, x) + b1[:, None, :]
        if act_name != "relu" or np.abs(z).min() > 1e-3:
            return arch, activations.get(act_name), task, theta


def central_difference(fn, theta, eps=1e-6):
    """∂fn/∂θ by central differences; fn maps (S, d) to (S, ...)."""
    cols = []
    for p in range(theta.shape[1]):
        step = np.zeros(theta.shape[1])
        step[p] = eps
        cols.append((fn(theta + step) - fn(theta - step)) / (2 * eps))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act_name", activations.names())
def test_tangent_operator_matches_finite_differences(shape, act_name):
    arch, act, task, theta = random_problem(shape, act_name)
    J = dynamics.tangent_operator(theta, arch, act, task, ETA)
    J_fd = central_difference(lambda th: dynamics.update(th, arch, act, task, ETA), theta)
    eye = np.eye(arch.dim)
    # compare the non-trivial part −ηH, not I − ηH (which is ≈ I whatever H is)
    rel = np.abs((J - eye) - (J_fd - eye)).max() / np.abs(J - eye).max()
    assert rel <= 1e-6


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act_name", activations.names())
def test_gradient_matches_finite_differences_of_cost(shape, act_name):
    arch, act, task, theta = random_problem(shape, act_name, seed=1)
    loss, grad, _ = dynamics.loss_gradient_hessian(theta, arch, act, task)
    grad_fd = central_difference(
        lambda th: dynamics.loss_gradient_hessian(th, arch, act, task)[0], theta)
    assert np.abs(grad - grad_fd).max() <= 1e-6 * np.abs(grad).max()
    y = arch.forward(theta, task.inputs, act)
    np.testing.assert_allclose(loss, 0.5 * ((y - task.targets) ** 2).sum(axis=(1, 2)), rtol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act_name", ["tanh", "relu", "softplus"])
def test_hessian_is_symmetric_to_round_off(shape, act_name):
    arch, act, task, theta = random_problem(shape, act_name, seed=2)
    H = dynamics.loss_gradient_hessian(theta, arch, act, task)[2]
    assert np.abs(H - H.transpose(0, 2, 1)).max() <= 1e-14 * np.abs(H).max()


@pytest.mark.parametrize("shape", SHAPES)
def test_linear_network_with_zero_residual_has_gauss_newton_hessian(shape):
    """σ = identity and t = y(θ): H = J_yᵀ J_y with J_y = ∂y/∂θ taken by finite differences."""
    arch, act, task, theta = random_problem(shape, "linear", seed=3, networks=1)
    task = Task(task.inputs, arch.forward(theta, task.inputs, act)[0])
    H = dynamics.loss_gradient_hessian(theta, arch, act, task)[2][0]
    Jy = central_difference(lambda th: arch.forward(th, task.inputs, act), theta)[0]
    Jy = Jy.reshape(-1, arch.dim)          # (samples·outputs, d)
    np.testing.assert_allclose(H, Jy.T @ Jy, rtol=1e-7, atol=1e-9 * np.abs(H).max())


def test_relu_derivatives_at_zero_and_second_derivative():
    f, d1, d2 = activations.get("relu")(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(f, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(d1, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(d2, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("act_name", activations.names())
def test_activation_derivatives_match_finite_differences(act_name):
    act = activations.get(act_name)
    z = np.linspace(-4, 4, 41) + 0.013      # avoids relu's kink at 0
    f, d1, d2 = act(z)
    h = 1e-6
    np.testing.assert_allclose(d1, (act(z + h)[0] - act(z - h)[0]) / (2 * h), atol=1e-8)
    np.testing.assert_allclose(d2, (act(z + h)[1] - act(z - h)[1]) / (2 * h), atol=1e-8)
    for k, value in enumerate(act.compiled(0.3)):   # compiled scalar form = array form (to libm vs NumPy round-off)
        assert value == pytest.approx(act(np.array([0.3]))[k][0], rel=1e-14, abs=1e-300)


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*tanh"):
        activations.get("swish")


def test_registered_activation_is_usable_by_name():
    def cubic(z):
        return z ** 3, 3 * z ** 2, 6 * z

    act = activations.register("cubic_test", cubic)
    assert activations.get("cubic_test") is act
    assert act.compiled(2.0) == (8.0, 12.0, 12.0)


def test_parameter_layout_and_grid_order(default_config):
    arch = Architecture(2, 2, 1)
    assert arch.param_names() == ["W1[0,0]", "W1[0,1]", "W1[1,0]", "W1[1,1]",
                                  "b1[0]", "b1[1]", "w2[0]", "w2[1]", "b2"]
    x = grid_inputs(2, 10, -1.0, 1.0)
    assert x.shape == (100, 2)
    np.testing.assert_array_equal(x[:10, 0], -1.0)          # x1 is the outer loop
    np.testing.assert_allclose(x[:10, 1], np.linspace(-1, 1, 10))
    task = teacher_task(arch, "tanh", default_config["task"])
    teacher = default_config["task"]["teacher"]
    expected = (np.array(teacher["W2"][0])
                * np.tanh(x @ np.array(teacher["W1"]).T + teacher["b1"])).sum(1) + teacher["b2"][0]
    np.testing.assert_allclose(task.targets[:, 0], expected, rtol=1e-14)


def test_teacher_shape_mismatch_is_reported(default_config):
    with pytest.raises(ValueError, match="task.teacher.W1"):
        teacher_task(Architecture(3, 2, 1), "tanh", default_config["task"])


def test_vectorisable_tanh_is_accurate_to_a_few_ulp():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 3, 200_000), np.linspace(-25, 25, 200_001),
                        np.geomspace(1e-300, 1.0, 2000), -np.geomspace(1e-300, 1.0, 2000)])
    exact = np.tanh(z)
    ulp = np.abs(activations.tanh_expm1(z) - exact) / np.spacing(np.abs(exact))
    assert ulp.max() <= 4
    special = np.array([0.0, -0.0, 20.0, -21.0, 700.0, np.inf, -np.inf])
    np.testing.assert_array_equal(activations.tanh_expm1(special), np.tanh(special))
    assert np.signbit(activations.tanh_expm1(-0.0))
    assert np.isnan(activations.tanh_expm1(np.nan))
