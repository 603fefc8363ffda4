"""Rule eval_report: see editforge.evaluation.report."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from pathlib import Path

from editforge.evaluation.report import write_evaluation_report
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    write_evaluation_report(
        {name: f"results/evaluation/{name}" for name in snakemake.params.benchmarks},
        Path(snakemake.output.summary).parent,
    )
