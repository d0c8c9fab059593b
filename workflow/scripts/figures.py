"""Rule figures: figures 1–9 of the study (PNG and PDF) from the gathered and prediction files.

Reads the config slice ``params.prediction`` (weightdyn.plan.report_config); the provenance
stamp records the study's whole configuration (without ``run``).
"""

import common  # noqa: F401  (src/ on sys.path, NUMBA_NUM_THREADS)

from pathlib import Path

from weightdyn import figures
from weightdyn.chunkio import provenance, read_dataset
from weightdyn.plan import science_config
from weightdyn.runlog import script_logging


def by_combination(paths):
    """{(activation, initialization): dataset} in the order of the config's combinations."""
    datasets = [read_dataset(path) for path in paths]
    return {(ds.attrs["activation"], ds.attrs["initialization"]): ds for ds in datasets}


with script_logging(snakemake.log[0], snakemake.rule) as log:
    inputs = {"gathered": by_combination(snakemake.input.gathered),
              "prediction": by_combination(snakemake.input.predictions)}
    stamp = provenance(science_config(snakemake.config), snakemake.rule)
    options = figures.figure_options({"prediction": snakemake.params.prediction})
    for png in snakemake.output.png:
        name = Path(png).stem
        plot, kind = figures.FIGURES[name]
        figures.save(plot(inputs[kind], **options.get(name, {})), Path(png).with_suffix(""),
                     stamp)
        log.info("wrote %s (.png, .pdf)", name)
