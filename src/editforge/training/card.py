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

| setting | value |
|---|---|
{rows}

`training_log.jsonl` holds the loss, learning rate, token count and time of every step;
`training_summary.json` holds this card's figures.
"""


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True).replace("|", "\\|")
    return str(value)
