"""Rule report_figures: see editforge.reporting.figures."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.reporting.figures import write_figures
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    write_figures(
        snakemake.input.filtered,
        snakemake.input.topics,
        snakemake.output.diff_sizes,
        snakemake.output.topics,
        snakemake.params.max_bins,
    )
