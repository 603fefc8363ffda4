"""Rule eval_generate: see editforge.evaluation."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge import config as efconfig
from editforge.evaluation import run_generate, select_problems
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    target = snakemake.wildcards.target
    problems = select_problems(list(read_jsonl(snakemake.input.benchmark)), snakemake.params.problems)
    run_generate(
        target,
        efconfig.target_spec(snakemake.config, target),
        problems,
        {"samples": snakemake.params.samples, "sampling": snakemake.params.sampling},
        snakemake.config["cache_dir"],
        snakemake.output[0],
    )
