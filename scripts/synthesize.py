"""Rules synthesize_round1 and synthesize_round2: see editforge.synthesis."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.stage_log import logged
from editforge.synthesis import run_round1, run_round2

with logged(snakemake.log[0]):
    name = snakemake.wildcards.model
    run = run_round1 if snakemake.rule == "synthesize_round1" else run_round2
    run(
        snakemake.input[0],
        snakemake.output.dialogues,
        name,
        snakemake.config["models"][name],
        # The error budget decides whether the job fails, not what it writes: not a param.
        snakemake.params.settings | {"max_error_share": snakemake.config["synthesis"]["max_error_share"]},
        snakemake.config["cache_dir"],
        snakemake.output.usage,
    )
