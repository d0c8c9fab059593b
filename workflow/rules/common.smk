# Helpers shared by the rules: fan-out of the study into jobs, input functions, resources.
# The logic lives in weightdyn.config (tested without Snakemake); this file only adapts it.

from weightdyn.config import (
    analysis_config,
    chunk_ids,
    chunk_range,
    combinations,
    gather_resources,
    lyapunov_resources,
    simulate_resources,
    simulation_config,
)
from weightdyn.figures import FIGURES

COMBINATIONS = combinations(config)
CHUNKS = chunk_ids(config)
GATHER_RESOURCES = gather_resources(config)

# The simulate chunk files (with the propagators) are temp(): deleted as soon as their lyapunov
# job has run, unless the config sets recording.keep_propagators: true.
TEMP_CHUNKS = True


wildcard_constraints:
    act=r"[A-Za-z0-9_]+",
    init=r"[A-Za-z0-9_]+",
    chunk=r"\d+",


def chunk_output(path):
    """The simulate output: temp() if chunks are temporary and the config does not keep them."""
    if TEMP_CHUNKS and not config["recording"]["keep_propagators"]:
        return temp(path)
    return path


def chunk_networks(wildcards):
    """Networks [start, stop) of the chunk in ``wildcards.chunk``."""
    return chunk_range(config, wildcards.chunk)


def simulate_resource(name):
    """Resource ``name`` of a simulate job (weightdyn.config.simulate_resources), for its chunk's
    size; scaled by the attempt number when a failed job is retried."""

    def get(wildcards, attempt):
        start, stop = chunk_networks(wildcards)
        return simulate_resources(config, stop - start)[name] * attempt

    return get


def lyapunov_resource(name):
    """Resource ``name`` of a lyapunov job (weightdyn.config.lyapunov_resources), scaled by
    the attempt number."""

    def get(wildcards, attempt):
        start, stop = chunk_networks(wildcards)
        return lyapunov_resources(config, stop - start)[name] * attempt

    return get


def lyapunov_chunks(wildcards):
    """All lyapunov chunk files of the combination (act, init) in ``wildcards``."""
    return expand(
        "results/lyapunov/{act}/{init}/chunk{chunk}.nc",
        act=wildcards.act,
        init=wildcards.init,
        chunk=CHUNKS,
    )


def gather_outputs():
    """The gathered file of every combination."""
    return [f"results/gather/{act}/{init}.nc" for act, init in COMBINATIONS]


def prediction_outputs(ext):
    """The prediction file (``ext``: nc or csv) of every combination."""
    return [f"results/prediction/{act}/{init}.{ext}" for act, init in COMBINATIONS]


FIGURE_NAMES = list(FIGURES)


def all_targets():
    """Final outputs of the study, the input of the default target: tables and figures."""
    return [
        "results/tables/classes.csv",
        "results/tables/auc.csv",
        "results/tables/summary.md",
        *(
            f"results/figures/{name}.{ext}"
            for name in FIGURE_NAMES
            for ext in ("png", "pdf")
        ),
    ]
