# Helpers shared by the rules: the studies of this run, fan-out of each study into jobs, output
# paths, input functions, resources. The logic lives in weightdyn.plan (standard library only,
# tested without Snakemake); this file only adapts it.

import re

# Every study this config asks for, by output prefix (weightdyn.plan.studies): the run itself
# ("" for the default study: results/, logs/, benchmarks/; "<name>/" for a named run,
# config/*.yaml), or the points of its sweep ("sweeps/<sweep>/<key>=<value>/"). The rules
# below carry the prefix as the wildcard {study}, so that every study has its own files and no
# run overwrites another's outputs.
STUDIES = plan.studies(config)
FIGURE_NAMES = plan.FIGURE_NAMES
# The run's own folder (sweep tables and figures)
RESULTS = f"results/{plan.run_prefix(config)}"


wildcard_constraints:
    # exactly the prefixes of STUDIES; "(?:)" matches the default study's empty prefix
    study="(?:" + "|".join(re.escape(prefix) for prefix in STUDIES) + ")",
    act=r"[A-Za-z0-9_]+",
    init=r"[A-Za-z0-9_]+",
    chunk=r"\d+",


def study_config(wildcards):
    """The configuration of the study in ``wildcards.study``."""
    return STUDIES[wildcards.study]


def results_path(path):
    """``path`` in the study's results folder (results/{study})."""
    return f"results/{{study}}{path}"


def logs_path(path):
    """``path`` in the study's log folder (logs/{study})."""
    return f"logs/{{study}}{path}"


def benchmarks_path(path):
    """``path`` in the study's benchmark folder (benchmarks/{study}rules/)."""
    return f"benchmarks/{{study}}rules/{path}"


# The simulate chunk files (with the propagators) are temp(): deleted as soon as their lyapunov
# job has run, unless the config sets recording.keep_propagators: true (not sweepable: the
# same for every study of the run).
TEMP_CHUNKS = True


def chunk_output(path):
    """The simulate output: temp() if chunks are temporary and the config does not keep them."""
    if TEMP_CHUNKS and not config["recording"]["keep_propagators"]:
        return temp(path)
    return path


def chunk_networks(wildcards):
    """Networks [start, stop) of the chunk in ``wildcards.chunk``."""
    return plan.chunk_range(study_config(wildcards), wildcards.chunk)


def study_slice(slice_of):
    """The rule's params: the config slice ``slice_of`` (a weightdyn.plan function) of the
    study in the wildcards."""

    def get(wildcards):
        return slice_of(study_config(wildcards))

    return get


def chunk_resource(resources_of, name):
    """Resource ``name`` of a chunk job (``resources_of``: weightdyn.plan.simulate_resources or
    lyapunov_resources), for its study and chunk size; scaled by the attempt number when a
    failed job is retried."""

    def get(wildcards, attempt):
        start, stop = chunk_networks(wildcards)
        return resources_of(study_config(wildcards), stop - start)[name] * attempt

    return get


def gather_resource(name):
    """Resource ``name`` of a gather job (weightdyn.plan.gather_resources) of the study."""

    def get(wildcards, attempt):
        return plan.gather_resources(study_config(wildcards))[name] * attempt

    return get


def study_chunk_ranges(wildcards):
    """Networks [start, stop) of every chunk of the study, in order."""
    cfg = study_config(wildcards)
    return [plan.chunk_range(cfg, chunk) for chunk in plan.chunk_ids(cfg)]


def lyapunov_chunks(wildcards):
    """All lyapunov chunk files of the combination (act, init) of the study."""
    return [
        f"results/{wildcards.study}lyapunov/{wildcards.act}/{wildcards.init}/chunk{chunk}.nc"
        for chunk in plan.chunk_ids(study_config(wildcards))
    ]


def combination_files(pattern, prefix, cfg):
    """``pattern`` (with {study}, {act}, {init}) for every combination of the study with output
    prefix ``prefix`` and configuration ``cfg``."""
    return [
        pattern.format(study=prefix, act=act, init=init)
        for act, init in plan.combinations(cfg)
    ]


def study_files(pattern):
    """Input function: ``pattern`` (with {study}, {act}, {init}) for every combination of the
    study in the wildcards."""

    def get(wildcards):
        return combination_files(pattern, wildcards.study, study_config(wildcards))

    return get


def every_study_files(pattern):
    """``pattern`` (with {study}, {act}, {init}) for every combination of every study, in the
    order of STUDIES."""
    return [
        path
        for prefix, cfg in STUDIES.items()
        for path in combination_files(pattern, prefix, cfg)
    ]


def study_targets(prefix, cfg, figures=True):
    """Every output a study keeps: the lyapunov chunks, gathered files, prediction files,
    tables and (``figures``) figures. A missing or deleted one is thus recomputed by a plain
    `snakemake` (a lyapunov chunk with the temporary simulate chunk it needs), and only that:
    intermediate files are never "missing but not needed"."""
    results = f"results/{prefix}"
    combinations = plan.combinations(cfg)
    return [
        *(
            f"{results}lyapunov/{act}/{init}/chunk{chunk}.nc"
            for act, init in combinations
            for chunk in plan.chunk_ids(cfg)
        ),
        *combination_files("results/{study}gather/{act}/{init}.nc", prefix, cfg),
        *combination_files("results/{study}prediction/{act}/{init}.nc", prefix, cfg),
        *combination_files("results/{study}prediction/{act}/{init}.csv", prefix, cfg),
        *(f"{results}tables/{name}" for name in plan.TABLE_NAMES),
        *(
            f"{results}figures/{name}.{ext}"
            for name in (FIGURE_NAMES if figures else ())
            for ext in ("png", "pdf")
        ),
    ]


def all_targets():
    """The default target: every study's outputs; for a sweep, its points' outputs without
    their figures, and the sweep's table and figure."""
    if not config.get("sweep"):
        return [
            target
            for prefix, cfg in STUDIES.items()
            for target in study_targets(prefix, cfg)
        ]
    return [
        *(
            target
            for prefix, cfg in STUDIES.items()
            for target in study_targets(prefix, cfg, figures=False)
        ),
        *sweep_outputs().values(),
    ]


def sweep_outputs():
    """The sweep's table (CSV, Markdown) and figure (PNG, PDF) in the run's folder."""
    name = config["sweep"]["name"]
    return {
        "table": f"{RESULTS}tables/sweep_{name}.csv",
        "markdown": f"{RESULTS}tables/sweep_{name}.md",
        "png": f"{RESULTS}figures/sweep_{name}.png",
        "pdf": f"{RESULTS}figures/sweep_{name}.pdf",
    }
