"""A student's training settings: defaults, their sources, and checks.

``resolve`` fills in every setting the config leaves out, so the trainer reads
one complete dict. The defaults and their sources are described above ``DEFAULTS``
and ``LORA_DEFAULTS``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from editforge.monitoring import MONITORING_KEYS, named_trackers


class TrainingError(ValueError):
    """The dataset, base model or settings cannot be trained on."""


class TrainingOutOfMemory(TrainingError):
    """Training ran out of (GPU or host) memory; the message names the settings to lower."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite, or exploded; the message names the step, the learning rate and
    the last finite loss."""


# LoRA: rank 16, alpha 32, dropout 0.05 on every linear layer of the blocks
# (the QLoRA paper's "all linear layers"; on the embedded SmolLM2 it took the
# loss from 0.36 to 0.04 in 20 steps), with a ~10x larger learning rate than a
# full fine-tune (2e-4): set ``learning_rate`` with ``method: lora``.
LORA_DEFAULTS: dict[str, Any] = {
    "r": 16,
    "alpha": 32,
    "dropout": 0.05,
    "target_modules": "all-linear",  # or a list of module names, e.g. [q_proj, v_proj]
}

# The defaults are a full fine-tune of a 7-8B base model; the CPU demo (``config/config.yaml``)
# overrides the few settings that matter: a few ``max_steps``, ``grad_accum: 1``,
# ``max_seq_len: 1024``, ``gradient_checkpointing: false``.
#
# Sources of the 7B defaults:
#
# - EditCoder (nuprl/CanItEdit ``editcoder/run.sh`` with its finetuning harness,
#   DeepSeek-Coder-6.7B-base on EditPackFT): learning rate 2e-5, an effective
#   batch of 32 sequences (1 per GPU x 4 accumulation x 8 GPUs; here 4 x 8 on one
#   process), bf16, gradient checkpointing, sequence length 4096, gradient
#   clipping at 1.0 (the harness keeps the Trainer default), a cosine schedule
#   (the harness default) and one checkpoint per epoch. It also used weight decay
#   0.05 and 8 epochs; the defaults here keep the schema's weight decay 0.0 and
#   take 3 epochs (next item).
# - OpenCodeEdit trained with LLaMA-Factory and published no hyperparameters.
#   LLaMA-Factory's own full-SFT example (``examples/train_full/qwen3_full_sft.yaml``)
#   runs 3 epochs with a cosine schedule and warm-up, which is where
#   ``num_epochs: 3`` comes from (EditCoder's 8 epochs were over packed
#   4096-token chunks of another data set). ``warmup_ratio`` 0.03 is the
#   schema's default (EditCoder warmed up for 10 steps).
# - LoRA: see ``LORA_DEFAULTS``.
DEFAULTS: dict[str, Any] = {
    "method": "full",  # full | lora
    "num_epochs": 3,  # LLaMA-Factory full-SFT example; ignored when max_steps is set
    "max_steps": None,  # optimizer steps; overrides num_epochs (as in transformers' TrainingArguments)
    "batch_size": 4,  # sequences per micro-batch and process
    "grad_accum": 8,  # 4 x 8 = EditCoder's effective batch of 32 on one GPU (use 1 on 8 GPUs)
    "learning_rate": 2.0e-5,  # EditCoder
    "weight_decay": 0.0,
    "warmup_ratio": 0.03,
    "max_grad_norm": 1.0,  # EditCoder's harness (the Trainer default)
    "max_seq_len": 4096,  # EditCoder
    "gradient_checkpointing": True,  # EditCoder; about 30% slower, far less activation memory
    "bf16": "auto",  # auto: bf16 on GPUs that support it, else fp32
    "packing": True,  # each micro-batch's samples end to end in fewer rows, no cross-sample attention
    "attn_implementation": None,  # None: the transformers default (sdpa); flash_attention_2 on GPUs
    "seed": 42,
    "checkpoint_every": None,  # optimizer steps between checkpoints; None: once per epoch; 0: never
    "keep_checkpoints": 1,  # the newest N are kept while training; all are removed after the final save
    "lora": LORA_DEFAULTS,
    "num_gpus": 1,  # processes per node on GPUs
    "num_nodes": 1,
    "accelerate_config": "auto",  # auto | cpu | single_gpu | fsdp_node | multi_node | a YAML path
    # Watching a run (monitoring.MONITORING_KEYS: they change what is logged, never the weights)
    "report_to": "auto",  # auto (TensorBoard where installed) | none | tensorboard, wandb, trackio, mlflow (a list)
    "project": None,  # the trackers' project (W&B, trackio, MLflow); None: editforge
    "eval_every": None,  # optimizer steps between validation losses; None: about ten a run; always at the end
    "loss_spike_factor": 4.0,  # a loss this many times the reference for 3 steps in a row is divergence
    "peak_tflops": None,  # the device's peak bf16 TFLOP/s for the MFU estimate; None: known GPUs only
}

# Settings that do not change what is trained: a checkpoint stays valid when they change.
NOT_FINGERPRINTED = (
    frozenset({"checkpoint_every", "keep_checkpoints", "accelerate_config", "num_nodes"}) | MONITORING_KEYS
)


def resolve(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` over ``DEFAULTS`` (``lora`` merged key by key), checked."""
    resolved = {**DEFAULTS, **{key: value for key, value in settings.items() if value is not None}}
    resolved["lora"] = {**LORA_DEFAULTS, **(settings.get("lora") or {})}
    method = resolved["method"]
    if method not in ("full", "lora"):
        raise TrainingError(f"unknown training method {method!r}; use method: full or method: lora")
    max_steps, epochs = resolved["max_steps"], resolved["num_epochs"]
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise TrainingError(f"max_steps must be a positive integer, got {max_steps!r}")
    if max_steps is None and not (isinstance(epochs, (int, float)) and epochs > 0):
        raise TrainingError(f"num_epochs must be a positive number when max_steps is not set, got {epochs!r}")
    for key in ("batch_size", "grad_accum", "max_seq_len", "num_gpus", "num_nodes"):
        if not isinstance(resolved[key], int) or resolved[key] < 1:
            raise TrainingError(f"{key} must be a positive integer, got {resolved[key]!r}")
    if resolved["bf16"] not in ("auto", True, False):
        raise TrainingError(f"bf16 must be auto, true or false, got {resolved['bf16']!r}")
    try:
        resolved["report_to"] = named_trackers(resolved["report_to"])
    except ValueError as err:
        raise TrainingError(str(err)) from None
    every = resolved["eval_every"]
    if every is not None and (not isinstance(every, int) or every < 1):
        raise TrainingError(f"eval_every must be a positive integer or null, got {every!r}")
    factor = resolved["loss_spike_factor"]
    if factor is not None and (not isinstance(factor, (int, float)) or factor <= 1):
        raise TrainingError(f"loss_spike_factor must be a number above 1 or null (no spike check), got {factor!r}")
    peak = resolved["peak_tflops"]
    if peak is not None and (not isinstance(peak, (int, float)) or peak <= 0):
        raise TrainingError(f"peak_tflops must be a positive number or null, got {peak!r}")
    lora = resolved["lora"]
    if method == "lora" and (not isinstance(lora["r"], int) or lora["r"] < 1):
        raise TrainingError(f"lora.r must be a positive integer, got {lora['r']!r}")
    return resolved


def validation_interval(settings: Mapping[str, Any], steps: int) -> int:
    """Optimizer steps between validation losses: ``eval_every``, or about ten a run."""
    return settings["eval_every"] or max(1, steps // 10)


def micro_batches_per_epoch(examples: int, batch_size: int) -> int:
    return math.ceil(examples / batch_size)


def optimizer_steps(settings: Mapping[str, Any], examples: int, processes: int = 1) -> int:
    """``max_steps`` when set, else enough steps for ``num_epochs`` passes over the examples.

    An optimizer step takes ``grad_accum`` micro-batches of ``batch_size`` samples
    on each of ``processes`` processes; an epoch is cut into micro-batches on its own
    (its last one may be smaller).
    """
    if settings["max_steps"] is not None:
        return int(settings["max_steps"])
    per_step = settings["grad_accum"] * processes
    return max(
        1, math.ceil(settings["num_epochs"] * micro_batches_per_epoch(examples, settings["batch_size"]) / per_step)
    )


def steps_per_epoch(settings: Mapping[str, Any], examples: int, processes: int = 1) -> int:
    return max(
        1, math.ceil(micro_batches_per_epoch(examples, settings["batch_size"]) / (settings["grad_accum"] * processes))
    )


def checkpoint_interval(settings: Mapping[str, Any], examples: int, processes: int = 1) -> int:
    """Optimizer steps between checkpoints; 0 means never."""
    every = settings["checkpoint_every"]
    if every is None:
        return steps_per_epoch(settings, examples, processes)
    if not isinstance(every, int) or every < 0:
        raise TrainingError(f"checkpoint_every must be a non-negative integer or null, got {every!r}")
    return every
