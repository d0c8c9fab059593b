"""Rule tables: classes.csv, auc.csv, curvature.csv and summary.md from all combinations of a
study.

Reads the config slice ``params.prediction`` (weightdyn.plan.report_config); provenance.json
records the study's whole configuration (without ``run``).
"""

import common  # src/ on sys.path, NUMBA_NUM_THREADS

import json
from pathlib import Path

from weightdyn.chunkio import check_table, read_dataset, read_table, write_text
from weightdyn.plan import file_sha256
from weightdyn.prediction import AUC_COLUMNS
from weightdyn.runlog import script_logging
from weightdyn.tables import (
    GATHERED_VARIABLES, auc_table, classes_table, clv_convergence_table, curvature_table,
    stability_table, summary_markdown,
)

with script_logging(snakemake.log[0], snakemake.rule) as log:
    gathered = {}
    for path in snakemake.input.gathered:
        G = read_dataset(path, select=GATHERED_VARIABLES)
        gathered[G.attrs["activation"], G.attrs["initialization"]] = G
    classes = classes_table(gathered)
    curvature = curvature_table(gathered)
    for table, dataset in zip(snakemake.input.predictions, snakemake.input.prediction_datasets):
        check_table(table, read_dataset(dataset, select=()).attrs["table_sha256"], dataset)
    auc = auc_table(read_table(path, AUC_COLUMNS) for path in snakemake.input.predictions)
    pcfg = snakemake.params.prediction
    texts = {
        snakemake.output.classes: classes.to_csv(index=False),
        snakemake.output.auc: auc.to_csv(index=False),
        snakemake.output.curvature: curvature.to_csv(index=False),
        snakemake.output.summary: summary_markdown(
            classes, auc, float(pcfg["headline_time"]), float(pcfg["min_middle_fraction"]),
            clv_convergence_table(gathered), int(pcfg["clv_lag"]),
            stability_table(gathered, pcfg["clv_vectors"]), pcfg["clv_vectors"], curvature),
    }
    for path, text in texts.items():
        write_text(path, text)
    stamp = common.study_provenance()
    stamp["config"] = json.loads(stamp.pop("config_json"))
    stamp["inputs"] = list(snakemake.input)
    # what each table held when written: a hand-edited table is found and regenerated
    # (weightdyn.plan.edited_tables, checked at the start of every run)
    stamp["sha256"] = {Path(path).name: file_sha256(path) for path in texts}
    write_text(snakemake.output.provenance, json.dumps(stamp, indent=1) + "\n")
    log.info("tables for %d combinations written", len(classes))
