"""The fine-tuning run: model set-up (full or LoRA), the loop, validation, trackers, the final save.

A plain torch loop on ``accelerate`` rather than ``transformers.Trainer``: the
prompt masking, the loss normalisation across gradient-accumulation steps and
processes (``step.py``), and the log stay visible in one place, while accelerate
handles device placement, mixed precision, DDP/FSDP, checkpoint state and the
experiment trackers (``tracking.py``).
"""

from __future__ import annotations

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
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, parse_flag_from_env
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    get_cosine_schedule_with_warmup,
    set_seed,
)

from editforge.records import read_jsonl
from editforge.training import checkpoints, metrics, throughput, tracking
from editforge.training.data import Example, micro_batches, tokenize_example
from editforge.training.memory import out_of_memory_guard
from editforge.training.saving import keep_trainable_weights, save_checkpoint, save_final
from editforge.training.settings import (
    TrainingError,
    checkpoint_interval,
    optimizer_steps,
    resolve,
    validation_interval,
)
from editforge.training.step import DivergenceGuard, train_step, validation_loss


def run_finetune(
    dataset_path: str | os.PathLike[str],
    base_model: str,
    settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    chat_template: bool = True,
    padding: str = "auto",
    validation_path: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base_model`` (a local directory or hub id) on ``dataset_path``; return a summary.

    ``settings`` is one ``training.students`` entry (missing keys take
    ``settings.DEFAULTS``). Writes to ``out_dir`` the model and tokenizer
    (``save_pretrained``; a LoRA run saves the merged model and its adapter under
    ``adapter/``), ``training_log.jsonl`` (one line per optimizer step, with the
    validation loss where it was computed), ``training_summary.json``, the
    TensorBoard run under ``runs/`` and a ``README.md`` model card. Checkpoints go to
    ``out_dir/../checkpoints``, the trackers' live files to ``out_dir/../runs``, and
    a killed run resumes from the newest checkpoint.

    ``validation_path``: the held-out samples (``results/dataset/validation.jsonl``); their
    loss is computed every ``eval_every`` steps and at the end. ``run_name`` names the run in
    the trackers (default: the output folder's parent's name).

    ``padding``: ``auto`` follows the ``packing`` setting; ``longest`` and
    ``max_length`` force a padded layout (``max_length`` pads every micro-batch to
    ``max_seq_len``: only for the benchmark).
    """
    settings = resolve(settings)
    samples = list(read_jsonl(dataset_path))
    if not samples:
        raise TrainingError(f"dataset {dataset_path} holds no training samples")
    held_out = list(read_jsonl(validation_path)) if validation_path else []
    max_seq_len = settings["max_seq_len"]
    config = _load_config(base_model)
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_seq_len > limit:
        raise TrainingError(
            f"max_seq_len {max_seq_len} is larger than the model's max_position_embeddings {limit}; "
            f"set max_seq_len to at most {limit}"
        )
    trackers = tracking.tracker_names(settings["report_to"])
    tracking.check_trackers(trackers)

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    examples = _encode(tokenizer, samples, max_seq_len, chat_template)
    if not examples:
        raise TrainingError(f"all {len(samples)} samples of {dataset_path} are longer than max_seq_len {max_seq_len}")
    validation = _encode(tokenizer, held_out, max_seq_len, chat_template)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    layout = _layout(settings, padding)

    root = checkpoints.checkpoints_dir(out_dir)
    run_id = checkpoints.fingerprint(dataset_path, base_model, bool(chat_template), settings)
    found = checkpoints.latest(root, run_id)
    runs = tracking.runs_dir(out_dir)
    name = run_name or Path(out_dir).resolve().parent.name
    start = found[1]["step"] if found else 0
    # the process group before any process writes (as Accelerator will make it: ACCELERATE_USE_CPU counts)
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    if state.is_main_process:
        tracking.prepare_folder(runs, fresh=found is None)
    state.wait_for_everyone()
    project = settings["project"] or "editforge"
    accelerator = _accelerator(settings, tracking.make_trackers(trackers, runs, name, project, start))
    processes = accelerator.num_processes
    steps = optimizer_steps(settings, len(examples), processes)
    interval = checkpoint_interval(settings, len(examples), processes)
    every = validation_interval(settings, steps)
    lora = settings["method"] == "lora"
    if accelerator.is_main_process:
        for stale in checkpoints.clean_stale(root, run_id):
            print(f"removed stale checkpoint {root / stale}", flush=True)
    accelerator.wait_for_everyone()

    dataset_facts = {
        "path": str(dataset_path),
        "rows": len(samples),
        "tokens": sum(len(e["input_ids"]) for e in examples),
        "sha256": checkpoints.file_sha256(dataset_path),
        **tracking.manifest_beside(dataset_path),
    }
    validation_facts = (
        {"samples": len(validation), "tokens": sum(len(e["input_ids"]) for e in validation), "every": every}
        if validation
        else None
    )
    accelerator.init_trackers(
        project,
        config=tracking.run_config(settings | {"run_name": name}, dataset_facts, validation_facts),
    )

    progress = {"step": 0, "longest": 0, "phase": "loading the model"}
    with out_of_memory_guard(settings, progress, base_model):
        set_seed(settings["seed"])
        model = _load_model(base_model, settings, accelerator)
        shape = throughput.model_shape(model.get_base_model() if lora else model, lora)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = torch.optim.AdamW(_parameter_groups(model, settings["weight_decay"]), lr=settings["learning_rate"])
        progress["phase"] = "placing the model"
        model, optimizer = accelerator.prepare(model, optimizer)
        scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(settings["warmup_ratio"] * steps), steps)
        accelerator.register_for_checkpointing(scheduler)
        fsdp = accelerator.distributed_type == DistributedType.FSDP
        if lora and not fsdp:
            accelerator.register_save_state_pre_hook(keep_trainable_weights)
        peak = throughput.peak_tflops(accelerator.device, settings["peak_tflops"])

        log: list[dict[str, Any]] = []
        if found is not None:
            path, state = found
            accelerator.load_state(str(path), **({"strict": False} if lora and not fsdp else {}))
            log = state["log"]
            accelerator.print(f"resumed from {path} (step {start} of {steps})")
        guard = DivergenceGuard(
            settings["loss_spike_factor"],
            [entry["loss"] for entry in log],
            f"the curves in {runs} (tensorboard --logdir {runs}) and this job's log",
        )
        if found is not None:
            guard.resume = f"rerunning resumes from the checkpoint of step {start} ({found[0]})"

        stream = micro_batches(len(examples), settings["batch_size"], settings["seed"])
        for _ in range(start * settings["grad_accum"] * processes):
            next(stream)
        progress["phase"] = "training"
        started = time.monotonic()
        for step in range(start + 1, steps + 1):
            progress["step"] = step
            group = [next(stream) for _ in range(settings["grad_accum"] * processes)]
            entry = train_step(
                accelerator,
                model,
                optimizer,
                scheduler,
                examples,
                group,
                layout,
                pad_id,
                settings,
                progress,
                guard,
                step,
            )
            entry |= metrics.device_figures(accelerator, shape, examples, group, entry["seconds"], peak)
            if validation and (step % every == 0 or step == steps):
                progress["phase"] = "validation"
                entry["val_loss"] = validation_loss(accelerator, model, validation, layout, pad_id, settings)
                progress["phase"] = "training"
            log.append(entry | {"step": step})
            accelerator.log(metrics.tracked(entry), step=step)
            accelerator.print(metrics.step_line(step, steps, entry), flush=True)
            if interval and step % interval == 0 and step < steps and not guard.spiking:
                save_checkpoint(accelerator, root, step, {"step": step, "fingerprint": run_id, "log": log}, settings)
                saved = checkpoints.step_dir(root, step)
                guard.resume = f"rerunning resumes from the checkpoint of step {step} ({saved})"
                accelerator.print(f"checkpoint of step {step} saved in {saved}", flush=True)
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
            "validation": metrics.validation_summary(validation_facts, log, len(held_out)),
            "throughput": metrics.throughput_summary(accelerator, log, peak),
            "train_seconds": round(seconds, 1),
            "mixed_precision": accelerator.mixed_precision,
            "chat_template": bool(chat_template and tokenizer.chat_template),
            "run_name": name,
            "trackers": trackers,
            "tracking_dir": str(runs),
            "settings": settings,
        }
        save_final(accelerator, model, tokenizer, base_model, config, Path(out_dir), log, summary, runs)
    if accelerator.is_main_process:
        shutil.rmtree(root, ignore_errors=True)  # optimizer states are of no use once the model is saved
    accelerator.wait_for_everyone()
    accelerator.end_training()  # the trackers' last writes; ends the process group too
    return summary


def _encode(
    tokenizer: Any, samples: Sequence[Mapping[str, Any]], max_seq_len: int, chat_template: bool
) -> list[Example]:
    """Each sample tokenised; those longer than ``max_seq_len`` left out."""
    encoded = [tokenize_example(tokenizer, s["messages"], max_seq_len, chat_template) for s in samples]
    return [e for e in encoded if e is not None]


def _accelerator(settings: Mapping[str, Any], log_with: Sequence[Any]) -> Accelerator:
    mixed_precision = "bf16" if _use_bf16(settings["bf16"]) else "no"
    shared = AcceleratorState._shared_state
    if shared.get("_mixed_precision") not in (None, mixed_precision) and PartialState().num_processes == 1:
        # a second run in one process (tests, notebooks) with another precision: accelerate keeps its
        # state per process and refuses a change, which is safe to drop when no process group exists
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, log_with=list(log_with) or None)


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
