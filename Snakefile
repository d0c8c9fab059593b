"""weightdyn: the weight dynamics of small networks trained by gradient descent.

Entry point of the study in the repository root: `snakemake` (local, profiles/default),
`snakemake --profile profiles/slurm` (cluster), `snakemake --configfile config/quick.yaml` (a
small named run). The workflow itself is workflow/Snakefile (Snakemake workflow catalog layout),
its rules are in workflow/rules/, the science in src/weightdyn/; see README.md.
"""


include: "workflow/Snakefile"


# `include` does not carry the included file's default target over, so this file names the
# study's target (the inputs of `rule all` in workflow/Snakefile) as its own default.
rule study:
    default_target: True
    input:
        rules.all.input,
