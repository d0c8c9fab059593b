"""The workflow's plan of the study: everything the Snakefile needs to build the DAG.

Standard library (and ``yaml`` for :func:`load_config`) only, so that parsing the workflow
(``snakemake -n``, ``--lint``, every job start) imports no numerical package and works in an
environment with nothing but Snakemake:

* the run name and output-path prefix (:func:`run_prefix`): the default study (empty name)
  writes ``results/…``, ``logs/…``, ``benchmarks/…``; a named run (``run: {name: quick}``)
  writes ``results/quick/…``, ``logs/quick/…``, ``benchmarks/quick/…``;
* the fan-out: :func:`combinations` (activation × initialisation), :func:`chunk_ranges`,
  :func:`chunk_ids`, :func:`chunk_range`;
* the config slice each rule passes as ``params:`` (what its script reads, hence exactly what
  reruns it): :func:`simulation_config`, :func:`analysis_config`, :func:`gather_config`,
  :func:`predict_config`, :func:`report_config`;
* job resources (:func:`simulate_resources`, :func:`lyapunov_resources`,
  :func:`gather_resources`), :func:`parameter_count`, :data:`FIGURE_NAMES`;
* the registered activation and initialisation names (checked against the numerical modules by
  the tests) and :func:`load_config` (config.yaml with overlays, as Snakemake merges them).

Validation of the relations between keys is :func:`weightdyn.config.check_semantics`
(:func:`check_relations` here), also free of numerical imports.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import numbers
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

#: the checkout (config.yaml, config/, workflow/) when running from src/weightdyn
ROOT = Path(__file__).resolve().parents[2]
#: the study's default configuration
DEFAULT_CONFIG = ROOT / "config.yaml"
#: the JSON schema of the configuration
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

#: registered activations (weightdyn.activations.names(); a test checks they agree)
ACTIVATIONS = ("linear", "relu", "sigmoid", "softplus", "tanh")
#: initialisation schemes (weightdyn.initialization.SCHEMES; a test checks they agree)
INITIALIZATIONS = ("uniform", "normal", "xavier", "he")

#: output stems of the figures (the keys of weightdyn.figures.FIGURES; a test checks they agree)
FIGURE_NAMES = [
    "fig1_final_loss",
    "fig2_loss_curves",
    "fig3_ftle_spectra",
    "fig4_exponents_vs_final_loss",
    "fig5_clv_angles",
    "fig6_roc_curves",
    "fig7_auc_vs_time",
    "fig8_lag_accuracy",
    "fig9_early_stopping",
    "fig10_curvature",
]

#: the tables rule's outputs in results/<study>/tables/
TABLE_NAMES = ("classes.csv", "auc.csv", "summary.md", "curvature.csv", "provenance.json")

#: folder of a run (under results/, logs/, benchmarks/) that holds its sweep points
SWEEP_FOLDER = "sweeps"

#: folders directly under results/, logs/ and benchmarks/ of the default study: not run names
RESERVED_RUN_NAMES = ("simulate", "lyapunov", "gather", "prediction", "predict", "tables",
                      "figures", "rules", SWEEP_FOLDER)

#: keys a sweep may not vary: they are not part of a study's science (run name, the sweep
#: itself) or they decide rule properties fixed for all studies (temporary chunk files)
UNSWEEPABLE_KEYS = ("run", "sweep", "recording.keep_propagators")

#: keys counted in gradient-descent steps (scaled by η₀/η when a learning-rate sweep keeps the
#: flow time) and those counted in propagator strides (scaled by the change of the stride's
#: flow time)
STEP_KEYS = ("recording.record_stride", "prediction.slope_steps")
STRIDE_KEYS = ("lyapunov.forward_transient", "lyapunov.backward_transient", "lyapunov.window",
               "lyapunov.output_stride")
#: allowed run names (also in the schema): a single folder name
RUN_NAME_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.-]*)?$"

#: config sections whose values determine the content of a simulation chunk file
SIMULATION_SECTIONS = ("seed", "network", "task", "training")
#: keys of ``recording`` that determine the content of a simulation chunk file
SIMULATION_RECORDING_KEYS = ("record_stride", "jacobian_stride", "propagator_dtype")


# --------------------------------------------------------------------------- configuration


def deep_merge(base: Mapping, overlay: Mapping) -> dict:
    """``base`` updated by ``overlay``, recursively for mappings (lists are replaced), as
    Snakemake merges ``--configfile`` files over the Snakefile's ``configfile:``."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*overlays, base=DEFAULT_CONFIG) -> dict:
    """config.yaml deep-merged with the overlays (paths of YAML files or mappings), in order:
    the configuration a ``snakemake --configfile overlay …`` run sees."""
    import yaml

    def read(source):
        if isinstance(source, Mapping):
            return source
        with open(source, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}

    cfg = copy.deepcopy(dict(read(base)))
    for overlay in overlays:
        cfg = deep_merge(cfg, read(overlay))
    return cfg


def check_relations(cfg: Mapping) -> None:
    """The relations between keys (:func:`weightdyn.config.check_semantics`); ConfigError."""
    from .config import check_semantics

    check_semantics(cfg)


def run_name(cfg: Mapping) -> str:
    """Name of the run (``run.name``; empty for the default study)."""
    return str((cfg.get("run") or {}).get("name") or "")


def run_prefix(cfg: Mapping) -> str:
    """Folder prefix of a run's outputs: ``""`` for the default study, else ``"<name>/"``
    (``results/<name>/…``, ``logs/<name>/…``, ``benchmarks/<name>/…``)."""
    name = run_name(cfg)
    return f"{name}/" if name else ""


def science_config(cfg: Mapping) -> dict:
    """The configuration without the run settings (``run``): what a file's provenance records,
    so that naming a run does not change its outputs."""
    return {key: copy.deepcopy(value) for key, value in cfg.items() if key != "run"}


# --------------------------------------------------------------------------- studies, sweeps


def get_key(cfg: Mapping, key: str):
    """The value at a dotted key (``"training.learning_rate"``); KeyError naming it."""
    value = cfg
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"config key {key!r} does not exist")
        value = value[part]
    return value


def _set_key(cfg: dict, key: str, value) -> None:
    *sections, leaf = key.split(".")
    for part in sections:
        cfg = cfg[part]
    cfg[leaf] = copy.deepcopy(value)


def value_text(value) -> str:
    """A swept value as it appears in folder names and tables: ``4``, ``0.00025``, ``tanh``."""
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


def point_folder(sweep: Mapping, value) -> str:
    """Folder of one sweep point: ``<last part of the key>=<value>``, e.g.
    ``learning_rate=0.00025``."""
    return f"{sweep['key'].rsplit('.', 1)[-1]}={value_text(value)}"


def _scaled(count: int, factor: float, minimum: int = 1, multiple_of: int = 1) -> int:
    """``count · factor`` rounded to the nearest multiple of ``multiple_of`` (≥ ``minimum``)."""
    return max(minimum, multiple_of * round(count * factor / multiple_of))


def _keep_flow_time(point: dict, eta0: float, eta: float) -> None:
    """A learning-rate sweep point with the flow time t = n·η of everything kept (in place).

    With f = η₀/η: the steps T → round(f·T) (t_end fixed); the propagator stride s → the
    nearest divisor-compatible round(f·s) ≥ 1; keys counted in steps (:data:`STEP_KEYS`, the
    lags and the loss-curve stride, as multiples of their strides) scale by f; keys counted in
    strides (:data:`STRIDE_KEYS`) by the change g = s·η₀ / (s'·η) of a stride's flow time. The
    prediction times are moved down onto the new stride grid, t* → s'η·⌊t*/(s'η)⌋ (at least one
    stride): a prediction never uses data from after t*, and at large η (s' = 1 step longer
    than the grid spacing of t*) it is made slightly earlier; the tables report the time used.
    """
    f = eta0 / eta
    train, rec = point["training"], point["recording"]
    stride0 = rec["jacobian_stride"]
    train["steps"] = steps = max(1, round(train["steps"] * f))
    stride = _scaled(stride0, f)
    while steps % stride:
        stride -= 1
    rec["jacobian_stride"] = stride
    g = stride0 * eta0 / (stride * eta)
    for key in STEP_KEYS:
        _set_key(point, key, _scaled(get_key(point, key), f))
    for key in STRIDE_KEYS:
        minimum = 0 if key == "lyapunov.forward_transient" else 1
        _set_key(point, key, _scaled(get_key(point, key), g, minimum))
    rec["loss_curve_stride"] = _scaled(rec["loss_curve_stride"], f,
                                       rec["record_stride"], rec["record_stride"])
    lya, pred = point["lyapunov"], point["prediction"]
    lags = {lag: min(_scaled(lag, f, stride, stride), steps - steps % stride)
            for lag in lya["lags"]}
    lya["lags"] = list(dict.fromkeys(lags.values()))
    pred["clv_lag"] = lags[pred["clv_lag"]]
    dt = stride * eta

    def snapped(t):
        return round(dt * max(1, math.floor(t / dt + 1e-9)), 12)

    pred["times"] = list(dict.fromkeys(snapped(t) for t in pred["times"]))
    pred["headline_time"] = snapped(pred["headline_time"])


def _keep_clv_positions(point: dict, d0: int) -> None:
    """A sweep point with another parameter dimension d: the CLVs of the CLV features keep
    their position counted from the last (the most contracting) one, v → v + d − d₀ (CLVs 5–8
    of d₀ = 9, "the four most stable before the last", are CLVs d−4 … d−1)."""
    shift = parameter_count(point) - d0
    pred = point["prediction"]
    pred["clv_vectors"] = [v + shift for v in pred["clv_vectors"]]


def point_config(cfg: Mapping, value) -> dict:
    """The configuration of the sweep point ``sweep.key = value`` of ``cfg``: ``cfg`` without
    its ``sweep`` section, the key set, and the keys that must follow it derived:

    * ``training.learning_rate``: the flow time of everything is kept (:func:`_keep_flow_time`);
    * ``network.*`` (the parameter dimension d): the CLV features keep their CLVs' position
      counted from the last one (:func:`_keep_clv_positions`).
    """
    sweep = cfg["sweep"]
    point = {key: copy.deepcopy(v) for key, v in cfg.items() if key != "sweep"}
    _set_key(point, sweep["key"], value)
    if sweep["key"] == "training.learning_rate":
        _keep_flow_time(point, float(cfg["training"]["learning_rate"]), float(value))
    if sweep["key"].startswith("network."):
        _keep_clv_positions(point, parameter_count(cfg))
    return point


def sweep_points(cfg: Mapping) -> list[tuple[object, str, dict]]:
    """(value, output prefix, configuration) of every point of ``cfg``'s sweep, in order; the
    prefix is ``<run prefix>sweeps/<sweep name>/<point folder>/``. Empty without a sweep."""
    sweep = cfg.get("sweep")
    if not sweep:
        return []
    base = f"{run_prefix(cfg)}{SWEEP_FOLDER}/{sweep['name']}/"
    return [(value, f"{base}{point_folder(sweep, value)}/", point_config(cfg, value))
            for value in sweep["values"]]


def sweep_summary_config(cfg: Mapping) -> dict:
    """The sweep rule's params: the sweep (name, key, values), the number of combinations of
    each point (the rule's inputs are the points' files in order, combinations within a point
    in config order) and the headline prediction time t* of the base configuration."""
    return _normalised({
        "name": cfg["sweep"]["name"],
        "key": cfg["sweep"]["key"],
        "values": list(cfg["sweep"]["values"]),
        "combinations": [len(combinations(point)) for _, _, point in sweep_points(cfg)],
        "headline_time": cfg["prediction"]["headline_time"],
    })


def studies(cfg: Mapping) -> dict[str, dict]:
    """Every study ``cfg`` asks for, by output prefix (the folder under results/, logs/ and
    benchmarks/): the run itself (prefix ``""`` or ``"<name>/"``), or, with a ``sweep``
    section, its points (:func:`sweep_points`). Each is a complete study with its own files."""
    points = sweep_points(cfg)
    if points:
        return {prefix: point for _, prefix, point in points}
    return {run_prefix(cfg): dict(cfg)}


# --------------------------------------------------------------------------- fan-out


def _is_int(value) -> bool:
    """An integer (numpy integers included: they register as numbers.Integral), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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
                         f"(chunks {chunk_id(0, len(ranges))} … "
                         f"{chunk_id(len(ranges) - 1, len(ranges))})")
    return ranges[int(chunk)]


# --------------------------------------------------------------------------- config slices


def _normalised(value):
    """JSON round trip: plain dicts, lists, str, int, float (as Snakemake stores params)."""
    return json.loads(json.dumps(value, sort_keys=True))


def simulation_config(cfg: Mapping) -> dict:
    """The part of the config that determines a simulation chunk's content (JSON-normalised;
    config-shaped: the simulate rule's params). Chunk boundaries are not part of it: a
    network's trajectory does not depend on its chunk."""
    sub = {key: copy.deepcopy(cfg[key]) for key in SIMULATION_SECTIONS}
    sub["recording"] = {key: cfg["recording"][key] for key in SIMULATION_RECORDING_KEYS}
    return _normalised(sub)


def analysis_config(cfg: Mapping) -> dict:
    """The part of the config that determines a lyapunov chunk's content (JSON-normalised; the
    lyapunov rule's params): the simulation's, the Lyapunov settings, the prediction times, the
    baseline slope window and the loss-curve stride. :func:`analysis_as_config` turns it back
    into a config-shaped mapping."""
    sub = simulation_config(cfg)
    sub["lyapunov"] = copy.deepcopy(cfg["lyapunov"])
    sub["prediction_times"] = list(cfg["prediction"]["times"])
    sub["baseline_slope_steps"] = cfg["prediction"]["slope_steps"]
    sub["loss_curve_stride"] = cfg["recording"]["loss_curve_stride"]
    return _normalised(sub)


def analysis_as_config(analysis: Mapping) -> dict:
    """The config-shaped mapping (sections as in config.yaml, only the keys the lyapunov stage
    reads) of an :func:`analysis_config` slice; ``analysis_config`` of it gives ``analysis``
    back."""
    cfg = {key: copy.deepcopy(analysis[key]) for key in SIMULATION_SECTIONS}
    cfg["recording"] = {**analysis["recording"], "loss_curve_stride": analysis["loss_curve_stride"]}
    cfg["lyapunov"] = copy.deepcopy(analysis["lyapunov"])
    cfg["prediction"] = {"times": list(analysis["prediction_times"]),
                         "slope_steps": analysis["baseline_slope_steps"]}
    return _normalised(cfg)


def gather_config(cfg: Mapping) -> dict:
    """The gather rule's params (config-shaped): what the chunks are checked against
    (:func:`analysis_config`) and the class thresholds."""
    sub = analysis_as_config(analysis_config(cfg))
    sub["classes"] = copy.deepcopy(cfg["classes"])
    return _normalised(sub)


def predict_config(cfg: Mapping) -> dict:
    """The predict rule's params (config-shaped): the prediction settings and class thresholds
    (the learning rate and steps come from the gathered file)."""
    return _normalised({"prediction": cfg["prediction"], "classes": cfg["classes"]})


def report_config(cfg: Mapping) -> dict:
    """The tables and figures rules' params: the prediction section (headline time, CLV lag and
    vectors, E_low reporting threshold)."""
    return _normalised(cfg["prediction"])


# --------------------------------------------------------------------------- resources


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
    n_pred = len(cfg["prediction"]["times"])
    n_times = steps // rec["jacobian_stride"] // lya["output_stride"] + n_pred
    n_lagged = len(lya["lags"]) * n_pred
    values = (n_times * (d + pairs) + n_lagged * (pairs + 2 * d) + n_pred * (pairs + 2 * d + 3)
              + d + steps // rec["loss_curve_stride"] + 2)
    return {
        "mem_mb": 1000 + math.ceil(3 * ens["networks"] * 8 * values / 1e6),
        "runtime": 10 + math.ceil(ens["networks"] / 20000),
    }


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def edited_tables(tables_dir) -> list[Path]:
    """The tables in ``tables_dir`` whose bytes differ from what the tables rule wrote: the
    SHA-256 recorded in ``provenance.json`` (key ``sha256``, file name → digest). Missing
    tables and a missing or unreadable provenance.json give nothing (Snakemake handles those)."""
    tables_dir = Path(tables_dir)
    try:
        recorded = json.loads((tables_dir / "provenance.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [tables_dir / name for name, digest in sorted(recorded.items())
            if (tables_dir / name).is_file() and file_sha256(tables_dir / name) != digest]


def set_aside_edited_tables(tables_dir) -> list[str]:
    """For each hand-edited table of :func:`edited_tables`: keep a copy as ``<name>.edited``
    (an older copy is replaced) and set the table's modification time to the epoch, so that
    Snakemake sees it older than its inputs and the next run (or the dry run's plan)
    regenerates it. Returns one warning per table, naming it."""
    messages = []
    for path in edited_tables(tables_dir):
        kept = path.with_name(path.name + ".edited")
        shutil.copyfile(path, kept)
        os.utime(path, (0, 0))
        messages.append(f"{path}: edited since the tables rule wrote it (its SHA-256 differs "
                        f"from {path.parent / 'provenance.json'}); kept a copy as {kept}; "
                        f"snakemake regenerates {path}")
    return messages
