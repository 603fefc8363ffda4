"""Running out of memory: recognised whatever the device, and turned into one message naming the
settings to lower, cheapest in training quality first."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from editforge.training.settings import TrainingOutOfMemory


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "out of memory" in text.lower() or "DefaultCPUAllocator: can't allocate memory" in text
        or "DefaultCPUAllocator: not enough memory" in text
    )


@contextlib.contextmanager
def out_of_memory_guard(settings: Mapping[str, Any], progress: Mapping[str, Any], base_model: str) -> Iterator[None]:
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not _is_out_of_memory(err):
            raise
        raise TrainingOutOfMemory(out_of_memory_message(settings, progress, base_model)) from err


def out_of_memory_message(settings: Mapping[str, Any], progress: Mapping[str, Any], base_model: str) -> str:
    """Which settings to lower, in the order that costs the least training quality."""
    where = (
        f"at optimizer step {progress['step']} (longest sample in the micro-batch: {progress['longest']} tokens)"
        if progress.get("phase") == "training"
        else f"while {progress.get('phase', 'training')}"
    )
    effective = settings["batch_size"] * settings["grad_accum"]
    advice = []
    if settings["batch_size"] > 1:
        advice.append(
            f"lower batch_size (now {settings['batch_size']}) and raise grad_accum (now {settings['grad_accum']}) "
            f"by the same factor, which keeps the effective batch of {effective} per process"
        )
    if not settings["gradient_checkpointing"]:
        advice.append("set gradient_checkpointing: true")
    advice.append(f"lower max_seq_len (now {settings['max_seq_len']}; longer samples are skipped)")
    if settings["method"] == "full":
        advice.append("use method: lora, or shard a full fine-tune over several GPUs (num_gpus > 1 uses FSDP)")
    return f"ran out of memory training {base_model} {where}: " + "; or ".join(advice)
