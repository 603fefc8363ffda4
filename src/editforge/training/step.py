"""One optimizer step, the validation loss, and the check that stops a diverging run.

One optimizer step takes ``grad_accum`` micro-batches on each of the ``P`` processes. Every
process computes the same stream of micro-batches (``data.micro_batches``) and trains on its
share of each step's group; the loss is the summed cross-entropy of the answer tokens divided by
the label count of the whole group (times ``P``, since DDP and FSDP average gradients over
processes), so a step weighs every answer token the same however the group is split.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import modeling_utils

from editforge.training.data import IGNORE_INDEX, Example, collate, collate_packed, target_count
from editforge.training.settings import TrainingDiverged

# Whether the installed transformers takes a boolean mask as ``logits_to_keep``
# (recent 5.x releases); older ones index with it as positions and fail.
MASKED_LOGITS = hasattr(modeling_utils, "slice_logits_to_keep")

# A spike is divergence only when it lasts this many steps in a row (one hard batch is not).
SPIKE_STEPS = 3
SPIKE_WINDOW = 20  # the steps whose median loss is the reference


def train_step(
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
    guard: DivergenceGuard,
    step: int,
) -> dict[str, Any]:
    """One optimizer step over ``group`` (all processes' micro-batches); return its log entry.

    The step is checked before the optimizer applies it: a NaN or infinite loss or gradient norm
    stops the run with the weights of the step before.
    """
    began = time.monotonic()
    processes = accelerator.num_processes
    targets = sum(target_count(examples[i]) for batch in group for i in batch)
    mine = group[accelerator.process_index :: processes]
    totals = torch.zeros(2, device=accelerator.device)  # summed loss, positions the layout laid out
    model.train()
    for index, indices in enumerate(mine):
        batch = layout_batch([examples[i] for i in indices], layout, pad_id, settings)
        progress["longest"] = max(len(examples[i]["input_ids"]) for i in indices)
        totals[1] += batch["input_ids"].numel()
        batch = {key: value.to(accelerator.device) for key, value in batch.items()}
        last = index == len(mine) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            loss = summed_loss(model, batch)
            accelerator.backward(loss * processes / targets)
        totals[0] += loss.detach()
    grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), settings["max_grad_norm"]))
    learning_rate = scheduler.get_last_lr()[0]
    if processes > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    loss_value = float(totals[0]) / targets
    guard.check(step, loss_value, grad_norm, learning_rate)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    tokens = sum(len(examples[i]["input_ids"]) for batch in group for i in batch)
    seconds = time.monotonic() - began
    return {
        "loss": round(loss_value, 6),
        "lr": learning_rate,
        "grad_norm": round(grad_norm, 6),
        "tokens": tokens,
        "padding_share": round(1 - tokens / float(totals[1]), 4),
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
    }


@torch.no_grad()
def validation_loss(
    accelerator: Accelerator,
    model: torch.nn.Module,
    examples: Sequence[Example],
    layout: str,
    pad_id: int,
    settings: Mapping[str, Any],
) -> float:
    """The mean cross-entropy of the held-out answers' tokens, each process taking its share of batches."""
    size, processes = settings["batch_size"], accelerator.num_processes
    batches = [list(range(start, min(start + size, len(examples)))) for start in range(0, len(examples), size)]
    totals = torch.zeros(2, device=accelerator.device)  # summed loss, labelled tokens
    model.eval()
    # every process runs the same number of forward passes (FSDP gathers weights in each); one past
    # the end repeats the first batch and is not counted
    for index in range(accelerator.process_index, math.ceil(len(batches) / processes) * processes, processes):
        indices = batches[index] if index < len(batches) else batches[0]
        batch = layout_batch([examples[i] for i in indices], layout, pad_id, settings)
        loss = summed_loss(model, {key: value.to(accelerator.device) for key, value in batch.items()})
        if index < len(batches):
            totals[0] += loss
            totals[1] += sum(target_count(examples[i]) for i in indices)
    if accelerator.num_processes > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    model.train()
    return round(float(totals[0]) / float(totals[1]), 6)


def layout_batch(batch: Sequence[Example], layout: str, pad_id: int, settings: Mapping[str, Any]) -> dict[str, Any]:
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


class DivergenceGuard:
    """Stops a run whose loss or gradient norm is NaN or infinite, or whose loss explodes.

    Exploding: the loss above ``factor`` times the reference (the larger of the first step's loss
    and the median of the last ``SPIKE_WINDOW`` steps) for ``SPIKE_STEPS`` steps in a row.
    ``where`` (the log and the curves) and ``resume`` (which checkpoint a rerun starts from) end
    the message.
    """

    def __init__(self, factor: float | None, history: Sequence[float], where: str) -> None:
        self.factor = factor
        self.losses = [loss for loss in history if math.isfinite(loss)]
        self.last = (len(history), self.losses[-1]) if self.losses else None  # the last finite loss, its step
        self.where = where
        self.resume = "no checkpoint was saved yet, so a rerun starts over"
        self.spiking = 0

    def check(self, step: int, loss: float, grad_norm: float, learning_rate: float) -> None:
        if not math.isfinite(loss) or not math.isfinite(grad_norm):
            what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {grad_norm} (loss {loss:.4g})"
            self._stop(step, what, learning_rate)
        if self.factor and self.losses:
            reference = max(self.losses[0], statistics.median(self.losses[-SPIKE_WINDOW:]))
            self.spiking = self.spiking + 1 if loss > self.factor * reference else 0
            if self.spiking >= SPIKE_STEPS:
                self._stop(
                    step,
                    f"loss {loss:.4g}, above {self.factor:g} x {reference:.4g} for {SPIKE_STEPS} steps "
                    "(loss_spike_factor)",
                    learning_rate,
                )
        if not self.spiking:
            self.losses.append(loss)
        self.last = (step, loss)

    def _stop(self, step: int, what: str, learning_rate: float) -> None:
        last = f"{self.last[1]:.4g} at step {self.last[0]}" if self.last else "none"
        raise TrainingDiverged(
            f"training diverged at step {step}: {what}, learning rate {learning_rate:.3g}, last finite loss "
            f"{last}; {self.resume} (a lower learning_rate or more warmup_ratio starts over); see {self.where}"
        )
