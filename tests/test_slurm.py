"""The study submitted to a real SLURM cluster through `--profile profiles/slurm` gives the same
results as a local run.

Needs a reachable SLURM cluster (for a local single-node one: `bash .ci/slurm_cluster.sh start`,
as root). Without one the test is skipped, saying why; with WEIGHTDYN_REQUIRE_SLURM=1 (as in
`.ci/run`) it fails instead. The SLURM job ids are printed (visible with `pytest -s` or `-rA`).

The small study is config/tiny.yaml, reduced if need be to two (activation, initialization)
combinations of two chunks each, so that the few SLURM jobs and their dependency stages (about
20 s of status polling each) keep the test within a few minutes. The comparison is generic over
whatever the local run wrote to results/, so it follows the workflow as stages are added.
"""

import collections
import importlib.util
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
TINY = ROOT / "config" / "tiny.yaml"
PROFILE = ROOT / "profiles" / "slurm"
CLUSTER_SCRIPT = ROOT / ".ci" / "slurm_cluster.sh"

REQUIRE = os.environ.get("WEIGHTDYN_REQUIRE_SLURM", "") not in ("", "0")
SLURM_TIMEOUT = int(os.environ.get("WEIGHTDYN_SLURM_TEST_TIMEOUT", "900"))   # seconds
LOCAL_TIMEOUT = 600

# `Job 3 has been submitted with SLURM jobid 17 (log: ...)` (snakemake-executor-plugin-slurm)
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
JOBID = re.compile(r"submitted with SLURM jobid (\d+)")
# NetCDF attributes (global or per variable) that may legitimately differ between two runs of the
# same study; everything else, data, coordinates and attributes, must be identical.
VOLATILE_ATTRS = {"history", "date_created", "date_modified", "created", "hostname", "host",
                  "slurm_job_id", "workdir"}
TEXT_TABLES = {".csv", ".tsv", ".txt", ".md", ".json", ".yaml", ".yml"}


# --------------------------------------------------------------------------- availability


def slurm_unavailable():
    """None if a SLURM cluster is reachable, else the reason why not."""
    if shutil.which("sbatch") is None:
        return ("no SLURM: 'sbatch' is not on PATH "
                "(start a test cluster with `bash .ci/slurm_cluster.sh start`, as root)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return ("snakemake-executor-plugin-slurm is not installed in this Python "
                f"({sys.executable}); install the 'slurm' extra: pip install -e '.[slurm]'")
    # Fast answer where no controller runs: `scontrol ping` returns at once, while sinfo (used by
    # the status script) retries for about 10 s.
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        ping = None
    if ping is not None and " is UP" not in ping.stdout:
        state = " ".join(ping.stdout.split("\n")[0].split()) or (ping.stderr.strip() or "no answer")
        return (f"no usable SLURM cluster: `scontrol ping` says '{state}'; start a test cluster "
                "with `bash .ci/slurm_cluster.sh start` (as root)")
    try:
        proc = subprocess.run(["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"no SLURM: `bash {CLUSTER_SCRIPT.relative_to(ROOT)} status` timed out"
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        return (f"no usable SLURM cluster: `bash .ci/slurm_cluster.sh status` exited "
                f"{proc.returncode} ({detail[-1] if detail else 'no output'}); "
                "start one with `bash .ci/slurm_cluster.sh start` (as root)")
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = slurm_unavailable()
    if reason is not None:
        if REQUIRE:
            pytest.fail(f"WEIGHTDYN_REQUIRE_SLURM=1 but {reason}", pytrace=False)
        pytest.skip(reason)


# --------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def study_config(tmp_path_factory):
    """config.yaml with the overlay config/tiny.yaml, kept at <= 2 combinations x 2 chunks (the
    chunking does not change any network's result: a network's random stream depends only on
    its index); written out complete."""
    from weightdyn.plan import load_config

    cfg = load_config(TINY)
    cfg["activations"] = cfg["activations"][:2]
    cfg["initializations"] = cfg["initializations"][:1]
    if len(cfg["activations"]) * len(cfg["initializations"]) < 2:
        cfg["initializations"] = cfg["initializations"][:2]
    networks = cfg["ensemble"]["networks"]
    if math.ceil(networks / cfg["ensemble"]["chunk_size"]) > 2:
        cfg["ensemble"]["chunk_size"] = math.ceil(networks / 2)
    path = tmp_path_factory.mktemp("config") / "slurm_test.yaml"
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)
    return path


def run_snakemake(workdir, configfile, args, timeout, name):
    """Run the snakemake CLI (this Python, so that SLURM jobs, which start `sys.executable -m
    snakemake`, use the same environment) on this checkout's Snakefile, in ``workdir``.

    Output goes to ``workdir/<name>.log``. On timeout Snakemake gets SIGINT (it ignores SIGTERM
    while SLURM jobs run; on SIGINT it cancels them), then SIGKILL if it does not stop.
    Returns (return code or None on timeout, output, seconds)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
           "--directory", str(workdir), "--configfile", str(configfile), *args]
    log = workdir / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return rc, log.read_text(encoding="utf-8", errors="replace"), time.perf_counter() - start


def check_run(rc, output, elapsed, name, timeout):
    tail = output[-6000:]
    assert rc is not None, f"{name} run timed out after {timeout} s (stopped with SIGINT):\n{tail}"
    assert rc == 0, f"{name} run failed (exit {rc}) after {elapsed:.0f} s:\n{tail}"


@pytest.fixture(scope="module")
def local_run(slurm, study_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local")
    rc, output, elapsed = run_snakemake(workdir, study_config, ["--cores", "2"],
                                        LOCAL_TIMEOUT, "local")
    check_run(rc, output, elapsed, "local", LOCAL_TIMEOUT)
    print(f"\nlocal run: {elapsed:.0f} s in {workdir}")
    return workdir, output


SLURM_ARGS = ["--profile", str(PROFILE),
              # the test cluster's node has 2 CPUs: a job asking for more would stay pending
              "--max-threads", "2",
              # seconds-long jobs: poll early (profile/plugin default 40 s)
              "--slurm-init-seconds-before-status-checks", "5",
              # keep the SLURM job logs, as evidence that each job ran under SLURM
              "--slurm-keep-successful-logs"]


@pytest.fixture(scope="module")
def slurm_run(slurm, study_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    rc, output, elapsed = run_snakemake(workdir, study_config, SLURM_ARGS, SLURM_TIMEOUT, "slurm")
    check_run(rc, output, elapsed, "SLURM", SLURM_TIMEOUT)
    print(f"\nSLURM run: {elapsed:.0f} s in {workdir}")
    return workdir, output


@pytest.fixture(scope="module")
def slurm_sweep_run(slurm, study_config, tmp_path_factory):
    """The study as the one point of a sweep (over its own seed), through the same profile."""
    workdir = tmp_path_factory.mktemp("slurm_sweep")
    cfg = yaml.safe_load(study_config.read_text())
    cfg["sweep"] = {"name": "seed", "key": "seed", "values": [cfg["seed"]]}
    path = workdir / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    rc, output, elapsed = run_snakemake(workdir, path, SLURM_ARGS, SLURM_TIMEOUT, "slurm_sweep")
    check_run(rc, output, elapsed, "SLURM sweep", SLURM_TIMEOUT)
    print(f"\nSLURM sweep run: {elapsed:.0f} s in {workdir}")
    return workdir, output, cfg


# --------------------------------------------------------------------------- checks


def jobs_of(output):
    """{snakemake job id: (rule, is localrule)} of every job a run started, from its log (a
    `rule X:` or `localrule X:` header followed by `jobid: N`; a local run shows every job as
    `localrule`)."""
    jobs = {}
    current = None
    for line in output.splitlines():
        match = re.match(r"^(local)?rule (\w+):$", line)
        if match:
            current = (match.group(2), bool(match.group(1)))
            continue
        match = re.match(r"^\s+jobid: (\d+)$", line)
        if match and current is not None:
            jobs[match.group(1)] = current
            current = None
    return jobs


def rules(jobs):
    """Number of jobs per rule."""
    return collections.Counter(rule for rule, _ in jobs.values())


def slurm_job_table(ids):
    """What SLURM itself knows about ``ids`` (finished jobs stay visible for MinJobAge)."""
    try:
        proc = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids),
                               "-o", "%i %T %M %k"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(squeue failed: {exc})"
    return (proc.stdout + proc.stderr).strip()


def strip_volatile(ds):
    """``ds`` without the attributes in VOLATILE_ATTRS (global and per variable)."""
    for attrs in [ds.attrs] + [var.attrs for var in ds.variables.values()]:
        for key in VOLATILE_ATTRS & set(attrs):
            del attrs[key]
    return ds


def result_files(workdir):
    results = workdir / "results"
    return sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file())


def test_slurm_run_equals_local_run(local_run, slurm_run):
    local_dir, local_output = local_run
    slurm_dir, slurm_output = slurm_run

    # 1. Real SLURM jobs: the SLURM run ran the same jobs as the local run, and submitted every
    #    one that is not a localrule to SLURM, each with its own SLURM job id and job log.
    local_jobs, slurm_jobs = jobs_of(local_output), jobs_of(slurm_output)
    submitted = dict(SUBMITTED.findall(slurm_output))   # snakemake job id -> SLURM job id
    ids = JOBID.findall(slurm_output)
    print(f"\nSLURM job ids ({len(ids)} jobs): {' '.join(ids)}")
    for job, slurm_id in sorted(submitted.items(), key=lambda kv: int(kv[1])):
        rule = slurm_jobs.get(job, ("?",))[0]
        print(f"  SLURM jobid {slurm_id}: rule {rule} (snakemake job {job})")
    print("squeue -t all:\n" + slurm_job_table(ids))
    assert ids, ("no 'submitted with SLURM jobid N' in the SLURM run's output:\n"
                 + slurm_output[-6000:])
    assert rules(slurm_jobs) == rules(local_jobs), (
        f"the SLURM run's jobs {dict(rules(slurm_jobs))} != the local run's "
        f"{dict(rules(local_jobs))}")
    remote = {job for job, (_, is_local) in slurm_jobs.items() if not is_local}
    assert set(submitted) == remote, (
        f"snakemake jobs submitted to SLURM {sorted(submitted)} != non-local jobs {sorted(remote)}")
    logs = {p.stem: p for p in (slurm_dir / ".snakemake" / "slurm_logs").rglob("*.log")}
    for slurm_id in ids:
        assert slurm_id in logs and logs[slurm_id].stat().st_size > 0, (
            f"no SLURM job log for SLURM jobid {slurm_id} (found {sorted(logs)})")

    # 2. The same results: every file of the local run, with equal data.
    local_files = result_files(local_dir)
    assert local_files, "the local run wrote nothing under results/"
    slurm_files = set(result_files(slurm_dir))
    missing = [str(p) for p in local_files if p not in slurm_files]
    assert not missing, f"missing in the SLURM run's results/: {missing}"
    compared = collections.Counter()
    differing_bytes = []
    for rel in local_files:
        a, b = local_dir / "results" / rel, slurm_dir / "results" / rel
        suffix = rel.suffix.lower()
        if suffix == ".nc":
            da, db = strip_volatile(xr.load_dataset(a)), strip_volatile(xr.load_dataset(b))
            try:   # data variables, coordinates and (non-volatile) attributes, exactly
                xr.testing.assert_identical(da, db)
            except AssertionError as exc:
                raise AssertionError(f"results/{rel} differs:\n{exc}") from None
            for name in da.variables:   # in memory and on disk
                assert da[name].dtype == db[name].dtype, f"results/{rel}: dtype of {name}"
                assert da[name].encoding.get("dtype") == db[name].encoding.get("dtype"), (
                    f"results/{rel}: stored dtype of {name}")
        elif suffix in TEXT_TABLES:
            assert a.read_bytes() == b.read_bytes(), f"results/{rel} differs"
        else:  # figures (PNG/PDF/SVG) and the like may differ in bytes (e.g. timestamps)
            assert b.stat().st_size > 0, f"results/{rel} is empty in the SLURM run"
            if a.read_bytes() != b.read_bytes():
                differing_bytes.append(str(rel))
        compared[suffix or "(none)"] += 1
    print(f"compared {len(local_files)} result files {dict(compared)}: SLURM run == local run"
          + (f" (bytes differ, not compared: {differing_bytes})" if differing_bytes else ""))
    assert compared[".nc"] > 0, "no NetCDF result to compare"


def test_sweep_point_through_slurm_equals_the_local_study(local_run, slurm_sweep_run):
    """A sweep runs through the SLURM profile unchanged: its point at the study's own seed,
    computed by SLURM jobs, has the local study's results (figures aside: a point has none;
    provenance.json and the gathered files' source_files name the point's own paths)."""
    local_dir, _ = local_run
    sweep_dir, output, cfg = slurm_sweep_run
    run = f"{cfg['run']['name']}/" if cfg["run"]["name"] else ""
    point = Path(run) / "sweeps" / "seed" / f"seed={cfg['seed']}"
    jobs = rules(jobs_of(output))
    assert jobs["sweep"] == 1 and jobs["simulate"] > 0, dict(jobs)
    assert JOBID.findall(output), output[-6000:]
    compared = 0
    for rel in result_files(local_dir):
        if rel.parts[len(Path(run).parts)] == "figures" or rel.name == "provenance.json":
            continue
        a = local_dir / "results" / rel
        b = sweep_dir / "results" / point / rel.relative_to(run)
        assert b.is_file(), f"missing in the sweep point: {b}"
        if rel.suffix == ".nc":
            da, db = (strip_volatile(xr.load_dataset(x)) for x in (a, b))
            for ds in (da, db):
                ds.attrs.pop("source_files", None)
            xr.testing.assert_identical(da, db)
        else:
            assert a.read_bytes() == b.read_bytes(), f"results/{rel} differs"
        compared += 1
    assert compared > 0
    table = sweep_dir / "results" / run / "tables" / "sweep_seed.csv"
    assert table.is_file() and len(table.read_text().splitlines()) > 1
