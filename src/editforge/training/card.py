"""The model card (``README.md``) saved with a fine-tuned model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def model_card(summary: Mapping[str, Any]) -> str:
    settings = summary["settings"]
    lora = settings["method"] == "lora"
    hidden = {"lora"} if not lora else set()
    if settings.get("max_steps") is not None:
        hidden.add("num_epochs")  # max_steps overrides it
    rows = "\n".join(f"| {key} | {_cell(value)} |" for key, value in sorted(settings.items()) if key not in hidden)
    if lora:
        options = settings["lora"]
        method = (
            f"LoRA (r {options['r']}, alpha {options['alpha']}, dropout {options['dropout']}, "
            f"modules {_cell(options['target_modules'])}), merged into the base weights; the adapter alone is in "
            "`adapter/`"
        )
    else:
        method = "Full fine-tune"
    card_link = summary.get("data_card")
    data_card = f"[data card]({card_link})" if card_link else "no data card found beside the dataset"
    resumed = (
        f"; resumed from the checkpoint of step {summary['resumed_from_step']}"
        if summary.get("resumed_from_step")
        else ""
    )
    return f"""---
base_model: {json.dumps(summary["base_model"])}
library_name: transformers
pipeline_tag: text-generation
tags: [code, code-editing, editforge]
---

# Code-edit model fine-tuned from `{summary["base_model"]}`

{method} on synthesized code-edit samples, prompted with the same edit
format that evaluation uses (chat template: {summary["chat_template"]}). It loads
with `AutoModelForCausalLM.from_pretrained` like any other model.

- Base model: `{summary["base_model"]}`
- Dataset: `{summary["dataset"]}` ({data_card}): {summary["samples"]} samples, {summary["trained_samples"]} trained on,
  {summary["skipped_too_long"]} skipped as longer than max_seq_len
- Samples per style: {summary["per_style"]}; per synthesis model: {summary["per_model"]}
- Optimizer steps: {summary["steps"]} of {summary["effective_batch"]} samples \
({summary["processes"]} process(es)){resumed}; loss {summary["first_loss"]} at the first step, \
{summary["final_loss"]} at the last; {summary["train_seconds"]} s; mixed precision: {summary["mixed_precision"]}; \
saved in {summary.get("saved_dtype", "float32")}
- Batches: {summary["layout"]} layout; AdamW, cosine schedule with linear warm-up, gradient clipping at \
{settings["max_grad_norm"]}; loss on the answer and EOS only
- {_validation_line(summary.get("validation"))}
- {_throughput_line(summary.get("throughput"))}

| setting | value |
|---|---|
{rows}

`training_log.jsonl` holds the loss, learning rate, gradient norm, tokens, padding share, tokens per
second and time of every step, and the validation loss where it was computed; `runs/` holds the same
curves for TensorBoard (`tensorboard --logdir runs`); `training_summary.json` holds this card's figures.
"""


def _validation_line(validation: Mapping[str, Any] | None) -> str:
    if not validation:
        return "Validation: no samples were held out (see the dataset card), so there is no validation loss"
    return (
        f"Validation: {validation['samples']} held-out samples, loss every {validation['every']} steps and at the "
        f"end: {validation['first_loss']} first, {validation['final_loss']} at the end, best {validation['best_loss']} "
        f"at step {validation['best_step']}"
    )


def _throughput_line(figures: Mapping[str, Any] | None) -> str:
    if not figures:
        return "Throughput: not measured"
    mfu = (
        f"MFU {figures['mfu']:.1%} (an estimate: model FLOPs over the device's peak of {figures['peak_tflops']} "
        "TFLOP/s)"
        if figures.get("mfu") is not None
        else "MFU not estimated (no known peak for this device)"
    )
    memory = f"; peak accelerator memory {figures['memory_gib']} GiB" if figures.get("memory_gib") is not None else ""
    return f"Throughput: {figures['tokens_per_second']} tokens/s (median) on {figures['device']}; {mfu}{memory}"


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True).replace("|", "\\|")
    return str(value)
