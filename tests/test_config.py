"""Config validation (one test per bad-config case, each asserting the key is named) and the
fan-out helpers of weightdyn.plan."""

import copy
from pathlib import Path

import pytest
import yaml

from weightdyn import activations, initialization, plan
from weightdyn.config import (
    ConfigError, validate_config,
)
from weightdyn.plan import (
    chunk_id,
    chunk_ids,
    chunk_range,
    chunk_ranges,
    combinations,
    gather_resources,
    simulate_resources,
    simulation_config,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name="config.yaml"):
    """A shipped configuration as the workflow sees it: config.yaml with the overlay ``name``."""
    return plan.load_config(*([ROOT / name] if name != "config.yaml" else []))


def read_yaml(path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def cfg(config):
    """A modifiable copy of config.yaml (conftest.py)."""
    return config


def reject(cfg, *fragments, schema=SCHEMA):
    """validate_config must raise ConfigError whose message contains every fragment."""
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, schema=schema)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------- valid configs


@pytest.mark.parametrize("name", ["config.yaml", "config/quick.yaml", "config/tiny.yaml"])
def test_shipped_configs_are_valid(name):
    validate_config(load(name), schema=SCHEMA)


def test_shipped_overlays_are_short_named_runs_or_sweeps():
    """config/*.yaml are overlays of config.yaml: a few keys, each with its own run name, or a
    sweep (config/sweep_<name>.yaml) whose points have their own folders."""
    base = read_yaml(ROOT / "config.yaml")
    assert base["run"]["name"] == "" and "sweep" not in base
    names, sweeps = set(), set()
    for path in sorted((ROOT / "config").glob("*.yaml")):
        overlay = read_yaml(path)
        assert len(path.read_text().splitlines()) < 40, path.name
        if "sweep" in overlay:
            assert overlay["sweep"]["name"] == path.stem.removeprefix("sweep_"), path.name
            assert set(overlay) - {"sweep"} <= set(base), path.name
            sweeps.add(overlay["sweep"]["name"])
            continue
        assert set(overlay) <= set(base), path.name
        assert overlay["run"]["name"] == path.stem, path.name
        names.add(overlay["run"]["name"])
    assert names >= {"quick", "tiny"} and sweeps == {"learning_rate", "hidden"}


def test_load_config_merges_overlays_deeply():
    tiny = load("config/tiny.yaml")
    assert tiny["run"]["name"] == "tiny"
    assert tiny["training"] == {**load()["training"], "steps": 200}   # other keys kept
    assert tiny["lyapunov"]["lags"] == [5, 10, 20, 50]                 # lists replaced
    assert plan.load_config({"seed": 1}, {"seed": 2})["seed"] == 2     # in order


def test_schema_defaults_are_config_yaml():
    """Every key of config.yaml has a schema default equal to its value (and nothing else has
    one), so that Snakemake completes an overlay given alone to the config.yaml study."""
    snakemake_utils = pytest.importorskip("snakemake.utils")
    base = read_yaml(ROOT / "config.yaml")
    completed = {}
    snakemake_utils.validate(completed, str(SCHEMA))
    assert completed == base
    tiny = read_yaml(ROOT / "config" / "tiny.yaml")
    snakemake_utils.validate(tiny, str(SCHEMA))
    assert tiny == load("config/tiny.yaml")


def test_registered_names_agree_with_the_numerical_modules():
    assert list(plan.ACTIVATIONS) == activations.names()
    assert tuple(plan.INITIALIZATIONS) == tuple(initialization.SCHEMES)


def test_figure_names_agree_with_the_figures_module():
    from weightdyn import figures

    assert plan.FIGURE_NAMES == list(figures.FIGURES)


@pytest.mark.parametrize("name", ["a b", "../x", ".hidden", "x/y", "simulate",
                                  "tables", 5])
def test_bad_run_name(cfg, name):
    cfg["run"]["name"] = name
    with pytest.raises(ConfigError, match=r"run\.name"):
        validate_config(cfg)


def test_run_prefix(cfg):
    assert plan.run_prefix(cfg) == ""
    assert plan.run_prefix({}) == ""
    cfg["run"]["name"] = "quick"
    assert plan.run_prefix(cfg) == "quick/"
    assert "run" not in plan.science_config(cfg)


def test_valid_without_schema(cfg):
    validate_config(cfg)


# --------------------------------------------------------------------------- unknown names


def test_unknown_activation_names_key_and_registry(cfg):
    cfg["activations"] = ["tanh", "relux"]
    message = reject(cfg, "activations[1]", "relux")
    for name in activations.names():
        assert name in message


def test_unknown_initialization_names_key_and_schemes(cfg):
    cfg["initializations"] = ["glorot"]
    message = reject(cfg, "initializations[0]", "glorot")
    for name in initialization.SCHEMES:
        assert name in message


def test_duplicate_activation(cfg):
    cfg["activations"] = ["tanh", "tanh"]
    reject(cfg, "activations", "duplicates")


def test_unknown_propagator_dtype_lists_allowed(cfg):
    cfg["recording"]["propagator_dtype"] = "float16"
    reject(cfg, "recording.propagator_dtype", "float32", "float64")


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("key", ["ensemble.networks", "ensemble.chunk_size", "training.steps",
                                 "recording.record_stride", "recording.jacobian_stride",
                                 "network.hidden", "lyapunov.window", "task.grid_points"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_count(cfg, key, value):
    section, name = key.split(".")
    cfg[section][name] = value
    reject(cfg, key)


@pytest.mark.parametrize("value", [12.5, "8000"])
def test_non_integer_count_schema(cfg, value):
    cfg["ensemble"]["networks"] = value
    reject(cfg, "ensemble.networks")


@pytest.mark.parametrize("value", [8000.0, True])
def test_integral_float_or_bool_count_is_rejected(cfg, value):
    # JSON schema accepts 8000.0 as an integer; the semantic check insists on a real int
    cfg["ensemble"]["networks"] = value
    reject(cfg, "ensemble.networks", "integer")


def test_negative_seed(cfg):
    cfg["seed"] = -1
    reject(cfg, "seed")


def test_folds_below_two(cfg):
    cfg["prediction"]["folds"] = 1
    reject(cfg, "prediction.folds")


def test_non_positive_learning_rate(cfg):
    cfg["training"]["learning_rate"] = 0.0
    reject(cfg, "training.learning_rate")


def test_number_written_as_string_gets_a_hint(cfg):
    cfg["training"]["learning_rate"] = "1e-3"
    reject(cfg, "training.learning_rate", "1.0e-3")


# --------------------------------------------------------------------------- strides and times


def test_jacobian_stride_must_divide_steps(cfg):
    cfg["recording"]["jacobian_stride"] = 7
    reject(cfg, "recording.jacobian_stride", "training.steps=3000", "1, 2, 3")


def test_record_stride_longer_than_training(cfg):
    cfg["recording"]["record_stride"] = 3001
    reject(cfg, "recording.record_stride", "3000")


def test_loss_curve_stride_not_multiple_of_record_stride(cfg):
    cfg["recording"]["loss_curve_stride"] = 55
    reject(cfg, "recording.loss_curve_stride", "record_stride=10")


@pytest.mark.parametrize("low, high", [(100.0, 100.0), (200.0, 100.0)])
def test_class_thresholds_not_ordered(cfg, low, high):
    cfg["classes"]["low"], cfg["classes"]["high"] = low, high
    reject(cfg, "classes.low", "classes.high")


@pytest.mark.parametrize("t", [0.0, -0.01, 3.5])
def test_prediction_time_outside_training(cfg, t):
    cfg["prediction"]["times"] = [0.015, t]
    reject(cfg, "prediction.times[1]", "(0, 3]")


def test_prediction_time_at_end_of_training_is_allowed(cfg):
    cfg["prediction"]["times"] = [0.015, 3.0]
    validate_config(cfg, schema=SCHEMA)


def test_headline_time_not_among_times(cfg):
    cfg["prediction"]["headline_time"] = 0.02
    reject(cfg, "prediction.headline_time")


def test_lag_longer_than_training(cfg):
    cfg["lyapunov"]["lags"] = [5, 3005]
    reject(cfg, "lyapunov.lags[1]", "longer than the training")


def test_lag_not_multiple_of_jacobian_stride(cfg):
    cfg["lyapunov"]["lags"] = [5, 12]
    reject(cfg, "lyapunov.lags[1]", "jacobian_stride=5")


def test_window_longer_than_training(cfg):
    cfg["lyapunov"]["window"] = 601
    reject(cfg, "lyapunov.window", "600 strides")


def test_clv_lag_must_be_an_analysed_lag(cfg):
    cfg["prediction"]["clv_lag"] = 15
    reject(cfg, "prediction.clv_lag", "one of lyapunov.lags")


def test_prediction_time_shorter_than_a_stride(cfg):
    cfg["prediction"]["times"] = [0.002, 0.015]
    reject(cfg, "prediction.times[0]", "shorter than one propagator stride")


@pytest.mark.parametrize("vectors", [[5, 10], [0, 5]])
def test_clv_vectors_must_be_clv_indices(cfg, vectors):
    cfg["prediction"]["clv_vectors"] = vectors
    key = "prediction.clv_vectors[1]" if vectors[1] == 10 else "prediction.clv_vectors"
    reject(cfg, key)


def test_min_middle_fraction_is_a_fraction(cfg):
    cfg["prediction"]["min_middle_fraction"] = 1.5
    reject(cfg, "prediction.min_middle_fraction")


def test_slope_window_longer_than_training(cfg):
    cfg["prediction"]["slope_steps"] = 3001
    reject(cfg, "prediction.slope_steps", "training.steps=3000")


def test_output_stride_longer_than_training(cfg):
    cfg["lyapunov"]["output_stride"] = 601
    reject(cfg, "lyapunov.output_stride", "600 strides")


def test_transients_longer_than_training(cfg):
    cfg["lyapunov"]["backward_transient"] = 600
    reject(cfg, "lyapunov.backward_transient", "600 strides")


def test_tangency_threshold_above_right_angle(cfg):
    cfg["lyapunov"]["tangency_threshold"] = 2.0
    reject(cfg, "lyapunov.tangency_threshold")


def test_grid_bounds_not_ordered(cfg):
    cfg["task"]["grid_low"] = 1.0
    reject(cfg, "task.grid_low", "task.grid_high")


# --------------------------------------------------------------------------- ensemble, keys, shapes


def test_chunk_size_larger_than_ensemble(cfg):
    cfg["ensemble"]["chunk_size"] = 8001
    reject(cfg, "ensemble.chunk_size", "ensemble.networks=8000")


def test_unknown_top_level_key(cfg):
    cfg["taks"] = {}
    reject(cfg, "'taks'", "unknown key", "did you mean 'task'")


def test_unknown_nested_key_names_path_and_allowed_keys(cfg):
    cfg["recording"]["record_strid"] = 5
    reject(cfg, "recording.record_strid", "did you mean 'recording.record_stride'",
           "jacobian_stride")


def test_unknown_deeply_nested_key(cfg):
    cfg["task"]["teacher"]["W3"] = [[1.0]]
    reject(cfg, "task.teacher.W3", "unknown key")


def test_missing_key_with_schema(cfg):
    del cfg["training"]["steps"]
    reject(cfg, "training.steps", "missing")


def test_missing_key_without_schema(cfg):
    del cfg["ensemble"]["chunk_size"]
    reject(cfg, "ensemble.chunk_size", "missing", schema=None)


def test_teacher_shape_does_not_match_network(cfg):
    cfg["task"]["teacher"]["W1"] = [[2.0, -1.0, 0.5], [1.0, 2.5, 0.5]]
    reject(cfg, "task.teacher.W1", "(2, 3)", "(2, 2)")


def test_network_inputs_do_not_match_teacher(cfg):
    cfg["network"]["inputs"] = 3
    reject(cfg, "task.teacher.W1", "inputs=3", "(2, 3)")


def test_teacher_layers_must_agree_on_its_width(cfg):
    cfg["task"]["teacher"]["b1"] = [0.5, -0.5, 0.0]
    reject(cfg, "task.teacher.W1", "hidden=3 from task.teacher.b1")


def test_student_may_be_wider_than_the_teacher(cfg):
    """The teacher keeps its own width (the width sweep): a 2-6-1 student of the 2-2-1
    teacher is valid."""
    cfg["network"]["hidden"] = 6
    cfg["prediction"]["clv_vectors"] = [21, 22, 23, 24]
    validate_config(cfg)


def test_larger_network_with_matching_teacher_is_valid(cfg):
    cfg["network"].update(inputs=3, hidden=4, outputs=2)
    cfg["task"]["teacher"] = {"W1": [[0.1] * 3] * 4, "b1": [0.0] * 4,
                              "W2": [[1.0] * 4] * 2, "b2": [0.0, 0.5]}
    validate_config(cfg, schema=SCHEMA)


def test_every_schema_violation_is_reported(cfg):
    cfg["ensemble"]["networks"] = 0
    cfg["recording"]["bogus"] = 1
    reject(cfg, "ensemble.networks", "recording.bogus")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- fan-out


def test_chunk_ranges_cover_the_ensemble_in_order():
    assert chunk_ranges(8000, 500) == [(k * 500, (k + 1) * 500) for k in range(16)]
    assert chunk_ranges(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert chunk_ranges(10, 10) == [(0, 10)]
    assert chunk_ranges(3, 1) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("args", [(0, 5), (10, 0), (10.0, 5)])
def test_chunk_ranges_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        chunk_ranges(*args)


def test_chunk_ids_are_zero_padded():
    assert chunk_id(0, 16) == "000"
    assert chunk_id(15, 16) == "015"
    assert chunk_id(999, 1000) == "999"
    assert chunk_id(7, 1001) == "0007"
    with pytest.raises(ValueError):
        chunk_id(16, 16)


def test_chunk_ids_and_ranges_from_config(cfg):
    assert chunk_ids(cfg) == [f"{k:03d}" for k in range(16)]
    assert chunk_range(cfg, "015") == (7500, 8000)
    cfg["ensemble"].update(networks=25, chunk_size=10)
    assert chunk_ids(cfg) == ["000", "001", "002"]
    assert chunk_range(cfg, "002") == (20, 25)
    with pytest.raises(ValueError, match="chunk '003' does not exist"):
        chunk_range(cfg, "003")
    with pytest.raises(ValueError):
        chunk_range(cfg, "2")  # not zero-padded: not a chunk file name of this study


def test_combinations_in_config_order(cfg):
    assert combinations(cfg) == [("tanh", "uniform"), ("tanh", "normal"),
                                 ("relu", "uniform"), ("relu", "normal")]


def test_simulation_config_ignores_chunking_and_analysis(cfg):
    base = simulation_config(cfg)
    other = copy.deepcopy(cfg)
    other["ensemble"]["chunk_size"] = 100
    other["recording"]["keep_propagators"] = True
    other["recording"]["loss_curve_stride"] = 100
    other["lyapunov"]["window"] = 3
    other["classes"]["low"] = 1.0
    assert simulation_config(other) == base
    other["recording"]["record_stride"] = 20
    assert simulation_config(other) != base
    assert set(base) == {"seed", "network", "task", "training", "recording"}


def test_simulate_resources_formula(cfg):
    res = simulate_resources(cfg, 500)
    # K = 600 propagators of 9 x 9, R = 302 records of (9 + 1) values, 3001 steps of cost and
    # gradient norm, float64, twice
    per_network = 8 * (600 * 81 + 302 * 10 + 2 * 3001)
    assert res["mem_mb"] == 1000 + -(-2 * 500 * per_network // 10**6)
    assert res["runtime"] == 10 + 3   # ceil(500 * 3000 * 81 * 100 / 5e9) = 3
    assert simulate_resources(cfg, 100)["mem_mb"] < res["mem_mb"]


def test_gather_resources_are_modest(cfg):
    res = gather_resources(cfg)
    assert 1000 < res["mem_mb"] < 2500
    assert res["runtime"] >= 10


def test_rule_slices_are_config_shaped_and_round_trip(cfg):
    analysis = plan.analysis_config(cfg)
    as_config = plan.analysis_as_config(analysis)
    assert plan.analysis_config(as_config) == analysis
    assert plan.simulation_config(as_config) == plan.simulation_config(cfg)
    gather = plan.gather_config(cfg)
    assert plan.analysis_config(gather) == analysis and gather["classes"] == cfg["classes"]
    assert plan.predict_config(cfg) == {"prediction": cfg["prediction"],
                                        "classes": cfg["classes"]}
    assert plan.report_config(cfg) == cfg["prediction"]
    # slices ignore what their rule does not read
    other = copy.deepcopy(cfg)
    other["prediction"]["folds"] = 3
    other["ensemble"]["chunk_size"] = 100
    other["run"]["name"] = "other"
    assert plan.analysis_config(other) == analysis and plan.gather_config(other) == gather


def test_lyapunov_resources_formula(cfg):
    res = plan.lyapunov_resources(cfg, 500)
    assert res["mem_mb"] == 1000 + -(-3 * 500 * 8 * 600 * 81 // 10**6)
    assert res["runtime"] == 10 + 1
