"""Rule predict: naive Bayes prediction of E_low and E_high for one combination.

Reads the config slice ``params.config`` (weightdyn.plan.predict_config: prediction settings and
class thresholds); the provenance stamp records the study's whole configuration (without
``run``).
"""

import common  # src/ on sys.path, NUMBA_NUM_THREADS

import hashlib

import pandas as pd

from weightdyn.chunkio import read_dataset, write_dataset, write_text
from weightdyn.prediction import AUC_COLUMNS, INPUT_VARIABLES, predict_combination
from weightdyn.runlog import script_logging

with script_logging(snakemake.log[0], snakemake.rule) as log:
    gathered = read_dataset(snakemake.input[0], select=INPUT_VARIABLES)
    ds, rows = predict_combination(gathered, snakemake.params.config)
    ds.attrs.update(common.study_provenance())
    table = pd.DataFrame(rows, columns=AUC_COLUMNS).to_csv(index=False)
    # the dataset records the table's checksum: the tables rule detects a damaged table
    ds.attrs["table_sha256"] = hashlib.sha256(table.encode()).hexdigest()
    write_text(snakemake.output.table, table)
    write_dataset(ds, snakemake.output.dataset)
    log.info("%d AUC rows (%d best-available), %d computable", len(rows),
             sum(r["kind"] == "best_available" for r in rows),
             sum(bool(r["computable"]) for r in rows))
    if ds.attrs.get("e_low_note"):
        log.info("%s", ds.attrs["e_low_note"])
