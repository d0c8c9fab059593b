# Prediction of the final-loss classes from the early indicators (per combination), the
# study's tables, and its figures (registered for `snakemake --report`).


rule predict:
    input:
        "results/gather/{act}/{init}.nc",
    output:
        dataset="results/prediction/{act}/{init}.nc",
        table="results/prediction/{act}/{init}.csv",
    log:
        "logs/predict/{act}/{init}.log",
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/predict.py"


rule tables:
    input:
        gathered=gather_outputs(),
        predictions=prediction_outputs("csv"),
    output:
        classes=report(
            "results/tables/classes.csv",
            caption="../report/table_classes.rst",
            category="Tables",
        ),
        auc=report(
            "results/tables/auc.csv",
            caption="../report/table_auc.rst",
            category="Tables",
        ),
        summary=report(
            "results/tables/summary.md",
            caption="../report/table_summary.rst",
            category="Tables",
        ),
        provenance="results/tables/provenance.json",
    log:
        "logs/tables.log",
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/tables.py"


rule figures:
    input:
        gathered=gather_outputs(),
        predictions=prediction_outputs("nc"),
    output:
        png=[
            report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURE_NAMES
        ],
        pdf=[f"results/figures/{name}.pdf" for name in FIGURE_NAMES],
    log:
        "logs/figures.log",
    conda:
        "../envs/weightdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/figures.py"
