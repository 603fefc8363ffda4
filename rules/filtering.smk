# Stage 4: per-shard validity, diff and execution checks, then global exact and
# near deduplication and decontamination against the benchmark.


rule benchmark:
    output:
        "results/benchmark/canitedit.jsonl",
    params:
        source=efconfig.benchmark_source(config),
    log:
        "logs/benchmark.log",
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/benchmark.py"


rule filter_shard:
    input:
        "results/triplets/{model}/{shard}.jsonl",
    output:
        "results/filtered/{model}/{shard}.jsonl",
    params:
        settings=config["filtering"],
        tests_model=tests_model_params,
        sandbox=sandbox_params_for_filtering(),
    resources:
        gpu=tests_model_gpus,
    log:
        "logs/filter/{model}/{shard}.log",
    conda:
        "../envs/filtering.yaml"
    script:
        "../scripts/filter_shard.py"


rule dedup:
    input:
        shards=expand("results/filtered/{model}/{shard}.jsonl", model=SYNTHESIS_MODELS, shard=SHARDS),
        benchmark="results/benchmark/canitedit.jsonl",
    output:
        triplets="results/filtered/triplets.jsonl",
        report="results/filtered/decontamination.json",
    params:
        settings={k: config["filtering"][k] for k in ("minhash", "decontamination")},
    log:
        "logs/dedup.log",
    conda:
        "../envs/filtering.yaml"
    script:
        "../scripts/dedup.py"
