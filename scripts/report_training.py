"""Rule report_training: see editforge.reporting.training."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.reporting.training import write_training_report
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    write_training_report(
        dict(zip(snakemake.params.students, snakemake.input.models, strict=True)),
        snakemake.output.png,
        snakemake.output.csv,
        snakemake.output.md,
    )
