"""Rule seeds: see editforge.seeds."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.seeds import run_seeds
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_seeds(
        snakemake.params.sources,
        snakemake.params.settings,
        snakemake.params.seed,
        list(snakemake.output.pairs),
        snakemake.output.stats,
    )
