"""The study configuration: validation (standard library only; ``jsonschema`` for the schema
layer, imported when used).

:func:`validate_config` rejects a bad configuration before any job runs, with a
:class:`ConfigError` that names the offending key (dotted path, e.g. ``recording.jacobian_stride``)
and the allowed values. It runs two layers:

1. structure and types against the JSON schema (``workflow/schemas/config.schema.yaml``, passed
   by the Snakefile; unknown keys are rejected at every level);
2. relations between values that a schema cannot express: registered activations and
   initialisations, strict integers, strides dividing the steps, ordered thresholds, times, lags
   and windows inside the training, chunk size within the ensemble, teacher shapes, the run
   name (:func:`check_semantics`, what the Snakefile runs after Snakemake's schema validation).

The fan-out, config slices and resources are in :mod:`weightdyn.plan` (re-exported here).
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Mapping
from pathlib import Path

# The fan-out, config slices and resources live in weightdyn.plan (standard library only).
from .plan import (
    ACTIVATIONS,
    INITIALIZATIONS,
    RESERVED_RUN_NAMES,
    RUN_NAME_PATTERN,
    UNSWEEPABLE_KEYS,
    get_key,
    parameter_count,
    point_config,
    value_text,
)


class ConfigError(ValueError):
    """An invalid configuration; the message names the key and what is allowed."""


# --------------------------------------------------------------------------- helpers


def _key(path) -> str:
    """Dotted key of a path such as ``("lyapunov", "lags", 2)`` → ``lyapunov.lags[2]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<config>"


def _fail(key: str, problem: str) -> None:
    raise ConfigError(f"config key '{key}': {problem}")


def _get(cfg: Mapping, key: str):
    """Value at a dotted key; ConfigError naming the key if it is missing."""
    value = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(value, Mapping):
            _fail(".".join(parts[:depth]), f"must be a mapping, got {value!r}")
        if part not in value:
            _fail(key, "missing")
        value = value[part]
    return value


def _is_int(value) -> bool:
    # numpy integers register as numbers.Integral, numpy floats as numbers.Real; bools are not
    # numbers here (numpy.bool_ is neither)
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _int(cfg, key: str, minimum: int = 1) -> int:
    value = _get(cfg, key)
    if not _is_int(value):
        _fail(key, f"must be an integer ≥ {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        _fail(key, f"must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _number(cfg, key: str, positive: bool = False) -> float:
    value = _get(cfg, key)
    if not _is_number(value) or not math.isfinite(value):
        hint = ""
        if isinstance(value, str):
            hint = " (YAML reads 1e-3 and 1.0e8 as strings: write 1.0e-3, 1.0e+8)"
        _fail(key, f"must be a finite number, got {value!r}{hint}")
    if positive and value <= 0:
        _fail(key, f"must be > 0, got {value!r}")
    return float(value)


def _list(cfg, key: str) -> list:
    value = _get(cfg, key)
    if not isinstance(value, (list, tuple)) or not value:
        _fail(key, f"must be a non-empty list, got {value!r}")
    return list(value)


def _divisors(n: int, limit: int = 12) -> str:
    divs = [k for k in range(1, n + 1) if n % k == 0]
    shown = ", ".join(map(str, divs[:limit]))
    return shown + (", …" if len(divs) > limit else "")


# --------------------------------------------------------------------------- schema layer


def load_schema(schema) -> dict:
    """A schema given as a mapping, or a path to a YAML/JSON file."""
    if isinstance(schema, Mapping):
        return dict(schema)
    import yaml

    with open(Path(schema), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _schema_message(error) -> str:
    """One line naming the key of a jsonschema ValidationError and what is allowed."""
    path = list(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        lines = []
        for extra in sorted(set(instance) - set(allowed)):
            close = difflib.get_close_matches(extra, allowed, n=1)
            hint = f" (did you mean '{_key(path + [close[0]])}'?)" if close else ""
            lines.append(
                f"config key '{_key(path + [extra])}': unknown key{hint}; allowed keys"
                f"{' in ' + repr(_key(path)) if path else ''}: {allowed}"
            )
        return "\n".join(lines)
    if kind == "required":
        missing = [k for k in value if k not in instance]
        return "\n".join(f"config key '{_key(path + [k])}': missing (required)" for k in missing)
    key = _key(path)
    if kind == "enum":
        return f"config key '{key}': {instance!r} is not allowed; allowed values: {value}"
    if kind == "type":
        hint = ""
        if isinstance(instance, str) and value == "number":
            hint = " (YAML reads 1e-3 and 1.0e8 as strings: write 1.0e-3, 1.0e+8)"
        return f"config key '{key}': must be of type {value}, got {instance!r}{hint}"
    if kind == "minimum":
        return f"config key '{key}': must be ≥ {value}, got {instance!r}"
    if kind == "exclusiveMinimum":
        return f"config key '{key}': must be > {value}, got {instance!r}"
    if kind == "minItems":
        return f"config key '{key}': must have at least {value} item(s), got {instance!r}"
    if kind == "uniqueItems":
        return f"config key '{key}': must not contain duplicates, got {instance!r}"
    if kind == "pattern":
        return f"config key '{key}': {instance!r} must match the pattern {value!r}"
    return f"config key '{key}': {error.message}"


def check_schema(cfg: Mapping, schema) -> None:
    """Validate ``cfg`` against a JSON schema; ConfigError listing every violation by key."""
    import jsonschema

    schema = load_schema(schema)
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(cfg),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError("invalid configuration:\n" + "\n".join(map(_schema_message, errors)))


# --------------------------------------------------------------------------- semantic layer


def _check_names(cfg) -> None:
    for key, known in (("activations", list(ACTIVATIONS)),
                       ("initializations", list(INITIALIZATIONS))):
        values = _list(cfg, key)
        for i, name in enumerate(values):
            if name not in known:
                _fail(f"{key}[{i}]", f"unknown value {name!r}; allowed values: {known}")
        if len(set(values)) != len(values):
            _fail(key, f"must not contain duplicates, got {values}")


def _shape(value):
    """Shape of a rectangular nested list of finite numbers, or None."""
    if _is_number(value):
        return () if math.isfinite(value) else None
    if not isinstance(value, (list, tuple)) or not value:
        return None
    shapes = {_shape(item) for item in value}
    if len(shapes) != 1 or None in shapes:
        return None
    return (len(value), *shapes.pop())


def _check_teacher(cfg, inputs: int, outputs: int) -> None:
    """The teacher has the student's inputs and outputs and its own hidden width (b1's
    length), so that students of any width learn the same task."""
    b1 = _shape(_get(cfg, "task.teacher.b1"))
    hidden = b1[0] if b1 is not None and len(b1) == 1 else None
    if hidden is None:
        _fail("task.teacher.b1", f"must be a finite numeric vector (one bias per hidden unit of "
                                 f"the teacher), got {_get(cfg, 'task.teacher.b1')!r}")
    shapes = {"W1": (hidden, inputs), "W2": (outputs, hidden), "b2": (outputs,)}
    for name, shape in shapes.items():
        key = f"task.teacher.{name}"
        value = _get(cfg, key)
        found = _shape(value)
        if found is None:
            _fail(key, f"must be a finite numeric array of shape {shape}, got {value!r}")
        if found != shape:
            _fail(key, f"has shape {found}, the teacher (inputs={inputs}, hidden={hidden} from "
                       f"task.teacher.b1, outputs={outputs}) needs shape {shape}")


def _check_run(cfg) -> None:
    run = cfg.get("run", {})
    if not isinstance(run, Mapping):
        _fail("run", f"must be a mapping, got {run!r}")
    name = run.get("name", "")
    if not isinstance(name, str) or not re.fullmatch(RUN_NAME_PATTERN, name):
        _fail("run.name", f"must be empty (the default study) or a folder name of letters, "
                          f"digits, '_', '-', '.' (not starting with '.'), got {name!r}")
    if name in RESERVED_RUN_NAMES:
        _fail("run.name", f"{name!r} is an output folder of the default study; reserved: "
                          f"{list(RESERVED_RUN_NAMES)}")


def check_semantics(cfg: Mapping) -> None:
    """Relations between values (see module docstring); ConfigError naming the first bad key."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"the configuration must be a mapping, got {type(cfg).__name__}")
    _int(cfg, "seed", minimum=0)
    inputs, hidden, outputs = (_int(cfg, f"network.{k}") for k in ("inputs", "hidden", "outputs"))
    _check_names(cfg)
    _check_run(cfg)

    _int(cfg, "task.grid_points")
    low, high = _number(cfg, "task.grid_low"), _number(cfg, "task.grid_high")
    if not low < high:
        _fail("task.grid_low", f"must be < task.grid_high={high!r}, got {low!r}")
    _check_teacher(cfg, inputs, outputs)

    eta = _number(cfg, "training.learning_rate", positive=True)
    steps = _int(cfg, "training.steps")
    _number(cfg, "training.divergence_bound", positive=True)
    t_end = steps * eta

    networks = _int(cfg, "ensemble.networks")
    chunk = _int(cfg, "ensemble.chunk_size")
    if chunk > networks:
        _fail("ensemble.chunk_size",
              f"must be ≤ ensemble.networks={networks} (allowed: 1 … {networks}), got {chunk}")

    record = _int(cfg, "recording.record_stride")
    if record > steps:
        _fail("recording.record_stride",
              f"must be ≤ training.steps={steps} (allowed: 1 … {steps}), got {record}")
    stride = _int(cfg, "recording.jacobian_stride")
    if steps % stride:
        _fail("recording.jacobian_stride",
              f"must divide training.steps={steps}, got {stride}; allowed: {_divisors(steps)}")
    n_strides = steps // stride
    dtype = _get(cfg, "recording.propagator_dtype")
    if dtype not in ("float32", "float64"):
        _fail("recording.propagator_dtype", f"allowed values: ['float32', 'float64'], got {dtype!r}")
    if not isinstance(_get(cfg, "recording.keep_propagators"), bool):
        _fail("recording.keep_propagators", "must be true or false")
    curve = _int(cfg, "recording.loss_curve_stride")
    if curve % record or curve > steps:
        _fail("recording.loss_curve_stride",
              f"must be a multiple of recording.record_stride={record} and ≤ training.steps="
              f"{steps}, got {curve}")

    c_low = _number(cfg, "classes.low", positive=True)
    c_high = _number(cfg, "classes.high", positive=True)
    if not c_low < c_high:
        _fail("classes.low", f"must be < classes.high={c_high!r} (low < high), got {c_low!r}")

    forward = _int(cfg, "lyapunov.forward_transient", minimum=0)
    backward = _int(cfg, "lyapunov.backward_transient", minimum=0)
    if forward + backward >= n_strides:
        _fail("lyapunov.backward_transient",
              f"lyapunov.forward_transient + lyapunov.backward_transient = {forward + backward} "
              f"strides must be < the {n_strides} strides of the training (training.steps / "
              f"recording.jacobian_stride), or no CLV is converged")
    window = _int(cfg, "lyapunov.window")
    if window > n_strides:
        _fail("lyapunov.window", f"{window} strides is longer than the training ({n_strides} "
                                 f"strides); allowed: 1 … {n_strides}")
    for i, lag in enumerate(_list(cfg, "lyapunov.lags")):
        key = f"lyapunov.lags[{i}]"
        if not _is_int(lag) or lag < 1:
            _fail(key, f"must be a positive integer number of steps, got {lag!r}")
        if lag % stride:
            _fail(key, f"{lag} steps is not a multiple of recording.jacobian_stride={stride}")
        if lag > steps:
            _fail(key, f"{lag} steps is longer than the training (training.steps={steps}); "
                       f"allowed: multiples of {stride} up to {steps}")
    output_stride = _int(cfg, "lyapunov.output_stride")
    if output_stride > n_strides:
        _fail("lyapunov.output_stride", f"{output_stride} strides is longer than the training "
                                        f"({n_strides} strides); allowed: 1 … {n_strides}")
    threshold = _number(cfg, "lyapunov.tangency_threshold", positive=True)
    if threshold > math.pi / 2:
        _fail("lyapunov.tangency_threshold", f"must be in (0, π/2] rad, got {threshold!r}")

    times = _list(cfg, "prediction.times")
    for i, t in enumerate(times):
        key = f"prediction.times[{i}]"
        if not _is_number(t) or not 0 < t <= t_end + 1e-12 * t_end:
            _fail(key, f"flow time {t!r} is outside the training: allowed (0, {t_end:g}] "
                       f"(training.steps × training.learning_rate)")
    headline = _number(cfg, "prediction.headline_time", positive=True)
    if not any(math.isclose(headline, t, rel_tol=1e-9) for t in times):
        _fail("prediction.headline_time", f"must be one of prediction.times={times}, got {headline!r}")
    folds = _int(cfg, "prediction.folds", minimum=2)
    if folds > networks:
        _fail("prediction.folds", f"must be ≤ ensemble.networks={networks}, got {folds}")
    _int(cfg, "prediction.cv_seed", minimum=0)
    _int(cfg, "prediction.repeats")
    dt = stride * eta
    for i, t in enumerate(times):
        if round(t / dt) < 1:
            _fail(f"prediction.times[{i}]", f"flow time {t!r} is shorter than one propagator "
                                            f"stride (recording.jacobian_stride × "
                                            f"training.learning_rate = {dt:g})")
    slope = _int(cfg, "prediction.slope_steps")
    if slope > steps:
        _fail("prediction.slope_steps", f"must be ≤ training.steps={steps}, got {slope}")
    d = parameter_count(cfg)
    for i, v in enumerate(_list(cfg, "prediction.clv_vectors")):
        if not _is_int(v) or not 1 <= v <= d:
            _fail(f"prediction.clv_vectors[{i}]", f"must be a CLV index in 1 … {d} (the number "
                                                  f"of parameters), got {v!r}")
    middle = _number(cfg, "prediction.min_middle_fraction")
    if not 0 <= middle <= 1:
        _fail("prediction.min_middle_fraction", f"must be in [0, 1], got {middle!r}")
    clv_lag = _int(cfg, "prediction.clv_lag")
    if clv_lag not in _list(cfg, "lyapunov.lags"):
        _fail("prediction.clv_lag", f"must be one of lyapunov.lags={_list(cfg, 'lyapunov.lags')}, "
                                    f"got {clv_lag}")
    if cfg.get("sweep"):
        _check_sweep(cfg)


def _check_sweep(cfg) -> None:
    """A sweep names a folder, a config key that exists and is a science value, and distinct
    values; every point's configuration (:func:`weightdyn.plan.point_config`) must be valid —
    its error names the point and the key."""
    sweep = cfg["sweep"]
    if not isinstance(sweep, Mapping):
        _fail("sweep", f"must be a mapping with keys name, key, values, got {sweep!r}")
    name = sweep.get("name")
    if not isinstance(name, str) or not re.fullmatch(RUN_NAME_PATTERN, name) or not name:
        _fail("sweep.name", f"must be a folder name of letters, digits, '_', '-', '.', got "
                            f"{name!r}")
    key = sweep.get("key")
    if not isinstance(key, str):
        _fail("sweep.key", f"must be a dotted config key such as 'training.learning_rate', got "
                           f"{key!r}")
    if any(key == k or key.startswith(k + ".") for k in UNSWEEPABLE_KEYS):
        _fail("sweep.key", f"{key!r} cannot be swept (not swept: {list(UNSWEEPABLE_KEYS)})")
    try:
        current = get_key(cfg, key)
    except KeyError:
        _fail("sweep.key", f"{key!r} is not a key of the configuration")
    if isinstance(current, Mapping):
        _fail("sweep.key", f"{key!r} is a section; name one of its keys: {sorted(current)}")
    values = _list(cfg, "sweep.values")
    texts = [value_text(v) for v in values]
    if len(set(texts)) != len(texts):
        _fail("sweep.values", f"must be distinct, got {values}")
    for i, value in enumerate(values):
        if not re.fullmatch(RUN_NAME_PATTERN, value_text(value)):
            _fail(f"sweep.values[{i}]", f"{value!r} cannot name a folder")
        try:
            check_semantics(point_config(cfg, value))
        except ConfigError as exc:
            raise ConfigError(f"sweep point {key} = {value_text(value)} (sweep.values[{i}]): "
                              f"{exc}") from None


def validate_config(cfg: Mapping, schema=None) -> None:
    """Reject an invalid configuration with a :class:`ConfigError` naming the key.

    ``schema`` (a mapping or a path to the YAML schema) adds the structural check, unknown keys
    included; without it only the semantic checks run (missing keys are still reported).
    """
    if schema is not None:
        check_schema(cfg, schema)
    check_semantics(cfg)
