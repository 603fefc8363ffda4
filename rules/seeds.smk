# Stage 1: cut seed snippets from real code and pair two from different files
# per synthesis prompt; the pairs are split into shards.


rule seeds:
    output:
        pairs=expand("results/seeds/pairs/{shard}.jsonl", shard=SHARDS),
        stats="results/seeds/stats.json",
    params:
        sources=config["seeds"]["sources"],
        settings={k: v for k, v in config["seeds"].items() if k != "sources"},
        seed=config["seed"],
    log:
        "logs/seeds.log",
    conda:
        "../envs/synthesis.yaml"
    script:
        "../scripts/seeds.py"
