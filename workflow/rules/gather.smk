# Fan-in: per (activation, initialization) of a study, outcomes and indicators of all networks
# from the lyapunov chunk files, after checking every chunk's provenance.


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
        mem_mb=gather_resource("mem_mb"),
        runtime=gather_resource("runtime"),
    params:
        networks=study_chunk_ranges,
        # What the script reads (weightdyn.plan.gather_config): the chunks are checked against
        # its analysis part; the class thresholds classify the final losses.
        gather=study_slice(plan.gather_config),
    script:
        "../scripts/gather.py"
