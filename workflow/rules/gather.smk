# Fan-in: per (activation, initialization), final losses, divergence and thinned loss curves of
# all networks from the chunk files, after checking every chunk's provenance.


rule gather:
    input:
        simulate_chunks,
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
