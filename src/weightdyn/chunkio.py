"""Reading and writing the study's NetCDF files (xarray, netcdf4 engine).

Files are written atomically: to a temporary name in the same folder, then renamed, so a
killed job never leaves a file that looks complete. Readers check that the file opens and
holds the variables of the data contract, and name the file in every error.

Every file carries, as global attributes, what produced it (:func:`provenance`): the package
version, the git commit of the checkout, the versions of the scientific stack, the full
configuration and the rule, plus the CF attributes ``title``, ``history``, ``references`` and
``Conventions``. :func:`load_results` reads the gathered files of all combinations into one
dataset (docs/methods.md §6).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__
from .plan import file_sha256

#: compression applied to every data variable (level 1: fast, most of the gain)
COMPRESSION = {"zlib": True, "complevel": 1}

#: CF conventions the files follow
CONVENTIONS = "CF-1.10"
#: the paper and this repository's methods, for the CF ``references`` attribute
REFERENCES = (
    "Sharafi, Martin, Hallerberg: On the weight dynamics of learning networks, "
    "Phys. Rev. E 111, 054208 (2025), arXiv:2405.00743; "
    "weightdyn docs/methods.md (methods and protocol of this implementation)"
)
#: default CF ``title`` per producing rule (a caller may pass its own)
TITLES = {
    "simulate": "weightdyn simulation chunk",
    "lyapunov": "weightdyn Lyapunov analysis chunk",
    "gather": "weightdyn gathered results of one (activation, initialization)",
    "predict": "weightdyn prediction of the final-loss class of one (activation, initialization)",
    "tables": "weightdyn tables",
    "figures": "weightdyn figures",
}
#: distributions whose versions are recorded (python is added from the interpreter)
SOFTWARE = ("numpy", "numba", "xarray", "netCDF4", "scipy", "scikit-learn", "matplotlib",
            "snakemake")

#: variables every simulation chunk file must hold (results/simulate/{act}/{init}/chunk*.nc)
SIMULATION_VARIABLES = ("theta", "loss", "step_loss", "gradient_norm", "final_loss", "diverged",
                        "divergence_step", "hessian_min", "hessian_max", "propagator")


class ChunkFileError(RuntimeError):
    """A results file that cannot be used; the message names the file and the remedy."""


# --------------------------------------------------------------------------- provenance


def _git(args: Sequence[str], cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20,
                          check=True).stdout


@functools.cache
def git_commit() -> str:
    """The commit of the git checkout this package is imported from, with ``-dirty`` if the
    work tree has changes (``git status --porcelain`` not empty); ``unknown`` if the package
    is not a tracked file of a checkout (e.g. installed into site-packages) or git fails.
    Computed once per process."""
    here = Path(__file__).resolve().parent
    try:
        # the package's own file must be tracked there: a site-packages copy inside some
        # other repository (a .venv in a clone) is not that repository's commit
        _git(["ls-files", "--error-unmatch", Path(__file__).name], here)
        commit = _git(["rev-parse", "HEAD"], here).strip()
        dirty = bool(_git(["status", "--porcelain"], here).strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


@functools.cache
def software_versions() -> dict[str, str]:
    """Versions of Python and of the installed scientific stack (:data:`SOFTWARE`; from the
    installed distributions' metadata, nothing is imported). Cached per process."""
    versions = {"python": platform.python_version()}
    for dist in SOFTWARE:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def provenance(cfg: dict, rule: str, title: str | None = None) -> dict:
    """Global attributes recording what produced a file.

    ``title`` defaults to :data:`TITLES` of ``rule``; ``history`` is the date (ISO 8601, UTC,
    without the time of day, so that reruns on the same day have identical attributes) and
    the rule. ``software_versions_json`` and ``config_json`` are JSON strings (NetCDF
    attributes cannot hold mappings).
    """
    today = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    return {
        "title": title or TITLES.get(rule, f"weightdyn {rule} output"),
        "history": f"{today}: written by weightdyn {__version__}, rule {rule}",
        "references": REFERENCES,
        "Conventions": CONVENTIONS,
        "weightdyn_version": __version__,
        "git_commit": git_commit(),
        "software_versions_json": json.dumps(software_versions(), sort_keys=True),
        "config_json": json.dumps(cfg, sort_keys=True),
        "rule": rule,
    }


# --------------------------------------------------------------------------- files


def remedy(path) -> str:
    """The remedy named by every error about a damaged results file; it works as written."""
    return f"delete {path} and run the same snakemake command again to recompute it"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside ``path`` (hidden, ending in ``.tmp``: never matched as a
    result) to write to; on success it is renamed to ``path`` (atomic on one filesystem), on
    any error removed: a killed or failed write (full disk, Ctrl-C) never leaves a file at
    ``path`` that looks complete. Writers that choose a format by suffix must be told it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def read_table(path, columns: Sequence[str] = ()):
    """A CSV table written by the workflow as a pandas DataFrame; ChunkFileError naming the file
    and the remedy if it cannot be parsed or lacks one of ``columns``."""
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise ChunkFileError(f"{path}: file not found") from None
    except Exception as exc:  # pandas raises ParserError, EmptyDataError, UnicodeDecodeError, …
        raise ChunkFileError(f"{path}: cannot be read ({exc}); {remedy(path)}") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ChunkFileError(f"{path}: missing columns {missing}; {remedy(path)}")
    return table


def check_table(path, sha256: str, recorded_in) -> None:
    """ChunkFileError naming ``path`` and the remedy unless its bytes have the SHA-256 that
    ``recorded_in`` (the file written with it) recorded: a truncated or edited table."""
    path = Path(path)
    try:
        digest = file_sha256(path)
    except OSError as exc:
        raise ChunkFileError(f"{path}: cannot be read ({exc})") from exc
    if digest != sha256:
        raise ChunkFileError(f"{path}: differs from the table recorded in {recorded_in} "
                             f"(truncated or edited); {remedy(path)}")


def _unreadable(path: Path, exc: Exception) -> ChunkFileError:
    if isinstance(exc, FileNotFoundError):
        return ChunkFileError(f"{path}: file not found")
    return ChunkFileError(f"{path}: cannot be read ({exc}); {remedy(path)}")


def _check_variables(ds: xr.Dataset, path: Path, names: Iterable[str]) -> None:
    missing = [name for name in names if name not in ds.variables]
    if missing:
        raise ChunkFileError(f"{path}: missing variables {missing}; {remedy(path)}")


def read_dataset(path, required: tuple[str, ...] = (),
                 select: Sequence[str] | None = None) -> xr.Dataset:
    """Load a whole file into memory (only the variables ``select`` and the coordinates, if
    given); ChunkFileError naming the file if unreadable or incomplete."""
    path = Path(path)
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            if select is not None:
                _check_variables(ds, path, select)
                ds = ds[list(select)]
            ds.load()
    except ChunkFileError:
        raise
    except Exception as exc:  # netCDF4/HDF5 raise OSError, RuntimeError, KeyError, ...
        raise _unreadable(path, exc) from exc
    _check_variables(ds, path, required)
    return ds


def write_simulation_chunk(ds: xr.Dataset, path, propagator_dtype: str = "float64",
                           compress: bool = False) -> None:
    """Write a simulation chunk (:func:`weightdyn.simulate.chunk_dataset`): propagators in
    ``propagator_dtype``, all else float64; no compression by default (the chunk is temporary:
    it lives until its lyapunov job has run)."""
    write_dataset(ds, path, dtypes={"propagator": propagator_dtype}, compress=compress)


def read_simulation_chunk(path) -> xr.Dataset:
    """Read a simulation chunk file, checking it holds :data:`SIMULATION_VARIABLES` (errors
    name the file)."""
    return read_dataset(path, SIMULATION_VARIABLES)


@contextlib.contextmanager
def open_simulation_chunk(path):
    """A simulation chunk file, open while the context lasts: every variable in memory except
    ``propagator`` (≈ 230 MB per chunk of 500), which is read from the file when indexed — by
    blocks of networks in :func:`weightdyn.lyapunov.analyse`. ChunkFileError naming the file if
    it is unreadable or lacks one of :data:`SIMULATION_VARIABLES`."""
    path = Path(path)
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except Exception as exc:  # netCDF4/HDF5 raise OSError, RuntimeError, KeyError, ...
        raise _unreadable(path, exc) from exc
    with ds:
        _check_variables(ds, path, SIMULATION_VARIABLES)
        try:
            for name, variable in ds.variables.items():
                if name != "propagator":
                    variable.load()
        except Exception as exc:
            raise _unreadable(path, exc) from exc
        yield ds


# --------------------------------------------------------------------------- gathered results

#: per-combination global attributes of a gathered file kept as variables by load_results
_PER_COMBINATION = {
    "networks": ("n_networks", "networks in the combination"),
    "n_diverged": ("n_diverged", "diverged networks in the combination"),
}
#: fill values for padding integer variables of different lengths (load_results)
_INT_FILL = -1


def _config_differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like configurations differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_config_differences(a.get(key), b.get(key), name) if key in a and key in b
                       else [name])
        return out
    return [] if a == b else [prefix]


def _ordered(names: Iterable[str], preferred: Sequence[str]) -> list[str]:
    names = set(names)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def load_results(results_dir="results", variables: Sequence[str] | None = None,
                 combinations: Iterable[tuple[str, str]] | None = None) -> xr.Dataset:
    """All gathered files ``{results_dir}/gather/{act}/{init}.nc`` as one dataset with the new
    dimensions ``activation`` and ``initialization`` (in the order of the study's
    configuration).

    * ``variables``: names of the variables to load (default: all); the full default study
      needs ≈ 1 GB of memory for all variables of all four combinations.
    * ``combinations``: ``(activation, initialization)`` pairs to load (default: every file).
    * Variables whose length differs between combinations — the sample loss curves
      ``loss_curve(sample, step)``, ``sample_network``, ``sample_outcome``, whose number of
      samples depends on the class sizes — are padded: float with NaN, integer with −1. A
      combination missing from the activation × initialization grid is padded the same way
      (its ``n_networks`` is −1 and its ``source_file`` "").
    * The global attributes common to all files are kept (title, config_json, …); the
      per-combination ones become variables: ``n_networks`` and ``n_diverged``
      (activation, initialization) and ``source_file`` (the gathered file, "" if missing).

    All files must have been written under the same configuration (``config_json``):
    otherwise a ValueError names the files and the differing keys (a results folder may hold
    combinations of an earlier configuration; pass ``combinations`` to choose).
    """
    root = Path(results_dir) / "gather"
    paths = sorted(root.glob("*/*.nc"))
    if combinations is not None:
        wanted = {tuple(c) for c in combinations}
        paths = [p for p in paths if (p.parent.name, p.stem) in wanted]
        missing = wanted - {(p.parent.name, p.stem) for p in paths}
        if missing:
            raise FileNotFoundError(f"no gathered file for {sorted(missing)} in {root}")
    if not paths:
        raise FileNotFoundError(f"no gathered files {root}/<activation>/<initialization>.nc")
    parts, configs = {}, {}
    for path in paths:
        ds = read_dataset(path, select=variables)
        key = (ds.attrs.get("activation", path.parent.name),
               ds.attrs.get("initialization", path.stem))
        parts[key] = _with_combination(path, ds, *key)
        configs[key] = (path, json.loads(ds.attrs.get("config_json", "{}")))
    first_path, cfg = next(iter(configs.values()))
    for path, other in configs.values():
        diff = _config_differences(cfg, other)
        if diff:
            raise ValueError(
                f"{path} and {first_path} were written under different configurations "
                f"(differing keys: {', '.join(diff)}); rerun snakemake for one configuration "
                "or pass combinations=… to load_results")
    acts = _ordered({a for a, _ in parts}, cfg.get("activations", ()))
    inits = _ordered({i for _, i in parts}, cfg.get("initializations", ()))
    fill = {name: (_INT_FILL if np.issubdtype(var.dtype, np.integer)
                   else "" if var.dtype.kind in "US" else np.nan)
            for ds in parts.values() for name, var in ds.data_vars.items()}
    rows = []
    for act in acts:
        row = [parts[act, init] for init in inits if (act, init) in parts]
        rows.append(xr.concat(row, dim="initialization", join="outer", fill_value=fill,
                              combine_attrs="drop_conflicts", data_vars="all",
                              coords="different", compat="equals"))
    out = xr.concat(rows, dim="activation", join="outer", fill_value=fill,
                    combine_attrs="drop_conflicts", data_vars="all", coords="different",
                    compat="equals")
    out = out.reindex(initialization=inits, fill_value=fill)   # the configuration's order
    for name in ("activation", "initialization", "source_file"):
        out[name] = out[name].astype(str)
    out["activation"].attrs["long_name"] = "activation function"
    out["initialization"].attrs["long_name"] = "initialisation scheme"
    for attr in ("activation", "initialization", "history", "source_files",
                 *_PER_COMBINATION):
        out.attrs.pop(attr, None)
    out.attrs["title"] = "weightdyn gathered results of all combinations"
    return out


def _with_combination(path: Path, ds: xr.Dataset, act: str, init: str) -> xr.Dataset:
    """``ds`` with the per-combination attributes as variables and the new dimensions."""
    ds = ds.copy()
    for attr, (name, long_name) in _PER_COMBINATION.items():
        if attr in ds.attrs:
            ds[name] = (), int(ds.attrs[attr]), {"long_name": long_name, "units": "1"}
    ds["source_file"] = (), str(path), {"long_name": "gathered file of the combination"}
    return ds.expand_dims(activation=[act], initialization=[init])
