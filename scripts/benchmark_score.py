"""Rule benchmark_score: see editforge.evaluation.plugin_stages."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from pathlib import Path

from editforge.evaluation.benchmarks import benchmark
from editforge.evaluation.plugin_stages import run_benchmark_score
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_benchmark_score(
        benchmark(snakemake.wildcards.plugin),
        list(read_jsonl(snakemake.input.benchmark)),
        list(snakemake.input.executions),
        list(snakemake.input.retries),
        snakemake.input.preflight,
        Path(snakemake.output.summary).parent,
        snakemake.params.k,
    )
