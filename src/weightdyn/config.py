"""The study configuration: validation, fan-out into jobs, and job resources.

:func:`validate_config` rejects a bad configuration before any job runs, with a
:class:`ConfigError` that names the offending key (dotted path, e.g. ``recording.jacobian_stride``)
and the allowed values. It runs two layers:

1. structure and types against the JSON schema (``workflow/schemas/config.schema.yaml``, passed
   by the Snakefile; unknown keys are rejected at every level);
2. relations between values that a schema cannot express: registered activations and
   initialisations, strict integers, strides dividing the steps, ordered thresholds, times, lags
   and windows inside the training, chunk size within the ensemble, teacher shapes.

The rest of the module is the fan-out used by the workflow: :func:`combinations` (activation ×
initialisation), :func:`chunk_ranges` and :func:`chunk_id` (networks per simulate job), and
:func:`simulate_resources` (memory and runtime of a simulate job).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import activations, initialization


class ConfigError(ValueError):
    """An invalid configuration; the message names the key and what is allowed."""


#: config sections whose values determine the content of a simulation chunk file
SIMULATION_SECTIONS = ("seed", "network", "task", "training")
#: keys of ``recording`` that determine the content of a simulation chunk file
SIMULATION_RECORDING_KEYS = ("record_stride", "jacobian_stride", "propagator_dtype")


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
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


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
    for key, known in (("activations", activations.names()),
                       ("initializations", list(initialization.SCHEMES))):
        values = _list(cfg, key)
        for i, name in enumerate(values):
            if name not in known:
                _fail(f"{key}[{i}]", f"unknown value {name!r}; allowed values: {known}")
        if len(set(values)) != len(values):
            _fail(key, f"must not contain duplicates, got {values}")


def _check_teacher(cfg, inputs: int, hidden: int, outputs: int) -> None:
    shapes = {"W1": (hidden, inputs), "b1": (hidden,), "W2": (outputs, hidden), "b2": (outputs,)}
    for name, shape in shapes.items():
        key = f"task.teacher.{name}"
        value = _get(cfg, key)
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            _fail(key, f"must be a numeric array of shape {shape}, got {value!r}")
        if array.shape != shape:
            _fail(key, f"has shape {array.shape}, the network (inputs={inputs}, hidden={hidden}, "
                       f"outputs={outputs}) needs shape {shape}")
        if not np.all(np.isfinite(array)):
            _fail(key, f"must be finite, got {value!r}")


def check_semantics(cfg: Mapping) -> None:
    """Relations between values (see module docstring); ConfigError naming the first bad key."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"the configuration must be a mapping, got {type(cfg).__name__}")
    _int(cfg, "seed", minimum=0)
    inputs, hidden, outputs = (_int(cfg, f"network.{k}") for k in ("inputs", "hidden", "outputs"))
    _check_names(cfg)

    _int(cfg, "task.grid_points")
    low, high = _number(cfg, "task.grid_low"), _number(cfg, "task.grid_high")
    if not low < high:
        _fail("task.grid_low", f"must be < task.grid_high={high!r}, got {low!r}")
    _check_teacher(cfg, inputs, hidden, outputs)

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


def validate_config(cfg: Mapping, schema=None) -> None:
    """Reject an invalid configuration with a :class:`ConfigError` naming the key.

    ``schema`` (a mapping or a path to the YAML schema) adds the structural check, unknown keys
    included; without it only the semantic checks run (missing keys are still reported).
    """
    if schema is not None:
        check_schema(cfg, schema)
    check_semantics(cfg)


# --------------------------------------------------------------------------- fan-out


def combinations(cfg: Mapping) -> list[tuple[str, str]]:
    """All (activation, initialization) pairs, in config order (activation outermost)."""
    return [(a, i) for a in cfg["activations"] for i in cfg["initializations"]]


def chunk_ranges(networks: int, chunk_size: int) -> list[tuple[int, int]]:
    """Network ranges [start, stop) of consecutive chunks; the last one may be shorter."""
    if not (_is_int(networks) and _is_int(chunk_size)) or networks < 1 or chunk_size < 1:
        raise ValueError(f"networks and chunk_size must be positive integers, "
                         f"got {networks!r}, {chunk_size!r}")
    return [(start, min(start + chunk_size, networks)) for start in range(0, networks, chunk_size)]


def chunk_width(n_chunks: int) -> int:
    """Digits of a chunk number: at least 3, more if there are ≥ 1000 chunks."""
    return max(3, len(str(max(n_chunks - 1, 0))))


def chunk_id(index: int, n_chunks: int) -> str:
    """Zero-padded chunk number, e.g. ``"007"`` (the file is ``chunk007.nc``)."""
    if not 0 <= index < n_chunks:
        raise ValueError(f"chunk {index} does not exist: there are {n_chunks} chunks")
    return f"{index:0{chunk_width(n_chunks)}d}"


def chunk_ids(cfg: Mapping) -> list[str]:
    """The chunk numbers of one combination, in order."""
    ens = cfg["ensemble"]
    n = len(chunk_ranges(ens["networks"], ens["chunk_size"]))
    return [chunk_id(i, n) for i in range(n)]


def chunk_range(cfg: Mapping, chunk: str) -> tuple[int, int]:
    """Networks [start, stop) of the chunk with number ``chunk`` (e.g. ``"007"``)."""
    ens = cfg["ensemble"]
    ranges = chunk_ranges(ens["networks"], ens["chunk_size"])
    if chunk not in chunk_ids(cfg):
        raise ValueError(f"chunk {chunk!r} does not exist for ensemble.networks="
                         f"{ens['networks']}, ensemble.chunk_size={ens['chunk_size']} "
                         f"(chunks {chunk_id(0, len(ranges))} … {chunk_id(len(ranges) - 1, len(ranges))})")
    return ranges[int(chunk)]


def simulation_config(cfg: Mapping) -> dict:
    """The part of the config that determines a simulation chunk's content (JSON-normalised).

    Chunk boundaries are not part of it: a network's trajectory does not depend on its chunk.
    """
    sub = {key: copy.deepcopy(cfg[key]) for key in SIMULATION_SECTIONS}
    sub["recording"] = {key: cfg["recording"][key] for key in SIMULATION_RECORDING_KEYS}
    return json.loads(json.dumps(sub, sort_keys=True))


def analysis_config(cfg: Mapping) -> dict:
    """The part of the config that determines a lyapunov chunk's content (JSON-normalised):
    the simulation's, the Lyapunov settings, the prediction times, the baseline slope window and
    the loss-curve stride."""
    sub = simulation_config(cfg)
    sub["lyapunov"] = copy.deepcopy(cfg["lyapunov"])
    sub["prediction_times"] = list(cfg["prediction"]["times"])
    sub["baseline_slope_steps"] = cfg["prediction"]["slope_steps"]
    sub["loss_curve_stride"] = cfg["recording"]["loss_curve_stride"]
    return json.loads(json.dumps(sub, sort_keys=True))


def parameter_count(cfg: Mapping) -> int:
    """Dimension d of θ: hidden·inputs + hidden + outputs·hidden + outputs."""
    n = cfg["network"]
    return n["hidden"] * n["inputs"] + n["hidden"] + n["outputs"] * n["hidden"] + n["outputs"]


def simulate_resources(cfg: Mapping, networks: int) -> dict[str, int]:
    """Memory (MB) and runtime (min) of a simulate job over ``networks`` networks.

    * ``mem_mb = 1000 + ceil(2 · networks · bytes_per_network / 10⁶)`` with
      ``bytes_per_network = 8 · (K·d² + R·(d + 1) + 2(T + 1))``: K propagators of d × d, R
      recorded θ and losses, and the cost and gradient norm at every step, counted as float64
      and twice (integration output plus the write); 1000 MB for the interpreter, numba, xarray
      and netCDF.
    * ``runtime = 10 + ceil(networks · steps · d² · samples / 5·10⁹)`` minutes: the kernel costs
      ~d²·samples per network-step; one core here does ~1.2·10⁹ such units per second, so the
      bound (5·10⁹ per minute) leaves a factor ~15 for slower or shared cores, plus 10 min for
      start-up and numba compilation.
    """
    d = parameter_count(cfg)
    steps = cfg["training"]["steps"]
    rec = cfg["recording"]
    n_strides = steps // rec["jacobian_stride"]
    n_records = len(range(0, steps + 1, rec["record_stride"])) + 1
    bytes_per_network = 8 * (n_strides * d * d + n_records * (d + 1) + 2 * (steps + 1))
    samples = cfg["task"]["grid_points"] ** cfg["network"]["inputs"]
    return {
        "mem_mb": 1000 + math.ceil(2 * networks * bytes_per_network / 1e6),
        "runtime": 10 + math.ceil(networks * steps * d * d * samples / 5e9),
    }


def lyapunov_resources(cfg: Mapping, networks: int) -> dict[str, int]:
    """Memory (MB) and runtime (min) of a lyapunov job over ``networks`` networks.

    * ``mem_mb = 1000 + ceil(3 · networks · 8 · K · d² / 10⁶)``: the propagators as read and in
      float64, one network's R per thread, and the outputs (measured: ~0.5 GB for the default
      chunk of 500 networks).
    * ``runtime = 10 + ceil(networks · K · d³ / 2·10⁹)`` minutes (measured: ~1 s per default
      chunk; the bound leaves a large margin for slow or shared cores).
    """
    d = parameter_count(cfg)
    n_strides = cfg["training"]["steps"] // cfg["recording"]["jacobian_stride"]
    return {
        "mem_mb": 1000 + math.ceil(3 * networks * 8 * n_strides * d * d / 1e6),
        "runtime": 10 + math.ceil(networks * n_strides * d**3 / 2e9),
    }


def gather_resources(cfg: Mapping) -> dict[str, int]:
    """Memory (MB) and runtime (min) of a gather job, which holds the lyapunov outputs of all
    networks of a combination at once:

    * ``mem_mb = 1000 + ceil(3 · networks · 8 · B / 10⁶)`` with B values per network: time
      series T·(d + P) (T stored times, P = d(d−1)/2 pairs), fixed-lag estimates
      L·N·(P + 2d) (L lags, N prediction times), the FTLEs, Ginelli CLV features and baselines
      at the prediction times N·(P + 2d + 3), θ_0 and the loss curve; ×3 for concatenation and
      the quantiles.
    * ``runtime = 10 + ceil(networks / 20000)`` minutes.
    """
    d = parameter_count(cfg)
    pairs = d * (d - 1) // 2
    steps = cfg["training"]["steps"]
    rec, ens, lya = cfg["recording"], cfg["ensemble"], cfg["lyapunov"]
    n_times = steps // rec["jacobian_stride"] // lya["output_stride"] + len(cfg["prediction"]["times"])
    n_lagged = len(lya["lags"]) * len(cfg["prediction"]["times"])
    n_pred = len(cfg["prediction"]["times"])
    values = (n_times * (d + pairs) + n_lagged * (pairs + 2 * d) + n_pred * (pairs + 2 * d + 3)
              + d + steps // rec["loss_curve_stride"] + 2)
    return {
        "mem_mb": 1000 + math.ceil(3 * ens["networks"] * 8 * values / 1e6),
        "runtime": 10 + math.ceil(ens["networks"] / 20000),
    }