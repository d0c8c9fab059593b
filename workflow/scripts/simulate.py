"""Rule simulate: train networks [start, stop) of one (activation, initialization).

Writes the chunk file of the data contract (results/simulate/{act}/{init}/chunk{chunk}.nc).
Reads the config slice ``params.simulation`` (weightdyn.plan.simulation_config); the provenance
stamp records the study's whole configuration (without ``run``).
"""

import common  # src/ on sys.path, NUMBA_NUM_THREADS

common.numba_without_scipy()

from weightdyn.runlog import script_logging
from weightdyn.chunkio import write_simulation_chunk
from weightdyn.simulate import simulate_chunk

with script_logging(snakemake.log[0], snakemake.rule) as log:
    cfg = snakemake.params.simulation
    act, init = snakemake.wildcards.act, snakemake.wildcards.init
    start, stop = snakemake.params.networks
    log.info("%s/%s: networks %d … %d", act, init, start, stop - 1)
    ds = simulate_chunk(cfg, act, init, start, stop)
    common.record_study_config(ds.attrs)
    log.info("%d of %d networks diverged", int(ds["diverged"].sum()), stop - start)
    write_simulation_chunk(ds, snakemake.output[0], cfg["recording"]["propagator_dtype"])
    log.info("wrote %s", snakemake.output[0])
