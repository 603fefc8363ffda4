"""Rule experiment_plan: see editforge.experiments.plan."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.experiments.plan import write_plan
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    write_plan(snakemake.params.plan, snakemake.output.cells, snakemake.output.power)
