"""Rule lyapunov: stability analysis of one simulation chunk, with the chunk's outcomes.

Writes results/lyapunov/{act}/{init}/chunk{chunk}.nc (data contract in README). Reads the config
slice ``params.analysis`` (weightdyn.plan.analysis_config) and checks the chunk against its
simulation part; the provenance stamp records the study's whole configuration (without ``run``).
"""

import common  # src/ on sys.path, NUMBA_NUM_THREADS

common.numba_without_scipy()

import xarray as xr

from weightdyn.chunkio import open_simulation_chunk, write_dataset
from weightdyn.gather import check_chunk, outcomes
from weightdyn.lyapunov import analyse_chunk
from weightdyn.plan import analysis_as_config
from weightdyn.runlog import script_logging

with script_logging(snakemake.log[0], snakemake.rule) as log:
    cfg, path = analysis_as_config(snakemake.params.analysis), snakemake.input[0]
    act, init = snakemake.wildcards.act, snakemake.wildcards.init
    with open_simulation_chunk(path) as sim:  # propagators read by blocks of networks
        check_chunk(sim, path, cfg, act, init, *snakemake.params.networks)
        analysis = analyse_chunk(sim, cfg)
        ds = xr.merge([analysis, outcomes(sim, cfg)], combine_attrs="override")
    common.record_study_config(ds.attrs)
    log.info("%d of %d networks valid", int(ds["valid"].sum()), ds.sizes["network"])
    write_dataset(ds, snakemake.output[0])
    log.info("wrote %s", snakemake.output[0])
