# Stages 2 and 3: the two-round dialogue per synthesis model and shard, then
# parsing each dialogue into a triplet or a drop with its reason. The prompt
# templates are inputs, so editing one reruns synthesis.


# Before a model's first paid call: it answers, its key is accepted, the cache takes
# files and has room, the benchmark loads (editforge.workflow.preflight). The file is temporary:
# once the jobs that need it are done it goes, and a rerun that needs the model checks
# again. Checks only: no params, so no setting change reruns what depends on it; one file
# per use, so an evaluation rerun never reruns synthesis.
rule preflight:
    output:
        temp("results/preflight/{use}/{checked}.txt"),
    log:
        "logs/preflight/{use}/{checked}.log",
    wildcard_constraints:
        use="synthesis|judge|evaluation",
    conda:
        "../envs/synthesis.yaml"
    script:
        "../scripts/preflight.py"


rule synthesize_round1:
    input:
        pairs="results/seeds/pairs/{shard}.jsonl",
        templates=TEMPLATES,
        preflight="results/preflight/synthesis/{model}.txt",
    output:
        dialogues="results/synthesis/{model}/round1/{shard}.jsonl",
        usage="results/synthesis/{model}/round1/{shard}.usage.json",
    log:
        "logs/synthesis/{model}/round1/{shard}.log",
    conda:
        "../envs/synthesis.yaml"
    threads: job_threads("synthesize_round1", synthesis_threads, synthesis_gpus)
    resources:
        gpu=synthesis_gpus,
        mem_mb=job_mem_mb("synthesize_round1", synthesis_mem_mb, synthesis_gpus),
        runtime=job_runtime("synthesize_round1", synthesis_gpus),
    params:
        model=model_params,
        settings=synthesis_settings(),
    script:
        "../scripts/synthesize.py"


rule synthesize_round2:
    input:
        dialogues="results/synthesis/{model}/round1/{shard}.jsonl",
        templates=TEMPLATES,
    output:
        dialogues="results/synthesis/{model}/round2/{shard}.jsonl",
        usage="results/synthesis/{model}/round2/{shard}.usage.json",
    log:
        "logs/synthesis/{model}/round2/{shard}.log",
    conda:
        "../envs/synthesis.yaml"
    threads: job_threads("synthesize_round2", synthesis_threads, synthesis_gpus)
    resources:
        gpu=synthesis_gpus,
        mem_mb=job_mem_mb("synthesize_round2", synthesis_mem_mb, synthesis_gpus),
        runtime=job_runtime("synthesize_round2", synthesis_gpus),
    params:
        model=model_params,
        settings=synthesis_settings(),
    script:
        "../scripts/synthesize.py"


rule parse:
    input:
        "results/synthesis/{model}/round2/{shard}.jsonl",
    output:
        triplets="results/triplets/{model}/{shard}.jsonl",
        counts="results/triplets/{model}/{shard}.counts.json",
    log:
        "logs/parse/{model}/{shard}.log",
    conda:
        "../envs/synthesis.yaml"
    threads: job_threads("parse", 1)
    resources:
        mem_mb=job_mem_mb("parse"),
        runtime=job_runtime("parse"),
    script:
        "../scripts/parse.py"
