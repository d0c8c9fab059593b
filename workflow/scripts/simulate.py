"""Rule simulate: train networks [start, stop) of one (activation, initialization).

Writes the chunk file of the data contract (results/simulate/{act}/{init}/chunk{chunk}.nc).
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

from weightdyn.runlog import script_logging
from weightdyn.simulate import simulate_chunk, write_chunk

with script_logging(snakemake.log[0], snakemake.rule) as log:
    cfg = snakemake.config
    act, init = snakemake.wildcards.act, snakemake.wildcards.init
    start, stop = snakemake.params.networks
    log.info("%s/%s: networks %d … %d", act, init, start, stop - 1)
    ds = simulate_chunk(cfg, act, init, start, stop)
    log.info("%d of %d networks diverged", int(ds["diverged"].sum()), stop - start)
    write_chunk(ds, snakemake.output[0], cfg["recording"]["propagator_dtype"])
    log.info("wrote %s", snakemake.output[0])
