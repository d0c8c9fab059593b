# Fan-in: per (activation, initialization), outcomes and indicators of all networks from the
# lyapunov chunk files, after checking every chunk's provenance.


rule gather:
    input:
        lyapunov_chunks,
    output:
        "results/gather/{act}/{init}.nc",
    log:
        "logs/gather/{act}/{init}.log",
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=GATHER_RESOURCES["mem_mb"],
        runtime=GATHER_RESOURCES["runtime"],
    params:
        networks=[chunk_range(config, c) for c in CHUNKS],
    script:
        "../scripts/gather.py"
