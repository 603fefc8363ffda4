"""Rule finetune: see editforge.training."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from pathlib import Path

import torch

from editforge.backend import resolve_model_path
from editforge.stage_log import logged
from editforge.training import launch

with logged(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    base = snakemake.params.base
    launch(
        snakemake.input[0],
        resolve_model_path(base["model"]),
        snakemake.params.settings,
        snakemake.output[0],
        chat_template=base.get("chat_template", True),
        configs_dir=Path(snakemake.scriptdir, "..", "accelerate_configs"),
    )
