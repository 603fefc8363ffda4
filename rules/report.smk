# The data funnel: every stage's counts and drops by reason, with token usage
# and cost per model, from seed to dataset.


rule report:
    input:
        seeds="results/seeds/stats.json",
        usage=expand(
            "results/synthesis/{model}/round{round}/{shard}.usage.json",
            model=SYNTHESIS_MODELS,
            round=[1, 2],
            shard=SHARDS,
        ),
        filtered="results/filtered/triplets.jsonl",
        dataset="results/dataset/stats.json",
    output:
        json="results/report/funnel.json",
        markdown="results/report/funnel.md",
        png="results/report/funnel.png",
    log:
        "logs/report.log",
    conda:
        "../envs/filtering.yaml"
    script:
        "../scripts/funnel.py"
