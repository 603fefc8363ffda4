# Mixing by model and instruction style, in the prompt format that training
# and evaluation share.


rule dataset:
    input:
        "results/filtered/triplets.jsonl",
    output:
        train="results/dataset/train.jsonl",
        parquet="results/dataset/train.parquet",
        stats="results/dataset/stats.json",
        card="results/dataset/card.md",
    params:
        settings=config["dataset"],
        seed=config["seed"],
    log:
        "logs/dataset.log",
    conda:
        "../envs/filtering.yaml"
    script:
        "../scripts/dataset.py"
