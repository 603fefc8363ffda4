"""Rule benchmark_retry: see editforge.evaluation.plugin_stages."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge import config as efconfig
from editforge.evaluation.benchmarks import benchmark
from editforge.evaluation.plugin_stages import run_benchmark_retry
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    bench, target = benchmark(snakemake.wildcards.plugin), snakemake.wildcards.target
    run_benchmark_retry(
        bench,
        target,
        efconfig.target_spec(snakemake.config, target),
        list(read_jsonl(snakemake.input.benchmark)),
        snakemake.input.executions,
        snakemake.params.settings,
        snakemake.config["cache_dir"],
        snakemake.output[0],
    )
