"""Rule gather: final losses, divergence and loss curves of one (activation, initialization).

Checks every chunk's provenance (weightdyn.gather.check_chunk) against the config slice
``params.gather`` (weightdyn.plan.gather_config) and writes results/gather/{act}/{init}.nc; the
provenance stamp records the study's whole configuration (without ``run``).
"""

import common  # src/ on sys.path, NUMBA_NUM_THREADS

from weightdyn.chunkio import write_dataset
from weightdyn.gather import gather
from weightdyn.runlog import script_logging

with script_logging(snakemake.log[0], snakemake.rule) as log:
    chunks = [
        (path, start, stop)
        for path, (start, stop) in zip(snakemake.input, snakemake.params.networks)
    ]
    ds = gather(chunks, snakemake.params.gather, snakemake.wildcards.act,
                snakemake.wildcards.init)
    common.record_study_config(ds.attrs)
    log.info("%d networks, %d diverged", ds.attrs["networks"], ds.attrs["n_diverged"])
    # uncompressed: zlib saves 22 % of these float64 data and costs ~4 s to write (and ~1 s
    # to read back in every later job)
    write_dataset(ds, snakemake.output[0], compress=False)
    log.info("wrote %s", snakemake.output[0])
