"""Wall time of the whole study against the chunk size (networks per simulate/lyapunov job).

For each chunk size, runs the full default study (config.yaml) as a named run
(``results/chunk<N>/``, so the default results are untouched) with ``snakemake --cores all``
from an empty output folder, and prints the wall time, the number of jobs and the per-stage
sums of the Snakemake benchmark files. The compiled-code cache is warmed first by the first
run's jobs; run the script twice, or after a study, to time warm starts only. Deletes each
run's outputs afterwards unless --keep.

    python benchmarks/chunk_size.py [--sizes 250 500 1000 2000 4000] [--keep]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stage_times import stage_times  # benchmarks/stage_times.py

ROOT = Path(__file__).resolve().parents[1]


def run_study(size: int, keep: bool) -> dict:
    """Run the study with chunk size ``size``; wall time and per-rule benchmark sums."""
    name = f"chunk{size}"
    paths = [ROOT / top / name for top in ("results", "logs", "benchmarks")]
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp) / "chunk.yaml"
        overlay.write_text(f"run:\n  name: {name}\nensemble:\n  chunk_size: {size}\n")
        start = time.perf_counter()
        subprocess.run(["snakemake", "--cores", "all", "--quiet", "all", "--configfile",
                        str(overlay)], cwd=ROOT, check=True)
        wall = time.perf_counter() - start
    stages = stage_times(ROOT / "benchmarks" / name / "rules")
    if not keep:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
    return {"wall": wall, "stages": stages}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print("| chunk size | jobs | study wall time (s) | simulate jobs, mean (s) | "
          "lyapunov jobs, mean (s) | all jobs, summed (s) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        res = run_study(size, args.keep)
        st = res["stages"]
        jobs = sum(map(len, st.values()))
        mean = {r: sum(j["s"] for j in st.get(r, [])) / max(len(st.get(r, [])), 1)
                for r in ("simulate", "lyapunov")}
        summed = sum(j["s"] for rows in st.values() for j in rows)
        print(f"| {size} | {jobs} | {res['wall']:.0f} | {mean['simulate']:.2f} | "
              f"{mean['lyapunov']:.2f} | {summed:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
