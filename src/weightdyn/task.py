"""The teacher–student regression task.

Inputs: a grid of ``grid_points`` values per input on [grid_low, grid_high]^n, the first input
in the outer loop (for 2 inputs: x1 outer, x2 inner). Targets: t_μ = teacher(x_μ), a network of
the student's shape and activation with fixed parameters. Cost C(θ) = ½ Σ_μ |y_μ − t_μ|².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations
from .network import Architecture


@dataclass(frozen=True)
class Task:
    """Training set: inputs x (samples, inputs) and targets t (samples, outputs)."""

    inputs: np.ndarray
    targets: np.ndarray

    @property
    def samples(self) -> int:
        return self.inputs.shape[0]


def grid_inputs(inputs: int, points: int, low: float, high: float) -> np.ndarray:
    """All points of a regular grid, first coordinate varying slowest (samples, inputs)."""
    axis = np.linspace(low, high, points)
    mesh = np.meshgrid(*([axis] * inputs), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=-1)


def teacher_task(arch: Architecture, activation: str, task_cfg: dict) -> Task:
    """Grid inputs labelled by the teacher network given in ``task_cfg['teacher']``: the
    student's inputs, outputs and activation, and its own number of hidden units (the length
    of b1), so that students of any width learn the same task."""
    x = grid_inputs(arch.inputs, task_cfg["grid_points"], task_cfg["grid_low"], task_cfg["grid_high"])
    teacher = task_cfg["teacher"]
    width = np.asarray(teacher["b1"]).size
    shapes = {
        "W1": (width, arch.inputs),
        "b1": (width,),
        "W2": (arch.outputs, width),
        "b2": (arch.outputs,),
    }
    layers = []
    for key, shape in shapes.items():
        value = np.asarray(teacher[key], dtype=float)
        if value.shape != shape:
            raise ValueError(
                f"task.teacher.{key} has shape {value.shape}, the teacher needs {shape}"
            )
        layers.append(value)
    teacher_arch = Architecture(arch.inputs, width, arch.outputs)
    theta = teacher_arch.pack(*layers)
    return Task(x, teacher_arch.forward(theta, x, activations.get(activation)))
