"""What a run reports: each step's device figures, the trackers' names for the log's keys, the line
printed per step, and the summary's validation and throughput figures."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from accelerate import Accelerator

from editforge.training import throughput
from editforge.training.data import Example

# The log's keys under the names the trackers show (HF Trainer's train/ and eval/ prefixes).
TRACKED = {
    "loss": "train/loss",
    "lr": "train/learning_rate",
    "grad_norm": "train/grad_norm",
    "tokens_per_second": "train/tokens_per_second",
    "padding_share": "train/padding_share",
    "mfu": "train/mfu_estimate",
    "memory_gib": "system/memory_gib",
    "val_loss": "eval/loss",
}


def device_figures(
    accelerator: Accelerator,
    shape: throughput.ModelShape,
    examples: Sequence[Example],
    group: Sequence[Sequence[int]],
    seconds: float,
    peak: float | None,
) -> dict[str, float]:
    """The step's MFU estimate where the device's peak is known, and peak memory on a GPU."""
    figures: dict[str, float] = {}
    if peak:
        flops = throughput.step_flops(shape, [len(examples[i]["input_ids"]) for batch in group for i in batch])
        figures["mfu"] = round(flops / seconds / (peak * 1e12 * accelerator.num_processes), 4)
    memory = throughput.memory_gib(accelerator.device)
    if memory is not None:
        figures["memory_gib"] = memory
    return figures


def tracked(entry: Mapping[str, Any]) -> dict[str, float]:
    """A log entry under the trackers' names."""
    return {tag: entry[key] for key, tag in TRACKED.items() if key in entry}


def step_line(step: int, steps: int, entry: Mapping[str, Any]) -> str:
    line = (
        f"step {step}/{steps}: loss {entry['loss']:.4f}, lr {entry['lr']:.3g}, grad norm {entry['grad_norm']:.3f}, "
        f"{entry['tokens_per_second']:.0f} tokens/s, padding {entry['padding_share']:.0%}"
    )
    if "mfu" in entry:
        line += f", MFU {entry['mfu']:.1%} (estimate)"
    if "memory_gib" in entry:
        line += f", {entry['memory_gib']:.1f} GiB"
    if "val_loss" in entry:
        line += f", validation loss {entry['val_loss']:.4f}"
    return line


def validation_summary(
    facts: Mapping[str, Any] | None, log: Sequence[Mapping[str, Any]], held_out: int
) -> dict[str, Any] | None:
    points = [(entry["step"], entry["val_loss"]) for entry in log if "val_loss" in entry]
    if facts is None or not points:
        return None
    best_step, best = min(points, key=lambda point: point[1])
    return dict(facts) | {
        "held_out": held_out,
        "first_loss": points[0][1],
        "final_loss": points[-1][1],
        "best_loss": best,
        "best_step": best_step,
    }


def throughput_summary(
    accelerator: Accelerator, log: Sequence[Mapping[str, Any]], peak: float | None
) -> dict[str, Any]:
    """Medians over the steps after the first (which pays for warm-up)."""
    steady = log[1:] or log
    mfu = [entry["mfu"] for entry in steady if "mfu" in entry]
    return {
        "tokens_per_second": round(statistics.median(entry["tokens_per_second"] for entry in steady), 1),
        "mfu": round(statistics.median(mfu), 4) if mfu else None,
        "peak_tflops": peak,
        "device": throughput.device_name(accelerator.device),
        "processes": accelerator.num_processes,
        "memory_gib": throughput.memory_gib(accelerator.device),
        "host_memory_gib": throughput.host_memory_gib(),
    }
