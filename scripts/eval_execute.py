"""Rule eval_execute: see editforge.evaluation."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.evaluation import run_execute
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_execute(
        snakemake.input.completions,
        list(read_jsonl(snakemake.input.benchmark)),
        snakemake.output[0],
        {
            "timeout_s": snakemake.params.timeout_s,
            "memory_mb": snakemake.params.memory_mb,
            "workers": snakemake.threads,
            "sandbox": snakemake.params.sandbox,
            "python": snakemake.params.python,
        },
    )
