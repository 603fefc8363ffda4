"""Rules finetune and experiment_finetune: see editforge.training."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from pathlib import Path

import torch

from editforge.backend import resolve_model_path
from editforge.monitoring import MONITORING_KEYS
from editforge.stage_log import logged
from editforge.training import launch

with logged(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    base = snakemake.params.base
    student = snakemake.wildcards.student
    # What only watches the run (trackers, validation cadence, the divergence check) comes from the config,
    # not from params: changing it does not rerun a finished training.
    monitoring = {k: v for k, v in snakemake.config["training"]["students"][student].items() if k in MONITORING_KEYS}
    wildcards = dict(snakemake.wildcards.items())
    if "variant" in wildcards:
        run_name = f"{wildcards['experiment']}/{wildcards['variant']}/{student}/s{wildcards['seed']}"
    else:
        run_name = f"{snakemake.config['run_name']}/{student}"
    launch(
        snakemake.input.train,
        resolve_model_path(base["model"]),
        dict(snakemake.params.settings) | monitoring,
        snakemake.output[0],
        chat_template=base.get("chat_template", True),
        configs_dir=Path(snakemake.scriptdir, "..", "accelerate_configs"),
        validation=snakemake.input.validation,
        run_name=run_name,
    )
