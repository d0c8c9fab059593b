# Fan-out: one job per chunk of `ensemble.chunk_size` networks of one (activation,
# initialization); writes θ and loss at the recorded steps and the tangent propagators.


rule simulate:
    output:
        chunk_output(results_path("simulate/{act}/{init}/chunk{chunk}.nc")),
    log:
        logs_path("simulate/{act}/{init}/chunk{chunk}.log"),
    benchmark:
        benchmarks_path("simulate/{act}/{init}/chunk{chunk}.tsv")
    conda:
        "../envs/weightdyn.yaml"
    # numba threads over the networks of the chunk (NUMBA_NUM_THREADS); 1 by default, since
    # start-up and compilation are serial and parallel jobs use the cores better locally.
    # On a cluster raise it with --set-threads simulate=N (profiles/slurm).
    threads: 1
    resources:
        mem_mb=simulate_resource("mem_mb"),
        runtime=simulate_resource("runtime"),
    params:
        networks=chunk_networks,
        # What the script reads (weightdyn.plan.simulation_config): a change reruns the chunk.
        simulation=plan.simulation_config(config),
    script:
        "../scripts/simulate.py"
