"""Rule lyapunov: stability analysis of one simulation chunk, with the chunk's outcomes.

Writes results/lyapunov/{act}/{init}/chunk{chunk}.nc (data contract in README).
"""

import os
import sys
from pathlib import Path

# numba reads its thread count when it is first imported: set it from the rule's threads.
os.environ["NUMBA_NUM_THREADS"] = str(snakemake.threads)
# Use the weightdyn of this checkout (src/ beside workflow/), as the Snakefile does.
_SRC = Path(snakemake.scriptdir).resolve().parents[1] / "src"
if (_SRC / "weightdyn").is_dir():
    sys.path.insert(0, str(_SRC))

import xarray as xr

from weightdyn.chunkio import write_dataset
from weightdyn.gather import check_chunk, outcomes
from weightdyn.lyapunov import analyse_chunk
from weightdyn.runlog import script_logging
from weightdyn.simulate import read_chunk

with script_logging(snakemake.log[0], snakemake.rule) as log:
    cfg, path = snakemake.config, snakemake.input[0]
    act, init = snakemake.wildcards.act, snakemake.wildcards.init
    sim = read_chunk(path)
    check_chunk(sim, path, cfg, act, init, *snakemake.params.networks)
    analysis = analyse_chunk(sim, cfg)
    ds = xr.merge([analysis, outcomes(sim, cfg)], combine_attrs="override")
    log.info("%d of %d networks valid", int(ds["valid"].sum()), ds.sizes["network"])
    write_dataset(ds, snakemake.output[0])
    log.info("wrote %s", snakemake.output[0])
