"""Rule eval_score: see editforge.evaluation."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from pathlib import Path

from editforge.evaluation import run_score
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_score(
        list(snakemake.input.executions),
        list(read_jsonl(snakemake.input.benchmark)),
        Path(snakemake.output.summary).parent,
        snakemake.params.k,
        snakemake.input.preflight,
    )
