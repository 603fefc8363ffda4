"""Supervised fine-tuning of a causal language model on the edit training set.

- ``settings``: the student settings, their defaults for 7-8B models and sources.
- ``data``: tokenisation with the evaluation prompt, loss masks, dynamic padding
  and packing without cross-sample attention, the seeded sample order.
- ``trainer``: ``run_finetune``: model set-up (full or LoRA), the loop on accelerate, resume.
- ``step``: one optimizer step, the validation loss, the check that stops a diverging run.
- ``metrics``, ``throughput``: what each step logs (tokens per second, padding, the MFU
  estimate, memory) and the summary's figures; ``tracking``: TensorBoard, W&B, trackio, MLflow.
- ``saving``: checkpoints and the final Hugging Face folder; ``checkpoints``: their folders,
  fingerprint and clean-up; ``card``: the model card.
- ``memory``: running out of memory, as one message naming the settings to lower.
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
    TrainingDiverged,
    TrainingError,
    TrainingOutOfMemory,
)
from editforge.training.step import summed_loss
from editforge.training.trainer import run_finetune

__all__ = [
    "DEFAULTS",
    "IGNORE_INDEX",
    "TrainingDiverged",
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
