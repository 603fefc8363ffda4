# Stage 4: per-shard validity, diff, static and execution checks, then global exact and
# near deduplication and decontamination against the benchmark, then the optional LLM judge.

from editforge.templates import template_path

# The prompt files of the generated-tests check as inputs where it is on: an edit to one reruns
# filtering, and with the check off nothing depends on them.
GENERATED_TESTS_PROMPTS = (
    [str(template_path(name)) for name in ("generated_tests_system", "generated_tests")]
    if config["filtering"]["generated_tests"]
    else []
)
# The judge's prompt files: inputs of the judge rules only, which run only where a judge is set.
JUDGE_PROMPTS = [str(template_path(name)) for name in ("judge_system", "judge")]


rule benchmark:
    output:
        "results/benchmark/canitedit.jsonl",
    log:
        "logs/benchmark.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("benchmark", 1)
    resources:
        mem_mb=job_mem_mb("benchmark"),
        runtime=job_runtime("benchmark"),
    params:
        source=efconfig.benchmark_source(config),
    script:
        "../scripts/benchmark.py"


rule benchmark_plugin:
    output:
        problems="results/benchmark/{plugin}.jsonl",
        # What decontamination compares triplets with (filtering.decontamination.BenchmarkText rows).
        texts="results/benchmark/{plugin}.texts.jsonl",
    log:
        "logs/benchmark/{plugin}.log",
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("benchmark", 1)
    resources:
        mem_mb=job_mem_mb("benchmark"),
        runtime=job_runtime("benchmark"),
    params:
        source=lambda wildcards: PLUGINS[wildcards.plugin]["source"],
    script:
        "../scripts/benchmark_plugin.py"


rule filter_shard:
    input:
        "results/triplets/{model}/{shard}.jsonl",
        prompts=GENERATED_TESTS_PROMPTS,
    output:
        "results/filtered/{model}/{shard}.jsonl",
    log:
        "logs/filter/{model}/{shard}.log",
    conda:
        "../envs/filtering.yaml"
    threads: job_threads("filter_shard", 1, tests_model_gpus)
    resources:
        gpu=tests_model_gpus,
        mem_mb=job_mem_mb("filter_shard", gpus=tests_model_gpus),
        runtime=job_runtime("filter_shard", tests_model_gpus),
    params:
        settings=experiment_grid.filtering_settings(config),
        tests_model=tests_model_params,
        sandbox=sandbox_params_for_filtering(),
    script:
        "../scripts/filter_shard.py"


rule dedup:
    input:
        shards=expand("results/filtered/{model}/{shard}.jsonl", model=SYNTHESIS_MODELS, shard=SHARDS),
        benchmark="results/benchmark/canitedit.jsonl",
        other_benchmarks=PLUGIN_TEXTS,
    output:
        triplets="results/filtered/triplets.jsonl",
        report="results/filtered/decontamination.json",
    log:
        "logs/dedup.log",
    conda:
        "../envs/filtering.yaml"
    threads: job_threads("dedup", 1)
    resources:
        mem_mb=job_mem_mb("dedup"),
        runtime=job_runtime("dedup"),
    params:
        settings=DEDUP_SETTINGS,
    script:
        "../scripts/dedup.py"


# The LLM judge (filtering.judge): every deduplicated triplet, per instruction style, in one job, so a
# model in batch mode gets one batch and nothing is judged that dedup or decontamination dropped.
rule judge:
    input:
        triplets="results/filtered/triplets.jsonl",
        prompts=JUDGE_PROMPTS,
        preflight=judge_preflight,
    output:
        triplets="results/filtered/judged.jsonl",
        report="results/filtered/judge.json",
        usage="results/filtered/judge.usage.json",
    log:
        "logs/judge.log",
    conda:
        "../envs/filtering.yaml"
    threads: job_threads("judge", judge_threads, judge_gpus)
    resources:
        gpu=judge_gpus,
        mem_mb=job_mem_mb("judge", judge_mem_mb, judge_gpus),
        runtime=job_runtime("judge", judge_gpus),
    params:
        settings=judge_settings,
        model=judge_model_params,
    script:
        "../scripts/judge.py"
