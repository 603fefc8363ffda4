"""Checkpoints during a run and the final save: the model in Hugging Face format (a LoRA run's
adapter merged in), its log, summary and model card, written beside the output folder and
renamed into place."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, PretrainedConfig

from editforge.monitoring import TRAINING_LOG, TRAINING_SUMMARY
from editforge.records import write_json, write_jsonl
from editforge.training import checkpoints
from editforge.training.card import model_card
from editforge.training.tracking import copy_tensorboard


def keep_trainable_weights(models: list[torch.nn.Module], weights: list[dict[str, Any]], output_dir: str) -> None:
    """LoRA checkpoints hold the adapter only, not a copy of the frozen base model."""
    for index, model in enumerate(models):
        names = {name for name, p in model.named_parameters() if p.requires_grad}
        weights[index] = {key: value for key, value in weights[index].items() if key in names}


def save_checkpoint(
    accelerator: Accelerator, root: Path, step: int, state: Mapping[str, Any], settings: Mapping[str, Any]
) -> None:
    partial = checkpoints.partial_dir(root, step)
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        checkpoints.finish(root, step, state, settings["keep_checkpoints"])
    accelerator.wait_for_everyone()


def save_final(
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: Any,
    base_model: str,
    config: PretrainedConfig,
    out: Path,
    log: list[dict[str, Any]],
    summary: dict[str, Any],
    runs: Path | None = None,
) -> None:
    """The model in Hugging Face format, written beside ``out`` and renamed into place; with it the
    log, the summary, the card, and the TensorBoard files of ``runs`` (under ``runs/``)."""
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # gathers FSDP shards onto the main process
    if not accelerator.is_main_process:
        return
    dtype = _save_dtype(config)
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    trained = accelerator.unwrap_model(model)
    if summary["method"] == "lora":
        trained.save_pretrained(staging / "adapter", state_dict=state_dict)
        merged = _merge_adapter(base_model, staging / "adapter")
        merged.to(dtype).save_pretrained(staging)
    else:
        weights = {key: value.to(dtype) if value.is_floating_point() else value for key, value in state_dict.items()}
        trained.config.dtype = dtype
        trained.config.use_cache = True
        trained.save_pretrained(staging, state_dict=weights)
    tokenizer.save_pretrained(staging)
    write_jsonl(staging / TRAINING_LOG, log)
    summary["saved_dtype"] = str(dtype).removeprefix("torch.")
    summary["data_card"] = _data_card_link(summary["dataset"], out)
    write_json(staging / TRAINING_SUMMARY, summary)
    (staging / "README.md").write_text(model_card(summary), encoding="utf-8")
    if runs is not None:
        copy_tensorboard(runs, staging)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


def _merge_adapter(base_model: str, adapter_dir: Path) -> torch.nn.Module:
    """The base model reloaded in fp32 on the CPU with the adapter merged in: a plain transformers model."""
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.config.use_cache = True
    return merged


def _data_card_link(dataset: str, out: Path) -> str | None:
    """The dataset card (``README.md`` beside the dataset file) relative to the model folder, if it exists."""
    card = Path(dataset).resolve().parent / "README.md"
    return os.path.relpath(card, out.resolve()) if card.is_file() else None


def _save_dtype(config: PretrainedConfig) -> torch.dtype:
    """The base model's stored dtype when it is a 16-bit one (7B checkpoints are bf16), else fp32."""
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if dtype in (torch.bfloat16, torch.float16) else torch.float32
