"""The Snakemake workflow: DAG shape (dry runs through snakemake.api), light parsing (no
numerical package imported), output folders of named runs, a bad config rejected before any
job, the rules named in the profiles, and an end-to-end run of config/tiny.yaml in a temporary
directory, including the recomputation of one deleted chunk and a second named run beside it."""

import collections
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from weightdyn import __version__
from weightdyn import plan as study_plan
from weightdyn.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
TINY = ROOT / "config" / "tiny.yaml"
#: outputs of the tiny run (run.name: tiny)
TINY_RESULTS = "results/tiny"


def plan(workdir, configfile=ROOT / "config.yaml", config=None):
    """Dry-run the workflow through the API; jobs per rule (from the outputs they would write)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    planned = []
    with SnakemakeApi(OutputSettings(dryrun=True, quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(
                configfiles=configfile if isinstance(configfile, list) else [configfile],
                config=config or {}),
            snakefile=SNAKEFILE,
            workdir=Path(workdir),
        )
        workflow_api.dag().execute_workflow(executor="dryrun", updated_files=planned)
    rules = collections.Counter()
    for path in planned:
        match = re.fullmatch(r"results/(?:(?:quick|tiny|other)/)?(\w+)/.*\.nc", path)
        if match:                         # one NetCDF file per job of the stages counted here
            rules[match.group(1)] += 1
    return rules, planned


def test_dry_run_of_the_default_study(tmp_path):
    start = time.perf_counter()
    rules, planned = plan(tmp_path)
    elapsed = time.perf_counter() - start
    # 4 combinations x 16 chunks of 500
    assert rules == {"simulate": 64, "lyapunov": 64, "gather": 4, "prediction": 4}
    assert "results/figures/fig6_roc_curves.png" in planned
    assert "results/tables/auc.csv" in planned
    assert "results/simulate/relu/normal/chunk015.nc" in planned
    assert "results/gather/tanh/uniform.nc" in planned
    assert elapsed < 30, f"planning took {elapsed:.1f} s"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name, chunks, gather", [("quick", 4, 4), ("tiny", 4, 2)])
def test_dry_run_of_the_shipped_small_configs(tmp_path, name, chunks, gather):
    """The overlays, given alone (no config.yaml in the working directory: the schema defaults
    complete them), write only under results/<name>/."""
    rules, planned = plan(tmp_path, ROOT / "config" / f"{name}.yaml")
    assert rules == {"simulate": chunks, "lyapunov": chunks, "gather": gather, "prediction": gather}
    assert planned and all(path.startswith(f"results/{name}/") for path in planned), planned


def test_parsing_imports_no_numerical_package(tmp_path):
    """weightdyn.plan and the Snakefile (parse and DAG of the default study) import none of the
    numerical packages: the workflow plans in an environment with nothing but Snakemake."""
    code = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT / "src")!r})
import weightdyn.plan
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings
with SnakemakeApi(OutputSettings(dryrun=True, quiet={{Quietness.ALL}})) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[Path({str(ROOT / "config.yaml")!r})]),
        snakefile=Path({str(SNAKEFILE)!r}), workdir=Path({str(tmp_path)!r}))
    wf.dag().execute_workflow(executor="dryrun")
heavy = ("numba", "matplotlib", "sklearn", "scipy", "xarray")
print("IMPORTED", sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "IMPORTED []" in proc.stdout, proc.stdout[-3000:]


def test_named_run_writes_its_own_folders(tmp_path):
    """results/, logs/ and benchmarks/ of a named run are under <name>/; the default study's
    paths are unchanged (test_dry_run_of_the_default_study)."""
    rules, files = plan(tmp_path, [ROOT / "config.yaml", TINY], config={"run": {"name": "other"}})
    assert rules == {"simulate": 4, "lyapunov": 4, "gather": 2, "prediction": 2}
    assert files and all(path.startswith("results/other/") for path in files), files


def test_rules_named_in_the_profiles_exist():
    """Every rule that a profile configures (set-resources, set-threads, ...) is a rule of the
    workflow: a misspelt or removed rule name there is silently ignored by Snakemake."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
                           "--list-rules", "--workflow-profile", "none"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rules = set(proc.stdout.split())
    assert {"all", "simulate", "lyapunov", "gather", "predict", "tables", "figures"} <= rules
    per_rule = ("set-resources", "set-threads", "set-resource-scopes", "set-scatter")
    checked = 0
    for profile in sorted((ROOT / "profiles").glob("*/*.yaml")):
        settings = yaml.safe_load(profile.read_text()) or {}
        for key in per_rule:
            for rule in settings.get(key) or {}:
                assert rule in rules, \
                    f"{profile.relative_to(ROOT)}: {key} names unknown rule {rule!r}"
                checked += 1
        for rule in settings.get("localrules") or []:
            assert rule in rules, f"{profile.relative_to(ROOT)}: unknown local rule {rule!r}"
    assert (ROOT / "profiles/slurm/profile.yaml").is_file()


def test_schema_violation_names_the_key(tmp_path):
    with pytest.raises(Exception) as info:
        plan(tmp_path, config={"ensemble": {"networks": 0}})
    assert "['ensemble']['networks']" in str(info.value) or "ensemble.networks" in str(info.value)
    assert not (tmp_path / "results").exists()


def test_chunk_count_follows_the_config(tmp_path):
    rules, planned = plan(tmp_path, config={"ensemble": {"networks": 1001, "chunk_size": 100},
                                            "activations": ["tanh"]})
    assert rules == {"simulate": 2 * 11, "lyapunov": 2 * 11, "gather": 2, "prediction": 2}
    assert "results/simulate/tanh/normal/chunk010.nc" in planned   # the short last chunk


def test_bad_config_is_rejected_before_any_job(tmp_path):
    with pytest.raises(ConfigError) as info:
        plan(tmp_path, config={"ensemble": {"networks": 100, "chunk_size": 500}})
    assert "ensemble.chunk_size" in str(info.value)
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- end to end


def snakemake(workdir, *args, configfiles=(TINY,)):
    """Run the snakemake CLI on this checkout's Snakefile in ``workdir``; return its output."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
           "--directory", str(workdir), "--configfile", *map(str, configfiles), "--cores", "2",
           *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    return output


@pytest.fixture(scope="module")
def tiny_cfg():
    """The configuration the tiny run's files record: config.yaml with the overlay, without
    the run settings."""
    return study_plan.science_config(study_plan.load_config(TINY))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny study run once in a fresh directory (shared by the end-to-end tests)."""
    workdir = tmp_path_factory.mktemp("tiny")
    start = time.perf_counter()
    output = snakemake(workdir)
    return workdir, output, time.perf_counter() - start


def chunk_files(workdir, stage="lyapunov"):
    return sorted((workdir / TINY_RESULTS / stage).rglob("chunk*.nc"))


@pytest.mark.slow
def test_tiny_study_outputs(tiny_run, tiny_cfg):
    workdir, output, elapsed = tiny_run
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    steps = tiny_cfg["training"]["steps"]
    curve = np.arange(0, steps + 1, tiny_cfg["recording"]["loss_curve_stride"])
    # the simulate chunks (propagators) are temporary: deleted once analysed
    assert chunk_files(workdir, "simulate") == []
    assert [p.relative_to(workdir).as_posix() for p in chunk_files(workdir)] == [
        f"{TINY_RESULTS}/lyapunov/{act}/uniform/chunk{k:03d}.nc"
        for act in ("relu", "tanh") for k in (0, 1)
    ]
    for act in ("tanh", "relu"):
        for k in (0, 1):
            path = workdir / f"{TINY_RESULTS}/lyapunov/{act}/uniform/chunk{k:03d}.nc"
            with xr.open_dataset(path, engine="netcdf4") as ds:
                assert {name: ds.sizes[name] for name in ("network", "exponent", "pair", "step")} \
                    == {"network": 10, "exponent": 9, "pair": 36, "step": curve.size}
                np.testing.assert_array_equal(ds["network"], np.arange(10 * k, 10 * k + 10))
                assert ds["ftle"].encoding["dtype"] == np.float64
                for attr, value in {"activation": act, "initialization": "uniform",
                                    "steps": steps, "jacobian_stride": 5,
                                    "learning_rate": 1e-3, "weightdyn_version": __version__,
                                    "rule": "lyapunov"}.items():
                    assert ds.attrs[attr] == value, attr
                assert json.loads(ds.attrs["config_json"]) == tiny_cfg
                assert np.isfinite(ds["ftle"]).all() and np.isfinite(ds["lyapunov_exponent"]).all()
        with xr.open_dataset(workdir / f"{TINY_RESULTS}/gather/{act}/uniform.nc") as ds:
            assert ds.sizes["network"] == 20 and ds.sizes["step"] == curve.size
            np.testing.assert_array_equal(ds["network"], np.arange(20))
            np.testing.assert_array_equal(ds["step"], curve)
            finite = np.isfinite(ds["final_loss"].values)
            np.testing.assert_array_equal(finite, ds["diverged"].values == 0)
            np.testing.assert_allclose(ds["loss"].values[finite, -1],
                                       ds["final_loss"].values[finite])
            assert ds.attrs["activation"] == act and ds.attrs["rule"] == "gather"
            assert json.loads(ds.attrs["config_json"]) == tiny_cfg
        for rule in ("simulate", "lyapunov"):
            for k in (0, 1):
                log = workdir / f"logs/tiny/{rule}/{act}/uniform/chunk{k:03d}.log"
                assert f"rule {rule} done" in log.read_text()
                benchmark = f"benchmarks/tiny/rules/{rule}/{act}/uniform/chunk{k:03d}.tsv"
                assert (workdir / benchmark).is_file()
        assert "rule gather done" in (workdir / f"logs/tiny/gather/{act}/uniform.log").read_text()
    classes = pd.read_csv(workdir / TINY_RESULTS / "tables/classes.csv")
    assert list(classes.columns) == ["activation", "initialization", "n", "frac_low",
                                     "frac_middle", "frac_high", "frac_diverged"]
    assert sorted(zip(classes.activation, classes.n)) == [("relu", 20), ("tanh", 20)]
    np.testing.assert_allclose(classes[["frac_low", "frac_middle", "frac_high"]].sum(axis=1), 1)
    auc = pd.read_csv(workdir / TINY_RESULTS / "tables/auc.csv")
    ok = auc[auc.computable]
    assert len(ok) and not ok[["auc_mean", "auc_std"]].isna().any().any()
    assert ((ok.auc_mean >= 0) & (ok.auc_mean <= 1)).all()
    assert (workdir / TINY_RESULTS / "tables/summary.md").read_text().startswith("# weightdyn")
    curvature = pd.read_csv(workdir / TINY_RESULTS / "tables/curvature.csv")
    assert set(curvature["class"]) <= {"low", "middle", "high"} and (curvature.n >= 0).all()
    stamp = json.loads((workdir / TINY_RESULTS / "tables/provenance.json").read_text())
    assert stamp["weightdyn_version"] == __version__ and stamp["config"] == tiny_cfg
    from PIL import Image

    for k in range(1, 11):
        png = next((workdir / TINY_RESULTS / "figures").glob(f"fig{k}_*.png"))
        assert png.with_suffix(".pdf").stat().st_size > 0
        with Image.open(png) as image:
            assert image.info["weightdyn_version"] == __version__
            assert json.loads(image.info["config_json"]) == tiny_cfg


@pytest.mark.slow
def test_complete_study_has_nothing_to_do(tiny_run):
    workdir = tiny_run[0]
    output = snakemake(workdir, "--dry-run")
    assert "Nothing to be done" in output, output[-3000:]


@pytest.mark.slow
def test_another_named_run_leaves_the_tiny_run_alone(tiny_run, tmp_path):
    """A second overlay with its own run name (another seed) writes only under its own folders;
    the tiny run's files stay untouched, and the tiny run has nothing to do afterwards."""
    workdir = tiny_run[0]

    def files():
        return {p: p.stat().st_mtime_ns for p in workdir.rglob("*")
                if p.is_file() and ".snakemake" not in p.relative_to(workdir).parts}

    before = files()
    overlay = tmp_path / "seed.yaml"
    overlay.write_text("run: {name: tiny_seed7}\nseed: 7\nactivations: [tanh]\n"
                       "ensemble: {networks: 20, chunk_size: 20}\n")
    output = snakemake(workdir, configfiles=(TINY, overlay))
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    after = files()
    assert {p: after[p] for p in before} == before                 # nothing rewritten
    new = sorted(p.relative_to(workdir).as_posix() for p in set(after) - set(before))
    assert new and all(p.split("/")[1] == "tiny_seed7" for p in new), new
    with xr.open_dataset(workdir / "results/tiny_seed7/gather/tanh/uniform.nc") as ds:
        assert json.loads(ds.attrs["config_json"])["seed"] == 7
    assert "Nothing to be done" in snakemake(workdir, "--dry-run")


@pytest.mark.slow
def test_deleted_chunk_is_recomputed_alone_with_identical_results(tiny_run, tmp_path):
    workdir = tiny_run[0]
    victim = workdir / TINY_RESULTS / "lyapunov/tanh/uniform/chunk001.nc"
    tanh_gather = workdir / TINY_RESULTS / "gather/tanh/uniform.nc"
    relu_gather = workdir / TINY_RESULTS / "gather/relu/uniform.nc"
    shutil.copy(victim, tmp_path / "before.nc")
    gathered = {path: xr.load_dataset(path) for path in (tanh_gather, relu_gather)}
    mtimes = {p: p.stat().st_mtime_ns for p in chunk_files(workdir) + [relu_gather]
              if p != victim}

    # Every kept file is a target of the default rule: the same command recomputes the deleted
    # chunk (its temporary simulate chunk included) and no other chunk; the files made from it
    # are redone because their input is newer.
    victim.unlink()
    output = snakemake(workdir)
    jobs = collections.Counter(re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.M))
    assert (jobs["simulate"], jobs["lyapunov"], jobs["gather"]) == (1, 1, 1), output[-3000:]
    assert "wildcards: study=tiny/, act=tanh, init=uniform, chunk=001" in output, output[-3000:]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    xr.testing.assert_identical(xr.load_dataset(victim), xr.load_dataset(tmp_path / "before.nc"))
    for path, before in gathered.items():
        xr.testing.assert_identical(xr.load_dataset(path), before)


@pytest.mark.slow
def test_killed_study_resumes_without_recomputing_and_gives_identical_tables(tiny_run, tmp_path):
    """SIGKILL Snakemake and its jobs mid-run, unlock, rerun: chunks Snakemake had seen finish
    are kept, and the final tables and gathered files equal those of the uninterrupted run."""
    import os
    import signal

    workdir = tmp_path / "killed"
    workdir.mkdir()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--configfile", str(TINY), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    outputs, finished, output = {}, [], None
    for line in proc.stdout:                     # Snakemake's progress log
        if match := re.match(r"\s+output: (results/tiny/lyapunov/\S+)", line):
            output = match.group(1)
        elif (match := re.match(r"\s+jobid: (\d+)", line)) and output:
            outputs[match.group(1)], output = output, None
        elif match := re.match(r"Finished jobid: (\d+) \(Rule: lyapunov\)", line):
            finished.append(workdir / outputs[match.group(1)])
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert finished, "no lyapunov job finished before the study ended"
    assert not (workdir / TINY_RESULTS / "tables").exists(), "the study finished before the kill"
    mtimes = {p: p.stat().st_mtime_ns for p in finished}
    for path in (workdir / "results").rglob("*.nc"):   # no half-written file looks complete
        xr.load_dataset(path)

    snakemake(workdir, "--unlock")
    output = snakemake(workdir, "--rerun-incomplete")
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes      # not recomputed
    reference = tiny_run[0]
    for name in ("classes.csv", "auc.csv", "summary.md"):
        assert (workdir / TINY_RESULTS / "tables" / name).read_text() == \
            (reference / TINY_RESULTS / "tables" / name).read_text(), name
    for act in ("tanh", "relu"):
        gathered = f"{TINY_RESULTS}/gather/{act}/uniform.nc"
        xr.testing.assert_equal(xr.load_dataset(workdir / gathered),
                                xr.load_dataset(reference / gathered))


@pytest.mark.slow
def test_truncated_chunk_stops_gather_with_the_file_named(tiny_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run[0], workdir, ignore=shutil.ignore_patterns(".snakemake"))
    victim = workdir / TINY_RESULTS / "lyapunov/tanh/uniform/chunk000.nc"
    victim.write_bytes(victim.read_bytes()[:2000])
    (workdir / TINY_RESULTS / "gather/tanh/uniform.nc").unlink()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--configfile", str(TINY), "--cores", "2",
           f"{TINY_RESULTS}/gather/tanh/uniform.nc"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    log = (workdir / "logs/tiny/gather/tanh/uniform.log").read_text()
    assert f"{victim.relative_to(workdir)}: cannot be read" in log
    assert f"delete {victim.relative_to(workdir)}" in log


@pytest.mark.parametrize("caption", sorted((ROOT / "workflow" / "report").glob("*.rst")),
                         ids=lambda p: p.name)
def test_report_captions_are_valid_restructuredtext(caption):
    """`snakemake --report` renders every caption with docutils; an error there (e.g. |x| read
    as a substitution) appears in the report instead of the text."""
    docutils_core = pytest.importorskip("docutils.core")
    docutils_core.publish_doctree(caption.read_text(encoding="utf-8"),
                                  settings_overrides={"halt_level": 3, "report_level": 5})
