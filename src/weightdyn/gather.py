"""Gather the simulation chunks of one (activation, initialization) into one small dataset.

Output (``results/gather/{act}/{init}.nc``, data contract in README): per network the final
loss, divergence flag and step, and the loss curve thinned to every ``loss_curve_stride`` steps
(plus the last step). Propagators are not read.

Every chunk is checked before use: it must open and hold the chunk variables, carry the
expected activation and initialisation, cover exactly its network range, and have been written
with the same simulation-relevant configuration (:func:`weightdyn.config.simulation_config`) as
the current one. Any mismatch raises :class:`~weightdyn.chunkio.ChunkFileError` naming the file,
what differs, and what to delete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__, chunkio
from .config import simulation_config

log = logging.getLogger(__name__)

#: chunk variables gather reads (everything but the propagators)
SUMMARY_VARIABLES = ("theta", "loss", "final_loss", "diverged", "divergence_step")


def _remedy(path: Path) -> str:
    return f"delete {path} and rerun snakemake to recompute it"


def read_chunk_summary(path) -> xr.Dataset:
    """A chunk file without its propagators, loaded; ChunkFileError naming the file if unusable."""
    path = Path(path)
    try:
        with xr.open_dataset(path, engine="netcdf4", drop_variables=["propagator"]) as ds:
            ds.load()
    except FileNotFoundError:
        raise chunkio.ChunkFileError(f"{path}: file not found") from None
    except Exception as exc:  # netCDF4/HDF5 raise OSError, RuntimeError, KeyError, ...
        raise chunkio.ChunkFileError(f"{path}: cannot be read ({exc}); {_remedy(path)}") from exc
    missing = [name for name in SUMMARY_VARIABLES if name not in ds.variables]
    if missing:
        raise chunkio.ChunkFileError(f"{path}: missing variables {missing}; {_remedy(path)}")
    return ds


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
                start: int, stop: int) -> None:
    """Raise ChunkFileError unless chunk ``ds`` (read from ``path``) belongs to this study.

    Checks the provenance attributes (activation, initialization, the simulation-relevant part
    of ``config_json``) and that the ``network`` coordinate is exactly ``start … stop−1``.
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
            file_cfg = simulation_config(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"attribute config_json is unusable ({exc!r})")
        else:
            problems.extend(_differences(file_cfg, simulation_config(cfg)))
    network = ds["network"].values if "network" in ds.coords else np.array([])
    if not np.array_equal(network, np.arange(start, stop)):
        shown = f"{network.min()} … {network.max()} ({network.size})" if network.size else "none"
        problems.append(f"networks are {shown}, expected {start} … {stop - 1} ({stop - start}); "
                        "ensemble.chunk_size may have changed")
    if problems:
        raise chunkio.ChunkFileError(
            f"{path}: written for a different study configuration:\n  - "
            + "\n  - ".join(problems)
            + f"\n{_remedy(path)} (or delete {path.parent} to recompute the whole combination)"
        )
    version = ds.attrs.get("weightdyn_version")
    if version != __version__:
        log.warning("%s was written by weightdyn %s, this is %s", path, version, __version__)


def loss_curve_steps(steps: int, record_stride: int, loss_curve_stride: int) -> np.ndarray:
    """Steps of the gathered loss curves: 0, c, 2c, … and the last step (all recorded)."""
    curve = np.arange(0, steps + 1, loss_curve_stride)
    return np.unique(np.append(curve[curve % record_stride == 0], steps))


def gather(chunks: Sequence[tuple[str | Path, int, int]], cfg: dict, activation: str,
           initialization: str) -> xr.Dataset:
    """The gathered dataset of one combination from its chunk files ``(path, start, stop)``.

    ``chunks`` must cover networks 0 … N−1 without gaps, in order.
    """
    train, rec = cfg["training"], cfg["recording"]
    steps = loss_curve_steps(train["steps"], rec["record_stride"], rec["loss_curve_stride"])
    expected_start = 0
    parts = {name: [] for name in ("final_loss", "diverged", "divergence_step", "loss")}
    sources = []
    for path, start, stop in chunks:
        if start != expected_start:
            raise ValueError(f"chunks must be contiguous from network 0: {path} starts at {start}, "
                             f"expected {expected_start}")
        expected_start = stop
        ds = read_chunk_summary(path)
        check_chunk(ds, path, cfg, activation, initialization, start, stop)
        missing = np.setdiff1d(steps, ds["step"].values)
        if missing.size:
            raise chunkio.ChunkFileError(
                f"{path}: loss not recorded at steps {missing[:5].tolist()}; {_remedy(Path(path))}"
            )
        parts["final_loss"].append(ds["final_loss"].values.astype(np.float64))
        parts["diverged"].append(ds["diverged"].values.astype(np.int8))
        parts["divergence_step"].append(ds["divergence_step"].values.astype(np.int64))
        parts["loss"].append(ds["loss"].sel(step=steps).values.astype(np.float64))
        sources.append(str(path))
        log.info("%s: networks %d … %d, %d diverged", path, start, stop - 1,
                 int(ds["diverged"].sum()))
    if not sources:
        raise ValueError("no chunk files to gather")
    data = {name: np.concatenate(values) for name, values in parts.items()}
    eta = float(train["learning_rate"])
    network = np.arange(expected_start, dtype=np.int64)
    n_diverged = int(data["diverged"].sum())
    return xr.Dataset(
        {
            "final_loss": ("network", data["final_loss"],
                           {"long_name": "final training cost c_f (inf if diverged)", "units": "1"}),
            "diverged": ("network", data["diverged"],
                         {"long_name": "1 if the network diverged", "units": "1"}),
            "divergence_step": ("network", data["divergence_step"],
                                {"long_name": "first step failing the divergence check, -1 if none",
                                 "units": "steps"}),
            "loss": (("network", "step"), data["loss"],
                     {"long_name": "training cost C at the loss-curve steps (NaN after divergence)",
                      "units": "1"}),
        },
        coords={
            "network": ("network", network, {"long_name": "network index within the combination"}),
            "step": ("step", steps, {"long_name": "gradient-descent step", "units": "steps"}),
            "t": ("step", np.round(steps * eta, 12), {"long_name": "flow time t = n * eta",
                                                      "units": "1"}),
        },
        attrs={
            "title": "weightdyn gathered simulation results",
            "activation": activation,
            "initialization": initialization,
            "learning_rate": eta,
            "steps": int(train["steps"]),
            "record_stride": int(rec["record_stride"]),
            "jacobian_stride": int(rec["jacobian_stride"]),
            "loss_curve_stride": int(rec["loss_curve_stride"]),
            "networks": int(network.size),
            "n_diverged": n_diverged,
            "source_files": json.dumps(sources),
            **chunkio.provenance(cfg, "gather"),
        },
    )
