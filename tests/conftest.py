"""Shared fixtures: the repository's default configuration and small problems."""

import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # tests also run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture(scope="session")
def default_config():
    """The study's default config.yaml (a fresh deep copy per use is the caller's job)."""
    from weightdyn.plan import load_config

    return load_config()


@pytest.fixture(scope="session")
def tiny_config():
    """config.yaml with the overlay config/tiny.yaml, as `snakemake --configfile
    config/tiny.yaml` sees it (a fresh deep copy per use is the caller's job)."""
    from weightdyn.plan import load_config

    return load_config(ROOT / "config" / "tiny.yaml")


@pytest.fixture
def config(default_config):
    """A deep copy of the default config that a test may modify."""
    return copy.deepcopy(default_config)
