"""Rule parse: see editforge.parsing."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.parsing import run_parse
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_parse(snakemake.input[0], snakemake.output.triplets, snakemake.output.counts)
