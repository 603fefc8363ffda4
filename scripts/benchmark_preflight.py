"""Rule benchmark_preflight: see editforge.evaluation.plugin_stages."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.evaluation.benchmarks import benchmark
from editforge.evaluation.plugin_stages import run_benchmark_preflight
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    bench = benchmark(snakemake.wildcards.plugin)
    run_benchmark_preflight(
        bench,
        bench.select(list(read_jsonl(snakemake.input.benchmark)), snakemake.params.problems),
        snakemake.output.report,
        snakemake.output.excluded,
        {
            "timeout_s": snakemake.params.timeout_s,
            "memory_mb": snakemake.params.memory_mb,
            "workers": snakemake.threads,
            "sandbox": snakemake.params.sandbox,
            "python": snakemake.params.python,
            "reference_failures": snakemake.params.reference_failures,
        },
    )
