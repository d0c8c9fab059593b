"""Rule sweep: the sweep's table (CSV and Markdown) and figure from every point's gathered and
prediction files.

Reads ``params.sweep`` (weightdyn.plan.sweep_summary_config): the inputs are the points' files
in the order of the sweep's values, each point's combinations in config order.
"""

import common  # noqa: F401  (src/ on sys.path, NUMBA_NUM_THREADS)

import logging
from pathlib import Path

import pandas as pd

from weightdyn.chunkio import provenance, read_dataset, write_text
from weightdyn.figures import save, sweep_figure
from weightdyn.plan import science_config
from weightdyn.runlog import script_logging
from weightdyn.sensitivity import SWEEP_GATHERED_VARIABLES, sweep_markdown, sweep_table

with script_logging(snakemake.log[0], snakemake.rule) as log:
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    spec = snakemake.params.sweep
    gathered, predictions = list(snakemake.input.gathered), list(snakemake.input.predictions)
    points = []
    for value, n in zip(spec["values"], spec["combinations"]):
        datasets = [read_dataset(path, select=SWEEP_GATHERED_VARIABLES) for path in gathered[:n]]
        frame = pd.concat([pd.read_csv(path) for path in predictions[:n]], ignore_index=True)
        gathered, predictions = gathered[n:], predictions[n:]
        points.append((value, {(G.attrs["activation"], G.attrs["initialization"]): G
                               for G in datasets}, frame))
    table = sweep_table(points, float(spec["headline_time"]))
    write_text(snakemake.output.table, table.to_csv(index=False))
    write_text(snakemake.output.markdown, sweep_markdown(table, spec["name"], spec["key"]))
    stamp = provenance(science_config(snakemake.config), snakemake.rule)
    save(sweep_figure(table, spec["name"], spec["key"]), Path(snakemake.output.png).with_suffix(""),
         stamp)
    log.info("sweep %s over %s: %d points, %d rows", spec["name"], spec["key"],
             len(spec["values"]), len(table))
