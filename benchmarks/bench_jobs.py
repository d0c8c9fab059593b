"""Time of the simulate and lyapunov jobs: fixed cost per job, and the lyapunov job per network.

* Fixed cost: the simulate and lyapunov jobs of a tiny study (one chunk of 8 networks, 200
  steps: next to no work) run by Snakemake as in a study, wall time from their benchmark files
  (best of --repeats runs): interpreter, Snakemake's script preamble, imports, loading the
  compiled code from the cache, configuration, reading and writing. Beside them: a Snakemake
  job whose script does nothing, a bare interpreter, and the parts of the lyapunov job's
  start-up, each measured in a fresh interpreter.
* The simulate job of the issue's measure (2000 networks × 3000 steps of relu/normal, 2 numba
  threads: ``--set-threads simulate=2``), run by Snakemake with start-up and writing included,
  in network-steps per second; beside the plain batched-NumPy engine
  (engine.integrate_reference) on the same 2000 networks for 20 steps, timed in this process.
* The lyapunov job on a real chunk (500 tanh/normal networks × 3000 steps of the default
  protocol, simulated here unless --chunk names a simulation chunk file), stage by stage in one
  process as workflow/scripts/lyapunov.py runs it (best of --repeats), per network; beside the
  plain batched-NumPy analysis of bench_lyapunov.py on the same propagators, with the same
  reading and writing.

    python benchmarks/bench_jobs.py [--chunk results/simulate/tanh/normal/chunk000.nc]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# one thread, as in a study's jobs (Snakemake sets these from the rule's threads)
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "scripts"), str(ROOT / "src")]
import common  # noqa: E402  (the jobs' bootstrap: numba without SciPy, as in the jobs)

common.numba_without_scipy()

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from weightdyn import plan  # noqa: E402
from weightdyn.chunkio import (  # noqa: E402
    open_simulation_chunk,
    write_dataset,
    write_simulation_chunk,
)
from weightdyn.gather import check_chunk, outcomes  # noqa: E402
from weightdyn.lyapunov import (  # noqa: E402
    analyse_chunk,
    random_orthogonal,
    random_upper_triangular,
)
from weightdyn.simulate import simulate_chunk  # noqa: E402
from bench_lyapunov import numpy_batched  # noqa: E402  (benchmarks/)

#: overlay of config.yaml for the start-up jobs: one chunk of 8 networks, 200 steps
TINY = """\
run: {name: startup}
activations: [tanh]
initializations: [normal]
training: {steps: 200}
ensemble: {networks: 8, chunk_size: 8}
recording: {loss_curve_stride: 20}
lyapunov: {backward_transient: 10, lags: [5, 10, 20, 50]}
prediction: {times: [0.005, 0.010, 0.015, 0.025, 0.05, 0.1], clv_lag: 10}
"""
#: a Snakemake job whose script does nothing (the preamble only)
NOOP = """\
rule noop:
    output: "noop.txt"
    benchmark: "noop.tsv"
    script: "noop.py"
"""
#: the lyapunov script's start-up in parts, from a fresh interpreter (fresh = numba init too)
PARTS = """\
import time
t0 = time.perf_counter()
import sys
sys.path[:0] = [{scripts!r}]
import common
common.numba_without_scipy()
t1 = time.perf_counter()
import xarray
from weightdyn.chunkio import open_simulation_chunk, write_dataset
from weightdyn.gather import check_chunk, outcomes
from weightdyn.lyapunov import analyse_chunk
from weightdyn.plan import analysis_as_config
from weightdyn.runlog import script_logging
t2 = time.perf_counter()
import numpy as np
from weightdyn.lyapunov import analysis
analysis.analyse(np.eye(9)[None, None], 1.0, seed=0)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def benchmark_seconds(path: Path) -> float:
    with path.open() as fh:
        return float(list(csv.DictReader(fh, delimiter="\t"))[-1]["s"])


def snakemake(args, cwd):
    subprocess.run([sys.executable, "-m", "snakemake", *args, "--cores", "1", "--quiet", "all"],
                   cwd=cwd, check=True, capture_output=True)


def startup_costs(repeats: int) -> dict[str, list[float]]:
    """Wall seconds of the tiny study's simulate and lyapunov jobs and of a no-op script job
    (Snakemake benchmark files), and of a bare interpreter."""
    times = {"simulate": [], "lyapunov": [], "noop": [], "interpreter": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "tiny.yaml").write_text(TINY)
        (tmp / "noop").mkdir()
        (tmp / "noop" / "Snakefile").write_text(NOOP)
        (tmp / "noop" / "noop.py").write_text("open(snakemake.output[0], 'w').close()\n")
        target = "results/startup/lyapunov/tanh/normal/chunk000.nc"
        for _ in range(repeats + 1):  # the first run may compile: not counted
            snakemake([target, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp),
                       "--configfile", str(ROOT / "config.yaml"), str(tmp / "tiny.yaml"),
                       "--forcerun", "simulate", "lyapunov"], tmp)
            snakemake(["--snakefile", "Snakefile", "--forceall"], tmp / "noop")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            times["interpreter"].append(time.perf_counter() - start)
            for rule in ("simulate", "lyapunov"):
                times[rule].append(benchmark_seconds(
                    tmp / f"benchmarks/startup/rules/{rule}/tanh/normal/chunk000.tsv"))
            times["noop"].append(benchmark_seconds(tmp / "noop" / "noop.tsv"))
    return {name: values[1:] for name, values in times.items()}


#: overlay of config.yaml for the simulate-job measure: one chunk of 2000 relu/normal networks
SIMULATE = """\
run: {name: simulate_job}
activations: [relu]
initializations: [normal]
ensemble: {networks: 2000, chunk_size: 2000}
"""


def simulate_job(repeats: int) -> tuple[float, float]:
    """Network-steps per second of a 2000-network simulate job with 2 threads (Snakemake
    benchmark file, best of ``repeats``) and of the plain batched-NumPy engine (20 steps)."""
    from weightdyn import activations, engine
    from weightdyn.initialization import initial_parameters
    from weightdyn.network import Architecture
    from weightdyn.task import teacher_task

    cfg = plan.load_config()
    steps = cfg["training"]["steps"]
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "simulate.yaml").write_text(SIMULATE)
        target = "results/simulate_job/simulate/relu/normal/chunk000.nc"
        for _ in range(repeats):
            subprocess.run([sys.executable, "-m", "snakemake", target, "--snakefile",
                            str(ROOT / "Snakefile"), "--directory", str(tmp), "--configfile",
                            str(ROOT / "config.yaml"), str(tmp / "simulate.yaml"), "--forcerun",
                            "simulate", "--set-threads", "simulate=2", "--cores", "2",
                            "--quiet", "all"], cwd=tmp, check=True, capture_output=True)
            seconds.append(benchmark_seconds(
                tmp / "benchmarks/simulate_job/rules/simulate/relu/normal/chunk000.tsv"))
    arch = Architecture.from_config(cfg)
    theta0 = initial_parameters(arch, cfg["seed"], "relu", "normal", range(2000))
    task = teacher_task(arch, "relu", cfg["task"])
    train, rec = cfg["training"], cfg["recording"]
    start = time.perf_counter()
    engine.integrate_reference(theta0, arch, activations.get("relu"), task,
                               train["learning_rate"], 20, rec["record_stride"],
                               rec["jacobian_stride"], train["divergence_bound"])
    reference = 2000 * 20 / (time.perf_counter() - start)
    return 2000 * steps / min(seconds), reference


def startup_parts(repeats: int) -> np.ndarray:
    """Seconds of: numba imported (without SciPy); the lyapunov script's other imports; the
    first compiled call (numba's initialisation and the kernel's cache load): best of runs."""
    code = PARTS.format(scripts=str(ROOT / "workflow" / "scripts"))
    runs = [subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                           text=True, cwd=ROOT).stdout.split() for _ in range(repeats)]
    return np.min(np.array(runs, dtype=float), axis=0)


def lyapunov_stages(path: Path, cfg: dict, act: str, out: Path) -> dict[str, float]:
    """One run of the lyapunov job's stages (workflow/scripts/lyapunov.py) on ``path``."""
    t = [time.perf_counter()]
    with open_simulation_chunk(path) as sim:
        t.append(time.perf_counter())
        check_chunk(sim, path, cfg, act, "normal", 0, sim.sizes["network"])
        analysis = analyse_chunk(sim, cfg)  # reads the propagators by blocks of networks
        t.append(time.perf_counter())
        ds = xr.merge([analysis, outcomes(sim, cfg)], combine_attrs="override")
        t.append(time.perf_counter())
    write_dataset(ds, out)
    t.append(time.perf_counter())
    return dict(zip(("open", "read + analyse", "outcomes", "write"), np.diff(t)))


def numpy_job(path: Path, cfg: dict, out: Path) -> dict[str, float]:
    """The plain batched-NumPy analysis (bench_lyapunov.numpy_batched) of the same chunk, read
    whole, its time series written (zlib) like the job's."""
    t = [time.perf_counter()]
    with open_simulation_chunk(path) as sim:
        M = sim["propagator"].values
    t.append(time.perf_counter())
    dt = float(sim.attrs["jacobian_stride"]) * float(sim.attrs["learning_rate"])
    pred = np.rint(np.array(cfg["prediction"]["times"]) / dt).astype(int)
    lags = np.array(cfg["lyapunov"]["lags"]) // int(sim.attrs["jacobian_stride"])
    d = M.shape[2]
    local, angle, growth, lagged, svd = numpy_batched(
        M, pred, lags, random_orthogonal(d, cfg["seed"]), random_upper_triangular(d, cfg["seed"]))
    t.append(time.perf_counter())
    keep = slice(cfg["lyapunov"]["output_stride"] - 1, None, cfg["lyapunov"]["output_stride"])
    write_dataset(xr.Dataset({
        "local_exponent": (("network", "time", "exponent"), local[:, keep] / dt),
        "clv_angle": (("network", "time", "pair"), angle[:, keep]),
        "clv_growth": (("network", "time", "exponent"), growth[:, keep] / dt),
        "clv_angle_lagged": (("network", "lag_time", "pair"), np.stack([a for a, _ in lagged], 1)),
        "ftle": (("network", "count", "exponent"), np.stack(svd, 1))}), out)
    t.append(time.perf_counter())
    return dict(zip(("read", "analyse", "write"), np.diff(t)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=Path, help="a simulation chunk of 500 tanh/normal "
                        "networks of the default study (default: simulate one here)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-numpy", action="store_true",
                        help="without the plain-NumPy reference (it takes minutes)")
    args = parser.parse_args()
    n = args.repeats

    print(f"per-job fixed cost (tiny study, Snakemake benchmark files, best / median of {n}):")
    jobs = startup_costs(n)
    for name, label in (("simulate", "simulate job (8 networks × 200 steps)"),
                        ("lyapunov", "lyapunov job (8 networks × 40 strides)"),
                        ("noop", "Snakemake script job doing nothing"),
                        ("interpreter", "bare interpreter (python -c pass)")):
        print(f"  {label:42s} {min(jobs[name]):5.2f} s / {statistics.median(jobs[name]):5.2f} s")
    numba_import, imports, first_call = startup_parts(n)
    print(f"  lyapunov start-up parts (fresh interpreter): numba imported without SciPy "
          f"{numba_import:.2f} s, the script's other imports {imports:.2f} s, first compiled "
          f"call (numba's initialisation, cache load) {first_call:.2f} s")

    job, reference = simulate_job(n)
    print(f"simulate job, 2000 relu networks x 3000 steps, 2 threads, start-up and writing "
          f"included (Snakemake benchmark file, best of {n}): {job:,.0f} network-steps/s | "
          f"plain batched numpy {reference:,.0f} network-steps/s | ratio {job / reference:.1f}x")

    cfg = plan.load_config()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        chunk = args.chunk
        if chunk is None:
            chunk = tmp / "chunk000.nc"
            sim_cfg = plan.simulation_config(cfg)
            write_simulation_chunk(simulate_chunk(sim_cfg, "tanh", "normal", 0, 500), chunk,
                                   sim_cfg["recording"]["propagator_dtype"])
        acfg = plan.analysis_as_config(plan.analysis_config(cfg))
        lyapunov_stages(chunk, acfg, "tanh", tmp / "lyapunov.nc")  # compile or load the kernel
        runs = [lyapunov_stages(chunk, acfg, "tanh", tmp / "lyapunov.nc") for _ in range(n)]
        best = {stage: min(r[stage] for r in runs) for stage in runs[0]}
        total = min(sum(r.values()) for r in runs)
        with open_simulation_chunk(chunk) as sim:
            S, K = sim.sizes["network"], sim.sizes["stride"]
        print(f"lyapunov job on {chunk} ({S} networks × {K} strides), in one process, best of {n}:")
        print("  " + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in best.items()))
        print(f"  total {total:.2f} s = {1e3 * total / S:.2f} ms per network "
              f"(+ the fixed cost above, once per job)")
        if not args.skip_numpy:
            ref = numpy_job(chunk, acfg, tmp / "numpy.nc")
            print("  plain batched NumPy on the same chunk: "
                  + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in ref.items())
                  + f"; total {1e3 * sum(ref.values()) / S:.2f} ms per network "
                  f"(x{sum(ref.values()) / total:.1f} the job)")


if __name__ == "__main__":
    main()
