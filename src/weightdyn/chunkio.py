"""Reading and writing the study's NetCDF files (xarray, netcdf4 engine).

Files are written atomically: to a temporary name in the same folder, then renamed, so a
killed job never leaves a file that looks complete. Readers check that the file opens and
holds the variables of the data contract, and name the file in every error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__

#: compression applied to every data variable (level 1: fast, most of the gain)
COMPRESSION = {"zlib": True, "complevel": 1}


class ChunkFileError(RuntimeError):
    """A results file that cannot be used; the message names the file and the remedy."""


def provenance(cfg: dict, rule: str) -> dict:
    """Global attributes recording what produced a file."""
    return {
        "weightdyn_version": __version__,
        "config_json": json.dumps(cfg, sort_keys=True),
        "rule": rule,
        "Conventions": "CF-1.10",
    }


def write_dataset(ds: xr.Dataset, path, dtypes: dict | None = None, compress: bool = True) -> None:
    """Write ``ds`` atomically; float variables as float64 unless ``dtypes`` says otherwise;
    zlib-compressed unless ``compress`` is False (files that live seconds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {}
    for name, var in ds.data_vars.items():
        enc = dict(COMPRESSION) if compress else {}
        if np.issubdtype(var.dtype, np.floating):
            enc["dtype"] = (dtypes or {}).get(name, "float64")
        encoding[name] = enc
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_dataset(path, required: tuple[str, ...] = ()) -> xr.Dataset:
    """Load a whole file into memory; ChunkFileError naming the file if unreadable or incomplete."""
    path = Path(path)
    remedy = f"delete {path} and rerun snakemake to recompute it"
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds.load()
    except FileNotFoundError:
        raise ChunkFileError(f"{path}: file not found") from None
    except Exception as exc:  # netCDF4/HDF5 raise OSError, RuntimeError, KeyError, ...
        raise ChunkFileError(f"{path}: cannot be read ({exc}); {remedy}") from exc
    missing = [name for name in required if name not in ds.variables]
    if missing:
        raise ChunkFileError(f"{path}: missing variables {missing}; {remedy}")
    return ds
