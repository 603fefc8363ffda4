# Topic balancing and mixing by model and instruction style, in the prompt
# format that training and evaluation share; exports for other trainers.


rule dataset:
    input:
        triplets=FILTERED_TRIPLETS,
        decontamination="results/filtered/decontamination.json",
        seeds="results/seeds/stats.json",
    output:
        train="results/dataset/train.jsonl",
        parquet="results/dataset/train.parquet",
        validation="results/dataset/validation.jsonl",
        validation_parquet="results/dataset/validation.parquet",
        stats="results/dataset/stats.json",
        card="results/dataset/README.md",
        alpaca=multiext("results/dataset/train_alpaca", ".jsonl", ".parquet"),
        unfiltered_triplets=multiext("results/dataset/unfiltered_triplets", ".jsonl", ".parquet"),
        unfiltered=multiext("results/dataset/unfiltered", ".jsonl", ".parquet"),
        unfiltered_alpaca=multiext("results/dataset/unfiltered_alpaca", ".jsonl", ".parquet"),
        dataset_info="results/dataset/dataset_info.json",
        topics="results/dataset/topics.json",
        funnel="results/dataset/funnel.png",
    log:
        "logs/dataset.log",
    conda:
        "../envs/filtering.yaml"
    threads: job_threads("dataset", 1)
    resources:
        mem_mb=job_mem_mb("dataset"),
        runtime=job_runtime("dataset"),
    params:
        settings=config["dataset"],
        seed=config["seed"],
        generators={name: config["models"][name]["model"] for name in SYNTHESIS_MODELS},
    script:
        "../scripts/dataset.py"
