# Helpers shared by the rules: fan-out of the study into jobs, output paths of the run, input
# functions, resources. The logic lives in weightdyn.plan (standard library only, tested without
# Snakemake); this file only adapts it.

COMBINATIONS = plan.combinations(config)
CHUNKS = plan.chunk_ids(config)
GATHER_RESOURCES = plan.gather_resources(config)
FIGURE_NAMES = plan.FIGURE_NAMES

# Output folders of this run: results/, logs/, benchmarks/ for the default study (run.name
# empty), results/<name>/, logs/<name>/, benchmarks/<name>/ for a named run (config/*.yaml), so
# that no run overwrites another's outputs.
RUN = plan.run_prefix(config)
RESULTS = f"results/{RUN}"


def results_path(path):
    """``path`` in this run's results folder (results/ or results/<name>/)."""
    return f"{RESULTS}{path}"


def logs_path(path):
    """``path`` in this run's log folder (logs/ or logs/<name>/)."""
    return f"logs/{RUN}{path}"


def benchmarks_path(path):
    """``path`` in this run's benchmark folder (benchmarks/rules/ or benchmarks/<name>/rules/)."""
    return f"benchmarks/{RUN}rules/{path}"


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
    return plan.chunk_range(config, wildcards.chunk)


def simulate_resource(name):
    """Resource ``name`` of a simulate job (weightdyn.plan.simulate_resources), for its chunk's
    size; scaled by the attempt number when a failed job is retried."""

    def get(wildcards, attempt):
        start, stop = chunk_networks(wildcards)
        return plan.simulate_resources(config, stop - start)[name] * attempt

    return get


def lyapunov_resource(name):
    """Resource ``name`` of a lyapunov job (weightdyn.plan.lyapunov_resources), scaled by
    the attempt number."""

    def get(wildcards, attempt):
        start, stop = chunk_networks(wildcards)
        return plan.lyapunov_resources(config, stop - start)[name] * attempt

    return get


def lyapunov_chunks(wildcards):
    """All lyapunov chunk files of the combination (act, init) in ``wildcards``."""
    return expand(
        results_path("lyapunov/{act}/{init}/chunk{chunk}.nc"),
        act=wildcards.act,
        init=wildcards.init,
        chunk=CHUNKS,
    )


def gather_outputs():
    """The gathered file of every combination."""
    return [f"{RESULTS}gather/{act}/{init}.nc" for act, init in COMBINATIONS]


def prediction_outputs(ext):
    """The prediction file (``ext``: nc or csv) of every combination."""
    return [f"{RESULTS}prediction/{act}/{init}.{ext}" for act, init in COMBINATIONS]


def all_targets():
    """Every output the study keeps, the input of the default target: the lyapunov chunks,
    gathered files, prediction files, tables and figures. A missing or deleted one is thus
    recomputed by a plain `snakemake` (a lyapunov chunk with the temporary simulate chunk it
    needs), and only that: intermediate files are never "missing but not needed"."""
    return [
        *(
            results_path(f"lyapunov/{act}/{init}/chunk{chunk}.nc")
            for act, init in COMBINATIONS
            for chunk in CHUNKS
        ),
        *gather_outputs(),
        *prediction_outputs("nc"),
        *prediction_outputs("csv"),
        f"{RESULTS}tables/classes.csv",
        f"{RESULTS}tables/auc.csv",
        f"{RESULTS}tables/summary.md",
        f"{RESULTS}tables/provenance.json",
        *(
            f"{RESULTS}figures/{name}.{ext}"
            for name in FIGURE_NAMES
            for ext in ("png", "pdf")
        ),
    ]
