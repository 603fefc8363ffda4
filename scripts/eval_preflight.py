"""Rule eval_preflight: see editforge.evaluation.preflight."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.evaluation import select_problems
from editforge.evaluation.preflight import run_preflight
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_preflight(
        select_problems(list(read_jsonl(snakemake.input.benchmark)), snakemake.params.problems),
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
