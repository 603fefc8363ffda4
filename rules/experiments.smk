# Experiments (experiments: in the config): dataset variants x students x training seeds, each cell
# trained on its variant's set and scored on the experiment's benchmarks by the evaluation rules
# (a cell's id is an evaluation target), then compared with the baseline by paired intervals
# (results/experiments/<name>/). A variant rebuilds only the data stages whose settings differ from
# the run's (editforge.experiments.grid): those rules reuse the stages' own scripts, with the
# variant's settings as params, under results/experiments/<name>/stages/<variant>/.


localrules:
    experiment,
    experiment_plan,


rule experiment:
    input:
        expand(
            "results/experiments/{experiment}/{name}",
            experiment=[EXPERIMENT_NAME] if EXPERIMENT else [],
            name=[
                "cells.tsv",
                "power.json",
                "table.md",
                "table.csv",
                "table.tex",
                "deltas.csv",
                "forest.png",
                "curves.png",
            ],
        ),


rule experiment_plan:
    output:
        cells="results/experiments/{experiment}/cells.tsv",
        power="results/experiments/{experiment}/power.json",
    log:
        "logs/experiments/{experiment}/plan.log",
    conda:
        "../envs/evaluation.yaml"
    params:
        plan=EXPERIMENT_PLAN,
    script:
        "../scripts/experiment_plan.py"


# The data stages a variant rebuilds: the stages' own rules, with the variant's settings.
use rule seeds as experiment_seeds with:
    output:
        pairs=expand("results/experiments/{{experiment}}/stages/{{stage}}/seeds/pairs/{shard}.jsonl", shard=SHARDS),
        stats="results/experiments/{experiment}/stages/{stage}/seeds/stats.json",
    log:
        "logs/experiments/{experiment}/{stage}/seeds.log",
    params:
        sources=lambda wildcards: stage_config(wildcards)["seeds"]["sources"],
        settings=lambda wildcards: {k: v for k, v in stage_config(wildcards)["seeds"].items() if k != "sources"},
        seed=config["seed"],


# The synthesis script tells the rounds apart by its rule's name; these pass the round as a param.
rule experiment_synthesize_round1:
    input:
        pairs="results/experiments/{experiment}/stages/{stage}/seeds/pairs/{shard}.jsonl",
        templates=TEMPLATES,
        preflight="results/preflight/synthesis/{model}.txt",
    output:
        dialogues="results/experiments/{experiment}/stages/{stage}/synthesis/{model}/round1/{shard}.jsonl",
        usage="results/experiments/{experiment}/stages/{stage}/synthesis/{model}/round1/{shard}.usage.json",
    log:
        "logs/experiments/{experiment}/{stage}/synthesis/{model}/round1/{shard}.log",
    conda:
        "../envs/synthesis.yaml"
    threads: job_threads("synthesize_round1", synthesis_threads, synthesis_gpus)
    resources:
        gpu=synthesis_gpus,
        mem_mb=job_mem_mb("synthesize_round1", synthesis_mem_mb, synthesis_gpus),
        runtime=job_runtime("synthesize_round1", synthesis_gpus),
    params:
        round=1,
        model=model_params,
        settings=lambda wildcards: experiment_grid.synthesis_settings(stage_config(wildcards)),
    script:
        "../scripts/experiment_synthesize.py"


use rule experiment_synthesize_round1 as experiment_synthesize_round2 with:
    input:
        dialogues="results/experiments/{experiment}/stages/{stage}/synthesis/{model}/round1/{shard}.jsonl",
        templates=TEMPLATES,
    output:
        dialogues="results/experiments/{experiment}/stages/{stage}/synthesis/{model}/round2/{shard}.jsonl",
        usage="results/experiments/{experiment}/stages/{stage}/synthesis/{model}/round2/{shard}.usage.json",
    log:
        "logs/experiments/{experiment}/{stage}/synthesis/{model}/round2/{shard}.log",
    threads: job_threads("synthesize_round2", synthesis_threads, synthesis_gpus)
    resources:
        gpu=synthesis_gpus,
        mem_mb=job_mem_mb("synthesize_round2", synthesis_mem_mb, synthesis_gpus),
        runtime=job_runtime("synthesize_round2", synthesis_gpus),
    params:
        round=2,
        model=model_params,
        settings=lambda wildcards: experiment_grid.synthesis_settings(stage_config(wildcards)),


use rule parse as experiment_parse with:
    input:
        "results/experiments/{experiment}/stages/{stage}/synthesis/{model}/round2/{shard}.jsonl",
    output:
        triplets="results/experiments/{experiment}/stages/{stage}/triplets/{model}/{shard}.jsonl",
        counts="results/experiments/{experiment}/stages/{stage}/triplets/{model}/{shard}.counts.json",
    log:
        "logs/experiments/{experiment}/{stage}/parse/{model}/{shard}.log",


use rule filter_shard as experiment_filter_shard with:
    input:
        lambda wildcards: f"{stage_level_root(wildcards, 'generation')}/triplets/{wildcards.model}/{wildcards.shard}.jsonl",
        prompts=GENERATED_TESTS_PROMPTS,
    output:
        "results/experiments/{experiment}/stages/{stage}/filtered/{model}/{shard}.jsonl",
    log:
        "logs/experiments/{experiment}/{stage}/filter/{model}/{shard}.log",
    params:
        settings=lambda wildcards: experiment_grid.filtering_settings(stage_config(wildcards)),
        tests_model=lambda wildcards: experiment_grid.tests_model(stage_config(wildcards), wildcards.model),
        sandbox=lambda wildcards: experiment_grid.filtering_sandbox(stage_config(wildcards)),


use rule dedup as experiment_dedup with:
    input:
        shards=lambda wildcards: expand(
            "results/experiments/{experiment}/stages/{stage}/filtered/{model}/{shard}.jsonl",
            experiment=wildcards.experiment,
            stage=wildcards.stage,
            model=stage_config(wildcards)["synthesis"]["models"],
            shard=SHARDS,
        ),
        benchmark="results/benchmark/canitedit.jsonl",
        other_benchmarks=PLUGIN_TEXTS,
    output:
        triplets="results/experiments/{experiment}/stages/{stage}/filtered/triplets.jsonl",
        report="results/experiments/{experiment}/stages/{stage}/filtered/decontamination.json",
    log:
        "logs/experiments/{experiment}/{stage}/dedup.log",
    params:
        settings=lambda wildcards: {k: stage_config(wildcards)["filtering"][k] for k in ("minhash", "decontamination")}
        | ({"benchmark_texts": PLUGIN_TEXTS} if PLUGIN_TEXTS else {}),


use rule judge as experiment_judge with:
    input:
        triplets=lambda wildcards: f"{stage_level_root(wildcards, 'filtering')}/filtered/triplets.jsonl",
        prompts=JUDGE_PROMPTS,
        preflight=judge_preflight,
    output:
        triplets="results/experiments/{experiment}/stages/{stage}/filtered/judged.jsonl",
        report="results/experiments/{experiment}/stages/{stage}/filtered/judge.json",
        usage="results/experiments/{experiment}/stages/{stage}/filtered/judge.usage.json",
    log:
        "logs/experiments/{experiment}/{stage}/judge.log",


use rule dataset as experiment_mix with:
    input:
        triplets=lambda wildcards: EXPERIMENT.triplets(wildcards.stage),
        decontamination=lambda wildcards: f"{stage_level_root(wildcards, 'filtering')}/filtered/decontamination.json",
        seeds=lambda wildcards: f"{stage_level_root(wildcards, 'generation')}/seeds/stats.json",
    output:
        train="results/experiments/{experiment}/stages/{stage}/dataset/train.jsonl",
        parquet="results/experiments/{experiment}/stages/{stage}/dataset/train.parquet",
        validation="results/experiments/{experiment}/stages/{stage}/dataset/validation.jsonl",
        validation_parquet="results/experiments/{experiment}/stages/{stage}/dataset/validation.parquet",
        stats="results/experiments/{experiment}/stages/{stage}/dataset/stats.json",
        card="results/experiments/{experiment}/stages/{stage}/dataset/README.md",
        alpaca=multiext("results/experiments/{experiment}/stages/{stage}/dataset/train_alpaca", ".jsonl", ".parquet"),
        unfiltered_triplets=multiext(
            "results/experiments/{experiment}/stages/{stage}/dataset/unfiltered_triplets", ".jsonl", ".parquet"
        ),
        unfiltered=multiext("results/experiments/{experiment}/stages/{stage}/dataset/unfiltered", ".jsonl", ".parquet"),
        unfiltered_alpaca=multiext(
            "results/experiments/{experiment}/stages/{stage}/dataset/unfiltered_alpaca", ".jsonl", ".parquet"
        ),
        dataset_info="results/experiments/{experiment}/stages/{stage}/dataset/dataset_info.json",
        topics="results/experiments/{experiment}/stages/{stage}/dataset/topics.json",
        funnel="results/experiments/{experiment}/stages/{stage}/dataset/funnel.png",
    log:
        "logs/experiments/{experiment}/{stage}/dataset.log",
    params:
        settings=lambda wildcards: stage_config(wildcards)["dataset"],
        seed=config["seed"],
        generators=lambda wildcards: {
            name: config["models"][name]["model"] for name in stage_config(wildcards)["synthesis"]["models"]
        },


# An external dataset: decontaminated against every configured benchmark, in our prompt format.
rule experiment_external:
    input:
        benchmark="results/benchmark/canitedit.jsonl",
        other_benchmarks=PLUGIN_TEXTS,
    output:
        pool="results/experiments/{experiment}/external/{variant}/pool.jsonl",
        report="results/experiments/{experiment}/external/{variant}/report.json",
    log:
        "logs/experiments/{experiment}/external/{variant}.log",
    conda:
        "../envs/filtering.yaml"
    threads: job_threads("dedup", 1)
    resources:
        mem_mb=job_mem_mb("dedup"),
        runtime=job_runtime("dedup"),
    params:
        settings=external_settings,
        decontamination=config["filtering"]["decontamination"],
    script:
        "../scripts/experiment_external.py"


# A variant's training set at its exact size, its held-out validation rows (the variant's
# dataset.validation), and its manifest; too few rows stop here, before training.
rule experiment_data:
    input:
        unpack(variant_pools),
    output:
        train="results/experiments/{experiment}/data/{variant}/train.jsonl",
        validation="results/experiments/{experiment}/data/{variant}/validation.jsonl",
        manifest="results/experiments/{experiment}/data/{variant}/manifest.json",
    log:
        "logs/experiments/{experiment}/data/{variant}.log",
    conda:
        "../envs/filtering.yaml"
    threads: job_threads("dataset", 1)
    resources:
        mem_mb=job_mem_mb("dataset"),
        runtime=job_runtime("dataset"),
    params:
        components=variant_components,
        size=lambda wildcards: EXPERIMENT.variants[wildcards.variant].size,
        seed=config["seed"],
        validation=variant_validation,
    script:
        "../scripts/experiment_data.py"


use rule finetune as experiment_finetune with:
    input:
        train="results/experiments/{experiment}/data/{variant}/train.jsonl",
        validation="results/experiments/{experiment}/data/{variant}/validation.jsonl",
    output:
        directory("results/experiments/{experiment}/cells/{variant}~{student}~s{seed}/model"),
    log:
        "logs/experiments/{experiment}/cells/{variant}~{student}~s{seed}/finetune.log",
    params:
        base=student_base_params,
        settings=cell_student_settings,


# Per cell, benchmark and item: n samples, c passing (the first try), beside the cell's variant, student and seed.
rule experiment_scores:
    input:
        unpack(cell_executions),
        benchmarks=lambda wildcards: [f"results/benchmark/{b}.jsonl" for b in EXPERIMENT.benchmarks],
        preflights=lambda wildcards: [f"results/evaluation/{b}/preflight.json" for b in EXPERIMENT.benchmarks],
    output:
        "results/experiments/{experiment}/per_problem.parquet",
    log:
        "logs/experiments/{experiment}/scores.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_score", 1)
    resources:
        mem_mb=job_mem_mb("eval_score"),
        runtime=job_runtime("eval_score"),
    params:
        cells=lambda wildcards: [vars(cell) | {"id": cell.id} for cell in EXPERIMENT.cells],
        benchmarks=lambda wildcards: EXPERIMENT.benchmarks,
    script:
        "../scripts/experiment_scores.py"


rule experiment_report:
    input:
        per_problem="results/experiments/{experiment}/per_problem.parquet",
        manifests=expand("results/experiments/{{experiment}}/data/{variant}/manifest.json", variant=EXPERIMENT_VARIANTS),
        models=expand("results/experiments/{{experiment}}/cells/{cell}/model", cell=CELLS),
    output:
        table="results/experiments/{experiment}/table.md",
        csv="results/experiments/{experiment}/table.csv",
        tex="results/experiments/{experiment}/table.tex",
        deltas="results/experiments/{experiment}/deltas.csv",
        forest=report(
            "results/experiments/{experiment}/forest.png",
            caption="../report/forest.rst",
            category="Experiments",
            labels={"result": "paired differences with the baseline"},
        ),
        curves=report(
            "results/experiments/{experiment}/curves.png",
            caption="../report/experiment_curves.rst",
            category="Experiments",
            labels={"result": "training curves per variant and seed"},
        ),
    log:
        "logs/experiments/{experiment}/report.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("eval_report", 1)
    resources:
        mem_mb=job_mem_mb("eval_report"),
        runtime=job_runtime("eval_report"),
    params:
        baseline=lambda wildcards: EXPERIMENT.baseline,
        variants=EXPERIMENT_VARIANTS,
        benchmarks=lambda wildcards: EXPERIMENT.benchmarks,
        samples=lambda wildcards: {b: efconfig.benchmark_settings(config, b)["samples"] for b in EXPERIMENT.benchmarks},
        seeds=lambda wildcards: EXPERIMENT.seeds,
        resamples=lambda wildcards: EXPERIMENT.resamples,
        cells=lambda wildcards: [vars(cell) | {"id": cell.id} for cell in EXPERIMENT.cells],
    script:
        "../scripts/experiment_report.py"
