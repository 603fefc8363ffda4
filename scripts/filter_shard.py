"""Rule filter_shard: see editforge.filtering."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.filtering import run_filter_shard
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    tests_model = snakemake.params.tests_model
    run_filter_shard(
        snakemake.input[0],
        snakemake.output[0],
        snakemake.params.settings,
        tests_model=(tests_model, snakemake.config["models"][tests_model]) if tests_model else None,
        cache_dir=snakemake.config["cache_dir"],
        sandbox=snakemake.params.sandbox or "auto",
    )
