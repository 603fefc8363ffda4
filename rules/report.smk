# The data funnel: every stage's counts and drops by reason, with token usage
# and cost per model, from seed to dataset. Then what `snakemake --report`
# shows besides: diff-size and topic histograms, the students' training curves, and the tables as HTML pages.


localrules:
    report_figures,
    report_tables,
    report_training,


rule report:
    input:
        seeds="results/seeds/stats.json",
        usage=expand(
            "results/synthesis/{model}/round{round}/{shard}.usage.json",
            model=SYNTHESIS_MODELS,
            round=[1, 2],
            shard=SHARDS,
        )
        + (["results/filtered/judge.usage.json"] if experiment_grid.judged(config) else []),
        filtered=FILTERED_TRIPLETS,
        dataset="results/dataset/stats.json",
    output:
        json="results/report/funnel.json",
        markdown="results/report/funnel.md",
        png=report(
            "results/report/funnel.png",
            caption="../report/funnel.rst",
            category="Data",
            subcategory="Funnel",
            labels={"result": "funnel chart"},
        ),
    log:
        "logs/report.log",
    conda:
        "../envs/filtering.yaml"
    script:
        "../scripts/funnel.py"


rule report_figures:
    input:
        filtered=FILTERED_TRIPLETS,
        topics="results/dataset/topics.json",
    output:
        diff_sizes=report(
            "results/report/diff_sizes.png",
            caption="../report/diff_sizes.rst",
            category="Data",
            subcategory="Distributions",
            labels={"result": "diff size histogram"},
        ),
        topics=report(
            "results/report/topics.png",
            caption="../report/topics.rst",
            category="Data",
            subcategory="Distributions",
            labels={"result": "topic size histogram"},
        ),
    log:
        "logs/report_figures.log",
    conda:
        "../envs/filtering.yaml"
    params:
        max_bins=40,
    script:
        "../scripts/report_figures.py"


rule report_training:
    input:
        models=expand("results/training/{student}/model", student=STUDENTS),
    output:
        png=report(
            "results/report/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="Curves",
            labels={"result": "training curves"},
        ),
        csv="results/report/training.csv",
        md="results/report/training.md",
    log:
        "logs/report_training.log",
    conda:
        "../envs/evaluation.yaml"
    params:
        students=STUDENTS,
    script:
        "../scripts/report_training.py"


rule report_tables:
    input:
        summary="results/report/summary.csv",
        funnel="results/report/funnel.json",
        # the students' final losses, beside their pass@1
        training=["results/report/training.csv"] if STUDENTS else [],
    output:
        pass_at_1=report(
            "results/report/pass_at_1.html",
            caption="../report/pass_at_1_table.rst",
            category="Evaluation",
            subcategory="pass@1",
            labels={"result": "pass@1 table"},
        ),
        funnel=report(
            "results/report/funnel.html",
            caption="../report/funnel_table.rst",
            category="Data",
            subcategory="Funnel",
            labels={"result": "funnel table"},
        ),
    log:
        "logs/report_tables.log",
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/report_tables.py"
