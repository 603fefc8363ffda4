"""Rule report: see editforge.reporting.funnel."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.reporting.funnel import write_funnel
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    write_funnel(
        snakemake.input.seeds,
        list(snakemake.input.usage),
        snakemake.input.filtered,
        snakemake.input.dataset,
        snakemake.output.json,
        snakemake.output.markdown,
        png_out=snakemake.output.png,
    )
