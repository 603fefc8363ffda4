"""Rule dataset: see editforge.dataset."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from pathlib import Path

from editforge.dataset import run_mix
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    run_mix(
        snakemake.input.triplets,
        Path(snakemake.output.train).parent,
        snakemake.params.settings,
        snakemake.params.seed,
        decontamination_path=snakemake.input.decontamination,
        generators=snakemake.params.generators,
        seeds_path=snakemake.input.seeds,
    )
