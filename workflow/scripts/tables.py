"""Rule tables: classes.csv, auc.csv and summary.md from all combinations.

Reads the config slice ``params.prediction`` (weightdyn.plan.report_config); provenance.json
records the study's whole configuration (without ``run``).
"""

import common  # noqa: F401  (src/ on sys.path, NUMBA_NUM_THREADS)

import json
from pathlib import Path

import pandas as pd

from weightdyn.chunkio import provenance, read_dataset
from weightdyn.plan import science_config
from weightdyn.runlog import script_logging
from weightdyn.tables import (
    auc_table, classes_table, clv_convergence_table, stability_table, summary_markdown,
)

with script_logging(snakemake.log[0], snakemake.rule) as log:
    gathered = {}
    for path in snakemake.input.gathered:
        G = read_dataset(path, ("outcome", "diverged", "clv_lag_error", "valid",
                                "lyapunov_exponent", "clv_tangency_fraction"))
        gathered[G.attrs["activation"], G.attrs["initialization"]] = G
    classes = classes_table(gathered)
    auc = auc_table(pd.read_csv(path) for path in snakemake.input.predictions)
    classes.to_csv(snakemake.output.classes, index=False)
    auc.to_csv(snakemake.output.auc, index=False)
    pcfg = snakemake.params.prediction
    Path(snakemake.output.summary).write_text(summary_markdown(
        classes, auc, float(pcfg["headline_time"]), float(pcfg["min_middle_fraction"]),
        clv_convergence_table(gathered), int(pcfg["clv_lag"]),
        stability_table(gathered, pcfg["clv_vectors"]), pcfg["clv_vectors"]))
    stamp = provenance(science_config(snakemake.config), snakemake.rule)
    stamp["config"] = json.loads(stamp.pop("config_json"))
    stamp["inputs"] = list(snakemake.input)
    Path(snakemake.output.provenance).write_text(json.dumps(stamp, indent=1) + "\n")
    log.info("tables for %d combinations written", len(classes))
