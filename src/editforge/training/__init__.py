"""Supervised fine-tuning of a causal language model on the edit training set.

- ``settings``: the student settings, their defaults for 7-8B models and sources.
- ``data``: tokenisation with the evaluation prompt, loss masks, dynamic padding
  and packing without cross-sample attention, the seeded sample order.
- ``trainer``: ``run_finetune`` (full or LoRA, accelerate, checkpoints and
  resume, the final Hugging Face folder with its model card).
- ``launcher``: ``launch`` (in process, or ``accelerate launch`` for FSDP on
  several GPUs or nodes) and the ``python -m editforge.training`` command line.
"""

from editforge.training.data import (
    IGNORE_INDEX,
    collate,
    collate_packed,
    encode_prompt,
    tokenize_example,
)
from editforge.training.launcher import launch, launch_command, main, select_config
from editforge.training.settings import (
    DEFAULTS,
    TrainingError,
    TrainingOutOfMemory,
)
from editforge.training.trainer import run_finetune, summed_loss

__all__ = [
    "DEFAULTS",
    "IGNORE_INDEX",
    "TrainingError",
    "TrainingOutOfMemory",
    "collate",
    "collate_packed",
    "encode_prompt",
    "launch",
    "launch_command",
    "main",
    "run_finetune",
    "select_config",
    "summed_loss",
    "tokenize_example",
]
