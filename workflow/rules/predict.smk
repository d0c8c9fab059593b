# Prediction of the final-loss classes from the early indicators (per combination), the
# study's tables, and its figures (registered for `snakemake --report`).


rule predict:
    input:
        results_path("gather/{act}/{init}.nc"),
    output:
        dataset=results_path("prediction/{act}/{init}.nc"),
        table=results_path("prediction/{act}/{init}.csv"),
    log:
        logs_path("predict/{act}/{init}.log"),
    benchmark:
        benchmarks_path("predict/{act}/{init}.tsv")
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        # What the script reads (weightdyn.plan.predict_config): prediction settings, classes.
        config=plan.predict_config(config),
    script:
        "../scripts/predict.py"


rule tables:
    input:
        gathered=gather_outputs(),
        predictions=prediction_outputs("csv"),
        prediction_datasets=prediction_outputs("nc"),
    output:
        classes=report(
            results_path("tables/classes.csv"),
            caption="../report/table_classes.rst",
            category="Tables",
        ),
        auc=report(
            results_path("tables/auc.csv"),
            caption="../report/table_auc.rst",
            category="Tables",
        ),
        summary=report(
            results_path("tables/summary.md"),
            caption="../report/table_summary.rst",
            category="Tables",
        ),
        provenance=results_path("tables/provenance.json"),
    log:
        logs_path("tables.log"),
    benchmark:
        benchmarks_path("tables/tables.tsv")
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # What the script reads (weightdyn.plan.report_config): the prediction section.
        prediction=plan.report_config(config),
    script:
        "../scripts/tables.py"


rule figures:
    input:
        gathered=gather_outputs(),
        predictions=prediction_outputs("nc"),
    output:
        png=[
            report(
                f"{RESULTS}figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURE_NAMES
        ],
        pdf=[f"{RESULTS}figures/{name}.pdf" for name in FIGURE_NAMES],
    log:
        logs_path("figures.log"),
    benchmark:
        benchmarks_path("figures/figures.tsv")
    conda:
        "../envs/weightdyn.yaml"
    # processes that build the nine figures side by side (weightdyn.figures.save_figures)
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        # What the script reads (weightdyn.plan.report_config): the prediction section.
        prediction=plan.report_config(config),
    script:
        "../scripts/figures.py"
