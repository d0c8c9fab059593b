"""Bootstrap of the rule scripts (``import common`` before any weightdyn import).

* The weightdyn of this checkout (src/ beside workflow/) comes first on the import path, as in
  the Snakefile; without a src/ folder the installed package is used.
* ``NUMBA_NUM_THREADS`` is set from the rule's threads: numba reads it when it is first
  imported.

Snakemake puts the script's folder on ``sys.path`` (so this package is found) and defines the
``snakemake`` object in the script's namespace, the ``__main__`` module.
"""

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


def record_study_config(attrs) -> None:
    """Set ``attrs["config_json"]`` to the study's whole configuration (without ``run``).

    The scripts compute from their rule's config slice (``snakemake.params``: what reruns the
    rule); the files' provenance still records the whole configuration, as before the slices.
    """
    from weightdyn.chunkio import provenance
    from weightdyn.plan import science_config

    stamp = provenance(science_config(_snakemake.config), _snakemake.rule)
    attrs["config_json"] = stamp["config_json"]
