"""weightdyn: the weight dynamics of small networks trained by gradient descent.

Entry point of the study: `snakemake` (local, profiles/default), `snakemake --profile
profiles/slurm` (cluster), `snakemake --configfile config/quick.yaml` (a small run). The rules
are in workflow/rules/, the science in src/weightdyn/; see README.md.
"""

import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The workflow runs the code of its own checkout: src/ beside this Snakefile comes first on the
# import path (the rule scripts do the same). Without a src/ folder the installed package is used.
_SRC = Path(workflow.basedir) / "src"
if (_SRC / "weightdyn").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from weightdyn.config import validate_config


configfile: "config.yaml"


# Reject a bad config before any job runs: structure and types against the schema, then the
# relations between values, with messages naming the key (weightdyn.config).
validate_config(
    config, schema=Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
)
validate(config, schema="workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/lyapunov.smk"
include: "workflow/rules/gather.smk"
include: "workflow/rules/predict.smk"


rule all:
    default_target: True
    input:
        all_targets(),
