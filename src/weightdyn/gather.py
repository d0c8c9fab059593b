"""Per-chunk outcomes and the gathering of one (activation, initialization) into one file.

* :func:`outcomes`: from a simulation chunk, what the later stages need once its (large,
  temporary) file is gone: final loss, divergence, the loss curve and the extreme Hessian
  eigenvalues (curvature) thinned to every ``loss_curve_stride`` steps, the final curvature and
  the baseline features. The lyapunov rule stores them beside
  the chunk's indicators.
* :func:`gather`: from all lyapunov chunks of a combination, one small dataset
  (``results/gather/{act}/{init}.nc``): per network the outcome class, the indicators at the
  prediction times, whole-run exponents, tangency fractions and the fixed-lag accuracy; per class
  the median and quartiles of the FTLE and CLV-angle time series; a few sample loss curves.

Every chunk is checked before use (:func:`check_chunk`): it must open and hold the expected
variables, carry the expected activation and initialisation, cover exactly its network range,
and have been written with the same relevant configuration as the current one. Any mismatch
raises :class:`~weightdyn.chunkio.ChunkFileError` naming the file, what differs, and what to
delete.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__, chunkio
from .baselines import baseline_features
from .plan import analysis_config, simulation_config
from .outcomes import CLASS_LABELS, HIGH, LOW, MIDDLE, classify, flow_time

log = logging.getLogger(__name__)

#: variables of a lyapunov chunk file that gather reads
LYAPUNOV_CHUNK_VARIABLES = (
    "final_loss", "diverged", "divergence_step", "loss", "ftle", "clv_angle", "valid",
    "lyapunov_exponent", "clv_tangency_fraction", "clv_angle_lagged", "clv_growth_lagged",
    "clv_lag_error", "lagged_available_time", "ftle_at", "clv_angle_ginelli_at",
    "clv_growth_ginelli_at", "loss_at", "log_loss_slope_at",
    "gradient_norm_at", "theta0", "hessian_min", "hessian_max", "final_hessian_min",
    "final_hessian_max",
)  # fmt: skip
#: quantiles of the class-wise time-series summaries
QUANTILES = (0.25, 0.5, 0.75)
#: sample loss curves kept per outcome class
SAMPLES_PER_CLASS = 8


def _differences(found, expected, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like values differ, with both values."""
    if isinstance(found, dict) and isinstance(expected, dict):
        out = []
        for key in sorted(set(found) | set(expected)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in found:
                out.append(f"{name} is missing in the file (current config: {expected[key]!r})")
            elif key not in expected:
                out.append(f"{name} is in the file but not in the current config")
            else:
                out.extend(_differences(found[key], expected[key], name))
        return out
    if found != expected:
        return [f"{prefix} is {found!r} in the file but {expected!r} in the current config"]
    return []


def check_chunk(ds: xr.Dataset, path, cfg: dict, activation: str, initialization: str,
                start: int, stop: int, relevant: Callable = simulation_config) -> None:
    """Raise ChunkFileError unless chunk ``ds`` (read from ``path``) belongs to this study.

    Checks the provenance attributes (activation, initialization, the part ``relevant(cfg)`` of
    ``config_json``) and that the ``network`` coordinate is exactly ``start … stop−1``.
    """
    path = Path(path)
    problems = []
    for attr, expected in (("activation", activation), ("initialization", initialization)):
        found = ds.attrs.get(attr)
        if found != expected:
            problems.append(f"attribute {attr} is {found!r}, expected {expected!r}")
    raw = ds.attrs.get("config_json")
    if raw is None:
        problems.append("attribute config_json is missing")
    else:
        try:
            file_cfg = relevant(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"attribute config_json is unusable ({exc!r})")
        else:
            problems.extend(_differences(file_cfg, relevant(cfg)))
    network = ds["network"].values if "network" in ds.coords else np.array([])
    if not np.array_equal(network, np.arange(start, stop)):
        shown = f"{network.min()} … {network.max()} ({network.size})" if network.size else "none"
        problems.append(f"networks are {shown}, expected {start} … {stop - 1} ({stop - start}); "
                        "ensemble.chunk_size may have changed")
    if problems:
        raise chunkio.ChunkFileError(
            f"{path}: written for a different study configuration:\n  - "
            + "\n  - ".join(problems)
            + f"\n{chunkio.remedy(path)} (or delete {path.parent} to recompute the whole "
            "combination)"
        )
    version = ds.attrs.get("weightdyn_version")
    if version != __version__:
        log.warning("%s was written by weightdyn %s, this is %s", path, version, __version__)


def loss_curve_steps(steps: int, record_stride: int, loss_curve_stride: int) -> np.ndarray:
    """Steps of the gathered loss curves: 0, c, 2c, … and the last step (all recorded)."""
    curve = np.arange(0, steps + 1, loss_curve_stride)
    return np.unique(np.append(curve[curve % record_stride == 0], steps))


def outcomes(sim: xr.Dataset, cfg: dict) -> xr.Dataset:
    """Final loss, divergence, the thinned loss curve and the baseline features at the
    prediction times (:mod:`weightdyn.baselines`: C, ln C slope, |∇C| at t*, and θ_0) of a
    simulation chunk ``sim``."""
    rec = cfg["recording"]
    steps = loss_curve_steps(int(sim.attrs["steps"]), rec["record_stride"], rec["loss_curve_stride"])
    out = sim[["final_loss", "diverged", "divergence_step", "loss", "hessian_min",
               "hessian_max"]].sel(step=steps)
    out["loss"].attrs["long_name"] = "training cost C at the loss-curve steps (NaN after divergence)"
    for name in ("hessian_min", "hessian_max"):
        final = sim[name].isel(step=-1, drop=True)
        out[f"final_{name}"] = final.assign_attrs(
            long_name=final.attrs["long_name"].replace("eigenvalue", "eigenvalue at the end of "
                                                                      "training", 1))
    eta = float(sim.attrs["learning_rate"])
    times = [float(t) for t in cfg["prediction"]["times"]]
    dims = ("network", "prediction_time")
    base = baseline_features(sim["step_loss"].values, sim["gradient_norm"].values, eta, times,
                             int(cfg["prediction"]["slope_steps"]))
    out["loss_at"] = dims, base["loss_at"], {
        "long_name": "training cost C at the prediction time (baseline)", "units": "1"}
    out["log_loss_slope_at"] = dims, base["log_loss_slope_at"], {
        "long_name": f"least-squares slope of ln C over the last {cfg['prediction']['slope_steps']}"
                     " steps before the prediction time (baseline)", "units": "1"}
    out["gradient_norm_at"] = dims, base["gradient_norm_at"], {
        "long_name": "norm of the gradient of C at the prediction time (baseline)", "units": "1"}
    out["theta0"] = ("network", "param"), sim["theta"].sel(step=0).values, {
        "long_name": "initial parameters theta_0 (baseline, known at t = 0)", "units": "1"}
    return out.drop_vars("t").assign_coords(
        t=("step", flow_time(steps, eta), {"long_name": "flow time t = n * eta", "units": "1"}),
        param=sim["param"],
        prediction_time=("prediction_time", times,
                         {"long_name": "prediction time t*", "units": "1"}))


def _class_quantiles(series: xr.DataArray, outcome: np.ndarray, valid: np.ndarray) -> xr.DataArray:
    """Quantiles over the valid networks of the low and high classes (NaN for an empty class
    or where every value is NaN, e.g. unconverged CLVs)."""
    parts = []
    for code in (LOW, HIGH):
        members = series.values[(outcome == code) & valid]
        with warnings.catch_warnings():  # all-NaN columns are expected: they give NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            q = (np.nanquantile(members, QUANTILES, axis=0) if members.shape[0]
                 else np.full((len(QUANTILES),) + series.shape[1:], np.nan))
        parts.append(q)
    return xr.DataArray(np.stack(parts), dims=("class_name", "quantile") + series.dims[1:])


def _samples(outcome: np.ndarray) -> np.ndarray:
    """Indices of the first SAMPLES_PER_CLASS networks of each class (deterministic)."""
    return np.concatenate([np.flatnonzero(outcome == code)[:SAMPLES_PER_CLASS]
                           for code in range(len(CLASS_LABELS))])


def gather(chunks: Sequence[tuple[str | Path, int, int]], cfg: dict, activation: str,
           initialization: str) -> xr.Dataset:
    """The gathered dataset of one combination from its lyapunov chunk files ``(path, start,
    stop)``, which must cover networks 0 … N−1 without gaps, in order (see module docstring).
    """
    expected_start = 0
    parts, sources = [], []
    for path, start, stop in chunks:
        if start != expected_start:
            raise ValueError(f"chunks must be contiguous from network 0: {path} starts at {start}, "
                             f"expected {expected_start}")
        expected_start = stop
        ds = chunkio.read_dataset(path, LYAPUNOV_CHUNK_VARIABLES)
        check_chunk(ds, path, cfg, activation, initialization, start, stop, analysis_config)
        parts.append(ds[list(LYAPUNOV_CHUNK_VARIABLES)])
        sources.append(str(path))
        log.info("%s: networks %d … %d, %d diverged", path, start, stop - 1,
                 int(ds["diverged"].sum()))
    if not parts:
        raise ValueError("no chunk files to gather")
    ds = xr.concat(parts, dim="network", data_vars="minimal", coords="minimal",
                   compat="override", join="exact")
    low, high = cfg["classes"]["low"], cfg["classes"]["high"]
    outcome = classify(ds["final_loss"].values, low, high)
    valid = ds["valid"].values == 1
    samples = _samples(outcome)
    out = ds.drop_vars(["ftle", "clv_angle"])
    out["outcome"] = ("network", outcome, {
        "long_name": f"outcome class: 0 low (c_f < {low}), 1 middle, 2 high (c_f > {high} or "
                     "not finite)", "flag_values": np.array([LOW, MIDDLE, HIGH], dtype=np.int8),
        "flag_meanings": " ".join(CLASS_LABELS), "units": "1"})
    out["ftle_quantiles"] = _class_quantiles(ds["ftle"], outcome, valid)
    out["ftle_quantiles"].attrs = {"long_name": "class-wise quantiles of the cumulative FTLE "
                                                "over valid networks (per unit flow time)",
                                   "units": "1"}
    out["clv_angle_quantiles"] = _class_quantiles(ds["clv_angle"], outcome, valid)
    out["clv_angle_quantiles"].attrs = {"long_name": "class-wise quantiles of the Ginelli CLV "
                                                     "angles over valid networks", "units": "rad"}
    out["loss_curve"] = (("sample", "step"), ds["loss"].values[samples], ds["loss"].attrs)
    out["sample_network"] = ("sample", ds["network"].values[samples],
                             {"long_name": "network of the sample loss curve", "units": "1"})
    out["sample_outcome"] = ("sample", outcome[samples],
                             {"long_name": "outcome class of the sample (0 low, 1 middle, 2 high)",
                              "units": "1",
                              "flag_values": np.array([LOW, MIDDLE, HIGH], dtype=np.int8),
                              "flag_meanings": " ".join(CLASS_LABELS)})
    out = out.assign_coords(
        class_name=("class_name", ["low", "high"], {"long_name": "outcome class"}),
        quantile=("quantile", list(QUANTILES), {"long_name": "quantile", "units": "1"}),
        sample=("sample", np.arange(samples.size),
                {"long_name": "sample loss curve index", "units": "1"}),
        time=ds["time"])
    n_diverged = int(ds["diverged"].sum())
    out.attrs = {
        "activation": activation,
        "initialization": initialization,
        "low": float(low),
        "high": float(high),
        "learning_rate": float(cfg["training"]["learning_rate"]),
        "steps": int(cfg["training"]["steps"]),
        "tangency_threshold": float(cfg["lyapunov"]["tangency_threshold"]),
        "networks": int(ds.sizes["network"]),
        "n_diverged": n_diverged,
        "source_files": json.dumps(sources),
        **chunkio.provenance(cfg, "gather"),
    }
    return out
