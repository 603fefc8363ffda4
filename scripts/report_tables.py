"""Rule report_tables: see editforge.reporting.tables."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.reporting.tables import write_tables
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    training = snakemake.input.training  # training.csv where there are students, else nothing
    write_tables(
        snakemake.input.summary,
        snakemake.input.funnel,
        snakemake.output.pass_at_1,
        snakemake.output.funnel,
        training_csv=(training if isinstance(training, str) else training[0]) if training else None,
    )
