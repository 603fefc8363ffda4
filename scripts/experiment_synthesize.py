"""Rules experiment_synthesize_round1 and _round2: a variant's own synthesis, with its settings (see
editforge.synthesis); the round is a param, as the rule's name no longer says it."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.stage_log import logged
from editforge.synthesis import run_round1, run_round2

ROUNDS = {1: run_round1, 2: run_round2}

with logged(snakemake.log[0]):
    model = snakemake.wildcards.model
    budget = {"max_error_share": snakemake.config["synthesis"]["max_error_share"]}  # the run's: not a param
    ROUNDS[snakemake.params.round](
        snakemake.input[0],
        snakemake.output.dialogues,
        model,
        snakemake.config["models"][model],
        snakemake.params.settings | budget,
        snakemake.config["cache_dir"],
        snakemake.output.usage,
    )
