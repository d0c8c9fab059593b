"""Rule figures: figures 1–9 of the study (PNG and PDF) from the gathered and prediction files."""

import sys
from pathlib import Path

# Use the weightdyn of this checkout (src/ beside workflow/), as the Snakefile does.
_SRC = Path(snakemake.scriptdir).resolve().parents[1] / "src"
if (_SRC / "weightdyn").is_dir():
    sys.path.insert(0, str(_SRC))

from weightdyn import figures
from weightdyn.chunkio import provenance, read_dataset
from weightdyn.runlog import script_logging


def by_combination(paths):
    """{(activation, initialization): dataset} in the order of the config's combinations."""
    datasets = [read_dataset(path) for path in paths]
    return {(ds.attrs["activation"], ds.attrs["initialization"]): ds for ds in datasets}


with script_logging(snakemake.log[0], snakemake.rule) as log:
    inputs = {"gathered": by_combination(snakemake.input.gathered),
              "prediction": by_combination(snakemake.input.predictions)}
    stamp = provenance(snakemake.config, snakemake.rule)
    options = figures.figure_options(snakemake.config)
    for png in snakemake.output.png:
        name = Path(png).stem
        plot, kind = figures.FIGURES[name]
        figures.save(plot(inputs[kind], **options.get(name, {})), Path(png).with_suffix(""),
                     stamp)
        log.info("wrote %s (.png, .pdf)", name)
