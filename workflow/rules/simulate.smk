# Fan-out: one job per chunk of `ensemble.chunk_size` networks of one (activation,
# initialization); writes θ and loss at the recorded steps and the tangent propagators.


rule simulate:
    output:
        chunk_output("results/simulate/{act}/{init}/chunk{chunk}.nc"),
    log:
        "logs/simulate/{act}/{init}/chunk{chunk}.log",
    benchmark:
        "benchmarks/rules/simulate/{act}/{init}/chunk{chunk}.tsv"
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
        # Part of the job's identity: a change here reruns the chunk (params rerun trigger).
        simulation=simulation_config(config),
    script:
        "../scripts/simulate.py"
