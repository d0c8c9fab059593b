# Fan-in: per (activation, initialization), outcomes and indicators of all networks from the
# lyapunov chunk files, after checking every chunk's provenance.


rule gather:
    input:
        lyapunov_chunks,
    output:
        results_path("gather/{act}/{init}.nc"),
    log:
        logs_path("gather/{act}/{init}.log"),
    benchmark:
        benchmarks_path("gather/{act}/{init}.tsv")
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=GATHER_RESOURCES["mem_mb"],
        runtime=GATHER_RESOURCES["runtime"],
    params:
        networks=[plan.chunk_range(config, c) for c in CHUNKS],
        # What the script reads (weightdyn.plan.gather_config): the chunks are checked against
        # its analysis part; the class thresholds classify the final losses.
        gather=plan.gather_config(config),
    script:
        "../scripts/gather.py"
