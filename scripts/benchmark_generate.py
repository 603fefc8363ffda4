"""Rule benchmark_generate: see editforge.evaluation.plugin_stages."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge import config as efconfig
from editforge.evaluation.benchmarks import benchmark
from editforge.evaluation.plugin_stages import run_benchmark_generate
from editforge.evaluation.scoring import read_preflight
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    bench, target, settings = (
        benchmark(snakemake.wildcards.plugin),
        snakemake.wildcards.target,
        snakemake.params.settings,
    )
    # Problems whose reference fails here are left out for every target alike.
    excluded = {exclusion.problem_id for exclusion in read_preflight(snakemake.input.excluded)}
    problems = bench.select(list(read_jsonl(snakemake.input.benchmark)), settings["problems"])
    run_benchmark_generate(
        bench,
        target,
        efconfig.target_spec(snakemake.config, target),
        [problem for problem in problems if problem["id"] not in excluded],
        settings,
        snakemake.config["cache_dir"],
        snakemake.output[0],
    )
