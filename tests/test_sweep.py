"""Sweeps: the point configurations (weightdyn.plan.point_config), their validation, and a tiny
sweep run end to end by Snakemake."""

import collections
import copy
import math
import re

import numpy as np
import pytest
import xarray as xr
from test_workflow import ROOT, TINY, plan as dry_run, snakemake

from weightdyn import plan
from weightdyn.config import ConfigError, check_semantics, validate_config
from weightdyn.network import Architecture
from weightdyn.task import teacher_task

LEARNING_RATE = ROOT / "config" / "sweep_learning_rate.yaml"
HIDDEN = ROOT / "config" / "sweep_hidden.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def with_sweep(cfg, key, values, name="s"):
    cfg = copy.deepcopy(cfg)
    cfg["sweep"] = {"name": name, "key": key, "values": values}
    return cfg


# --------------------------------------------------------------------------- point configurations


def test_learning_rate_points_keep_the_flow_time(default_config):
    """Steps scale with 1/η (t_end = 3 fixed); strides, lags and windows keep their flow time as
    closely as whole steps allow; prediction times move onto the point's grid, never later."""
    cfg = plan.load_config(LEARNING_RATE)
    base = default_config
    t_end = base["training"]["steps"] * base["training"]["learning_rate"]
    for eta, prefix, point in plan.sweep_points(cfg):
        check_semantics(point)
        assert prefix == f"sweeps/learning_rate/learning_rate={eta:g}/"
        train, rec, lya, pred = (point[k] for k in ("training", "recording", "lyapunov",
                                                     "prediction"))
        assert train["learning_rate"] == eta and math.isclose(train["steps"] * eta, t_end)
        stride = rec["jacobian_stride"]
        dt = stride * eta
        assert train["steps"] % stride == 0
        assert all(lag % stride == 0 and lag <= train["steps"] for lag in lya["lags"])
        assert pred["clv_lag"] in lya["lags"]
        base_dt = base["recording"]["jacobian_stride"] * base["training"]["learning_rate"]
        assert lya["backward_transient"] * dt == pytest.approx(
            base["lyapunov"]["backward_transient"] * base_dt, rel=0.3)
        for t, t0 in zip(pred["times"], base["prediction"]["times"]):
            assert t <= t0 + 1e-12 and (t0 - t < dt or t == dt)
            assert abs(t / dt - round(t / dt)) < 1e-9
        assert pred["headline_time"] in pred["times"]
    # η = 4e-3: one-step strides of flow time 0.004; t* = 0.015 → 0.012 (3 steps)
    last = plan.sweep_points(cfg)[-1][2]
    assert last["recording"]["jacobian_stride"] == 1 and last["training"]["steps"] == 750
    assert last["prediction"]["headline_time"] == 0.012


def test_the_base_value_is_the_base_study(default_config):
    """A sweep point at the base configuration's own value is that study (same science
    configuration, hence the same files)."""
    for key in ("training.learning_rate", "network.hidden", "seed"):
        value = plan.get_key(default_config, key)
        point = plan.point_config(with_sweep(default_config, key, [value]), value)
        assert point == default_config, key


def test_width_points_keep_the_clv_positions_and_the_teacher(default_config):
    cfg = plan.load_config(HIDDEN)
    points = plan.sweep_points(cfg)
    assert [p for _, p, _ in points] == [f"sweeps/hidden/hidden={h}/" for h in (2, 3, 4, 6)]
    base_task = teacher_task(Architecture.from_config(default_config), "tanh",
                             default_config["task"])
    for hidden, _, point in points:
        check_semantics(point)
        d = plan.parameter_count(point)
        assert d == 4 * hidden + 1
        assert point["prediction"]["clv_vectors"] == [d - 4, d - 3, d - 2, d - 1]
        assert point["task"] == default_config["task"]          # the same 2-2-1 teacher
        task = teacher_task(Architecture.from_config(point), "tanh", point["task"])
        np.testing.assert_array_equal(task.targets, base_task.targets)


def test_studies_are_the_run_or_the_sweep_points(default_config):
    assert plan.studies(default_config) == {"": default_config}
    named = copy.deepcopy(default_config)
    named["run"]["name"] = "other"
    assert list(plan.studies(named)) == ["other/"]
    swept = with_sweep(named, "seed", [1, 2], name="seeds")
    assert list(plan.studies(swept)) == ["other/sweeps/seeds/seed=1/", "other/sweeps/seeds/seed=2/"]
    assert all("sweep" not in point for point in plan.studies(swept).values())


@pytest.mark.parametrize("key, values, message", [
    ("training.learning_rat", [1e-3], r"sweep\.key.*not a key"),
    ("training", [1], r"sweep\.key.*is a section"),
    ("run.name", ["a"], r"sweep\.key.*cannot be swept"),
    ("recording.keep_propagators", [True], r"sweep\.key.*cannot be swept"),
    ("training.learning_rate", [1e-3, 0.001], r"sweep\.values.*distinct"),
    ("network.hidden", [2, 0], r"sweep point network\.hidden = 0 \(sweep\.values\[1\]\): "
                               r"config key 'network\.hidden'"),
    ("recording.jacobian_stride", [5, 7], r"sweep point recording\.jacobian_stride = 7.*"
                                          r"must divide training\.steps"),
])
def test_bad_sweep_is_rejected_naming_the_key(default_config, key, values, message):
    with pytest.raises(ConfigError, match=message):
        check_semantics(with_sweep(default_config, key, values))


def test_sweep_section_is_checked_by_the_schema(default_config):
    cfg = with_sweep(default_config, "seed", [1])
    validate_config(cfg, schema=SCHEMA)
    del cfg["sweep"]["values"]
    with pytest.raises(ConfigError, match=r"sweep\.values.*missing"):
        validate_config(cfg, schema=SCHEMA)


@pytest.mark.parametrize("overlay, points, chunks", [(LEARNING_RATE, 5, 4), (HIDDEN, 4, 8)])
def test_dry_run_of_the_shipped_sweeps(tmp_path, overlay, points, chunks):
    """Every point is a complete study under results/sweeps/<name>/<point>/ (no figures), plus
    the sweep's table and figure; nothing else is written."""
    rules, planned = dry_run(tmp_path, [ROOT / "config.yaml", overlay])
    name = plan.load_config(overlay)["sweep"]["name"]
    jobs = collections.Counter(re.match(r"results/sweeps/[^/]+/[^/]+/(\w+)/", path).group(1)
                               for path in planned if path.endswith(".nc")
                               and path.startswith("results/sweeps/"))
    assert jobs == {"simulate": points * 4 * chunks, "lyapunov": points * 4 * chunks,
                    "gather": points * 4, "prediction": points * 4}
    assert f"results/tables/sweep_{name}.csv" in planned
    assert f"results/figures/sweep_{name}.png" in planned
    assert not any("/figures/fig" in path for path in planned)
    assert all(path.startswith(f"results/sweeps/{name}/") or f"sweep_{name}" in path
               for path in planned), planned


# --------------------------------------------------------------------------- end to end

SWEEP_OVERLAY = "sweep: {name: lr, key: training.learning_rate, values: [1.0e-3, 2.0e-3]}\n"
POINTS = {eta: f"results/tiny/sweeps/lr/learning_rate={eta:g}" for eta in (1e-3, 2e-3)}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """In one directory: the tiny study, then a sweep of its learning rate over two values, one
    of them the tiny study's own."""
    workdir = tmp_path_factory.mktemp("sweep")
    overlay = workdir / "sweep.yaml"
    overlay.write_text(SWEEP_OVERLAY)
    snakemake(workdir)
    output = snakemake(workdir, configfiles=(TINY, overlay))
    return workdir, overlay, output


@pytest.mark.slow
def test_tiny_sweep_runs_every_point_and_summarises(tiny_sweep):
    workdir, _, _ = tiny_sweep
    for eta, folder in POINTS.items():
        for act in ("tanh", "relu"):
            with xr.open_dataset(workdir / folder / f"gather/{act}/uniform.nc") as ds:
                assert ds.attrs["learning_rate"] == eta
                assert ds.attrs["steps"] * eta == pytest.approx(0.2)     # flow time kept
                assert np.isfinite(ds["final_hessian_max"].values[ds["diverged"].values == 0]).all()
        for name in plan.TABLE_NAMES:
            assert (workdir / folder / "tables" / name).is_file()
        assert not (workdir / folder / "figures").exists()
    table = (workdir / "results/tiny/tables/sweep_lr.csv").read_text().splitlines()
    assert table[0].startswith("value,activation,initialization,n,frac_low,frac_middle,frac_high")
    assert [line.split(",")[:3] for line in table[1:]] == [
        ["0.001", "tanh", "uniform"], ["0.001", "relu", "uniform"],
        ["0.002", "tanh", "uniform"], ["0.002", "relu", "uniform"]]
    assert (workdir / "results/tiny/figures/sweep_lr.pdf").stat().st_size > 0
    assert "## Sweep lr" in (workdir / "results/tiny/tables/sweep_lr.md").read_text()


@pytest.mark.slow
def test_sweep_point_at_the_base_value_reproduces_the_study_byte_for_byte(tiny_sweep):
    """The sweep code path changes nothing: the point at the tiny study's own learning rate
    has the tiny study's tables and prediction files, byte for byte."""
    workdir = tiny_sweep[0]
    study, point = workdir / "results/tiny", workdir / POINTS[1e-3]
    for name in ("tables/classes.csv", "tables/auc.csv", "tables/curvature.csv",
                 "tables/summary.md", "prediction/tanh/uniform.csv",
                 "prediction/relu/uniform.csv"):
        assert (point / name).read_bytes() == (study / name).read_bytes(), name
    for path in sorted((study / "lyapunov").rglob("*.nc")):
        xr.testing.assert_identical(xr.load_dataset(path),
                                    xr.load_dataset(point / path.relative_to(study)))


@pytest.mark.slow
def test_finished_sweep_has_nothing_to_do_and_a_deleted_point_is_recomputed_alone(tiny_sweep):
    workdir, overlay, _ = tiny_sweep
    assert "Nothing to be done" in snakemake(workdir, "--dry-run", configfiles=(TINY, overlay))
    kept = {p: p.stat().st_mtime_ns for p in (workdir / POINTS[1e-3]).rglob("*") if p.is_file()}
    table = workdir / "results/tiny/tables/sweep_lr.csv"
    before = table.read_bytes()
    for path in sorted((workdir / POINTS[2e-3]).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    output = snakemake(workdir, configfiles=(TINY, overlay))
    jobs = collections.Counter(re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.M))
    assert jobs == {"simulate": 4, "lyapunov": 4, "gather": 2, "predict": 2, "tables": 1,
                    "sweep": 1, "study": 1}, output[-3000:]
    assert set(re.findall(r"wildcards: study=([^,\n]*)", output)) == {"tiny/sweeps/lr/learning_rate=0.002/"}
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert table.read_bytes() == before                         # bit-for-bit reproducible
