# Per chunk: Benettin FTLEs, Ginelli and fixed-lag CLVs from the chunk's tangent propagators,
# plus the chunk's outcomes (final loss, divergence, thinned loss and curvature curves), so that
# the large simulate chunk can be deleted (temp) as soon as this job has run. High priority: it
# frees disk as soon as possible.


rule lyapunov:
    input:
        results_path("simulate/{act}/{init}/chunk{chunk}.nc"),
    output:
        results_path("lyapunov/{act}/{init}/chunk{chunk}.nc"),
    log:
        logs_path("lyapunov/{act}/{init}/chunk{chunk}.log"),
    benchmark:
        benchmarks_path("lyapunov/{act}/{init}/chunk{chunk}.tsv")
    priority: 10
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=chunk_resource(plan.lyapunov_resources, "mem_mb"),
        runtime=chunk_resource(plan.lyapunov_resources, "runtime"),
    params:
        networks=chunk_networks,
        # What the script reads (weightdyn.plan.analysis_config): a change reruns the chunk.
        analysis=study_slice(plan.analysis_config),
    script:
        "../scripts/lyapunov.py"
