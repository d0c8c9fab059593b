"""Rule gather: final losses, divergence and loss curves of one (activation, initialization).

Checks every chunk's provenance (weightdyn.gather.check_chunk) and writes
results/gather/{act}/{init}.nc.
"""

import sys
from pathlib import Path

# Use the weightdyn of this checkout (src/ beside workflow/), as the Snakefile does.
_SRC = Path(snakemake.scriptdir).resolve().parents[1] / "src"
if (_SRC / "weightdyn").is_dir():
    sys.path.insert(0, str(_SRC))

from weightdyn.chunkio import write_dataset
from weightdyn.gather import gather
from weightdyn.runlog import script_logging

with script_logging(snakemake.log[0], snakemake.rule) as log:
    chunks = [
        (path, start, stop)
        for path, (start, stop) in zip(snakemake.input, snakemake.params.networks)
    ]
    ds = gather(chunks, snakemake.config, snakemake.wildcards.act, snakemake.wildcards.init)
    log.info("%d networks, %d diverged", ds.attrs["networks"], ds.attrs["n_diverged"])
    write_dataset(ds, snakemake.output[0])
    log.info("wrote %s", snakemake.output[0])
