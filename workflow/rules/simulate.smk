# Fan-out: one job per chunk of `ensemble.chunk_size` networks of one (activation,
# initialization) of a study; writes θ, loss and curvature at the recorded steps and the
# tangent propagators.


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
        mem_mb=chunk_resource(plan.simulate_resources, "mem_mb"),
        runtime=chunk_resource(plan.simulate_resources, "runtime"),
    params:
        networks=chunk_networks,
        # What the script reads (weightdyn.plan.simulation_config): a change reruns the chunk.
        simulation=study_slice(plan.simulation_config),
    script:
        "../scripts/simulate.py"
