"""Throughput of the gradient-descent engine: network-steps per second.

One network-step = loss, gradient, tangent operator J = I − ηH, propagator accumulation and
update, for the default protocol (2-2-1 network, 100 samples). The compiled engine is timed
on a default chunk (500 networks × 3000 steps); the plain batched-NumPy engine (einsum over a
network axis, no compilation) on the same networks for fewer steps, in the same process.

    python benchmarks/bench_engine.py [--networks 500] [--steps 3000] [--reference-steps 60]
"""

import argparse
import sys
from pathlib import Path

import numba
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from weightdyn import activations, engine  # noqa: E402
from weightdyn.initialization import initial_parameters  # noqa: E402
from weightdyn.network import Architecture  # noqa: E402
from weightdyn.task import teacher_task  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=500)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--reference-steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    cfg = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "config.yaml"))
    arch = Architecture.from_config(cfg)
    eta, bound = cfg["training"]["learning_rate"], cfg["training"]["divergence_bound"]
    rec = cfg["recording"]
    print(f"threads: {numba.get_num_threads()}; {args.networks} networks; default protocol")
    for name in ("tanh", "relu"):
        act = activations.get(name)
        task = teacher_task(arch, name, cfg["task"])
        theta0 = initial_parameters(arch, cfg["seed"], name, "normal", range(args.networks))

        def run(integrate, steps):
            return lambda: integrate(theta0, arch, act, task, eta, steps, rec["record_stride"],
                                     rec["jacobian_stride"], bound, rec["propagator_dtype"])

        run(engine.integrate, 10)()                      # compile or load from cache
        fast = args.networks * args.steps / best_time(
            run(engine.integrate, args.steps), repeats=args.repeats)
        slow = args.networks * args.reference_steps / best_time(
            run(engine.integrate_reference, args.reference_steps), repeats=args.repeats)
        print(f"{name:5s} compiled {fast:12,.0f} network-steps/s | plain batched numpy "
              f"{slow:10,.0f} network-steps/s | ratio {fast / slow:5.1f}x")


if __name__ == "__main__":
    main()
