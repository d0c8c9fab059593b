"""The per-chunk lyapunov dataset (docs/methods.md §6) built from a simulation chunk.

Definitions of every quantity are in :mod:`.analysis`. Units: flow time t = n·η is
dimensionless, so exponents and growth rates (per unit flow time) have units "1" and angles
"rad"; the 0/1 flags ``valid`` and ``clv_converged`` are int8 with CF ``flag_values`` and
``flag_meanings``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import chunkio
from ..outcomes import flow_time
from .analysis import analyse, pair_labels

__all__ = ["analyse_chunk"]


def analyse_chunk(sim: xr.Dataset, cfg: dict) -> xr.Dataset:
    """The per-chunk lyapunov dataset (docs/methods.md §6) of a simulation chunk ``sim`` (in
    memory, or open with :func:`~weightdyn.chunkio.open_simulation_chunk`: its propagators are
    then read from the file by blocks of networks).

    ``cfg["lyapunov"]`` gives the transients and window (strides), the lags (steps, positive
    multiples of jacobian_stride) and the tangency threshold (rad); ``cfg["prediction"]["times"]``
    the flow times t* of the fixed-lag estimates (CLV index round(t*/dt), its time kept as
    ``prediction_clv_time``); ``cfg["seed"]`` seeds C*. A stride is invalid from the first
    non-finite propagator or from stride divergence_step // jacobian_stride on (the first stride
    reaching the divergence step); ``valid`` = 1 iff the network did not diverge and all its
    strides are valid, and ``lyapunov_exponent`` is NaN otherwise. NaNs as in :func:`analyse`.
    The cumulative FTLEs ``ftle`` (time series), ``ftle_at`` (prediction times) and the
    whole-run exponents ``lyapunov_exponent`` (t = T) are the frame-invariant
    (1/t) ln σ_i(M(t, 0)) of :func:`singular_value_ftle`: Benettin's cumulative means from a
    random frame still depend on that frame at t = T = 3 (by O(1) for small gaps, measured in
    docs/conditioning.md). The local and windowed exponents are Benettin's (frame F).
    ``clv_tangency_fraction`` is the fraction of converged, finite Ginelli angles below the
    threshold (NaN if there are none). Time series (λ, Λ, Λ^w, θ_ij, γ_i) are stored at the ends
    of every ``lyapunov.output_stride``-th stride and of the strides ending at the prediction
    times; whole-run quantities use every stride.
    """
    lcfg = cfg["lyapunov"]
    s = int(sim.attrs["jacobian_stride"])
    eta = float(sim.attrs["learning_rate"])
    dt = s * eta
    stride = sim["stride"].values
    K = stride.size
    if not np.array_equal(stride, np.arange(K)):
        raise ValueError("simulation chunk: coordinate 'stride' must be 0, 1, …, K−1")
    lag_steps = np.asarray(lcfg["lags"], dtype=np.int64)
    if np.any(lag_steps <= 0) or np.any(lag_steps % s):
        raise ValueError(
            f"lyapunov.lags={lag_steps.tolist()} must be positive multiples of "
            f"jacobian_stride={s} steps"
        )
    times = np.asarray(cfg["prediction"]["times"], dtype=float)
    pred = np.rint(times / dt).astype(np.int64)
    threshold = float(lcfg["tangency_threshold"])

    M = sim["propagator"].transpose("network", "stride", "param_i", "param_j")  # not read yet
    div_step = sim["divergence_step"].values.astype(np.int64)
    n_valid = np.where(div_step >= 0, div_step // s, K)
    # time series are stored every `output_stride` strides and at the prediction times
    keep = ((stride + 1) % int(lcfg["output_stride"]) == 0) | np.isin(stride + 1, pred)
    # frame-invariant FTLEs at the stored times, the prediction times and the end of the run
    counts = np.union1d(np.union1d(stride[keep] + 1, pred), [K])
    res = analyse(
        M, dt, seed=cfg["seed"], window=int(lcfg["window"]),
        forward_transient=int(lcfg["forward_transient"]),
        backward_transient=int(lcfg["backward_transient"]),
        prediction_index=pred, lags=lag_steps // s, n_valid=n_valid, time_index=stride[keep],
        tangency_threshold=threshold, ftle_counts=counts,
    )  # fmt: skip
    valid = res.valid & (sim["diverged"].values == 0)
    d = M.shape[2]
    ftle = res.singular_ftle[:, np.searchsorted(counts, stride[keep] + 1)]
    ftle_at = res.singular_ftle[:, np.searchsorted(counts, pred)]
    whole_run = res.singular_ftle[:, -1]

    def var(dims, data, long_name, units, **attrs):
        return dims, data, {"long_name": long_name, "units": units, **attrs}

    def rate(dims, data, long_name):  # per unit flow time; flow time is dimensionless
        return var(dims, data, f"{long_name} (per unit flow time)", "1")

    def flag(dims, data, long_name, meanings):
        return var(dims, data.astype(np.int8), long_name, "1",
                   flag_values=np.array([0, 1], np.int8), flag_meanings=meanings)

    NTE, NLPP = ("network", "time", "exponent"), ("network", "lag", "prediction_time", "pair")
    NLPE = ("network", "lag", "prediction_time", "exponent")
    data = {
        "local_exponent": rate(NTE, res.local_exponent,
                               "local Lyapunov exponent ln(R_ii)/dt of the stride ending at time"),
        "ftle": rate(NTE, ftle, "frame-invariant finite-time Lyapunov exponent (1/t) ln sigma_i "
                                "of the cumulative propagator from t = 0 to time"),
        "ftle_at": rate(("network", "prediction_time", "exponent"), ftle_at,
                        "frame-invariant finite-time Lyapunov exponent (1/t) ln sigma_i of the "
                        "cumulative propagator from t = 0 to prediction_clv_time"),
        "clv_angle_ginelli_at": var(("network", "prediction_time", "pair"), res.clv_angle_at,
                                    "angle between Ginelli CLVs i and j at prediction_clv_time "
                                    "(uses the whole future)", "rad"),
        "clv_growth_ginelli_at": rate(("network", "prediction_time", "exponent"),
                                      res.clv_growth_at,
                                      "growth rate along Ginelli CLV i over the stride starting "
                                      "at prediction_clv_time (uses the whole future)"),
        "ftle_windowed": rate(NTE, res.ftle_windowed,
                              f"Benettin finite-time Lyapunov exponent over the last "
                              f"{lcfg['window']} strides (cumulative before)"),
        "lyapunov_exponent": rate(("network", "exponent"),
                                  np.where(valid[:, None], whole_run, np.nan),
                                  "whole-run Lyapunov exponent (1/T) ln sigma_i of the propagator "
                                  "of the whole run (NaN unless valid)"),
        "clv_angle": var(("network", "time", "pair"), res.clv_angle,
                         "angle between Ginelli CLVs i and j at time", "rad"),
        "clv_growth": rate(NTE, res.clv_growth,
                           "growth rate ln|M_k v_i(k)|/dt along Ginelli CLV i over the stride "
                           "ending at time"),
        "clv_angle_lagged": var(NLPP, res.clv_angle_lagged,
                                "angle between fixed-lag CLV estimates i and j at "
                                "prediction_clv_time", "rad"),
        "clv_growth_lagged": rate(NLPE, res.clv_growth_lagged,
                                  "growth rate along the fixed-lag CLV estimate i over the stride "
                                  "starting at prediction_clv_time"),
        "clv_lag_error": var(NLPE, res.clv_lag_error,
                             "angle between the fixed-lag CLV estimate i and Ginelli CLV i",
                             "rad"),
        "lagged_available_time": var(("lag", "prediction_time"),
                                     flow_time(res.lagged_available, dt),
                                     "flow time from which the fixed-lag estimate is available",
                                     "1"),
        "clv_tangency_fraction": var(("network", "pair"), res.clv_tangency_fraction,
                                     f"fraction of converged times with clv_angle < {threshold}",
                                     "1"),
        "clv_converged": flag(("time",), res.clv_converged,
                              "1 if the Ginelli CLVs at both ends of the stride are outside the "
                              "transients", "unconverged converged"),
        "valid": flag(("network",), valid,
                      "1 if the network did not diverge (all strides valid)", "invalid valid"),
    }  # fmt: skip
    coords = {
        "network": ("network", sim["network"].values,
                    {"long_name": "network index within the combination"}),
        "time": ("time", flow_time(stride[keep] + 1, dt),
                 {"long_name": "flow time t = n * eta at the end of the stride", "units": "1"}),
        "exponent": ("exponent", np.arange(1, d + 1), {"long_name": "Lyapunov index i (1-based)"}),
        "pair": ("pair", pair_labels(d), {"long_name": "CLV pair i-j (1-based, i < j)"}),
        "lag": ("lag", lag_steps, {"long_name": "fixed-lag CLV lag L (steps)", "units": "1"}),
        "prediction_time": ("prediction_time", times,
                            {"long_name": "prediction time t*", "units": "1"}),
        "prediction_clv_time": ("prediction_time", flow_time(pred, dt),
                                {"long_name": "flow time of the fixed-lag CLV estimate "
                                              "(t* rounded to a stride boundary)", "units": "1"}),
    }  # fmt: skip
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        {key: sim.attrs[key] for key in ("activation", "initialization") if key in sim.attrs}
    )
    ds.attrs.update(
        learning_rate=eta,
        jacobian_stride=s,
        steps=int(sim.attrs["steps"]),
        time_per_stride=dt,
        forward_transient=int(lcfg["forward_transient"]),
        backward_transient=int(lcfg["backward_transient"]),
        window=int(lcfg["window"]),
        tangency_threshold=threshold,
        output_stride=int(lcfg["output_stride"]),
        seed=int(cfg["seed"]),
        **chunkio.provenance(cfg, "lyapunov"),
    )
    return ds
