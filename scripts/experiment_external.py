"""Rule experiment_external: see editforge.experiments.external."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.experiments.external import run_external_pool
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_external_pool(
        snakemake.wildcards.variant,
        snakemake.params.settings,
        snakemake.input.benchmark,
        list(snakemake.input.other_benchmarks),
        snakemake.params.decontamination,
        snakemake.output.pool,
        snakemake.output.report,
    )
