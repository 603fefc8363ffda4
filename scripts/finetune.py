"""Rule finetune: see editforge.training."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.backend import resolve_model_path
from editforge.stage_log import logged
from editforge.training import run_finetune

with logged(snakemake.log[0]):
    base = snakemake.params.base
    run_finetune(
        snakemake.input[0],
        resolve_model_path(base["model"]),
        snakemake.params.settings,
        snakemake.output[0],
        chat_template=base.get("chat_template", True),
    )
