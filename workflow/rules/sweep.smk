# A sweep (config `sweep:`): after every point's study, one table and one figure of what
# changes with the swept value (weightdyn.sensitivity, weightdyn.figures.sensitivity).


if config.get("sweep"):

    rule sweep:
        input:
            gathered=every_study_files("results/{study}gather/{act}/{init}.nc"),
            predictions=every_study_files("results/{study}prediction/{act}/{init}.csv"),
        output:
            table=report(
                sweep_outputs()["table"],
                caption="../report/sweep_table.rst",
                category="Sweep",
            ),
            markdown=sweep_outputs()["markdown"],
            png=report(
                sweep_outputs()["png"],
                caption="../report/sweep.rst",
                category="Sweep",
            ),
            pdf=sweep_outputs()["pdf"],
        log:
            f"logs/{plan.run_prefix(config)}sweep_{config['sweep']['name']}.log",
        benchmark:
            f"benchmarks/{plan.run_prefix(config)}rules/sweep_{config['sweep']['name']}.tsv"
        conda:
            "../envs/weightdyn.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=20,
        params:
            # What the script reads (weightdyn.plan.sweep_summary_config): the sweep, the
            # number of combinations per point and the headline time of the base config.
            sweep=plan.sweep_summary_config(config),
        script:
            "../scripts/sweep.py"
