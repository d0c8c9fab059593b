"""Cost of the curvature (extreme Hessian eigenvalues) the engine records, beside LAPACK.

The engine computes λ_min(H) and λ_max(H) at every recorded step with
:func:`weightdyn.curvature.lane_extremes` (one network per SIMD lane). This script times it on
the Hessians of real trajectories of the default protocol (tanh and ReLU, the states at the end
of 1000 steps), per lane group of lane_kernel.LANES networks, one thread, beside NumPy's batched
``eigvalsh`` (LAPACK) on the same matrices, and states the cost relative to the integration
steps between two records (the engine's throughput measured in the same run):

    python benchmarks/bench_curvature.py [--repeats 2000]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from weightdyn import activations, dynamics, engine, lane_kernel  # noqa: E402
from weightdyn.curvature import lane_extremes  # noqa: E402
from weightdyn.initialization import initial_parameters  # noqa: E402
from weightdyn.network import Architecture  # noqa: E402
from weightdyn.plan import load_config  # noqa: E402
from weightdyn.task import teacher_task  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    cfg = load_config()
    arch, lanes = Architecture.from_config(cfg), lane_kernel.LANES
    rec = cfg["recording"]
    print(f"d = {arch.dim}, lane group of {lanes} networks, 1 thread; engine records every "
          f"{rec['record_stride']} steps")
    for name in ("tanh", "relu"):
        act, task = activations.get(name), teacher_task(arch, name, cfg["task"])
        theta0 = initial_parameters(arch, cfg["seed"], name, "uniform", range(lanes))
        out = engine.integrate(theta0, arch, act, task, 1e-3, 1000, 1000, 5, 1e8)
        H = dynamics.loss_gradient_hessian(out.theta[:, -1], arch, act, task)[2]
        A0 = np.ascontiguousarray(np.moveaxis(H, 0, -1))
        A, lo, hi = A0.copy(), np.empty(lanes), np.empty(lanes)

        def lane_group():
            for _ in range(args.repeats):
                A[:] = A0
                lane_extremes(A, lo, hi)

        lane_group()
        ours = best_time(lane_group, repeats=3) / args.repeats
        lapack = best_time(lambda: np.linalg.eigvalsh(H), repeats=20)
        # the integration steps between two records, one thread, same networks
        theta = initial_parameters(arch, cfg["seed"], name, "uniform", range(lanes * 8))
        engine.integrate(theta[:lanes], arch, act, task, 1e-3, 20, 3000, 5, 1e8)
        steps = 1000
        integrate = best_time(lambda: engine.integrate(theta, arch, act, task, 1e-3, steps, steps,
                                                       5, 1e8), repeats=3)
        threads = int(__import__("numba").get_num_threads())
        per_group_record = integrate * threads / (theta.shape[0] / lanes) / steps \
            * rec["record_stride"]
        print(f"{name:5s} lane_extremes {ours * 1e6:7.1f} µs per lane group "
              f"({ours / lanes * 1e9:5.0f} ns per network) | numpy eigvalsh "
              f"{lapack * 1e6:7.1f} µs | ratio {lapack / ours:5.1f}x | "
              f"{100 * ours / per_group_record:4.1f} % of the {rec['record_stride']} engine steps "
              "between records")


if __name__ == "__main__":
    main()
