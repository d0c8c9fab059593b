"""Shared fixtures: the repository's default configuration and small problems."""

import copy
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # tests also run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture(scope="session")
def default_config():
    """The study's default config.yaml (a fresh deep copy per use is the caller's job)."""
    with open(ROOT / "config.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def config(default_config):
    """A deep copy of the default config that a test may modify."""
    return copy.deepcopy(default_config)
