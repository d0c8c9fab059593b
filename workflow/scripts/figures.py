"""Rule figures: figures 1–10 of a study (PNG and PDF) from the gathered and prediction files.

Reads the config slice ``params.prediction`` (weightdyn.plan.report_config); the provenance
stamp records the study's whole configuration (without ``run``).
"""

import common  # src/ on sys.path, NUMBA_NUM_THREADS

import logging
from pathlib import Path

from weightdyn import figures
from weightdyn.chunkio import read_dataset
from weightdyn.runlog import script_logging


def by_combination(paths, select=None):
    """{(activation, initialization): dataset (the variables ``select``, default all)} in the
    order of the config's combinations."""
    datasets = [read_dataset(path, select=select) for path in paths]
    return {(ds.attrs["activation"], ds.attrs["initialization"]): ds for ds in datasets}


with script_logging(snakemake.log[0], snakemake.rule) as log:
    # the PDF backend's font subsetting reports every glyph at INFO
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    inputs = {"gathered": by_combination(snakemake.input.gathered, figures.GATHERED_VARIABLES),
              "prediction": by_combination(snakemake.input.predictions)}
    stamp = common.study_provenance()
    options = figures.figure_options({"prediction": snakemake.params.prediction})
    stems = [Path(png).with_suffix("") for png in snakemake.output.png]
    for stem in figures.save_figures(stems, inputs, stamp, options, snakemake.threads):
        log.info("wrote %s (.png, .pdf)", stem.name)
