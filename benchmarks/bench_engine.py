"""Throughput of the gradient-descent engine: network-steps per second, beside plain batched
NumPy and the machine's arithmetic limit.

One network-step = loss, gradient, tangent operator J = I − ηH, propagator accumulation and
update, for the default protocol (2-2-1 network, 100 samples). The compiled engine (lanes of
networks, lane_kernel.LANES) is timed on 2000 networks × 3000 steps; the plain batched-NumPy engine
(einsum over a network axis, no compilation) on the same networks for fewer steps, in the
same process. The limit is peak floating-point throughput (cores × clock × flops per cycle)
divided by the floating-point operations of one network-step (:func:`flops_per_step`: the
multiply-adds of the algorithm, σ's evaluation not counted).

    python benchmarks/bench_engine.py [--networks 2000] [--steps 3000] [--reference-steps 30]
"""

import argparse
import sys
from pathlib import Path

import numba
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from weightdyn import activations, engine, lane_kernel  # noqa: E402
from weightdyn.initialization import initial_parameters  # noqa: E402
from weightdyn.network import Architecture  # noqa: E402
from weightdyn.task import teacher_task  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)


def flops_per_step(arch: Architecture, samples: int) -> int:
    """Floating-point operations of one network-step of the engine (a multiply-add = 2).

    Per sample: the sums K (nb(nb+1)/2), E (o·nb) and R (h·(n+1)(n+2)/2) of the engine's
    docstring, the forward pass (h(n+1) + o(h+1)), the loss (o), the basis (h(n+1)) and
    u_i σ''(z_i) (h(o+1)); per step: the propagator product P − ηHP (d³) and the update (d).
    """
    n, h, o, d = arch.inputs, arch.hidden, arch.outputs, arch.dim
    nb = h * (n + 1) + h + 1
    sums = nb * (nb + 1) // 2 + o * nb + h * (n + 1) * (n + 2) // 2
    forward = h * (n + 1) + o * (h + 1) + o + h * (n + 1) + h * (o + 1)
    return 2 * samples * (sums + forward) + 2 * d**3 + 2 * d


def clock_hz() -> float:
    """The cores' clock (Linux /proc/cpuinfo), else 2.5 GHz."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1e6
    except OSError:
        pass
    return 2.5e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--reference-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flops-per-cycle", type=float, default=16.0,
                        help="per core: two 256-bit FMA pipes (Zen 4, most AVX2 server cores)")
    args = parser.parse_args()

    cfg = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "config.yaml"))
    arch = Architecture.from_config(cfg)
    eta, bound = cfg["training"]["learning_rate"], cfg["training"]["divergence_bound"]
    rec = cfg["recording"]
    threads = numba.get_num_threads()
    samples = cfg["task"]["grid_points"] ** arch.inputs
    flops = flops_per_step(arch, samples)
    peak = threads * clock_hz() * args.flops_per_cycle
    limit = peak / flops
    print(f"threads: {threads}; {args.networks} networks x {args.steps} steps; lanes "
          f"{lane_kernel.LANES}; {flops:,} flops per network-step; peak {peak / 1e9:.0f} GFLOP/s "
          f"({threads} cores x {clock_hz() / 1e9:.2f} GHz x {args.flops_per_cycle:g}) -> limit "
          f"{limit:,.0f} network-steps/s")
    for name in ("tanh", "relu"):
        act = activations.get(name)
        task = teacher_task(arch, name, cfg["task"])
        theta0 = initial_parameters(arch, cfg["seed"], name, "normal", range(args.networks))

        def run(integrate, steps):
            return lambda: integrate(theta0, arch, act, task, eta, steps,
                                     rec["record_stride"], rec["jacobian_stride"], bound,
                                     rec["propagator_dtype"])

        run(engine.integrate, 10)()                      # compile or load from cache
        fast = args.networks * args.steps / best_time(
            run(engine.integrate, args.steps), repeats=args.repeats)
        slow = args.networks * args.reference_steps / best_time(
            run(engine.integrate_reference, args.reference_steps), repeats=args.repeats)
        print(f"{name:5s} compiled {fast:12,.0f} network-steps/s ({fast / limit:5.1%} of the "
              f"limit) | plain batched numpy {slow:10,.0f} network-steps/s | ratio "
              f"{fast / slow:5.1f}x")


if __name__ == "__main__":
    main()
