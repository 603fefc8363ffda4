"""Rule judge: see editforge.filtering.judge."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.filtering.judge import run_judge
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    settings = snakemake.params.settings  # filtering.judge; its `model` names the models: entry
    run_judge(
        snakemake.input.triplets,
        snakemake.output.triplets,
        snakemake.output.report,
        snakemake.output.usage,
        settings,
        model=(settings["model"], snakemake.config["models"][settings["model"]]),
        cache_dir=snakemake.config["cache_dir"],
        # The run's error budget decides whether the job fails, not what it writes: no param, no rerun.
        max_error_share=snakemake.config["synthesis"]["max_error_share"],
    )
