"""Rule dedup: see editforge.filtering."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.filtering import run_dedup
from editforge.records import read_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_dedup(
        list(snakemake.input.shards),
        snakemake.output.triplets,
        snakemake.output.report,
        snakemake.params.settings,
        list(read_jsonl(snakemake.input.benchmark)),
    )
