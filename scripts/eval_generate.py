"""Rule eval_generate: see editforge.evaluation."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge import config as efconfig
from editforge.evaluation import run_generate, select_problems
from editforge.evaluation.scoring import read_preflight
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    target = snakemake.wildcards.target
    problems = select_problems(list(read_jsonl(snakemake.input.benchmark)), snakemake.params.problems)
    # Problems whose reference fails here are left out for every target alike.
    excluded = {exclusion.problem_id for exclusion in read_preflight(snakemake.input.excluded)}
    problems = [problem for problem in problems if problem["id"] not in excluded]
    run_generate(
        target,
        efconfig.target_spec(snakemake.config, target),
        problems,
        {"samples": snakemake.params.samples, "sampling": snakemake.params.sampling},
        snakemake.config["cache_dir"],
        snakemake.output[0],
    )
