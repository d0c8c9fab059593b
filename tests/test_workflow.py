"""The Snakemake workflow: DAG shape (dry runs through snakemake.api), a bad config rejected
before any job, and an end-to-end run of config/tiny.yaml in a temporary directory, including
the recomputation of one deleted chunk."""

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
from weightdyn.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
TINY = ROOT / "config" / "tiny.yaml"


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
            config_settings=ConfigSettings(configfiles=[configfile], config=config or {}),
            snakefile=SNAKEFILE,
            workdir=Path(workdir),
        )
        workflow_api.dag().execute_workflow(executor="dryrun", updated_files=planned)
    rules = collections.Counter()
    for path in planned:
        match = re.fullmatch(r"results/(\w+)/.*\.nc", path)
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
    rules, _ = plan(tmp_path, ROOT / "config" / f"{name}.yaml")
    assert rules == {"simulate": chunks, "lyapunov": chunks, "gather": gather, "prediction": gather}


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


def snakemake(workdir, *args):
    """Run the snakemake CLI on this checkout's Snakefile in ``workdir``; return its output."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
           "--directory", str(workdir), "--configfile", str(TINY), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    return output


@pytest.fixture(scope="module")
def tiny_cfg():
    with open(TINY, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny study run once in a fresh directory (shared by the end-to-end tests)."""
    workdir = tmp_path_factory.mktemp("tiny")
    start = time.perf_counter()
    output = snakemake(workdir)
    return workdir, output, time.perf_counter() - start


def chunk_files(workdir, stage="lyapunov"):
    return sorted((workdir / "results" / stage).rglob("chunk*.nc"))


@pytest.mark.slow
def test_tiny_study_outputs(tiny_run, tiny_cfg):
    workdir, output, elapsed = tiny_run
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    steps = tiny_cfg["training"]["steps"]
    curve = np.arange(0, steps + 1, tiny_cfg["recording"]["loss_curve_stride"])
    # the simulate chunks (propagators) are temporary: deleted once analysed
    assert chunk_files(workdir, "simulate") == []
    assert [p.relative_to(workdir).as_posix() for p in chunk_files(workdir)] == [
        f"results/lyapunov/{act}/uniform/chunk{k:03d}.nc" for act in ("relu", "tanh") for k in (0, 1)
    ]
    for act in ("tanh", "relu"):
        for k in (0, 1):
            path = workdir / f"results/lyapunov/{act}/uniform/chunk{k:03d}.nc"
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
        with xr.open_dataset(workdir / f"results/gather/{act}/uniform.nc") as ds:
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
                log = workdir / f"logs/{rule}/{act}/uniform/chunk{k:03d}.log"
                assert f"rule {rule} done" in log.read_text()
                assert (workdir / f"benchmarks/rules/{rule}/{act}/uniform/chunk{k:03d}.tsv").is_file()
        assert "rule gather done" in (workdir / f"logs/gather/{act}/uniform.log").read_text()
    classes = pd.read_csv(workdir / "results/tables/classes.csv")
    assert list(classes.columns) == ["activation", "initialization", "n", "frac_low",
                                     "frac_middle", "frac_high", "frac_diverged"]
    assert sorted(zip(classes.activation, classes.n)) == [("relu", 20), ("tanh", 20)]
    np.testing.assert_allclose(classes[["frac_low", "frac_middle", "frac_high"]].sum(axis=1), 1)
    auc = pd.read_csv(workdir / "results/tables/auc.csv")
    ok = auc[auc.computable]
    assert len(ok) and not ok[["auc_mean", "auc_std"]].isna().any().any()
    assert ((ok.auc_mean >= 0) & (ok.auc_mean <= 1)).all()
    assert (workdir / "results/tables/summary.md").read_text().startswith("# weightdyn")
    stamp = json.loads((workdir / "results/tables/provenance.json").read_text())
    assert stamp["weightdyn_version"] == __version__ and stamp["config"] == tiny_cfg
    from PIL import Image

    for k in range(1, 10):
        png = next((workdir / "results/figures").glob(f"fig{k}_*.png"))
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
def test_deleted_chunk_is_recomputed_alone_with_identical_results(tiny_run, tmp_path):
    workdir = tiny_run[0]
    victim = workdir / "results/lyapunov/tanh/uniform/chunk001.nc"
    tanh_gather = workdir / "results/gather/tanh/uniform.nc"
    relu_gather = workdir / "results/gather/relu/uniform.nc"
    shutil.copy(victim, tmp_path / "before.nc")
    gathered = {path: xr.load_dataset(path) for path in (tanh_gather, relu_gather)}
    mtimes = {p: p.stat().st_mtime_ns for p in chunk_files(workdir) + [relu_gather]
              if p != victim}

    # A chunk is an intermediate file: with the files made from it present, Snakemake (by
    # design, as for temp() files) sees nothing to do.
    victim.unlink()
    assert "Nothing to be done" in snakemake(workdir, "--dry-run")
    # Once the gathered file is gone too (as after gather stopped on a bad chunk and the chunk
    # was deleted, as its error message says), asking for it recomputes that chunk (simulation
    # included: the simulate chunks are temporary) and nothing else.
    tanh_gather.unlink()
    output = snakemake(workdir, str(tanh_gather.relative_to(workdir)))
    jobs = re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.M)
    assert collections.Counter(jobs) == {"simulate": 1, "lyapunov": 1, "gather": 1}, output[-3000:]
    assert "wildcards: act=tanh, init=uniform, chunk=001" in output, output[-3000:]
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
        if match := re.match(r"\s+output: (results/lyapunov/\S+)", line):
            output = match.group(1)
        elif (match := re.match(r"\s+jobid: (\d+)", line)) and output:
            outputs[match.group(1)], output = output, None
        elif match := re.match(r"Finished jobid: (\d+) \(Rule: lyapunov\)", line):
            finished.append(workdir / outputs[match.group(1)])
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert finished, "no lyapunov job finished before the study ended"
    assert not (workdir / "results/tables").exists(), "the study finished before the kill"
    mtimes = {p: p.stat().st_mtime_ns for p in finished}
    for path in (workdir / "results").rglob("*.nc"):   # no half-written file looks complete
        xr.load_dataset(path)

    snakemake(workdir, "--unlock")
    output = snakemake(workdir, "--rerun-incomplete")
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes      # not recomputed
    reference = tiny_run[0]
    for name in ("classes.csv", "auc.csv", "summary.md"):
        assert (workdir / "results/tables" / name).read_text() == \
            (reference / "results/tables" / name).read_text(), name
    for act in ("tanh", "relu"):
        xr.testing.assert_equal(xr.load_dataset(workdir / f"results/gather/{act}/uniform.nc"),
                                xr.load_dataset(reference / f"results/gather/{act}/uniform.nc"))


@pytest.mark.slow
def test_truncated_chunk_stops_gather_with_the_file_named(tiny_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run[0], workdir, ignore=shutil.ignore_patterns(".snakemake"))
    victim = workdir / "results/lyapunov/tanh/uniform/chunk000.nc"
    victim.write_bytes(victim.read_bytes()[:2000])
    (workdir / "results/gather/tanh/uniform.nc").unlink()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--configfile", str(TINY), "--cores", "2", "results/gather/tanh/uniform.nc"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    log = (workdir / "logs/gather/tanh/uniform.log").read_text()
    assert f"{victim.relative_to(workdir)}: cannot be read" in log
    assert f"delete {victim.relative_to(workdir)}" in log
