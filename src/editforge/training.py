"""Supervised fine-tuning of a causal language model on the edit training set.

A plain torch loop on ``accelerate`` rather than ``transformers.Trainer``: the
prompt masking, the loss normalisation across gradient-accumulation steps and the
log stay visible in one place, while accelerate still handles device placement
and mixed precision (and later multi-GPU and FSDP).

Each sample is tokenised as: the prompt exactly as evaluation sends it (the
system and user turns through the chat template with the generation prompt, or
``edit_format.render_plain`` without a template), then the assistant's answer,
then the EOS token. Only the answer and the EOS carry loss. Samples longer than
``max_seq_len`` are skipped, not truncated: a truncated answer would teach the
model to stop mid-program (or, with a cut prompt, to edit code it never saw).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    get_cosine_schedule_with_warmup,
    set_seed,
)

from editforge.edit_format import render_plain
from editforge.records import read_jsonl, write_jsonl

IGNORE_INDEX = -100  # label of tokens that carry no loss (prompt, padding)
MAX_GRAD_NORM = 1.0
ROLES = ["system", "user", "assistant"]


class TrainingError(ValueError):
    """The dataset, base model or settings cannot be trained on."""


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], chat_template: bool
) -> list[int]:
    """Token ids of the edit prompt (system and user turns) as evaluation sends it.

    With a chat template the rendered text already holds its special tokens, so
    none are added (what ``apply_chat_template(..., tokenize=True)`` does); the
    plain layout gets the tokenizer's usual ones (a base model's BOS).
    """
    prompt = [dict(m) for m in messages[:2]]
    if chat_template and tokenizer.chat_template:
        text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(render_plain(prompt, add_generation_prompt=True))["input_ids"]


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Mapping[str, str]],
    max_seq_len: int,
    chat_template: bool,
) -> dict[str, list[int]] | None:
    """``input_ids`` = prompt + answer + EOS and ``labels`` (-100 on the prompt), or None when too long."""
    roles = [m.get("role") for m in messages]
    if roles != ROLES:
        raise TrainingError(f"a training sample needs messages with roles {ROLES}, got {roles}")
    if tokenizer.eos_token_id is None:
        raise TrainingError("the tokenizer has no EOS token, so the model could not learn to stop")
    prompt = encode_prompt(tokenizer, messages, chat_template)
    answer = tokenizer(messages[2]["content"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(prompt) + len(answer) > max_seq_len:
        return None
    return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}


def collate(batch: Sequence[Mapping[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sample of the batch; padding is found by length, never by token id.

    (The pad id is often the EOS id, and the EOS at the end of each answer must keep its label.)
    """
    width = max(len(example["input_ids"]) for example in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        length = len(example["input_ids"])
        input_ids[row, :length] = torch.tensor(example["input_ids"])
        labels[row, :length] = torch.tensor(example["labels"])
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def run_finetune(
    dataset_path: str | os.PathLike[str],
    base_model: str,
    settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    chat_template: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``base_model`` (a local directory or hub id) on ``dataset_path``; return a summary.

    ``settings`` is one ``training.students`` entry. Writes to ``out_dir`` the
    model and tokenizer (``save_pretrained``), ``training_log.jsonl`` (one line
    per optimizer step) and a ``README.md`` model card.
    """
    method = settings.get("method", "full")
    if method == "lora":
        raise TrainingError("method lora is not available yet; use method: full")
    if method != "full":
        raise TrainingError(f"unknown training method {method!r}; use method: full")
    samples = list(read_jsonl(dataset_path))
    if not samples:
        raise TrainingError(f"dataset {dataset_path} holds no training samples")
    max_seq_len = settings["max_seq_len"]
    config = _load_config(base_model)
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_seq_len > limit:
        raise TrainingError(f"max_seq_len {max_seq_len} is larger than the model's max_position_embeddings {limit}")

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    encoded = [tokenize_example(tokenizer, s["messages"], max_seq_len, chat_template) for s in samples]
    examples = [e for e in encoded if e is not None]
    if not examples:
        raise TrainingError(f"all {len(samples)} samples of {dataset_path} are longer than max_seq_len {max_seq_len}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    steps = _optimizer_steps(settings, len(examples))

    seed = settings.get("seed", 42)
    set_seed(seed)
    accelerator = Accelerator(mixed_precision="bf16" if _use_bf16(settings.get("bf16", "auto")) else "no")
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    if settings.get("gradient_checkpointing", False):
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, settings.get("weight_decay", 0.0)), lr=settings["learning_rate"]
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(settings["warmup_ratio"] * steps), steps)

    batches = _batches(examples, settings["batch_size"], pad_id, seed)
    started = time.monotonic()
    log = _train(accelerator, model, optimizer, scheduler, batches, steps, settings.get("grad_accum", 1))
    seconds = time.monotonic() - started

    out = Path(out_dir)
    accelerator.wait_for_everyone()
    trained = accelerator.unwrap_model(model)
    trained.config.use_cache = True
    trained.save_pretrained(out, state_dict=accelerator.get_state_dict(model))
    tokenizer.save_pretrained(out)
    write_jsonl(out / "training_log.jsonl", log)
    summary = {
        "base_model": base_model,
        "dataset": str(dataset_path),
        "samples": len(samples),
        "trained_samples": len(examples),
        "skipped_too_long": len(samples) - len(examples),
        "per_style": dict(Counter(s.get("style", "?") for s in samples)),
        "per_model": dict(Counter(s.get("model", "?") for s in samples)),
        "steps": steps,
        "first_loss": log[0]["loss"],
        "final_loss": log[-1]["loss"],
        "train_seconds": round(seconds, 1),
        "mixed_precision": accelerator.mixed_precision,
        "chat_template": bool(chat_template and tokenizer.chat_template),
        "settings": dict(settings),
    }
    (out / "README.md").write_text(_model_card(summary), encoding="utf-8")
    return summary


def _train(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batches: Iterator[dict[str, torch.Tensor]],
    steps: int,
    grad_accum: int,
) -> list[dict[str, Any]]:
    """Run ``steps`` optimizer steps of ``grad_accum`` batches each; return one log entry per step."""
    log: list[dict[str, Any]] = []
    model.train()
    for step in range(1, steps + 1):
        group = [next(batches) for _ in range(grad_accum)]
        # Normalise by the label count of the whole group, so that accumulation
        # weighs every answer token the same as one large batch would.
        label_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in group)
        loss_sum = 0.0
        for index, batch in enumerate(group):
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            last = index == len(group) - 1
            with nullcontext() if last else accelerator.no_sync(model):
                loss = _summed_loss(model, batch) / label_tokens
                accelerator.backward(loss)
            loss_sum += loss.item()
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        log.append(
            {
                "step": step,
                "loss": round(loss_sum, 6),
                "lr": learning_rate,
                "tokens": sum(int(b["attention_mask"].sum()) for b in group),
                "grad_norm": round(float(grad_norm), 6),
            }
        )
    return log


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


def _use_bf16(setting: bool | str) -> bool:
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if isinstance(setting, bool):
        return setting
    raise TrainingError(f"bf16 must be auto, true or false, got {setting!r}")


def _optimizer_steps(settings: Mapping[str, Any], examples: int) -> int:
    max_steps, epochs = settings.get("max_steps"), settings.get("num_epochs")
    if (max_steps is None) == (epochs is None):
        raise TrainingError("set exactly one of max_steps and num_epochs for a student")
    if max_steps is not None:
        return int(max_steps)
    batches_per_epoch = math.ceil(examples / settings["batch_size"])
    return max(1, math.ceil(epochs * batches_per_epoch / settings.get("grad_accum", 1)))


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm scales (the one-dimensional parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _batches(
    examples: list[dict[str, list[int]]], batch_size: int, pad_id: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Padded batches, endlessly, in a fresh seeded order each epoch."""
    order_rng = random.Random(seed)
    while True:
        order = list(range(len(examples)))
        order_rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield collate([examples[i] for i in order[start : start + batch_size]], pad_id)


def _summed_loss(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy summed over the labelled tokens (each position predicts the next token)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        batch["labels"][:, 1:].flatten(),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def _model_card(summary: Mapping[str, Any]) -> str:
    settings = "\n".join(f"| {key} | {value} |" for key, value in sorted(summary["settings"].items()))
    return f"""# Code-edit model fine-tuned from `{summary['base_model']}`

Full fine-tune on synthesized code-edit samples, prompted with the same edit
format that evaluation uses (chat template: {summary['chat_template']}).

- Dataset: `{summary['dataset']}`: {summary['samples']} samples, {summary['trained_samples']} trained on,
  {summary['skipped_too_long']} skipped as longer than max_seq_len
- Samples per style: {summary['per_style']}; per synthesis model: {summary['per_model']}
- Optimizer steps: {summary['steps']}; loss {summary['first_loss']} at the first step, \
{summary['final_loss']} at the last; {summary['train_seconds']} s; mixed precision: {summary['mixed_precision']}
- AdamW, cosine schedule with linear warm-up, gradient clipping at {MAX_GRAD_NORM}; loss on the answer and EOS only

| setting | value |
|---|---|
{settings}

`training_log.jsonl` holds the loss, learning rate and token count of every step.
"""
