# Prediction of the final-loss classes from the early indicators (per combination), each
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
        config=study_slice(plan.predict_config),
    script:
        "../scripts/predict.py"


rule tables:
    input:
        gathered=study_files("results/{study}gather/{act}/{init}.nc"),
        predictions=study_files("results/{study}prediction/{act}/{init}.csv"),
        prediction_datasets=study_files("results/{study}prediction/{act}/{init}.nc"),
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
        curvature=report(
            results_path("tables/curvature.csv"),
            caption="../report/table_curvature.rst",
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
        prediction=study_slice(plan.report_config),
    script:
        "../scripts/tables.py"


rule figures:
    input:
        gathered=study_files("results/{study}gather/{act}/{init}.nc"),
        predictions=study_files("results/{study}prediction/{act}/{init}.nc"),
    output:
        png=[
            report(
                results_path(f"figures/{name}.png"),
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURE_NAMES
        ],
        pdf=[results_path(f"figures/{name}.pdf") for name in FIGURE_NAMES],
    log:
        logs_path("figures.log"),
    benchmark:
        benchmarks_path("figures/figures.tsv")
    conda:
        "../envs/weightdyn.yaml"
    # processes that build the figures side by side (weightdyn.figures.save_figures)
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        # What the script reads (weightdyn.plan.report_config): the prediction section.
        prediction=study_slice(plan.report_config),
    script:
        "../scripts/figures.py"
