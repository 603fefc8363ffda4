"""Rules benchmark_execute and benchmark_execute_retry: see editforge.evaluation.plugin_stages."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.evaluation.benchmarks import benchmark
from editforge.evaluation.plugin_stages import run_benchmark_execute
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_benchmark_execute(
        benchmark(snakemake.wildcards.plugin),
        snakemake.input.completions,
        list(read_jsonl(snakemake.input.benchmark)),
        snakemake.output[0],
        {**snakemake.params.settings, "workers": snakemake.threads},
    )
