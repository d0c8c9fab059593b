"""One simulation chunk: networks [start, stop) of one (activation, initialization).

Builds the chunk dataset of the data contract (docs/methods.md §6): θ, loss and the extreme
Hessian eigenvalues λ_min(H), λ_max(H) at the recorded steps, tangent propagators M_k over every
``jacobian_stride`` steps, final loss and divergence.
Reading and writing the file is :mod:`weightdyn.chunkio`'s
(:func:`~weightdyn.chunkio.write_simulation_chunk`, :func:`~weightdyn.chunkio.read_simulation_chunk`).

Units follow CF: flow time t = n·η is dimensionless ("1"), and so are step numbers (their
long_name says "step"); 0/1 and sentinel integers declare ``flag_values``/``flag_meanings``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import activations, chunkio, engine
from .initialization import initial_parameters
from .network import Architecture
from .task import teacher_task



def simulate_chunk(cfg: dict, activation: str, initialization: str, start: int, stop: int,
                   engine_name: str = "compiled") -> xr.Dataset:
    """Train networks ``start … stop−1`` and return the chunk dataset."""
    arch = Architecture.from_config(cfg)
    act = activations.get(activation)
    task = teacher_task(arch, activation, cfg["task"])
    train, rec = cfg["training"], cfg["recording"]
    index = np.arange(start, stop)
    theta0 = initial_parameters(arch, cfg["seed"], activation, initialization, index)
    integrate = {"compiled": engine.integrate, "reference": engine.integrate_reference}[engine_name]
    out = integrate(theta0, arch, act, task, train["learning_rate"], train["steps"],
                    rec["record_stride"], rec["jacobian_stride"], train["divergence_bound"],
                    rec["propagator_dtype"])
    return chunk_dataset(cfg, activation, initialization, index, arch, out)


def chunk_dataset(cfg, activation, initialization, index, arch: Architecture,
                  out: engine.Trajectories) -> xr.Dataset:
    """Wrap integration output in the chunk dataset with coordinates and CF attributes."""
    train, rec = cfg["training"], cfg["recording"]
    eta, stride = train["learning_rate"], rec["jacobian_stride"]
    steps = engine.record_steps(train["steps"], rec["record_stride"])
    names = arch.param_names()
    ds = xr.Dataset(
        {
            "theta": (("network", "step", "param"), out.theta,
                      {"long_name": "parameter vector theta", "units": "1"}),
            "loss": (("network", "step"), out.loss,
                     {"long_name": "training cost C = 1/2 sum of squared residuals", "units": "1"}),
            "hessian_min": (("network", "step"), out.hessian_min,
                            {"long_name": "smallest eigenvalue lambda_min of the Hessian H of C "
                                          "(NaN after divergence)", "units": "1"}),
            "hessian_max": (("network", "step"), out.hessian_max,
                            {"long_name": "largest eigenvalue lambda_max of the Hessian H of C "
                                          "(NaN after divergence); eta * lambda_max < 2 is "
                                          "gradient descent's linear stability bound",
                             "units": "1"}),
            "final_loss": ("network", out.final_loss,
                           {"long_name": "final training cost c_f (inf if diverged)", "units": "1"}),
            "diverged": ("network", (out.divergence_step >= 0).astype(np.int8),
                         {"long_name": "1 if the network diverged", "units": "1",
                          "flag_values": np.array([0, 1], dtype=np.int8),
                          "flag_meanings": "not_diverged diverged"}),
            "divergence_step": ("network", out.divergence_step,
                                {"long_name": "first gradient-descent step failing the "
                                              "divergence check (step number), -1 if none",
                                 "units": "1",
                                 "flag_values": np.array([-1], dtype=out.divergence_step.dtype),
                                 "flag_meanings": "did_not_diverge",
                                 "comment": "-1: the network did not diverge; otherwise the "
                                            "step n (flow time n * learning_rate) at which its "
                                            "loss or a parameter first exceeded the divergence "
                                            "bound"}),
            "step_loss": (("network", "iteration"), out.step_loss,
                          {"long_name": "training cost C at every gradient-descent step",
                           "units": "1"}),
            "gradient_norm": (("network", "iteration"), out.gradient_norm,
                              {"long_name": "Euclidean norm of the gradient of C at every step "
                                            "(NaN at the last step and after divergence)",
                               "units": "1"}),
            "propagator": (("network", "stride", "param_i", "param_j"), out.propagator,
                           {"long_name": "tangent propagator M_k = J_(k+1)s-1 ... J_ks",
                            "units": "1"}),
        },
        coords={
            "network": ("network", np.asarray(index, dtype=np.int64),
                        {"long_name": "network index within the combination", "units": "1"}),
            "step": ("step", steps, {"long_name": "gradient-descent step number (recorded steps)",
                                     "units": "1"}),
            "iteration": ("iteration", np.arange(out.step_loss.shape[1]),
                          {"long_name": "gradient-descent step number n = 0 ... T (every step)",
                           "units": "1"}),
            "t": ("step", steps * eta, {"long_name": "flow time t = n * eta", "units": "1"}),
            "param": ("param", names, {"long_name": "parameter"}),
            "param_i": ("param_i", names, {"long_name": "parameter (row of M)"}),
            "param_j": ("param_j", names, {"long_name": "parameter (column of M)"}),
            "stride": ("stride", np.arange(out.propagator.shape[1]),
                       {"long_name": "propagator index k: steps k*s ... (k+1)*s",
                        "units": "1"}),
        },
        attrs={
            "activation": activation,
            "initialization": initialization,
            "learning_rate": eta,
            "record_stride": rec["record_stride"],
            "jacobian_stride": stride,
            "steps": train["steps"],
            **chunkio.provenance(cfg, "simulate", title="weightdyn simulation chunk"),
        },
    )
    return ds
