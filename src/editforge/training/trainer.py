"""The fine-tuning run: model set-up (full or LoRA), the loop, checkpoints, the final save.

A plain torch loop on ``accelerate`` rather than ``transformers.Trainer``: the
prompt masking, the loss normalisation across gradient-accumulation steps and
processes, and the log stay visible in one place, while accelerate handles
device placement, mixed precision, DDP/FSDP and checkpoint state.

One optimizer step takes ``grad_accum`` micro-batches on each of the ``P``
processes. Every process computes the same stream of micro-batches
(``data.micro_batches``) and trains on its share of each step's group; the loss
is the summed cross-entropy of the answer tokens divided by the label count of
the whole group (times ``P``, since DDP and FSDP average gradients over
processes), so a step weighs every answer token the same however the group is
split into micro-batches or processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import torch
import torch.nn.functional as F
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    get_cosine_schedule_with_warmup,
    modeling_utils,
    set_seed,
)

from editforge.records import read_jsonl
from editforge.training import checkpoints
from editforge.training.data import (
    IGNORE_INDEX,
    Example,
    collate,
    collate_packed,
    micro_batches,
    target_count,
    tokenize_example,
)
from editforge.training.memory import out_of_memory_guard
from editforge.training.saving import keep_trainable_weights, save_checkpoint, save_final
from editforge.training.settings import (
    TrainingError,
    checkpoint_interval,
    optimizer_steps,
    resolve,
)

# Whether the installed transformers takes a boolean mask as ``logits_to_keep``
# (recent 5.x releases); older ones index with it as positions and fail.
MASKED_LOGITS = hasattr(modeling_utils, "slice_logits_to_keep")


def run_finetune(
    dataset_path: str | os.PathLike[str],
    base_model: str,
    settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    chat_template: bool = True,
    padding: str = "auto",
) -> dict[str, Any]:
    """Fine-tune ``base_model`` (a local directory or hub id) on ``dataset_path``; return a summary.

    ``settings`` is one ``training.students`` entry (missing keys take
    ``settings.DEFAULTS``). Writes to ``out_dir`` the model and tokenizer
    (``save_pretrained``; a LoRA run saves the merged model and its adapter under
    ``adapter/``), ``training_log.jsonl`` (one line per optimizer step),
    ``training_summary.json`` and a ``README.md`` model card. Checkpoints go to
    ``out_dir/../checkpoints`` and a killed run resumes from the newest one.

    ``padding``: ``auto`` follows the ``packing`` setting; ``longest`` and
    ``max_length`` force a padded layout (``max_length`` pads every micro-batch to
    ``max_seq_len``: only for the benchmark).
    """
    settings = resolve(settings)
    samples = list(read_jsonl(dataset_path))
    if not samples:
        raise TrainingError(f"dataset {dataset_path} holds no training samples")
    max_seq_len = settings["max_seq_len"]
    config = _load_config(base_model)
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_seq_len > limit:
        raise TrainingError(
            f"max_seq_len {max_seq_len} is larger than the model's max_position_embeddings {limit}; "
            f"set max_seq_len to at most {limit}"
        )

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    encoded = [tokenize_example(tokenizer, s["messages"], max_seq_len, chat_template) for s in samples]
    examples = [e for e in encoded if e is not None]
    if not examples:
        raise TrainingError(f"all {len(samples)} samples of {dataset_path} are longer than max_seq_len {max_seq_len}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    layout = _layout(settings, padding)

    accelerator = _accelerator(settings)
    processes = accelerator.num_processes
    steps = optimizer_steps(settings, len(examples), processes)
    interval = checkpoint_interval(settings, len(examples), processes)
    lora = settings["method"] == "lora"
    root = checkpoints.checkpoints_dir(out_dir)
    run_id = checkpoints.fingerprint(dataset_path, base_model, bool(chat_template), settings)
    if accelerator.is_main_process:
        for name in checkpoints.clean_stale(root, run_id):
            print(f"removed stale checkpoint {root / name}", flush=True)
    accelerator.wait_for_everyone()

    progress = {"step": 0, "longest": 0, "phase": "loading the model"}
    with out_of_memory_guard(settings, progress, base_model):
        set_seed(settings["seed"])
        model = _load_model(base_model, settings, accelerator)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = torch.optim.AdamW(
            _parameter_groups(model, settings["weight_decay"]), lr=settings["learning_rate"]
        )
        progress["phase"] = "placing the model"
        model, optimizer = accelerator.prepare(model, optimizer)
        scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(settings["warmup_ratio"] * steps), steps)
        accelerator.register_for_checkpointing(scheduler)
        fsdp = accelerator.distributed_type == DistributedType.FSDP
        if lora and not fsdp:
            accelerator.register_save_state_pre_hook(keep_trainable_weights)

        log: list[dict[str, Any]] = []
        start = 0
        found = checkpoints.latest(root, run_id)
        if found is not None:
            path, state = found
            accelerator.load_state(str(path), **({"strict": False} if lora and not fsdp else {}))
            start, log = state["step"], state["log"]
            accelerator.print(f"resumed from {path} (step {start} of {steps})")

        stream = micro_batches(len(examples), settings["batch_size"], settings["seed"])
        for _ in range(start * settings["grad_accum"] * processes):
            next(stream)
        progress["phase"] = "training"
        started = time.monotonic()
        for step in range(start + 1, steps + 1):
            progress["step"] = step
            group = [next(stream) for _ in range(settings["grad_accum"] * processes)]
            entry = _train_step(
                accelerator, model, optimizer, scheduler, examples, group, layout, pad_id, settings, progress
            )
            log.append(entry | {"step": step})
            accelerator.print(
                f"step {step}/{steps}: loss {entry['loss']:.4f}, lr {entry['lr']:.3g}, "
                f"grad norm {entry['grad_norm']:.3f}, {entry['tokens'] / entry['seconds']:.0f} tokens/s",
                flush=True,
            )
            if interval and step % interval == 0 and step < steps:
                save_checkpoint(accelerator, root, step, {"step": step, "fingerprint": run_id, "log": log}, settings)
                accelerator.print(f"checkpoint of step {step} saved in {checkpoints.step_dir(root, step)}", flush=True)
        seconds = time.monotonic() - started

        progress["phase"] = "saving the model"
        summary = {
            "base_model": base_model,
            "dataset": str(dataset_path),
            "samples": len(samples),
            "trained_samples": len(examples),
            "skipped_too_long": len(samples) - len(examples),
            "per_style": dict(Counter(s.get("style", "?") for s in samples)),
            "per_model": dict(Counter(s.get("model", "?") for s in samples)),
            "method": settings["method"],
            "trainable_parameters": trainable,
            "steps": steps,
            "resumed_from_step": start,
            "processes": processes,
            "effective_batch": settings["batch_size"] * settings["grad_accum"] * processes,
            "layout": layout,
            "first_loss": log[0]["loss"],
            "final_loss": log[-1]["loss"],
            "train_seconds": round(seconds, 1),
            "mixed_precision": accelerator.mixed_precision,
            "chat_template": bool(chat_template and tokenizer.chat_template),
            "settings": settings,
        }
        save_final(accelerator, model, tokenizer, base_model, config, Path(out_dir), log, summary)
    if accelerator.is_main_process:
        shutil.rmtree(root, ignore_errors=True)  # optimizer states are of no use once the model is saved
    accelerator.wait_for_everyone()
    return summary


def _accelerator(settings: Mapping[str, Any]) -> Accelerator:
    mixed_precision = "bf16" if _use_bf16(settings["bf16"]) else "no"
    shared = AcceleratorState._shared_state
    if shared.get("_mixed_precision") not in (None, mixed_precision) and PartialState().num_processes == 1:
        # a second run in one process (tests, notebooks) with another precision: accelerate keeps its
        # state per process and refuses a change, which is safe to drop when no process group exists
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision)


def _use_bf16(setting: bool | str) -> bool:
    """``auto``: bf16 on a CUDA GPU that supports it (Ampere and later); fp32 on CPU.

    On CPU, ``bf16: true`` autocasts too (fast only with AVX512-BF16 or AMX); it
    is not the default so that a CPU run gives the same numbers everywhere.
    """
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


def _load_config(base_model: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(base_model)
    except (OSError, ValueError) as err:
        where = (
            f"{base_model} exists but holds no loadable model"
            if Path(base_model).exists()
            else "it is no local directory and not a loadable hub id"
        )
        offline = (
            " HF_HUB_OFFLINE=1 is set, so the hub was not asked: only models already in the local cache load."
            if huggingface_hub.constants.HF_HUB_OFFLINE
            else ""
        )
        raise TrainingError(f"base model {base_model!r} not found: {where}.{offline}") from err


def _load_model(base_model: str, settings: Mapping[str, Any], accelerator: Accelerator) -> torch.nn.Module:
    """fp32 weights for full fine-tuning (bf16 autocast on top); a LoRA base is frozen, so bf16 is enough."""
    lora = settings["method"] == "lora"
    dtype = torch.bfloat16 if lora and accelerator.mixed_precision == "bf16" else torch.float32
    extra = {"attn_implementation": settings["attn_implementation"]} if settings["attn_implementation"] else {}
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype, **extra)
    model.config.use_cache = False
    if settings["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise TrainingError("method: lora needs the peft package: pip install peft") from err
        options = settings["lora"]
        model = get_peft_model(
            model,
            LoraConfig(
                r=options["r"],
                lora_alpha=options["alpha"],
                lora_dropout=options["dropout"],
                target_modules=options["target_modules"],
                task_type="CAUSAL_LM",
            ),
        )
    return model


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm scales (the one-dimensional parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _layout(settings: Mapping[str, Any], padding: str) -> str:
    if padding == "auto":
        return "packed" if settings["packing"] else "longest"
    if padding not in ("longest", "max_length", "packed"):
        raise TrainingError(f"padding must be auto, longest, max_length or packed, got {padding!r}")
    return padding


def _train_step(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    examples: Sequence[Example],
    group: Sequence[Sequence[int]],
    layout: str,
    pad_id: int,
    settings: Mapping[str, Any],
    progress: dict[str, Any],
) -> dict[str, Any]:
    """One optimizer step over ``group`` (all processes' micro-batches); return its log entry."""
    began = time.monotonic()
    processes = accelerator.num_processes
    targets = sum(target_count(examples[i]) for batch in group for i in batch)
    mine = group[accelerator.process_index :: processes]
    summed = torch.zeros((), device=accelerator.device)
    model.train()
    for index, indices in enumerate(mine):
        batch = _layout_batch([examples[i] for i in indices], layout, pad_id, settings)
        progress["longest"] = max(len(examples[i]["input_ids"]) for i in indices)
        batch = {key: value.to(accelerator.device) for key, value in batch.items()}
        last = index == len(mine) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            loss = summed_loss(model, batch)
            accelerator.backward(loss * processes / targets)
        summed += loss.detach()
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), settings["max_grad_norm"])
    learning_rate = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    total = accelerator.reduce(summed, reduction="sum") if processes > 1 else summed
    return {
        "loss": round(float(total) / targets, 6),
        "lr": learning_rate,
        "tokens": sum(len(examples[i]["input_ids"]) for batch in group for i in batch),
        "grad_norm": round(float(grad_norm), 6),
        "seconds": round(time.monotonic() - began, 3),
    }


def _layout_batch(
    batch: Sequence[Example], layout: str, pad_id: int, settings: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    if layout == "packed":
        # flash-attention's variable-length kernel costs the sum of the samples' squares, whatever the row
        # width; masked attention (SDPA, eager) costs rows x width squared, so rows stay at the longest sample
        varlen = str(settings["attn_implementation"] or "").startswith("flash_attention")
        return collate_packed(batch, pad_id, settings["max_seq_len"] if varlen else None)
    return collate(batch, pad_id, width=settings["max_seq_len"] if layout == "max_length" else None)


def summed_loss(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy summed over the labelled tokens (each position predicts the next token).

    Where transformers allows it, only the positions whose next token carries loss
    are projected onto the vocabulary (``logits_to_keep`` as a boolean mask): the
    prompt's logits, a large share of the memory at a 150k vocabulary, are never
    computed. Otherwise all logits are computed and the mask applied after.
    """
    labels = batch["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "position_ids") if key in batch}
    logits = model(**inputs, logits_to_keep=keep if MASKED_LOGITS else 0, use_cache=False).logits
    if logits.shape[:-1] == labels.shape:  # a model that ignores a mask in logits_to_keep
        logits = logits[keep]
    return F.cross_entropy(logits.float(), labels[:, 1:][keep[:, :-1]], reduction="sum")
