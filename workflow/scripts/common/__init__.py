"""Bootstrap of the rule scripts (``import common`` before any weightdyn import).

* The weightdyn of this checkout (src/ beside workflow/) comes first on the import path, as in
  the Snakefile; without a src/ folder the installed package is used.
* ``NUMBA_NUM_THREADS`` is set from the rule's threads: numba reads it when it is first
  imported.
* :func:`numba_without_scipy` (for the jobs that run compiled kernels, before anything imports
  numba) keeps numba from importing SciPy.
* At exit the job's objects are frozen (``gc.freeze``): the interpreter's final garbage
  collection over numba's, xarray's and pandas' objects took ≈ 0.3 s per job, for memory the
  operating system frees anyway (open files are closed as before: by reference counting and
  the libraries' own exit handlers).

Snakemake puts the script's folder on ``sys.path`` (so this package is found) and defines the
``snakemake`` object in the script's namespace, the ``__main__`` module.
"""

import atexit
import gc
import os
import sys
from pathlib import Path

import __main__

SRC = Path(__file__).resolve().parents[3] / "src"
if (SRC / "weightdyn").is_dir():  # first, also ahead of an installed (e.g. editable) weightdyn
    sys.path[:] = [str(SRC)] + [p for p in sys.path if p != str(SRC)]

_snakemake = getattr(__main__, "snakemake", None)
if _snakemake is not None:
    os.environ["NUMBA_NUM_THREADS"] = str(_snakemake.threads)

atexit.register(gc.freeze)  # runs before the final collection, which then has nothing to do


def numba_without_scipy() -> None:
    """Import numba and its array-math implementations without SciPy.

    numba imports SciPy for a version check when it is imported, and its array math (loaded at
    the first compilation or cache load) probes for a BLAS by importing ``scipy.linalg``: ≈ 0.3 s
    of a job's start-up, with NumPy's f2py. The kernels use no BLAS inside compiled code (no
    ``np.dot``, ``@`` or ``np.linalg``), so SciPy is hidden while both load (the check is
    skipped, the probe fails); it stays importable for everything else.
    """
    if "numba.np.arraymath" in sys.modules:
        return
    hidden = "scipy" not in sys.modules
    if hidden:
        sys.modules["scipy"] = None  # "import scipy…" fails at once
    try:
        import numba.np.arraymath  # noqa: F401  (imports numba; the BLAS probe runs on import)
    finally:
        if hidden:
            del sys.modules["scipy"]


def study_config() -> dict:
    """The whole configuration of the job's study (wildcard ``study``: the run, or a point of
    its sweep; weightdyn.plan.studies), without ``run``."""
    from weightdyn.plan import science_config, studies

    return science_config(studies(_snakemake.config)[_snakemake.wildcards.study])


def study_provenance() -> dict:
    """The provenance stamp (weightdyn.chunkio.provenance) of the job's study and rule."""
    from weightdyn.chunkio import provenance

    return provenance(study_config(), _snakemake.rule)


def record_study_config(attrs) -> None:
    """Set ``attrs["config_json"]`` to the study's whole configuration (without ``run``).

    The scripts compute from their rule's config slice (``snakemake.params``: what reruns the
    rule); the files' provenance still records the whole configuration, as before the slices.
    """
    attrs["config_json"] = study_provenance()["config_json"]
