"""Throughput of a training step: tokens per second, padding, and model FLOPs utilisation (an estimate).

MFU is the model's training FLOPs per second over the devices' peak (PaLM, appendix B):
per sample of ``T`` tokens, ``T * (k * N + 12 * L * d * T)``, with ``N`` the parameters that
multiply (the input embedding is a lookup and does not count), ``L`` layers of width ``d``
(the attention scores and their use), and ``k = 6`` for full fine-tuning (forward, and the
gradients of activations and weights) or ``k = 4`` for LoRA (a frozen base takes no weight
gradients). Recomputation under gradient checkpointing is not model FLOPs and does not count.
The peak is the device's dense bf16 figure from its data sheet (``PEAK_BF16_TFLOPS``) or the
``peak_tflops`` setting; on a CPU, or a GPU not in the table, MFU is left out, not guessed.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Dense bf16 tensor-core TFLOP/s per device (vendor data sheets, without sparsity); the first
# pattern found in torch's device name wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GB200", 2500.0),
    ("B200", 2250.0),
    ("B100", 1750.0),
    ("H200 NVL", 835.5),
    ("H100 NVL", 835.5),
    ("H100 PCIe", 756.5),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("H100", 989.4),
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 6000 Ada", 364.2),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
    ("MI300X", 1307.4),
    ("MI250X", 383.0),
)


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs of a step depend on."""

    parameters: int  # that multiply: all but an untied input embedding
    layers: int
    hidden: int
    weight_flops: int  # per token and parameter: 6 (full) or 4 (LoRA)


def model_shape(model: torch.nn.Module, lora: bool) -> ModelShape:
    """The shape of a transformers causal LM (before any adapter is added)."""
    config = model.config
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    return ModelShape(total - (0 if tied else embedding.numel()), int(layers), int(hidden), 4 if lora else 6)


def step_flops(shape: ModelShape, lengths: Sequence[int]) -> float:
    """Model FLOPs of training on samples of these lengths once (forward and backward)."""
    attention = 12 * shape.layers * shape.hidden
    return float(sum(t * (shape.weight_flops * shape.parameters + attention * t) for t in lengths))


def peak_tflops(device: torch.device, setting: float | None) -> float | None:
    """The peak of one device: the ``peak_tflops`` setting, else the table for a known GPU, else None."""
    if setting is not None:
        return float(setting)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops for pattern, tflops in PEAK_BF16_TFLOPS if pattern in name), None)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def memory_gib(device: torch.device) -> float | None:
    """Peak accelerator memory allocated since the start (GPU only)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def host_memory_gib() -> float:
    """Peak resident memory of this process (Linux reports kB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
