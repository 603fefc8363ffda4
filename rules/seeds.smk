# Stage 1: cut seed snippets from real code and pair two from different files
# per synthesis prompt; the pairs are split into shards.


rule seeds:
    output:
        pairs=expand("results/seeds/pairs/{shard}.jsonl", shard=SHARDS),
        stats="results/seeds/stats.json",
    log:
        "logs/seeds.log",
    conda:
        "../envs/synthesis.yaml"
    threads: job_threads("seeds", 1)
    resources:
        mem_mb=job_mem_mb("seeds"),
        runtime=job_runtime("seeds"),
    params:
        sources=config["seeds"]["sources"],
        settings={k: v for k, v in config["seeds"].items() if k != "sources"},
        seed=config["seed"],
    script:
        "../scripts/seeds.py"
